// Business artifacts for cross-architecture delivery (scenario need 1):
// multi-architecture images, like an OCI image index with one variant per
// platform and accelerator stack, and files (configuration, model weights)
// kept content-addressed under DATA/blobs.
#pragma once

#include <cstdint>
#include <string>

#include "cpn/resource/collection.hpp"

namespace cpn::artifacts {

inline constexpr const char* kImage = "image";
inline constexpr const char* kFile = "file";

std::string image_id(const std::string& name, const std::string& version);
// linux/amd64 for x86_64, linux/arm64 for aarch64, ...
std::string platform_of_arch(const std::string& arch);

class Images {
 public:
  explicit Images(engine::Engine& engine);
  resource::Collection& collection() { return images_; }
  // The variant of image name@version that runs on node: same platform, and
  // the node's accelerator stack if it has one (else the CPU variant).
  // 422 with one reason per variant when none fits.
  Result<Json> resolve(const std::string& name, const std::string& version, const std::string& node_id) const;

 private:
  engine::Engine& engine_;
  resource::Collection images_;
};

// A body already on disk; sha256 empty when it was not hashed on the way in.
struct Received {
  std::string path;
  std::string sha256;
  std::uint64_t size = 0;
};

struct FileInfo {
  std::string path;  // blob on disk
  std::string sha256;
  std::uint64_t size = 0;
  std::string content_type;
};

class Files {
 public:
  Files(engine::Engine& engine, std::string blob_dir);
  resource::Collection& collection() { return files_; }

  // A fresh path under the blob directory for a body being streamed in.
  std::string temp_path();
  // Takes a fully received temp file: hashes it, checks the expected
  // sha256 (if any), moves it to its content address (fsynced) and records
  // the file. The temp file is gone afterwards whatever happens.
  Result<Json> store(const std::string& name, const Received& body, const std::string& expected_sha256,
                     const std::string& content_type, std::optional<std::int64_t> if_match);
  // Writes a received body's data to disk: the slow part of store() (a
  // second for a large upload), for another thread to do first so that
  // store()'s own fsync finds nothing left to write. Any thread.
  static void settle(const std::string& temp_path);
  Result<FileInfo> open(const std::string& name) const;
  // Refused while an image variant names the file.
  Status remove(const std::string& name, std::optional<std::int64_t> if_match);

 private:
  void drop_blob_if_unused(const std::string& digest);
  engine::Engine& engine_;
  std::string blob_dir_;
  resource::Collection files_;
};

}  // namespace cpn::artifacts
