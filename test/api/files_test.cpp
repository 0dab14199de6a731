#include <catch2/catch.hpp>
#include <set>

#include <fmt/format.h>

#include "cpn/core/crypto.hpp"
#include "support/daemon.hpp"
#include "support/raw.hpp"

using namespace cpn;

TEST_CASE("files upload streamed, are served with ETag and Range, and stay while referenced", "[api][artifacts]") {
  test::Daemon d({.env = {{"CPND_FILES_MAX_BYTES", "3000000"}}});
  auto des = d.as("designer");
  std::string content;
  for (int i = 0; i < 200000; ++i) content += static_cast<char>('a' + i % 26);
  std::string path = d.data() + "/../upload-" + std::to_string(::getpid()) + ".bin";
  test::write_file(path, content);
  std::string digest = sha256_hex(content);

  auto wrong = des.put_file("/v1/files/detector.yaml", path, {{"X-Content-SHA256", std::string(64, '0')}});
  CHECK(wrong.status == 422);
  CHECK(des.get("/v1/files/detector.yaml").status == 404);

  auto put = des.put_file("/v1/files/detector.yaml", path, {{"X-Content-SHA256", digest}});
  REQUIRE(put.status == 201);
  CHECK(put.json()["sha256"] == digest);
  CHECK(put.json()["size"] == content.size());
  CHECK(test::read_file(d.data() + "/blobs/sha256/" + digest.substr(0, 2) + "/" + digest) == content);

  auto get = des.get("/v1/files/detector.yaml");
  REQUIRE(get.status == 200);
  CHECK(get.body == content);
  CHECK(get.header("etag") == "\"" + digest + "\"");
  CHECK(des.request("GET", "/v1/files/detector.yaml", "", {{"If-None-Match", get.header("etag")}}).status == 304);

  auto part = des.request("GET", "/v1/files/detector.yaml", "", {{"Range", "bytes=100-199"}});
  CHECK(part.status == 206);
  CHECK(part.body == content.substr(100, 100));
  CHECK(part.header("content-range") == "bytes 100-199/200000");
  auto tail = des.request("GET", "/v1/files/detector.yaml", "", {{"Range", "bytes=-10"}});
  CHECK(tail.body == content.substr(content.size() - 10));
  auto beyond = des.request("GET", "/v1/files/detector.yaml", "", {{"Range", "bytes=999999-"}});
  CHECK(beyond.status == 416);
  CHECK(beyond.header("content-range") == "bytes */200000");

  // an image variant that needs the file keeps it
  Json image = {{"name", "detector"},
                {"version", "1.0"},
                {"variants",
                 {{{"platform", "linux/amd64"}, {"digest", "sha256:" + digest}, {"size", 1},
                   {"files", {"detector.yaml"}}}}}};
  REQUIRE(des.post("/v1/images", image).status == 201);
  auto refused = des.del("/v1/files/detector.yaml");
  CHECK(refused.status == 409);
  CHECK_THAT(refused.json()["detail"].get<std::string>(), Catch::Contains("image/detector@1.0"));
  CHECK(des.del("/v1/images/detector/1.0").status == 204);
  CHECK(des.del("/v1/files/detector.yaml").status == 204);
  CHECK(des.get("/v1/files/detector.yaml").status == 404);

  // over the configured limit: 413, nothing stored
  std::string big(3'500'000, 'z');
  test::write_file(path, big);
  auto too_big = des.put_file("/v1/files/big.bin", path);
  CHECK(too_big.status == 413);
  CHECK(des.get("/v1/files").json()["items"].empty());
  std::remove(path.c_str());
}

TEST_CASE("images list, read and resolve through the API", "[api][artifacts]") {
  test::Daemon d({.dev = true});
  auto des = d.as("designer");
  Json image = {{"name", "face-detect"},
                {"version", "2.3.0"},
                {"variants",
                 {{{"platform", "linux/amd64"}, {"digest", "sha256:" + std::string(64, 'a')}, {"size", 10},
                   {"command", {"face-detect", "--cpu"}}},
                  {{"platform", "linux/amd64"}, {"accelerator", "cuda"}, {"digest", "sha256:" + std::string(64, 'b')},
                   {"size", 20}},
                  {{"platform", "linux/arm64"}, {"accelerator", "cann"}, {"digest", "sha256:" + std::string(64, 'c')},
                   {"size", 30}}}}};
  auto created = des.post("/v1/images", image);
  REQUIRE(created.status == 201);
  CHECK(created.header("location") == "/v1/images/face-detect/2.3.0");
  CHECK(des.get("/v1/images/face-detect/2.3.0").json()["variants"].size() == 3);
  CHECK(des.get("/v1/images?name=face-detect").json()["items"].size() == 1);

  // pick one node of each kind from the demo topology
  std::string gpu, npu, arm_cpu;
  for (const auto& n : Json(des.get("/v1/nodes").json()["items"])) {
    std::string model = n["accelerators"].empty() ? "" : n["accelerators"][0]["model"].get<std::string>();
    if (model == "nvidia-t4" && gpu.empty()) gpu = n["id"];
    if (model == "ascend-310" && npu.empty()) npu = n["id"];
    if (model.empty() && n["arch"] == "aarch64" && arm_cpu.empty()) arm_cpu = n["id"];
  }
  REQUIRE_FALSE(gpu.empty());
  REQUIRE_FALSE(npu.empty());
  REQUIRE_FALSE(arm_cpu.empty());
  CHECK(des.get("/v1/images/face-detect/2.3.0/resolve?node=" + gpu).json()["variant"]["accelerator"] == "cuda");
  CHECK(des.get("/v1/images/face-detect/2.3.0/resolve?node=" + npu).json()["variant"]["accelerator"] == "cann");
  auto none = des.get("/v1/images/face-detect/2.3.0/resolve?node=" + arm_cpu);
  CHECK(none.status == 422);
  CHECK(none.json()["errors"].size() == 3);
  CHECK(des.get("/v1/images/face-detect/2.3.0/resolve").status == 400);
}

TEST_CASE("chunked uploads are hashed as they arrive and counted against the limit", "[api][artifacts]") {
  test::Daemon d({.env = {{"CPND_FILES_MAX_BYTES", "1000"}}});
  std::string token = d.token("designer");
  auto chunked = [&](const std::string& name, const std::vector<std::string>& chunks) {
    test::RawConnection c(d.url());
    std::string req = "PUT /v1/files/" + name + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                      "\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (const auto& ch : chunks) req += fmt::format("{:x}\r\n{}\r\n", ch.size(), ch);
    req += "0\r\n\r\n";
    c.send(req);
    return c.read_until("\r\n\r\n", 3000);
  };
  std::string a(400, 'a'), b(300, 'b');
  CHECK_THAT(chunked("small.txt", {a, b}), Catch::StartsWith("HTTP/1.1 201"));
  auto info = d.as("designer").get("/v1/files").json()["items"][0];
  CHECK(info["sha256"] == sha256_hex(a + b));
  CHECK(info["size"] == 700);
  CHECK_THAT(chunked("big.txt", {a, a, a}), Catch::StartsWith("HTTP/1.1 413"));
  CHECK(d.as("designer").get("/v1/files/big.txt").status == 404);
}
