// DeploymentTemplate documents for tests: the envelope, so a test states
// only its components (and network).
#pragma once

#include <string>

#include "cpn/core/document.hpp"

namespace cpn::test {

inline Json deployment_template(const std::string& name, Json components, Json network = nullptr) {
  Json spec = {{"components", std::move(components)}};
  if (!network.is_null()) spec["network"] = std::move(network);
  return {{"apiVersion", "cpn/v1"}, {"kind", "DeploymentTemplate"}, {"metadata", {{"name", name}}}, {"spec", spec}};
}

// "read": two plate readers on sz-t4-1 of the demo topology, a T4 each.
inline Json plate_reader() {
  return {{"name", "read"},
          {"tier", "edge"},
          {"image", "plate-reader:1.0"},
          {"placements",
           {{{"site", "edge-sz-1"}, {"node", "sz-t4-1"}, {"arch", "x86_64"}, {"accelerator", "nvidia-t4"},
             {"instances", 2}, {"requests", {{"cpu", 2}, {"memory", 4}, {"accelerators", 1}}}}}}};
}

}  // namespace cpn::test
