// safetensors reader (mmap + full header validation) and writer.
// Validation is strict because the header is untrusted input: every offset, size and dtype is
// checked before any tensor byte is touched, and errors name the file and the tensor.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace strata {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
// A header larger than this is hostile or corrupt (real ones are a few MB at most).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// Same for model.safetensors.index.json (real ones are well under a few MB).
constexpr size_t kMaxIndexBytes = 256u << 20;
// No tensor may need more than this many bytes: keeps every element count and byte size, and any
// product of a subset of dims, far from 64-bit overflow.
constexpr uint64_t kMaxTensorBytes = uint64_t(1) << 62;
}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  // stat first: open() on a FIFO blocks until a writer appears, and a device is no checkpoint.
  require_regular_file(path);
  // O_NONBLOCK: should the path turn into a FIFO between stat and open, open still returns.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  STRATA_CHECK(fd >= 0, path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(path + ": mmap failed: " + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shape_str() const {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); i++) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

namespace {

// Parses and validates one header; returns the tensor views into `file`.
std::vector<TensorView> parse_header(const MappedFile& file) {
  const std::string& p = file.path();
  STRATA_CHECK(file.size() >= 8, p + ": truncated: file is " + std::to_string(file.size()) +
                                     " bytes, smaller than the 8-byte header length");
  uint64_t header_len;
  std::memcpy(&header_len, file.data(), 8);
  STRATA_CHECK(header_len <= kMaxHeaderBytes,
               p + ": header length " + std::to_string(header_len) + " is implausible (corrupt file?)");
  STRATA_CHECK(header_len <= file.size() - 8, p + ": truncated: header claims " + std::to_string(header_len) +
                                                  " bytes but the file has " + std::to_string(file.size() - 8));
  const char* hb = reinterpret_cast<const char*>(file.data() + 8);
  json header;
  try {
    header = json::parse(hb, hb + header_len);
  } catch (const json::exception& e) {
    throw Error(p + ": header is not valid JSON: " + e.what());
  }
  STRATA_CHECK(header.is_object(), p + ": header is not a JSON object");

  const uint8_t* base = file.data() + 8 + header_len;
  const uint64_t data_size = file.size() - 8 - header_len;
  std::vector<TensorView> out;
  struct Range {
    uint64_t begin, end;
    size_t tensor;  // index into `out`
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const std::string where = p + ": tensor '" + name + "'";
    const json& e = it.value();
    STRATA_CHECK(e.is_object(), where + ": entry is not an object");
    STRATA_CHECK(e.contains("dtype") && e["dtype"].is_string(), where + ": missing dtype");
    STRATA_CHECK(e.contains("shape") && e["shape"].is_array(), where + ": missing shape");
    STRATA_CHECK(e.contains("data_offsets") && e["data_offsets"].is_array() && e["data_offsets"].size() == 2,
                 where + ": data_offsets must be [begin, end]");
    TensorView v;
    v.name = name;
    v.file = p;
    STRATA_CHECK(dtype_from_name(e["dtype"].get<std::string>(), &v.dtype),
                 where + ": unsupported dtype " + e["dtype"].get<std::string>());
    // Every dim and the product of the non-zero ones bounded by 2^62 / dtype size: numel, the byte
    // size and any partial product of dims stay far from overflow (a zero dim anywhere makes the
    // tensor empty, but later code may still multiply the other dims).
    const uint64_t max_elems = kMaxTensorBytes / dtype_size(v.dtype);
    uint64_t numel = 1, nonzero = 1;
    for (const json& d : e["shape"]) {
      STRATA_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, where + ": shape has a non-integer or negative dim");
      const uint64_t dim = d.get<uint64_t>();
      STRATA_CHECK(dim <= max_elems && (dim == 0 || nonzero <= max_elems / dim),
                   where + ": shape is too large: dim " + std::to_string(v.shape.size()) + " = " +
                       std::to_string(dim) + " takes the " + dtype_name(v.dtype) + " tensor past 2^62 bytes");
      if (dim != 0) nonzero *= dim;
      numel = dim == 0 ? 0 : numel * dim;
      v.shape.push_back(int64_t(dim));
    }
    for (const json& o : e["data_offsets"])
      STRATA_CHECK(o.is_number_integer() && o.get<int64_t>() >= 0, where + ": data_offsets must be non-negative integers");
    uint64_t begin = e["data_offsets"][0].get<uint64_t>();
    uint64_t end = e["data_offsets"][1].get<uint64_t>();
    STRATA_CHECK(begin <= end, where + ": data_offsets begin > end");
    STRATA_CHECK(end <= data_size, where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                       ") out of range: data section has " + std::to_string(data_size) +
                                       " bytes (truncated file?)");
    uint64_t expect = numel * dtype_size(v.dtype);
    STRATA_CHECK(end - begin == expect, where + ": byte range is " + std::to_string(end - begin) + " but " +
                                            dtype_name(v.dtype) + " " + v.shape_str() + " needs " +
                                            std::to_string(expect));
    v.data = base + begin;
    v.nbytes = size_t(end - begin);
    if (end > begin) ranges.push_back({begin, end, out.size()});
    out.push_back(std::move(v));
  }
  // Non-empty byte ranges must not overlap; sorted by begin, a range can only overlap its
  // predecessor first (all earlier ones end no later than the predecessor when none overlapped).
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < ranges.size(); i++) {
    const Range &a = ranges[i - 1], &b = ranges[i];
    STRATA_CHECK(b.begin >= a.end, p + ": tensors '" + out[a.tensor].name + "' [" + std::to_string(a.begin) + ", " +
                                       std::to_string(a.end) + ") and '" + out[b.tensor].name + "' [" +
                                       std::to_string(b.begin) + ", " + std::to_string(b.end) +
                                       "): byte ranges overlap at offset " + std::to_string(b.begin));
  }
  return out;
}

}  // namespace

void TensorStore::add_file(const std::string& path, const std::vector<std::string>* expected) {
  auto file = std::make_shared<MappedFile>(path);
  std::vector<TensorView> views = parse_header(*file);
  std::set<std::string> present;
  for (auto& v : views) {
    STRATA_CHECK(!tensors_.count(v.name), path + ": tensor '" + v.name + "' also appears in " + tensors_[v.name].file);
    present.insert(v.name);
    tensors_[v.name] = std::move(v);
  }
  if (expected)
    for (const auto& n : *expected)
      STRATA_CHECK(present.count(n), path + ": index names tensor '" + n + "' but this shard does not hold it");
  files_.push_back(std::move(file));
}

TensorStore TensorStore::open(const std::string& path) {
  TensorStore s;
  s.source_ = path;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    s.add_file(path, nullptr);  // MappedFile: a clear Error for a missing path, FIFO, device...
    return s;
  }
  fs::path dir(path);
  fs::path index = dir / "model.safetensors.index.json";
  fs::path single = dir / "model.safetensors";
  // symlink_status: a dangling link counts as present, so it is reported rather than skipped.
  auto present = [](const fs::path& f) {
    std::error_code e;
    return fs::exists(fs::symlink_status(f, e));
  };
  if (present(index)) {
    const std::string text = read_regular_file(index.string(), kMaxIndexBytes);
    json j;
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      throw Error(index.string() + ": not valid JSON: " + e.what());
    }
    STRATA_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                 index.string() + ": missing object 'weight_map'");
    std::map<std::string, std::vector<std::string>> by_shard;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      STRATA_CHECK(it.value().is_string(), index.string() + ": weight_map['" + it.key() + "'] is not a file name");
      std::string shard = it.value().get<std::string>();
      STRATA_CHECK(!shard.empty() && shard != "." && shard.find('/') == std::string::npos &&
                       shard.find("..") == std::string::npos && shard.find('\0') == std::string::npos,
                   index.string() + ": shard name '" + shard + "' (for tensor '" + it.key() +
                       "') must be a plain file name");
      by_shard[shard].push_back(it.key());
    }
    STRATA_CHECK(!by_shard.empty(), index.string() + ": weight_map is empty");
    for (const auto& [shard, names] : by_shard) s.add_file((dir / shard).string(), &names);
    return s;
  }
  STRATA_CHECK(present(single), path + ": no model.safetensors or model.safetensors.index.json");
  s.add_file(single.string(), nullptr);
  return s;
}

const TensorView& TensorStore::get(const std::string& name) const {
  auto it = tensors_.find(name);
  STRATA_CHECK(it != tensors_.end(), "missing tensor '" + name + "' in " + source_);
  return it->second;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  json header = json::object();
  uint64_t off = 0;
  for (const auto& t : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= uint64_t(d);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  std::ofstream out(path, std::ios::binary);
  STRATA_CHECK(out.good(), path + ": cannot open for writing");
  uint64_t len = h.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (const auto& t : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= uint64_t(d);
    out.write(static_cast<const char*>(t.data), std::streamsize(n));
  }
  STRATA_CHECK(out.good(), path + ": write failed");
}

}  // namespace strata
