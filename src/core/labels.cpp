#include "cpn/core/labels.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace cpn {
namespace {

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

bool valid_key(std::string_view k) {
  return !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/';
  });
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> split_terms(std::string_view text) {
  std::vector<std::string> out;
  int depth = 0;
  std::string cur;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(trim(cur));
  return out;
}

}  // namespace

Result<LabelSelector> LabelSelector::parse(std::string_view text) {
  LabelSelector sel;
  if (trim(text).empty()) return sel;
  auto bad = [&](const std::string& term) {
    return fail(Error::bad_request(fmt::format("labelSelector: cannot parse '{}'", term),
                                   {{"/query/labelSelector", fmt::format("cannot parse '{}'", term)}}));
  };
  for (const auto& term : split_terms(text)) {
    LabelRequirement req;
    if (term.empty()) return bad(term);
    std::size_t pos;
    if (term.front() == '!') {
      req.key = trim(term.substr(1));
      req.op = LabelRequirement::Op::not_exists;
    } else if ((pos = term.find("!=")) != std::string::npos) {
      req.key = trim(term.substr(0, pos));
      req.op = LabelRequirement::Op::not_equals;
      req.values = {trim(term.substr(pos + 2))};
    } else if ((pos = term.find("==")) != std::string::npos) {
      req.key = trim(term.substr(0, pos));
      req.op = LabelRequirement::Op::equals;
      req.values = {trim(term.substr(pos + 2))};
    } else if ((pos = term.find('=')) != std::string::npos) {
      req.key = trim(term.substr(0, pos));
      req.op = LabelRequirement::Op::equals;
      req.values = {trim(term.substr(pos + 1))};
    } else if ((pos = term.find(" notin ")) != std::string::npos || (pos = term.find(" in ")) != std::string::npos) {
      bool notin = term.compare(pos, 7, " notin ") == 0;
      req.key = trim(term.substr(0, pos));
      req.op = notin ? LabelRequirement::Op::not_in : LabelRequirement::Op::in;
      std::string rest = trim(term.substr(pos + (notin ? 7 : 4)));
      if (rest.size() < 2 || rest.front() != '(' || rest.back() != ')') return bad(term);
      for (auto& v : split_terms(rest.substr(1, rest.size() - 2))) {
        if (v.empty()) return bad(term);
        req.values.push_back(v);
      }
    } else {
      req.key = term;
      req.op = LabelRequirement::Op::exists;
    }
    if (!valid_key(req.key)) return bad(term);
    sel.requirements_.push_back(std::move(req));
  }
  return sel;
}

bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& r : requirements_) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    auto in_values = [&] { return has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end(); };
    switch (r.op) {
      case LabelRequirement::Op::equals:
      case LabelRequirement::Op::in:
        if (!in_values()) return false;
        break;
      case LabelRequirement::Op::not_equals:
      case LabelRequirement::Op::not_in:
        if (in_values()) return false;
        break;
      case LabelRequirement::Op::exists:
        if (!has) return false;
        break;
      case LabelRequirement::Op::not_exists:
        if (has) return false;
        break;
    }
  }
  return true;
}

}  // namespace cpn
