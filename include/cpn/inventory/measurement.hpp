// Compute measurement (算力度量): every node's capability in normalised
// units, so heterogeneous pools compare: CPU core-equivalents (an x86_64
// core is 1.0) and accelerator INT8 TOPS / FP16 TFLOPS from a table of known
// models that a topology can override.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "cpn/core/document.hpp"

namespace cpn::inventory {

struct AcceleratorRating {
  double tops_int8 = 0;
  double tflops_fp16 = 0;
};

struct Measurement {
  std::map<std::string, double> cpu_core_equivalents;        // per arch
  std::map<std::string, AcceleratorRating> accelerators;     // per model

  // Built-in table plus a topology's `measurement` overrides.
  static Measurement with_overrides(const Json& overrides);
  double core_factor(const std::string& arch) const;
  std::optional<AcceleratorRating> rating(const std::string& model) const;
};

// The `capability` of a stored node body.
Json node_capability(const Json& node, const Measurement& m);

}  // namespace cpn::inventory
