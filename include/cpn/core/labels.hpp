// Kubernetes-style label selectors: "zone=a,tier!=end,arch in (x86_64,aarch64),gpu,!fpga".
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cpn/core/error.hpp"

namespace cpn {

using Labels = std::map<std::string, std::string>;

struct LabelRequirement {
  enum class Op { equals, not_equals, in, not_in, exists, not_exists };
  std::string key;
  Op op = Op::exists;
  std::vector<std::string> values;
};

class LabelSelector {
 public:
  static Result<LabelSelector> parse(std::string_view text);
  bool matches(const Labels& labels) const;
  bool empty() const { return requirements_.empty(); }

 private:
  std::vector<LabelRequirement> requirements_;
};

}  // namespace cpn
