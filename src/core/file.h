// Opening untrusted paths: stat before open, so that a FIFO, device, socket or directory where a
// file is expected (or a file where a directory is) is a clear Error naming the path, never a
// hang in open() or a read of endless bytes.
#pragma once
#include <cstddef>
#include <string>

namespace strata {

// Throws Error("PATH: cannot access: ..." / "PATH: is a directory, not a regular file" /
// "PATH: is a FIFO, not a regular file" ...) unless `path` (after symlinks) is a regular file.
void require_regular_file(const std::string& path);
// Same for a directory.
void require_directory(const std::string& path);
// The whole content of regular file `path`; Error naming the path when it is not a regular file,
// cannot be read, or is larger than `max_bytes` (default 16 GiB: text inputs, configs).
std::string read_regular_file(const std::string& path, size_t max_bytes = size_t(1) << 34);

}  // namespace strata
