// stat-before-open checks for untrusted paths (core/file.h).
#include "core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "core/error.h"

namespace strata {

namespace {

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISREG(m)) return "a regular file";
  return "not a regular file or directory";
}

struct stat stat_or_throw(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    throw Error(path + ": cannot access: " + std::strerror(err));
  }
  return st;
}

}  // namespace

void require_regular_file(const std::string& path) {
  const struct stat st = stat_or_throw(path);
  STRATA_CHECK(S_ISREG(st.st_mode), path + ": is " + kind_of(st.st_mode) + ", not a regular file");
}

void require_directory(const std::string& path) {
  const struct stat st = stat_or_throw(path);
  STRATA_CHECK(S_ISDIR(st.st_mode), path + ": is " + kind_of(st.st_mode) + ", not a directory");
}

std::string read_regular_file(const std::string& path, size_t max_bytes) {
  require_regular_file(path);
  // O_NONBLOCK: should the path become a FIFO between stat and open, open() still returns.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw Error(path + ": cannot open: " + std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  if (uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    throw Error(path + ": " + std::to_string(st.st_size) + " bytes is implausibly large (at most " +
                std::to_string(max_bytes) + " expected)");
  }
  std::string out(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw Error(path + ": read failed: " + std::strerror(err));
    }
    if (n == 0) break;  // shrank while reading
    got += size_t(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

}  // namespace strata
