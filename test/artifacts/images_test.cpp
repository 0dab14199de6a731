#include <catch2/catch.hpp>

#include "cpn/artifacts/artifacts.hpp"
#include "cpn/inventory/inventory.hpp"
#include "support/engine_fixture.hpp"

using namespace cpn;

namespace {

Json image() {
  auto digest = [](char c) { return "sha256:" + std::string(64, c); };
  return {{"name", "face-detect"},
          {"version", "2.3"},
          {"variants",
           {{{"platform", "linux/amd64"}, {"digest", digest('a')}, {"size", 100}, {"command", {"detect"}}},
            {{"platform", "linux/amd64"}, {"accelerator", "cuda"}, {"digest", digest('b')}, {"size", 900}},
            {{"platform", "linux/arm64"}, {"accelerator", "cann"}, {"digest", digest('c')}, {"size", 700}}}}};
}

}  // namespace

TEST_CASE("an image resolves to the variant of the node's platform and accelerator", "[artifacts]") {
  test::EngineFixture f;
  inventory::Inventory inv(f.engine);
  artifacts::Images images(f.engine);
  REQUIRE(inv.import_topology(Json::parse(R"({"apiVersion":"cpn/v1","kind":"Topology","sites":[
    {"id":"e1","tier":"edge","city":"Shenzhen","nodes":[
      {"id":"x86-cpu","arch":"x86_64","cpu":16,"memory":32},
      {"id":"x86-t4","arch":"x86_64","cpu":16,"memory":32,"accelerators":[{"type":"gpu","model":"nvidia-t4","count":1}]},
      {"id":"arm-npu","arch":"aarch64","cpu":16,"memory":32,"accelerators":[{"type":"npu","model":"ascend-310","count":1}]},
      {"id":"arm-cpu","arch":"aarch64","cpu":16,"memory":32},
      {"id":"rv","arch":"riscv64","cpu":4,"memory":8}]}]})")));
  REQUIRE(images.collection().create(image()));
  auto variant = [&](const char* node) {
    auto r = images.resolve("face-detect", "2.3", node);
    REQUIRE(r);
    return (*r)["variant"];
  };
  CHECK(variant("x86-cpu")["accelerator"] == "none");
  CHECK(variant("x86-t4")["accelerator"] == "cuda");
  CHECK(variant("arm-npu")["accelerator"] == "cann");
  auto none = images.resolve("face-detect", "2.3", "arm-cpu");
  REQUIRE_FALSE(none);
  CHECK(none.error().kind == ErrorKind::unprocessable);
  CHECK(test::pointers(none.error()) == std::vector<std::string>{"/variants/0", "/variants/1", "/variants/2"});
  CHECK_THAT(none.error().errors[2].message, Catch::Contains("needs a cann accelerator"));
  CHECK_FALSE(images.resolve("face-detect", "2.3", "rv"));
  auto missing = images.resolve("face-detect", "2.3", "nope");
  REQUIRE_FALSE(missing);
  CHECK(test::pointers(missing.error()) == std::vector<std::string>{"/query/node"});
}

TEST_CASE("an image with two variants for one platform and stack is refused", "[artifacts]") {
  test::EngineFixture f;
  artifacts::Images images(f.engine);
  Json img = image();
  img["variants"].push_back(img["variants"][1]);
  img["variants"][3]["files"] = {"missing.yaml"};
  auto r = images.collection().create(img);
  REQUIRE_FALSE(r);
  CHECK(test::pointers(r.error()) == std::vector<std::string>{"/variants/3", "/variants/3/files/0"});
}
