#include "cpn/inventory/measurement.hpp"

namespace cpn::inventory {
namespace {

// Vendor figures (dense, at the card's boost clock). The per-core factors
// reflect SPECrate-style per-core throughput relative to a current Xeon core.
const std::map<std::string, AcceleratorRating>& builtin_accelerators() {
  static const std::map<std::string, AcceleratorRating> table = {
      {"nvidia-t4", {130, 65}},        {"nvidia-a10", {250, 125}},      {"nvidia-a30", {330, 165}},
      {"nvidia-a100", {624, 312}},     {"nvidia-l4", {242, 121}},       {"nvidia-h100", {1979, 989}},
      {"nvidia-jetson-orin", {275, 138}}, {"ascend-310", {22, 11}},     {"ascend-310p", {140, 70}},
      {"ascend-910", {640, 320}},      {"xilinx-alveo-u50", {33, 0}},   {"xilinx-alveo-u250", {90, 0}},
      {"intel-arria10", {10, 1.5}},    {"cambricon-mlu370", {256, 96}},
  };
  return table;
}

const std::map<std::string, double>& builtin_core_factors() {
  static const std::map<std::string, double> table = {{"x86_64", 1.0}, {"aarch64", 0.8}, {"riscv64", 0.4}};
  return table;
}

}  // namespace

Measurement Measurement::with_overrides(const Json& overrides) {
  Measurement m{builtin_core_factors(), builtin_accelerators()};
  if (!overrides.is_object()) return m;
  if (auto c = overrides.find("cpu_core_equivalents"); c != overrides.end())
    for (const auto& [arch, f] : c->items()) m.cpu_core_equivalents[arch] = f.get<double>();
  if (auto a = overrides.find("accelerators"); a != overrides.end())
    for (const auto& [model, r] : a->items()) {
      auto& slot = m.accelerators[model];
      if (r.contains("tops_int8")) slot.tops_int8 = r["tops_int8"].get<double>();
      if (r.contains("tflops_fp16")) slot.tflops_fp16 = r["tflops_fp16"].get<double>();
    }
  return m;
}

double Measurement::core_factor(const std::string& arch) const {
  auto it = cpu_core_equivalents.find(arch);
  return it == cpu_core_equivalents.end() ? 1.0 : it->second;
}

std::optional<AcceleratorRating> Measurement::rating(const std::string& model) const {
  auto it = accelerators.find(model);
  if (it == accelerators.end()) return std::nullopt;
  return it->second;
}

Json node_capability(const Json& node, const Measurement& m) {
  double cores = node.value("cpu", 0.0) * m.core_factor(node.value("arch", ""));
  double tops = 0, tflops = 0;
  Json unrated = Json::array();
  for (const auto& a : node.value("accelerators", Json::array())) {
    int count = a.value("count", 0);
    auto r = m.rating(a.value("model", ""));
    // A rating on the node itself beats the table.
    double t = a.contains("tops_int8") ? a["tops_int8"].get<double>() : (r ? r->tops_int8 : 0);
    double f = a.contains("tflops_fp16") ? a["tflops_fp16"].get<double>() : (r ? r->tflops_fp16 : 0);
    if (!r && !a.contains("tops_int8") && !a.contains("tflops_fp16")) unrated.push_back(a.value("model", ""));
    tops += t * count;
    tflops += f * count;
  }
  Json out = {{"cpu_core_equivalents", cores}, {"accelerator_tops_int8", tops}, {"accelerator_tflops_fp16", tflops}};
  if (!unrated.empty()) out["unrated_accelerators"] = unrated;
  return out;
}

}  // namespace cpn::inventory
