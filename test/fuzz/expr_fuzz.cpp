// libFuzzer target for the expression parser, checker and evaluator: no
// input may crash, hang or leak (built with clang; see test/fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cpn/expr/expr.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto e = cpn::expr::Expression::parse(text);
  if (!e) return 0;
  std::map<std::string, cpn::expr::Type> types = {{"a", cpn::expr::Type::number},
                                                  {"s", cpn::expr::Type::string},
                                                  {"b", cpn::expr::Type::boolean}};
  if (!e->check(types)) return 0;
  (void)e->evaluate({{"a", 3.0}, {"s", std::string("4k")}, {"b", true}});
  return 0;
}
