// A sequence as the scheduler sees it: token ids, how far its KV is computed, its block table.
// Plain data, no tensors and no sampling state (the engine keeps those per request id).
#pragma once
#include <cstdint>
#include <vector>

namespace strata {

enum class SeqStatus { Waiting, Running, Finished };

struct Sequence {
  uint64_t id = 0;
  std::vector<int> tokens;  // prompt, then the sampled tokens
  int n_prompt = 0;
  int max_tokens = 1;       // output tokens allowed; admission made sure prompt + this fits the pool
  SeqStatus status = SeqStatus::Waiting;
  // Tokens whose KV rows are written in every layer. A sampled token is fed (and so computed) by
  // the next step; tokens [n_computed, size) are what the sequence still has to run.
  int n_computed = 0;
  int n_cached = 0;                   // prompt tokens the last admission found in the prefix cache
  std::vector<int> block_table;       // KV blocks, position p in block_table[p / block_size]
  std::vector<uint64_t> block_hashes;  // hash chain of the leading full, computed blocks
  int preemptions = 0;

  int n_tokens() const { return int(tokens.size()); }
  int n_output() const { return int(tokens.size()) - n_prompt; }
  int remaining() const { return n_tokens() - n_computed; }
};

}  // namespace strata
