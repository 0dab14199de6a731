// /v1/images (multi-architecture images) and /v1/files (content-addressed
// configuration files and model weights).
#include <charconv>

#include "common.hpp"
#include "routes.hpp"

namespace cpn::api {
namespace {

struct ByteRange {
  std::uint64_t offset = 0, length = 0;
};

// One "bytes=a-b" range (RFC 9110 14.1.2). nullopt: unsatisfiable.
std::optional<ByteRange> parse_range(const std::string& header, std::uint64_t size) {
  const std::string prefix = "bytes=";
  if (header.rfind(prefix, 0) != 0) return std::nullopt;
  std::string spec = header.substr(prefix.size());
  auto dash = spec.find('-');
  if (dash == std::string::npos || spec.find(',') != std::string::npos) return std::nullopt;
  auto num = [](const std::string& s, std::uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
  };
  std::string a = spec.substr(0, dash), b = spec.substr(dash + 1);
  std::uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: the last N bytes
    if (!num(b, last) || last == 0 || size == 0) return std::nullopt;
    std::uint64_t n = std::min(last, size);
    return ByteRange{size - n, n};
  }
  if (!num(a, first) || first >= size) return std::nullopt;
  if (b.empty()) return ByteRange{first, size - first};
  if (!num(b, last) || last < first) return std::nullopt;
  last = std::min(last, size - 1);
  return ByteRange{first, last - first + 1};
}

}  // namespace

void add_artifact_routes(http::Router& router, Services& s) {
  const std::vector<std::string> read = {"operator", "designer"};
  const std::vector<std::string> write = {"operator", "designer"};
  auto& images = s.images.collection();
  auto& imgs = s.images;
  auto& files = s.files;

  router.add(list_route(
      "/v1/images", read, images, "listImages", "List images (every version)", "artifacts",
      [](const engine::Object& obj, const Request& req) {
        auto name = req.query_value("name");
        return !name || obj.body.value("name", "") == *name;
      },
      {{"name", "string", "Only the versions of this image."}}));

  http::Route create{"POST", "/v1/images", write,
                     [&images](Request& req) {
                       auto r = images.create(req.document);
                       std::string loc = r ? "/v1/images/" + (*r)["name"].get<std::string>() + "/" +
                                                 (*r)["version"].get<std::string>()
                                           : "";
                       return created(r, req, loc);
                     },
                     "createImage", "Register an image version with its per-platform variants", "artifacts", "image",
                     201, "Created"};
  create.creates = true;
  router.add(std::move(create));

  auto id_of = [](const Request& req) { return artifacts::image_id(req.param("name"), req.param("version")); };
  router.add({"GET", "/v1/images/{name}/{version}", read,
              [&images, id_of](Request& req) { return answer(images.get(id_of(req)), req); }, "getImage",
              "Read an image version", "artifacts"});
  router.add({"PUT", "/v1/images/{name}/{version}", write,
              [&images, id_of](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                return answer(images.replace(id_of(req), req.document, *m), req);
              },
              "replaceImage", "Replace an image version (If-Match honoured)", "artifacts", "image"});
  router.add({"DELETE", "/v1/images/{name}/{version}", write,
              [&images, id_of](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                auto st = images.remove(id_of(req), *m);
                if (!st) return error(st.error(), req);
                Response r;
                r.status = 204;
                return r;
              },
              "deleteImage", "Delete an image version", "artifacts", "", 204, "Deleted"});
  http::Route resolve{"GET", "/v1/images/{name}/{version}/resolve", read,
                      [&imgs](Request& req) {
                        auto node = req.query_value("node");
                        if (!node || node->empty())
                          return error(Error::bad_request("resolve needs ?node=ID", {{"/query/node", "required"}}), req);
                        return answer(imgs.resolve(req.param("name"), req.param("version"), *node), req);
                      },
                      "resolveImage", "The variant of an image that runs on a node, or why none does", "artifacts"};
  resolve.query = {{"node", "string", "Id of the node to run on (required)."}};
  router.add(std::move(resolve));

  router.add(list_route("/v1/files", read, files.collection(), "listFiles",
                        "List stored files with their size and sha256", "artifacts"));

  http::Route put{"PUT", "/v1/files/{name}", write,
                  [&files](Request& req) {
                    auto m = if_match(req);
                    if (!m) return error(m.error(), req);
                    std::string expected = req.header("x-content-sha256");
                    if (auto q = req.query_value("sha256")) expected = *q;
                    bool existed = files.collection().find(req.param("name")).has_value();
                    auto r = files.store(req.param("name"), {req.body_file, req.body_sha256, req.body_size}, expected,
                                         req.header("content-type"), *m);
                    if (!r) return error(r.error(), req);
                    Response res = json(*r, existed ? 200 : 201);
                    if (!existed) res.header("Location", "/v1/files/" + req.param("name"));
                    return res;
                  },
                  "putFile", "Upload a file (streamed to disk, content-addressed; optional sha256 check)",
                  "artifacts", "binary", 201, "Stored"};
  put.streams_body = true;
  // Its data reaches the disk on a worker: the fsync of a large upload would hold every other request.
  put.prepare = [](Request& req) -> std::function<void()> {
    if (req.body_file.empty()) return {};
    return [path = req.body_file] { artifacts::Files::settle(path); };
  };
  put.prepare_task = "upload-sync";
  put.query = {{"sha256", "string", "Expected SHA-256 (hex) of the body; a mismatch is refused."}};
  router.add(std::move(put));

  http::Route get{"GET", "/v1/files/{name}", read,
                  [&files](Request& req) {
                    auto f = files.open(req.param("name"));
                    if (!f) return error(f.error(), req);
                    std::string tag = "\"" + f->sha256 + "\"";
                    Response r;
                    r.content_type = f->content_type;
                    r.header("ETag", tag).header("Accept-Ranges", "bytes");
                    if (req.header("if-none-match") == tag) {
                      r.status = 304;
                      return r;
                    }
                    http::FileBody body{f->path, 0, f->size};
                    std::string range = req.header("range");
                    std::string if_range = req.header("if-range");
                    if (!range.empty() && (if_range.empty() || if_range == tag)) {
                      auto br = parse_range(range, f->size);
                      if (!br) {
                        Response bad = error(Error{ErrorKind::range_not_satisfiable,
                                                   fmt::format("range '{}' is outside the file ({} bytes)", range, f->size),
                                                   {{"/header/Range", "not satisfiable"}}},
                                             req);
                        bad.header("Content-Range", fmt::format("bytes */{}", f->size));
                        return bad;
                      }
                      body = {f->path, br->offset, br->length};
                      r.status = 206;
                      r.header("Content-Range",
                               fmt::format("bytes {}-{}/{}", br->offset, br->offset + br->length - 1, f->size));
                    }
                    r.file = body;
                    return r;
                  },
                  "getFile", "Download a file (ETag, If-None-Match, Range)", "artifacts"};
  get.yaml = false;
  get.response_description = "The file's bytes";
  router.add(std::move(get));

  router.add({"DELETE", "/v1/files/{name}", write,
              [&files](Request& req) {
                auto m = if_match(req);
                if (!m) return error(m.error(), req);
                auto st = files.remove(req.param("name"), *m);
                if (!st) return error(st.error(), req);
                Response r;
                r.status = 204;
                return r;
              },
              "deleteFile", "Delete a file; refused while an image references it", "artifacts", "", 204, "Deleted"});
}

}  // namespace cpn::api
