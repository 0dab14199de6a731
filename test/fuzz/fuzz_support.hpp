// Shared by the libFuzzer targets in this folder. Every parser under test
// answers a Result: an exception escaping one would be a 500 to a client,
// so none is caught here. Uncaught, it reaches std::terminate at the throw
// (the stack is not unwound), and libFuzzer saves the input with the
// stack of the throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cpn/core/document.hpp"

namespace cpn::fuzz {

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// CPN_FUZZ_STRICT=1 also turns broken promises that are not crashes (a
// round trip that changes the document, a quantity that is negative or not
// finite) into aborts, so libFuzzer saves the input, and has the blueprint
// target compile documents its schema refuses.
inline bool strict() {
  static const bool on = [] {
    const char* v = std::getenv("CPN_FUZZ_STRICT");
    return v && *v && std::string_view(v) != "0";
  }();
  return on;
}

inline void expect(bool ok, const char* what) {
  if (ok || !strict()) return;
  std::fprintf(stderr, "==cpn-fuzz== broken promise: %s\n", what);
  std::abort();
}

}  // namespace cpn::fuzz
