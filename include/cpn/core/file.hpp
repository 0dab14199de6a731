// Whole small files: read at once, or replaced whole (written aside, then
// renamed over), so a reader or a crash never sees half of one.
#pragma once

#include <string>

#include "cpn/core/error.hpp"

namespace cpn {

Result<std::string> read_text_file(const std::string& path);
// durable: flushed to disk before the rename (state a restart relies on).
Status write_file_atomically(const std::string& path, const std::string& text, bool durable = false);

}  // namespace cpn
