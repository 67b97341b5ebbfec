// Streaming sharded safetensors writer (quant/checkpoint_writer.h).
#include "quant/checkpoint_writer.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace strata {

size_t PlannedTensor::nbytes() const {
  size_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

void make_dirs(const std::string& dir) {
  std::string cur;
  size_t i = 0;
  while (i <= dir.size()) {
    size_t j = dir.find('/', i);
    if (j == std::string::npos) j = dir.size();
    cur = dir.substr(0, j);
    if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      throw Error("cannot create directory " + cur + ": " + std::strerror(errno));
    i = j + 1;
  }
  struct stat st;
  STRATA_CHECK(::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), dir + " is not a directory");
}

ShardedSafetensorsWriter::ShardedSafetensorsWriter(const std::string& dir, std::vector<PlannedTensor> plan,
                                                   size_t max_shard_bytes)
    : dir_(dir), plan_(std::move(plan)) {
  size_t acc = 0;
  for (size_t i = 0; i < plan_.size(); i++) {
    const size_t b = plan_[i].nbytes();
    if (shard_begin_.empty() || (acc > 0 && acc + b > max_shard_bytes)) {
      shard_begin_.push_back(i);
      acc = 0;
    }
    acc += b;
  }
  if (shard_begin_.empty()) shard_begin_.push_back(0);
  const int n = int(shard_begin_.size());
  for (int s = 0; s < n; s++) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", s + 1, n);
    shard_file_.push_back(n == 1 ? "model.safetensors" : buf);
  }
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() {
  if (f_) std::fclose(f_);
}

void ShardedSafetensorsWriter::open_shard(int s) {
  if (f_) {
    STRATA_CHECK(std::fclose(f_) == 0, "write error on " + dir_ + "/" + shard_file_[size_t(cur_shard_)]);
    f_ = nullptr;
  }
  cur_shard_ = s;
  const size_t end = size_t(s) + 1 < shard_begin_.size() ? shard_begin_[size_t(s) + 1] : plan_.size();
  nlohmann::ordered_json h;
  h["__metadata__"] = {{"format", "pt"}};
  size_t off = 0;
  for (size_t i = shard_begin_[size_t(s)]; i < end; i++) {
    const PlannedTensor& t = plan_[i];
    h[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-aligned
  const std::string path = dir_ + "/" + shard_file_[size_t(s)];
  f_ = std::fopen(path.c_str(), "wb");
  STRATA_CHECK(f_, "cannot write " + path + ": " + std::strerror(errno));
  const uint64_t n = header.size();
  STRATA_CHECK(std::fwrite(&n, 8, 1, f_) == 1 && std::fwrite(header.data(), 1, n, f_) == n, "write error on " + path);
}

void ShardedSafetensorsWriter::write(const std::string& name, const void* data, size_t nbytes) {
  STRATA_CHECK(next_ < plan_.size() && plan_[next_].name == name,
               "checkpoint writer: tensor " + name + " written out of plan order");
  STRATA_CHECK(plan_[next_].nbytes() == nbytes, "checkpoint writer: tensor " + name + " has the wrong size");
  int s = cur_shard_;
  while (size_t(s + 1) < shard_begin_.size() && shard_begin_[size_t(s) + 1] <= next_) s++;
  if (s != cur_shard_) open_shard(s);
  STRATA_CHECK(nbytes == 0 || std::fwrite(data, 1, nbytes, f_) == nbytes,
               "write error on " + dir_ + "/" + shard_file_[size_t(cur_shard_)]);
  next_++;
}

void ShardedSafetensorsWriter::finish() {
  STRATA_CHECK(next_ == plan_.size(), "checkpoint writer: only " + std::to_string(next_) + " of " +
                                          std::to_string(plan_.size()) + " tensors written");
  if (cur_shard_ < 0) open_shard(0);  // an empty checkpoint still gets its (empty) file
  STRATA_CHECK(std::fclose(f_) == 0, "write error on " + dir_ + "/" + shard_file_[size_t(cur_shard_)]);
  f_ = nullptr;
  if (shard_begin_.size() == 1) return;
  nlohmann::ordered_json idx;
  size_t total = 0;
  nlohmann::ordered_json map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < shard_begin_.size(); s++) {
    const size_t end = s + 1 < shard_begin_.size() ? shard_begin_[s + 1] : plan_.size();
    for (size_t i = shard_begin_[s]; i < end; i++) {
      map[plan_[i].name] = shard_file_[s];
      total += plan_[i].nbytes();
    }
  }
  idx["metadata"] = {{"total_size", total}};
  idx["weight_map"] = map;
  std::ofstream f(dir_ + "/model.safetensors.index.json", std::ios::binary);
  f << idx.dump(2) << "\n";
  STRATA_CHECK(f.good(), "write error on " + dir_ + "/model.safetensors.index.json");
}

void copy_side_files(const std::string& src_dir, const std::string& dst_dir) {
  DIR* d = ::opendir(src_dir.c_str());
  STRATA_CHECK(d, "cannot list " + src_dir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.push_back(e->d_name);
  ::closedir(d);
  for (const std::string& n : names) {
    const std::string p = src_dir + "/" + n;
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const bool weights = n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0;
    if (weights || n == "model.safetensors.index.json" || n == "config.json") continue;
    std::ifstream in(p, std::ios::binary);
    std::ofstream out(dst_dir + "/" + n, std::ios::binary);
    if (st.st_size > 0) out << in.rdbuf();  // streaming an empty rdbuf would set failbit
    STRATA_CHECK(in && out.good(), "cannot copy " + p + " to " + dst_dir);
  }
}

}  // namespace strata
