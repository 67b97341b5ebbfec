// The block manager: refcounted blocks, hash-chain prefix cache, LRU eviction of free cached blocks.
// Not the KV tensors (model/model.h PagedKvCache) and not the policy of who gets blocks (scheduler).
#include "engine/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace strata {

namespace {
uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
constexpr uint64_t kChainSeed = 0x5157a7a0c0ffee11ull;
}  // namespace

BlockManager::BlockManager(int n_blocks, int block_size, bool prefix_caching)
    : block_size_(block_size), prefix_caching_(prefix_caching) {
  STRATA_CHECK(n_blocks > 0 && block_size > 0, "kv cache: need at least one block of at least one token");
  ref_.assign(size_t(n_blocks), 0);
  hash_.assign(size_t(n_blocks), 0);
  has_hash_.assign(size_t(n_blocks), 0);
  tokens_.resize(size_t(n_blocks));
  lru_pos_.resize(size_t(n_blocks));
  in_lru_.assign(size_t(n_blocks), 0);
  // Lowest ids handed out first (free_ is popped from the back).
  for (int b = n_blocks - 1; b >= 0; b--) free_.push_back(b);
}

// A block's hash covers its parent's hash, so equal hashes mean equal whole prefixes.
uint64_t BlockManager::chain(uint64_t parent, std::span<const int> block_tokens) {
  uint64_t h = mix(parent + 0x9e3779b97f4a7c15ull);
  for (int t : block_tokens) h = mix(h ^ (uint64_t(uint32_t(t)) + 0x9e3779b97f4a7c15ull));
  return h;
}

int BlockManager::cached_prefix(std::span<const int> tokens) const {
  if (!prefix_caching_ || tokens.empty()) return 0;
  const int n_full = int(tokens.size() - 1) / block_size_;  // the last token is always computed
  uint64_t h = kChainSeed;
  int hits = 0;
  for (int i = 0; i < n_full; i++) {
    auto blk = tokens.subspan(size_t(i) * block_size_, size_t(block_size_));
    h = chain(h, blk);
    auto it = cached_.find(h);
    if (it == cached_.end() || !std::equal(blk.begin(), blk.end(), tokens_[size_t(it->second)].begin())) break;
    hits++;
  }
  return hits * block_size_;
}

int BlockManager::take_block() {
  int b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();  // the least recently freed cached block loses its cache entry
    lru_.pop_front();
    in_lru_[size_t(b)] = 0;
    auto it = cached_.find(hash_[size_t(b)]);
    if (it != cached_.end() && it->second == b) cached_.erase(it);
    has_hash_[size_t(b)] = 0;
  } else {
    return -1;
  }
  ref_[size_t(b)] = 1;
  n_used_++;
  return b;
}

void BlockManager::drop_ref(int b) {
  if (--ref_[size_t(b)] > 0) return;
  n_used_--;
  if (has_hash_[size_t(b)]) {
    lru_.push_back(b);
    lru_pos_[size_t(b)] = std::prev(lru_.end());
    in_lru_[size_t(b)] = 1;
  } else {
    free_.push_back(b);
  }
}

bool BlockManager::allocate(Sequence& s) {
  STRATA_CHECK(s.block_table.empty(), "kv cache: sequence " + std::to_string(s.id) + " already holds blocks");
  const int n_need = blocks_for(s.n_tokens());
  const int cached = cached_prefix(s.tokens);
  const int n_hit = cached / block_size_;
  // Hit blocks sitting in the LRU stop being evictable once taken: they do not count as free.
  std::vector<int> hits;
  uint64_t h = kChainSeed;
  int hits_in_lru = 0;
  for (int i = 0; i < n_hit; i++) {
    h = chain(h, std::span<const int>(s.tokens).subspan(size_t(i) * block_size_, size_t(block_size_)));
    const int b = cached_.at(h);
    hits.push_back(b);
    hits_in_lru += in_lru_[size_t(b)];
  }
  const int fresh = n_need - n_hit;
  if (fresh > int(free_.size() + lru_.size()) - hits_in_lru) return false;
  s.block_hashes.clear();
  h = kChainSeed;
  for (int b : hits) {
    if (ref_[size_t(b)]++ == 0) {
      lru_.erase(lru_pos_[size_t(b)]);
      in_lru_[size_t(b)] = 0;
      n_used_++;
    }
    s.block_table.push_back(b);
    s.block_hashes.push_back(hash_[size_t(b)]);
  }
  for (int i = 0; i < fresh; i++) s.block_table.push_back(take_block());
  s.n_computed = cached;
  s.n_cached = cached;
  query_tokens += uint64_t(s.n_tokens());
  hit_tokens += uint64_t(cached);
  return true;
}

bool BlockManager::grow(Sequence& s, int n_tokens) {
  const int need = blocks_for(n_tokens) - int(s.block_table.size());
  if (need <= 0) return true;
  if (need > int(free_.size() + lru_.size())) return false;
  for (int i = 0; i < need; i++) s.block_table.push_back(take_block());
  return true;
}

void BlockManager::release(Sequence& s) {
  // Tail first, so a later eviction (LRU, oldest first) takes the deepest blocks of a chain first.
  for (auto it = s.block_table.rbegin(); it != s.block_table.rend(); ++it) drop_ref(*it);
  s.block_table.clear();
  s.block_hashes.clear();
}

void BlockManager::publish(Sequence& s) {
  if (!prefix_caching_) return;
  const int n_full = std::min(s.n_computed / block_size_, int(s.block_table.size()));
  for (int i = int(s.block_hashes.size()); i < n_full; i++) {
    auto blk = std::span<const int>(s.tokens).subspan(size_t(i) * block_size_, size_t(block_size_));
    const uint64_t h = chain(i ? s.block_hashes[size_t(i - 1)] : kChainSeed, blk);
    s.block_hashes.push_back(h);
    const int b = s.block_table[size_t(i)];
    // A block another sequence already published under this hash stays the cached copy.
    if (has_hash_[size_t(b)] || cached_.count(h)) continue;
    cached_[h] = b;
    hash_[size_t(b)] = h;
    has_hash_[size_t(b)] = 1;
    tokens_[size_t(b)].assign(blk.begin(), blk.end());
  }
}

}  // namespace strata
