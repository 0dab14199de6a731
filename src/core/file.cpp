#include "cpn/core/file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace cpn {

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Error::not_found(fmt::format("cannot open '{}'", path)));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status write_file_atomically(const std::string& path, const std::string& text, bool durable) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return fail(Error::internal(fmt::format("cannot write '{}'", tmp)));
  }
  if (durable) {
    int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return fail(Error::internal(fmt::format("cannot rename '{}': {}", tmp, std::strerror(errno))));
  return {};
}

}  // namespace cpn
