// One line per event on stderr, prefixed with the journald priority
// ("<6>") so systemd keeps the level. Never pass secrets in.
#pragma once

#include <string_view>

#include <fmt/format.h>

namespace cpn::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

void set_level(Level max);
Level parse_level(std::string_view name, Level fallback);
bool enabled(Level level);
// Control characters (newlines included) and backslashes are escaped.
void write(Level level, std::string_view line);
std::string escape(std::string_view line);

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... a) {
  write(Level::error, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void warning(fmt::format_string<Args...> f, Args&&... a) {
  write(Level::warning, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void notice(fmt::format_string<Args...> f, Args&&... a) {
  write(Level::notice, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... a) {
  if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<Args>(a)...));
}

}  // namespace cpn::log
