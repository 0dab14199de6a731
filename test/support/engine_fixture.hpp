// An engine over a real SQLite file in a temporary directory, for module
// tests below the HTTP layer.
#pragma once

#include <filesystem>

#include "cpn/engine/engine.hpp"
#include "support/daemon.hpp"

namespace cpn::test {

struct EngineFixture {
  std::string dir = make_temp_dir("cpn-engine");
  ManualClock clock{std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000))};
  engine::Engine engine{open(), clock};

  std::unique_ptr<store::Store> open() {
    auto s = store::Store::open(dir + "/cpnd.db");
    if (!s) throw std::runtime_error(s.error().message);
    return std::move(*s);
  }
  ~EngineFixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

inline std::vector<std::string> pointers(const Error& e) {
  std::vector<std::string> out;
  for (const auto& f : e.errors) out.push_back(f.pointer);
  return out;
}

}  // namespace cpn::test
