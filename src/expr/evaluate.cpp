// Type checking and evaluation of expressions, and sets of derived values
// that use each other.
#include <cmath>
#include <functional>

#include <fmt/format.h>

#include "node.hpp"

namespace cpn::expr {
namespace {

struct Function {
  std::size_t min_args, max_args;  // max 0: any number
  std::function<Result<double>(const Node&, const std::vector<double>&)> apply;
};

Result<double> domain(const Node& n, double v, const char* what) {
  if (!std::isfinite(v)) return fail(Error{ErrorKind::unprocessable, at(n, fmt::format("{} has no finite value", what)), {}});
  return v;
}

const std::map<std::string, Function>& functions() {
  using Args = const std::vector<double>&;
  static const std::map<std::string, Function> f = {
      {"min", {1, 0, [](const Node&, Args a) -> Result<double> { return *std::min_element(a.begin(), a.end()); }}},
      {"max", {1, 0, [](const Node&, Args a) -> Result<double> { return *std::max_element(a.begin(), a.end()); }}},
      {"ceil", {1, 1, [](const Node&, Args a) -> Result<double> { return std::ceil(a[0]); }}},
      {"floor", {1, 1, [](const Node&, Args a) -> Result<double> { return std::floor(a[0]); }}},
      {"round", {1, 1, [](const Node&, Args a) -> Result<double> { return std::round(a[0]); }}},
      {"abs", {1, 1, [](const Node&, Args a) -> Result<double> { return std::fabs(a[0]); }}},
      {"clamp",
       {3, 3,
        [](const Node& n, Args a) -> Result<double> {
          if (a[1] > a[2])
            return fail(Error{ErrorKind::unprocessable, at(n, "clamp: the lower bound is above the upper"), {}});
          return std::clamp(a[0], a[1], a[2]);
        }}},
      {"sqrt", {1, 1, [](const Node& n, Args a) { return domain(n, a[0] < 0 ? NAN : std::sqrt(a[0]), "sqrt of a negative"); }}},
      {"log2", {1, 1, [](const Node& n, Args a) { return domain(n, a[0] <= 0 ? NAN : std::log2(a[0]), "log2 of a non-positive"); }}},
      {"pow", {2, 2, [](const Node& n, Args a) { return domain(n, std::pow(a[0], a[1]), "pow"); }}},
  };
  return f;
}

Error type_error(const Node& n, const std::string& msg) { return Error{ErrorKind::unprocessable, at(n, msg), {}}; }

Result<Type> check_node(const Node& n, const std::map<std::string, Type>& names) {
  switch (n.kind) {
    case Node::Kind::literal:
      return type_of(n.value);
    case Node::Kind::name: {
      auto it = names.find(n.text);
      if (it == names.end()) return fail(type_error(n, fmt::format("unknown name '{}'", n.text)));
      return it->second;
    }
    case Node::Kind::unary: {
      auto t = check_node(*n.args[0], names);
      if (!t) return t;
      Type want = n.text == "!" ? Type::boolean : Type::number;
      if (*t != want)
        return fail(type_error(n, fmt::format("'{}' needs a {}, not a {}", n.text, type_name(want), type_name(*t))));
      return want;
    }
    case Node::Kind::binary: {
      auto l = check_node(*n.args[0], names);
      if (!l) return l;
      auto r = check_node(*n.args[1], names);
      if (!r) return r;
      const std::string& op = n.text;
      if (op == "&&" || op == "||") {
        if (*l != Type::boolean || *r != Type::boolean)
          return fail(type_error(n, fmt::format("'{}' needs booleans, not {} and {}", op, type_name(*l), type_name(*r))));
        return Type::boolean;
      }
      if (*l != *r)
        return fail(type_error(n, fmt::format("'{}' between a {} and a {}", op, type_name(*l), type_name(*r))));
      if (op == "==" || op == "!=") return Type::boolean;
      if (op == "<" || op == "<=" || op == ">" || op == ">=") {
        if (*l == Type::boolean) return fail(type_error(n, fmt::format("'{}' cannot order booleans", op)));
        return Type::boolean;
      }
      if (op == "+" && *l == Type::string) return Type::string;  // concatenation
      if (*l != Type::number)
        return fail(type_error(n, fmt::format("'{}' needs numbers, not {}s", op, type_name(*l))));
      return Type::number;
    }
    case Node::Kind::conditional: {
      auto c = check_node(*n.args[0], names);
      if (!c) return c;
      if (*c != Type::boolean)
        return fail(type_error(n, fmt::format("the condition of '?:' must be a boolean, not a {}", type_name(*c))));
      auto a = check_node(*n.args[1], names);
      if (!a) return a;
      auto b = check_node(*n.args[2], names);
      if (!b) return b;
      if (*a != *b)
        return fail(type_error(n, fmt::format("the branches of '?:' differ: {} and {}", type_name(*a), type_name(*b))));
      return *a;
    }
    case Node::Kind::call: {
      auto it = functions().find(n.text);
      if (it == functions().end()) return fail(type_error(n, fmt::format("unknown function '{}'", n.text)));
      const Function& f = it->second;
      if (n.args.size() < f.min_args || (f.max_args && n.args.size() > f.max_args))
        return fail(type_error(n, f.max_args == f.min_args
                                      ? fmt::format("{} takes {} argument{}", n.text, f.min_args, f.min_args == 1 ? "" : "s")
                                      : fmt::format("{} takes at least {} argument", n.text, f.min_args)));
      for (const auto& a : n.args) {
        auto t = check_node(*a, names);
        if (!t) return t;
        if (*t != Type::number)
          return fail(type_error(*a, fmt::format("{} takes numbers, not a {}", n.text, type_name(*t))));
      }
      return Type::number;
    }
  }
  return Type::number;
}

Result<Value> eval_node(const Node& n, const std::map<std::string, Value>& values) {
  switch (n.kind) {
    case Node::Kind::literal:
      return n.value;
    case Node::Kind::name: {
      auto it = values.find(n.text);
      if (it == values.end()) return fail(type_error(n, fmt::format("no value for '{}'", n.text)));
      return it->second;
    }
    case Node::Kind::unary: {
      auto v = eval_node(*n.args[0], values);
      if (!v) return v;
      if (n.text == "!" && std::holds_alternative<bool>(*v)) return Value(!std::get<bool>(*v));
      if (!std::holds_alternative<double>(*v)) return fail(type_error(n, fmt::format("'{}' needs a number", n.text)));
      return Value(n.text == "-" ? -std::get<double>(*v) : std::get<double>(*v));
    }
    case Node::Kind::conditional: {
      auto c = eval_node(*n.args[0], values);
      if (!c) return c;
      if (!std::holds_alternative<bool>(*c)) return fail(type_error(n, "the condition of '?:' must be a boolean"));
      return eval_node(*n.args[std::get<bool>(*c) ? 1 : 2], values);
    }
    case Node::Kind::binary: {
      const std::string& op = n.text;
      auto l = eval_node(*n.args[0], values);
      if (!l) return l;
      if (op == "&&" || op == "||") {  // short-circuit
        if (!std::holds_alternative<bool>(*l)) return fail(type_error(n, fmt::format("'{}' needs booleans", op)));
        if (std::get<bool>(*l) == (op == "||")) return *l;
        auto r = eval_node(*n.args[1], values);
        if (r && !std::holds_alternative<bool>(*r)) return fail(type_error(n, fmt::format("'{}' needs booleans", op)));
        return r;
      }
      auto r = eval_node(*n.args[1], values);
      if (!r) return r;
      if (l->index() != r->index()) return fail(type_error(n, fmt::format("'{}' between different types", op)));
      if (op == "==") return Value(*l == *r);
      if (op == "!=") return Value(*l != *r);
      if (op == "<") return Value(*l < *r);
      if (op == "<=") return Value(*l <= *r);
      if (op == ">") return Value(*l > *r);
      if (op == ">=") return Value(*l >= *r);
      if (op == "+" && std::holds_alternative<std::string>(*l)) {
        // Bounded before it is built: doubling a string in a chain of derived values grows it 2^n.
        const auto &a = std::get<std::string>(*l), &b = std::get<std::string>(*r);
        if (a.size() + b.size() > kMaxStringValue)
          return fail(type_error(n, fmt::format("the joined string would be longer than {} characters", kMaxStringValue)));
        return Value(a + b);
      }
      if (!std::holds_alternative<double>(*l)) return fail(type_error(n, fmt::format("'{}' needs numbers", op)));
      double a = std::get<double>(*l), b = std::get<double>(*r);
      if ((op == "/" || op == "%") && b == 0) return fail(type_error(n, "division by zero"));
      double v = op == "+" ? a + b : op == "-" ? a - b : op == "*" ? a * b : op == "/" ? a / b : std::fmod(a, b);
      if (!std::isfinite(v)) return fail(type_error(n, fmt::format("'{}' overflows", op)));
      return Value(v);
    }
    case Node::Kind::call: {
      std::vector<double> args;
      for (const auto& a : n.args) {
        auto v = eval_node(*a, values);
        if (!v) return v;
        if (!std::holds_alternative<double>(*v)) return fail(type_error(*a, fmt::format("{} takes numbers", n.text)));
        args.push_back(std::get<double>(*v));
      }
      auto it = functions().find(n.text);
      if (it == functions().end()) return fail(type_error(n, fmt::format("unknown function '{}'", n.text)));
      auto r = it->second.apply(n, args);
      if (!r) return fail(r.error());
      return Value(*r);
    }
  }
  return fail(type_error(n, "cannot evaluate"));
}

}  // namespace

std::string type_name(Type t) {
  switch (t) {
    case Type::number: return "number";
    case Type::string: return "string";
    case Type::boolean: return "boolean";
  }
  return "value";
}

Type type_of(const Value& v) {
  if (std::holds_alternative<double>(v)) return Type::number;
  if (std::holds_alternative<std::string>(v)) return Type::string;
  return Type::boolean;
}

std::string to_string(const Value& v) {
  if (auto d = std::get_if<double>(&v)) return fmt::format("{}", *d);
  if (auto s = std::get_if<std::string>(&v)) return "'" + *s + "'";
  return std::get<bool>(v) ? "true" : "false";
}

Result<Type> Expression::check(const std::map<std::string, Type>& names) const { return check_node(*root_, names); }

Result<Value> Expression::evaluate(const std::map<std::string, Value>& values) const {
  return eval_node(*root_, values);
}

tl::expected<DerivedSet, std::vector<DerivedSet::Problem>> DerivedSet::compile(
    const std::map<std::string, Type>& parameters, const std::vector<std::pair<std::string, std::string>>& derived) {
  std::vector<Problem> problems;
  // The walk below recurses once per dependency: the count bounds its depth.
  if (derived.size() > kMaxDerived) {
    problems.push_back({derived[kMaxDerived].first, fmt::format("more than {} derived values", kMaxDerived)});
    return tl::unexpected(std::move(problems));
  }
  std::map<std::string, Expression> parsed;
  for (const auto& [name, text] : derived) {
    if (parameters.count(name)) {
      problems.push_back({name, fmt::format("'{}' is already a parameter", name)});
      continue;
    }
    auto e = Expression::parse(text);
    if (!e) problems.push_back({name, e.error().message});
    else parsed.emplace(name, std::move(*e));
  }
  // Depth-first in declaration order: dependencies first, cycles named.
  DerivedSet out;
  out.scope_ = parameters;
  enum class Mark { none, visiting, done };
  std::map<std::string, Mark> mark;
  std::vector<std::string> path;
  std::function<bool(const std::string&)> visit = [&](const std::string& name) -> bool {
    auto& m = mark[name];
    if (m == Mark::done) return true;
    if (m == Mark::visiting) {
      std::string cycle;
      auto from = std::find(path.begin(), path.end(), name);
      for (auto it = from; it != path.end(); ++it) cycle += *it + " -> ";
      problems.push_back({path.back(), fmt::format("derived values form a cycle: {}{}", cycle, name)});
      return false;
    }
    m = Mark::visiting;
    path.push_back(name);
    const Expression& e = parsed.at(name);
    bool ok = true;
    for (const auto& dep : e.names())
      if (parsed.count(dep) && !visit(dep)) ok = false;
    path.pop_back();
    m = Mark::done;
    if (!ok) return false;
    auto type = e.check(out.scope_);
    if (!type) {
      problems.push_back({name, type.error().message});
      return false;
    }
    out.scope_[name] = *type;
    out.ordered_.emplace_back(name, e);
    return true;
  };
  for (const auto& [name, text] : derived)
    if (parsed.count(name) && mark[name] == Mark::none) visit(name);
  if (!problems.empty()) return tl::unexpected(std::move(problems));
  return out;
}

Result<std::map<std::string, Value>> DerivedSet::evaluate(std::map<std::string, Value> values) const {
  for (const auto& [name, e] : ordered_) {
    auto v = e.evaluate(values);
    if (!v)
      return fail(Error{ErrorKind::unprocessable, fmt::format("derived '{}': {}", name, v.error().message),
                        {{"/derived/" + pointer_token(name), v.error().message}}});
    values[name] = std::move(*v);
  }
  return values;
}

}  // namespace cpn::expr
