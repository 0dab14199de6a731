#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "cpn/artifacts/artifacts.hpp"
#include "cpn/core/crypto.hpp"

namespace cpn::artifacts {
namespace fs = std::filesystem;
namespace {

resource::Rules file_rules() {
  resource::Rules r;
  r.kind = kFile;
  r.schema = "";  // files are written by upload, never from a JSON body
  r.title = "file";
  r.id_of = [](const Json& b) { return b["name"].get<std::string>(); };
  return r;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void Files::settle(const std::string& temp_path) { fsync_path(temp_path, O_RDONLY); }

namespace {

}  // namespace

Files::Files(engine::Engine& engine, std::string blob_dir)
    : engine_(engine), blob_dir_(std::move(blob_dir)), files_(engine, file_rules()) {
  fs::create_directories(blob_dir_ + "/tmp");
  fs::create_directories(blob_dir_ + "/sha256");
  // Bodies that were arriving when cpnd stopped were never acknowledged.
  for (const auto& entry : fs::directory_iterator(blob_dir_ + "/tmp")) fs::remove(entry.path());
  // A crash between storing a blob and committing its file (or between a
  // delete's commit and the blob's removal) leaves a blob nothing names.
  std::set<std::string> named;
  for (const engine::Object* f : engine_.list(kFile)) named.insert(f->body.value("sha256", ""));
  for (const auto& shard : fs::directory_iterator(blob_dir_ + "/sha256"))
    if (shard.is_directory())
      for (const auto& blob : fs::directory_iterator(shard.path()))
        if (!named.count(blob.path().filename().string())) fs::remove(blob.path());
}

std::string Files::temp_path() { return blob_dir_ + "/tmp/upload-" + random_hex(8); }

Result<Json> Files::store(const std::string& name, const Received& received, const std::string& expected,
                          const std::string& content_type, std::optional<std::int64_t> if_match) {
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      fs::remove(path, ec);
    }
  } cleanup{received.path};
  const std::string& temp = received.path;
  if (!valid_name(name))
    return fail(Error::invalid_field("/path/name", fmt::format("'{}' is not a file name (letters, digits, '.', '_', '-')", name)));
  const engine::Object* existing = engine_.find(kFile, name);
  if (if_match && (!existing || (*if_match != resource::kAnyVersion && existing->resource_version != *if_match)))
    return fail(Error{ErrorKind::precondition_failed, fmt::format("file '{}' is not at resourceVersion {}", name, *if_match), {}});
  std::string digest = received.sha256;
  std::uint64_t size = received.size;
  if (digest.empty()) {  // not hashed on the way in: read it once
    Sha256 hash;
    std::ifstream in(temp, std::ios::binary);
    std::vector<char> buf(1 << 16);
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      auto n = in.gcount();
      if (n > 0) {
        hash.update(buf.data(), static_cast<std::size_t>(n));
        size += static_cast<std::uint64_t>(n);
      }
    }
    digest = hash.hex();
  }
  if (!expected.empty() && expected != digest)
    return fail(Error::invalid_field("/header/X-Content-SHA256",
                                     fmt::format("body has sha256 {}, expected {}", digest, expected)));
  std::string dir = blob_dir_ + "/sha256/" + digest.substr(0, 2);
  std::string blob = dir + "/" + digest;
  if (!fs::exists(dir)) {
    fs::create_directories(dir);
    fsync_path(blob_dir_ + "/sha256", O_RDONLY | O_DIRECTORY);  // the new shard's entry is durable too
  }
  if (!fs::exists(blob)) {
    // Durable before it is acknowledged: the data, then the rename.
    fsync_path(temp, O_RDONLY);
    if (std::rename(temp.c_str(), blob.c_str()) != 0)
      return fail(Error::internal(fmt::format("cannot store blob for file '{}'", name)));
    fsync_path(dir, O_RDONLY | O_DIRECTORY);
  }
  Json body = {{"name", name}, {"sha256", digest}, {"size", size},
               {"content_type", content_type.empty() ? "application/octet-stream" : content_type}};
  if (existing && existing->body == body) return files_.render(*existing);
  std::string replaced = existing ? existing->body.value("sha256", "") : "";
  auto ev = engine_.commit({{engine::Change::Op::put, kFile, name, body, ""}});
  if (!ev) return fail(ev.error());
  if (!replaced.empty() && replaced != digest) drop_blob_if_unused(replaced);
  return files_.render(*engine_.find(kFile, name));
}

Result<FileInfo> Files::open(const std::string& name) const {
  auto f = files_.find(name);
  if (!f) return fail(f.error());
  const Json& b = (*f)->body;
  std::string digest = b["sha256"].get<std::string>();
  return FileInfo{blob_dir_ + "/sha256/" + digest.substr(0, 2) + "/" + digest, digest, b["size"].get<std::uint64_t>(),
                  b.value("content_type", "application/octet-stream")};
}

Status Files::remove(const std::string& name, std::optional<std::int64_t> if_match) {
  auto f = files_.find(name);
  if (!f) return fail(f.error());
  std::vector<std::string> users;
  for (const engine::Object* img : engine_.list(kImage))
    for (const auto& v : img->body["variants"])
      for (const auto& used : v.value("files", Json::array()))
        if (used == name && (users.empty() || users.back() != "image/" + img->id)) users.push_back("image/" + img->id);
  if (!users.empty()) {
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    return fail(Error::conflict(fmt::format("file '{}' is still used by {}", name, list)));
  }
  std::string digest = (*f)->body["sha256"].get<std::string>();
  if (auto s = files_.remove(name, if_match); !s) return s;
  drop_blob_if_unused(digest);
  return {};
}

// The blob goes once no file has that content any more.
void Files::drop_blob_if_unused(const std::string& digest) {
  for (const engine::Object* other : engine_.list(kFile))
    if (other->body.value("sha256", "") == digest) return;
  std::error_code ec;
  fs::remove(blob_dir_ + "/sha256/" + digest.substr(0, 2) + "/" + digest, ec);
}

}  // namespace cpn::artifacts
