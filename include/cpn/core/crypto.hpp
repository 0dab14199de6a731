// Hashing and secret generation (OpenSSL): token secrets are stored only as
// SHA-256 hashes; file blobs are addressed by their SHA-256.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace cpn {

std::string sha256_hex(std::string_view data);

// Incremental SHA-256 for streamed bodies.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t size);
  std::string hex();  // finishes the hash

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Cryptographically random bytes as lowercase hex (2 chars a byte).
std::string random_hex(std::size_t bytes);

// Constant-time comparison for secrets.
bool equal_constant_time(std::string_view a, std::string_view b);

}  // namespace cpn
