// The paged KV block manager: which blocks of the pool belong to which sequence, refcounts, and
// the prefix cache (hash chains of full blocks; free cached blocks evicted least recently used).
// Plain data over block ids: the KV tensors themselves are model/ PagedKvCache, owned by the runner.
#pragma once
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/sequence.h"

namespace strata {

class BlockManager {
 public:
  BlockManager(int n_blocks, int block_size, bool prefix_caching);

  int block_size() const { return block_size_; }
  int n_blocks() const { return int(ref_.size()); }
  int n_used() const { return n_used_; }  // blocks with refcount > 0
  int n_free() const { return n_blocks() - n_used_; }  // free, cached-but-evictable included
  int blocks_for(int n_tokens) const { return (n_tokens + block_size_ - 1) / block_size_; }

  // Leading prompt tokens of `tokens` found in the prefix cache, whole blocks, and never the
  // last token (its logits must be computed). Read only.
  int cached_prefix(std::span<const int> tokens) const;
  // Gives `s` blocks for all its tokens, reusing cached prefix blocks; sets s.n_computed and
  // s.n_cached to the cached token count. False (and nothing changed) when blocks run out.
  bool allocate(Sequence& s);
  // Makes s's table cover n_tokens; false (nothing changed) when no block is free.
  bool grow(Sequence& s, int n_tokens);
  // Drops s's references; blocks whose count reaches 0 become free (cached ones stay findable).
  void release(Sequence& s);
  // Publishes s's full blocks below s.n_computed in the prefix cache (extends s.block_hashes).
  void publish(Sequence& s);

  // Prefix cache lookups since start, in tokens.
  uint64_t query_tokens = 0, hit_tokens = 0;

 private:
  static uint64_t chain(uint64_t parent, std::span<const int> block_tokens);
  int take_block();  // a free block with refcount 1, evicting the LRU cached one if needed; -1: none
  void drop_ref(int b);

  int block_size_;
  bool prefix_caching_;
  int n_used_ = 0;
  std::vector<int> ref_;                 // [n_blocks] refcount
  std::vector<uint64_t> hash_;           // [n_blocks] chain hash, when has_hash_
  std::vector<char> has_hash_;           // [n_blocks]
  std::vector<std::vector<int>> tokens_;  // [n_blocks] a cached block's tokens (collision check)
  std::vector<int> free_;                // free blocks holding nothing cached
  std::list<int> lru_;                   // free blocks still cached, oldest first
  std::vector<std::list<int>::iterator> lru_pos_;  // [n_blocks] valid when in lru_
  std::vector<char> in_lru_;
  std::unordered_map<uint64_t, int> cached_;  // chain hash -> block
};

}  // namespace strata
