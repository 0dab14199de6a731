#include <map>
#include <set>

#include <fmt/format.h>

#include "cpn/artifacts/artifacts.hpp"

namespace cpn::artifacts {
namespace {

// Which accelerator stack an accelerator needs.
std::string stack_of(const Json& accelerator) {
  std::string type = accelerator.value("type", ""), model = accelerator.value("model", "");
  if (type == "fpga") return "fpga";
  if (model.rfind("nvidia-", 0) == 0) return "cuda";
  if (model.rfind("ascend-", 0) == 0) return "cann";
  return type;
}

resource::Rules image_rules() {
  resource::Rules r;
  r.kind = kImage;
  r.schema = "image";
  r.title = "image";
  r.admit = [](Json& body, const engine::Object*, const engine::Engine& e) {
    std::vector<FieldError> errs;
    std::set<std::pair<std::string, std::string>> seen;
    std::size_t i = 0;
    for (auto& v : body["variants"]) {
      std::string base = fmt::format("/variants/{}", i++);
      if (!v.contains("accelerator")) v["accelerator"] = "none";
      if (!seen.insert({v["platform"].get<std::string>(), v["accelerator"].get<std::string>()}).second)
        errs.push_back({base, fmt::format("a second variant for {} with accelerator {}", v["platform"].get<std::string>(),
                                          v["accelerator"].get<std::string>())});
      std::size_t j = 0;
      for (const auto& f : v.value("files", Json::array())) {
        if (!e.find(kFile, f.get<std::string>()))
          errs.push_back({fmt::format("{}/files/{}", base, j), fmt::format("unknown file '{}'", f.get<std::string>())});
        ++j;
      }
    }
    if (!body.contains("labels")) body["labels"] = Json::object();
    return errs;
  };
  r.id_of = [](const Json& b) { return image_id(b["name"].get<std::string>(), b["version"].get<std::string>()); };
  return r;
}

}  // namespace

std::string image_id(const std::string& name, const std::string& version) { return name + "@" + version; }

std::string platform_of_arch(const std::string& arch) {
  if (arch == "x86_64") return "linux/amd64";
  if (arch == "aarch64") return "linux/arm64";
  return "linux/" + arch;
}

Images::Images(engine::Engine& engine) : engine_(engine), images_(engine, image_rules()) {}

Result<Json> Images::resolve(const std::string& name, const std::string& version, const std::string& node_id) const {
  auto image = images_.find(image_id(name, version));
  if (!image) return fail(image.error());
  const engine::Object* node = engine_.find("node", node_id);
  if (!node)
    return fail(Error{ErrorKind::unprocessable, fmt::format("node '{}' not found", node_id),
                      {{"/query/node", fmt::format("unknown node '{}'", node_id)}}});
  std::string platform = platform_of_arch(node->body.value("arch", ""));
  std::set<std::string> stacks;
  for (const auto& a : node->body.value("accelerators", Json::array())) stacks.insert(stack_of(a));

  const Json& variants = (*image)->body["variants"];
  const Json* best = nullptr;
  std::vector<FieldError> reasons;
  for (std::size_t i = 0; i < variants.size(); ++i) {
    const Json& v = variants[i];
    std::string acc = v.value("accelerator", "none");
    std::string ptr = fmt::format("/variants/{}", i);
    if (v["platform"] != platform) {
      reasons.push_back({ptr, fmt::format("built for {}, node '{}' is {}", v["platform"].get<std::string>(), node_id,
                                          platform)});
      continue;
    }
    if (acc != "none" && !stacks.count(acc)) {
      reasons.push_back({ptr, fmt::format("needs a {} accelerator, node '{}' has {}", acc, node_id,
                                          stacks.empty() ? std::string("none") : *stacks.begin())});
      continue;
    }
    // An accelerated variant beats the CPU one on a node that has the stack.
    if (!best || (best->value("accelerator", "none") == "none" && acc != "none")) best = &v;
  }
  if (!best)
    return fail(Error::invalid(
        fmt::format("no variant of image '{}' version '{}' runs on node '{}' ({}{})", name, version, node_id, platform,
                    stacks.empty() ? "" : ", " + *stacks.begin()),
        std::move(reasons)));
  return Json{{"image", name}, {"version", version}, {"node", node_id}, {"platform", platform},
              {"variant", *best}};
}

}  // namespace cpn::artifacts
