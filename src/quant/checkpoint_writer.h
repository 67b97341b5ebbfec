// Streaming, sharded safetensors output: the tensor list (names, dtypes, shapes) is planned up
// front so every header is known, then data is appended tensor by tensor, so a checkpoint is
// written with one tensor in memory at a time. Not a reader (io/safetensors.h) nor a converter.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

struct PlannedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t nbytes() const;
};

class ShardedSafetensorsWriter {
 public:
  // Splits `plan` (in order) into shards of at most `max_shard_bytes` of data each (a larger
  // tensor gets a shard of its own). One shard: dir/model.safetensors; several:
  // dir/model-0000i-of-0000n.safetensors plus model.safetensors.index.json.
  ShardedSafetensorsWriter(const std::string& dir, std::vector<PlannedTensor> plan, size_t max_shard_bytes);
  ~ShardedSafetensorsWriter();
  // Appends the next planned tensor's bytes; `name` must be the next one in the plan.
  void write(const std::string& name, const void* data, size_t nbytes);
  // Checks every tensor was written, closes the files and writes the index. Throws on error.
  void finish();
  int n_shards() const { return int(shard_begin_.size()); }

 private:
  void open_shard(int s);
  std::string dir_;
  std::vector<PlannedTensor> plan_;
  std::vector<size_t> shard_begin_;  // first plan index of each shard
  std::vector<std::string> shard_file_;
  size_t next_ = 0;
  int cur_shard_ = -1;
  FILE* f_ = nullptr;
};

// Copies every regular file of `src_dir` but weights and config.json (tokenizer files,
// generation_config.json, chat templates...) into `dst_dir`.
void copy_side_files(const std::string& src_dir, const std::string& dst_dir);

// mkdir -p; throws Error naming the path.
void make_dirs(const std::string& dir);

}  // namespace strata
