// The syntax tree of an expression. Private to the expr module.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cpn/expr/expr.hpp"

namespace cpn::expr {

struct Node {
  enum class Kind { literal, name, unary, binary, conditional, call };
  Kind kind = Kind::literal;
  int line = 1, column = 1;  // where the node starts, for messages
  Value value;               // literal
  std::string text;          // name, operator, or function
  std::vector<std::shared_ptr<const Node>> args;
};

using NodePtr = std::shared_ptr<const Node>;

// "line 1, column 9: message"
std::string at(const Node& n, const std::string& message);

}  // namespace cpn::expr
