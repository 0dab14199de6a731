// Lexer and recursive-descent parser. Precedence, loosest first:
//   ?:   ||   &&   == !=   < <= > >=   + -   * / %   unary ! - +   primary
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "node.hpp"

namespace cpn::expr {

std::string at(const Node& n, const std::string& message) {
  return fmt::format("line {}, column {}: {}", n.line, n.column, message);
}

namespace {

constexpr std::size_t kMaxLength = 4096;  // a demand model, not a program
constexpr int kMaxDepth = 64;

struct Token {
  enum class Kind { number, string, name, op, end };
  Kind kind = Kind::end;
  std::string text;
  double number = 0;
  int line = 1, column = 1;
};

class Parser {
 public:
  explicit Parser(std::string_view text) : src_(text) {}

  Result<NodePtr> parse() {
    if (src_.size() > kMaxLength) return failure(1, 1, fmt::format("longer than {} characters", kMaxLength));
    if (!advance()) return fail(error_);
    auto root = ternary();
    if (!root) return root;
    if (tok_.kind != Token::Kind::end) return failure(tok_.line, tok_.column, fmt::format("unexpected '{}'", tok_.text));
    return root;
  }

  const std::set<std::string>& names() const { return names_; }

 private:
  tl::unexpected<Error> failure(int line, int column, const std::string& msg) {
    return fail(Error{ErrorKind::unprocessable, fmt::format("line {}, column {}: {}", line, column, msg), {}});
  }

  // --- lexer
  bool advance() {
    while (pos_ < src_.size() && std::isspace(static_cast<unsigned char>(src_[pos_]))) step();
    tok_ = Token{};
    tok_.line = line_;
    tok_.column = column_;
    if (pos_ >= src_.size()) return true;
    char c = src_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && pos_ + 1 < src_.size() &&
                                                        std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))))
      return number();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t start = pos_;
      while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) step();
      tok_.kind = Token::Kind::name;
      tok_.text = std::string(src_.substr(start, pos_ - start));
      return true;
    }
    if (c == '\'' || c == '"') return string(c);
    static const char* two[] = {"==", "!=", "<=", ">=", "&&", "||"};
    for (const char* op : two)
      if (src_.substr(pos_, 2) == op) {
        tok_.kind = Token::Kind::op;
        tok_.text = op;
        step();
        step();
        return true;
      }
    if (std::string_view("+-*/%<>!?:(),").find(c) != std::string_view::npos) {
      tok_.kind = Token::Kind::op;
      tok_.text = std::string(1, c);
      step();
      return true;
    }
    error_ = Error{ErrorKind::unprocessable,
                   fmt::format("line {}, column {}: unexpected character '{}'", line_, column_, c), {}};
    return false;
  }

  void step() {
    if (src_[pos_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++pos_;
  }

  bool number() {
    std::size_t start = pos_;
    while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '.')) step();
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      step();
      if (pos_ < src_.size() && (src_[pos_] == '+' || src_[pos_] == '-')) step();
      while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) step();
    }
    std::string text(src_.substr(start, pos_ - start));
    double v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || !std::isfinite(v)) {
      error_ = Error{ErrorKind::unprocessable,
                     fmt::format("line {}, column {}: malformed number '{}'", tok_.line, tok_.column, text), {}};
      return false;
    }
    tok_.kind = Token::Kind::number;
    tok_.text = text;
    tok_.number = v;
    return true;
  }

  bool string(char quote) {
    step();
    std::string out;
    while (pos_ < src_.size() && src_[pos_] != quote) {
      if (src_[pos_] == '\\' && pos_ + 1 < src_.size()) {
        step();
        char e = src_[pos_];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        out += src_[pos_];
      }
      step();
    }
    if (pos_ >= src_.size()) {
      error_ = Error{ErrorKind::unprocessable,
                     fmt::format("line {}, column {}: string is not closed", tok_.line, tok_.column), {}};
      return false;
    }
    step();
    tok_.kind = Token::Kind::string;
    tok_.text = std::move(out);
    return true;
  }

  // --- parser
  bool is_op(const char* op) const { return tok_.kind == Token::Kind::op && tok_.text == op; }

  std::shared_ptr<Node> make(Node::Kind kind, const Token& t) {
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->line = t.line;
    n->column = t.column;
    return n;
  }

  Result<NodePtr> expect(const char* op, NodePtr result) {
    if (!is_op(op))
      return failure(tok_.line, tok_.column,
                     fmt::format("expected '{}' but found {}", op, tok_.kind == Token::Kind::end ? "the end" : "'" + tok_.text + "'"));
    if (!advance()) return fail(error_);
    return result;
  }

  struct Depth {
    int& d;
    explicit Depth(int& x) : d(++x) {}
    ~Depth() { --d; }
  };

  Result<NodePtr> ternary() {
    Depth guard(depth_);
    if (depth_ > kMaxDepth) return failure(tok_.line, tok_.column, "nested too deeply");
    Token start = tok_;
    auto cond = binary(0);
    if (!cond || !is_op("?")) return cond;
    if (!advance()) return fail(error_);
    auto yes = ternary();
    if (!yes) return yes;
    auto colon = expect(":", *yes);
    if (!colon) return colon;
    auto no = ternary();
    if (!no) return no;
    auto n = make(Node::Kind::conditional, start);
    n->text = "?:";
    n->args = {*cond, *yes, *no};
    return NodePtr(n);
  }

  // Binary levels by precedence, loosest first.
  static const std::vector<std::vector<std::string>>& levels() {
    static const std::vector<std::vector<std::string>> l = {
        {"||"}, {"&&"}, {"==", "!="}, {"<", "<=", ">", ">="}, {"+", "-"}, {"*", "/", "%"}};
    return l;
  }

  Result<NodePtr> binary(std::size_t level) {
    if (level == levels().size()) return unary();
    auto left = binary(level + 1);
    if (!left) return left;
    for (;;) {
      const auto& ops = levels()[level];
      if (tok_.kind != Token::Kind::op || std::find(ops.begin(), ops.end(), tok_.text) == ops.end()) return left;
      Token op = tok_;
      if (!advance()) return fail(error_);
      auto right = binary(level + 1);
      if (!right) return right;
      auto n = make(Node::Kind::binary, op);
      n->text = op.text;
      n->args = {*left, *right};
      left = NodePtr(n);
    }
  }

  Result<NodePtr> unary() {
    if (is_op("!") || is_op("-") || is_op("+")) {
      Depth guard(depth_);
      if (depth_ > kMaxDepth) return failure(tok_.line, tok_.column, "nested too deeply");
      Token op = tok_;
      if (!advance()) return fail(error_);
      auto operand = unary();
      if (!operand) return operand;
      auto n = make(Node::Kind::unary, op);
      n->text = op.text;
      n->args = {*operand};
      return NodePtr(n);
    }
    return primary();
  }

  Result<NodePtr> primary() {
    Token t = tok_;
    switch (t.kind) {
      case Token::Kind::number: {
        auto n = make(Node::Kind::literal, t);
        n->value = t.number;
        if (!advance()) return fail(error_);
        return NodePtr(n);
      }
      case Token::Kind::string: {
        auto n = make(Node::Kind::literal, t);
        n->value = t.text;
        if (!advance()) return fail(error_);
        return NodePtr(n);
      }
      case Token::Kind::name: {
        if (!advance()) return fail(error_);
        if (t.text == "true" || t.text == "false") {
          auto n = make(Node::Kind::literal, t);
          n->value = t.text == "true";
          return NodePtr(n);
        }
        if (is_op("(")) return call(t);
        auto n = make(Node::Kind::name, t);
        n->text = t.text;
        names_.insert(t.text);
        return NodePtr(n);
      }
      case Token::Kind::op:
        if (t.text == "(") {
          if (!advance()) return fail(error_);
          auto inner = ternary();
          if (!inner) return inner;
          return expect(")", *inner);
        }
        return failure(t.line, t.column, fmt::format("unexpected '{}'", t.text));
      case Token::Kind::end:
        return failure(t.line, t.column, "unexpected end of expression");
    }
    return failure(t.line, t.column, "unexpected token");
  }

  Result<NodePtr> call(const Token& name) {
    auto n = make(Node::Kind::call, name);
    n->text = name.text;
    if (!advance()) return fail(error_);  // '('
    if (!is_op(")")) {
      for (;;) {
        auto arg = ternary();
        if (!arg) return arg;
        n->args.push_back(*arg);
        if (!is_op(",")) break;
        if (!advance()) return fail(error_);
      }
    }
    return expect(")", NodePtr(n));
  }

  std::string_view src_;
  std::size_t pos_ = 0;
  int line_ = 1, column_ = 1, depth_ = 0;
  Token tok_;
  Error error_;
  std::set<std::string> names_;
};

}  // namespace

Result<Expression> Expression::parse(std::string_view text) {
  Parser p(text);
  auto root = p.parse();
  if (!root) return fail(root.error());
  Expression e;
  e.text_ = std::string(text);
  e.root_ = *root;
  e.names_ = p.names();
  return e;
}

}  // namespace cpn::expr
