#include "cpn/core/log.hpp"

#include <atomic>
#include <cstdio>
#include <string>

namespace cpn::log {
namespace {
std::atomic<int> g_max{static_cast<int>(Level::info)};
}

void set_level(Level max) { g_max = static_cast<int>(max); }

Level parse_level(std::string_view name, Level fallback) {
  if (name == "error") return Level::error;
  if (name == "warning") return Level::warning;
  if (name == "notice") return Level::notice;
  if (name == "info") return Level::info;
  if (name == "debug") return Level::debug;
  return fallback;
}

bool enabled(Level level) { return static_cast<int>(level) <= g_max.load(); }

// The one way out to the journal: every control character is escaped, so
// nothing a client sent (a path, a name, a message quoted back) can end the
// line early and forge one of another priority.
std::string escape(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (unsigned char c : line) {
    if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

void write(Level level, std::string_view line) {
  if (!enabled(level)) return;
  std::string out = fmt::format("<{}>{}\n", static_cast<int>(level), escape(line));
  std::fwrite(out.data(), 1, out.size(), stderr);
}

}  // namespace cpn::log
