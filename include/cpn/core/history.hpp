// The `history` of an object's states (orders, deployments, instances):
// bounded, so an instance that fails and restarts for a month, or a
// deployment scaled every minute, does not grow without end. The first
// entry (when it began) and the newest ones are kept.
#pragma once

#include "cpn/core/document.hpp"

namespace cpn {

inline constexpr std::size_t kHistoryKept = 50;

inline void append_history(Json& body, Json entry) {
  Json& h = body["history"];
  if (!h.is_array()) h = Json::array();
  h.push_back(std::move(entry));
  if (h.size() > kHistoryKept) h.erase(h.begin() + 1, h.begin() + static_cast<std::ptrdiff_t>(h.size() - kHistoryKept + 1));
}

}  // namespace cpn
