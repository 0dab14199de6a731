// The demand model's expression language: numbers, 'strings', booleans,
// parameter and derived names, + - * / %, comparisons, && || !, ?:, and
// min max ceil floor round abs clamp sqrt log2 pow. Parsed and type-checked
// once, evaluated many times; no loops, no I/O, no other capabilities.
// Errors name the line and column.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "cpn/core/error.hpp"

namespace cpn::expr {

using Value = std::variant<double, std::string, bool>;

// Bounds that keep a hostile blueprint's evaluation small: strings built by
// '+' (a resolution, a label, not a text) and the number of derived values.
inline constexpr std::size_t kMaxStringValue = 1024;
inline constexpr std::size_t kMaxDerived = 256;
enum class Type { number, string, boolean };

std::string type_name(Type t);
std::string to_string(const Value& v);
Type type_of(const Value& v);

struct Node;  // the syntax tree, private to the implementation

class Expression {
 public:
  // Parses text; the error names line and column ("line 1, column 9: ...").
  static Result<Expression> parse(std::string_view text);

  // Checks that every name is known and that operators get the types they
  // need; returns the type of the result.
  Result<Type> check(const std::map<std::string, Type>& names) const;

  // Evaluates with a value for every name; fails only on arithmetic that
  // has no answer (division by zero, sqrt of a negative, ...) or a name
  // without a value.
  Result<Value> evaluate(const std::map<std::string, Value>& values) const;

  const std::string& text() const { return text_; }
  // Every name the expression reads.
  const std::set<std::string>& names() const { return names_; }

 private:
  std::string text_;
  std::shared_ptr<const Node> root_;
  std::set<std::string> names_;
};

// A set of named expressions that may use each other (a blueprint's
// `derived`), compiled in dependency order; cycles are refused.
class DerivedSet {
 public:
  struct Problem {
    std::string name;     // the derived value at fault
    std::string message;  // with line and column when it is a syntax error
  };
  static tl::expected<DerivedSet, std::vector<Problem>> compile(
      const std::map<std::string, Type>& parameters, const std::vector<std::pair<std::string, std::string>>& derived);

  // Parameters in, parameters plus every derived value out.
  Result<std::map<std::string, Value>> evaluate(std::map<std::string, Value> parameters) const;
  // Parameter and derived types: what other expressions may name.
  const std::map<std::string, Type>& scope() const { return scope_; }
  const std::vector<std::pair<std::string, Expression>>& ordered() const { return ordered_; }

 private:
  std::vector<std::pair<std::string, Expression>> ordered_;  // dependencies first
  std::map<std::string, Type> scope_;
};

}  // namespace cpn::expr
