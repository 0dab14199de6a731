#include "cpn/http/router.hpp"

#include <algorithm>
#include <stdexcept>

namespace cpn::http {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : path) {
    if (c == '/') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

void Router::add(Route route) {
  for (const auto& r : routes_)
    if (r.method == route.method && r.path == route.path)
      throw std::logic_error("duplicate route " + route.method + " " + route.path);
  segments_.push_back(split_path(route.path));
  routes_.push_back(std::move(route));
}

Match Router::match(const std::string& method, const std::string& path) const {
  auto segments = split_path(path);
  Match out;
  // Literal segments beat parameters ("/v1/nodes/{id}" vs "/v1/topology").
  int best_score = -1;
  for (std::size_t k = 0; k < routes_.size(); ++k) {
    const Route& r = routes_[k];
    const auto& tmpl = segments_[k];
    if (tmpl.size() != segments.size()) continue;
    int score = 0;
    bool ok = true;
    for (std::size_t i = 0; i < tmpl.size() && ok; ++i) {
      const auto& t = tmpl[i];
      if (t.size() > 2 && t.front() == '{' && t.back() == '}') continue;
      if (t == segments[i]) score += 1 << (tmpl.size() - i);
      else ok = false;
    }
    if (!ok) continue;
    std::map<std::string, std::string> params;
    for (std::size_t i = 0; i < tmpl.size(); ++i)
      if (tmpl[i].size() > 2 && tmpl[i].front() == '{') params[tmpl[i].substr(1, tmpl[i].size() - 2)] = segments[i];
    if (r.method != method) {
      if (std::find(out.allowed.begin(), out.allowed.end(), r.method) == out.allowed.end())
        out.allowed.push_back(r.method);
      continue;
    }
    if (score > best_score) {
      best_score = score;
      out.route = &r;
      out.params = std::move(params);
    }
  }
  return out;
}

void Router::set_view(const std::string& prefix, const View& view) {
  for (auto& r : routes_)
    if (r.path.rfind(prefix, 0) == 0) r.view = view;
}

}  // namespace cpn::http
