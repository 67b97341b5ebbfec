// Causal attention over a paged KV cache: the keys and values of one sequence live in fixed-size
// blocks of a shared pool, found through the sequence's block table. GQA and absorbed MLA.
// Not the block allocator (engine/kv_cache.h) and not a varlen batch: one sequence per call.
#pragma once

namespace strata {

// q: [M, H, hd]; k_pool: [n_blocks, block_size, Hkv, hd]; v_pool: [n_blocks, block_size, Hkv, hdv].
// Token position p lives in block block_table[p / block_size], row p % block_size.
// Query m is at position pos0 + m and sees positions [0, pos0 + m]. out: [M, H, hdv].
// Same arithmetic, in the same order, as attention_causal_f32 (a one-block table gives its bits). Runs the AVX2
// kernel when cpu_isa_active() has AVX2 and hd, hdv are multiples of 8 (the dot products summed in 8 lanes: not
// the scalar reference's bits), else the scalar reference.
void attention_paged_f32(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k_pool,
                         const float* v_pool, const int* block_table, int block_size, int pos0, float scale,
                         float* out);
// The two implementations by name (tests): the scalar reference, and the AVX2 one (hd % 8 == hdv % 8 == 0;
// call it only on a CPU with AVX2 and FMA).
void attention_paged_f32_scalar(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k_pool,
                                const float* v_pool, const int* block_table, int block_size, int pos0, float scale,
                                float* out);
void attention_paged_f32_avx2(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k_pool,
                              const float* v_pool, const int* block_table, int block_size, int pos0, float scale,
                              float* out);

// Absorbed MLA. q_lat: [M, H, R], q_pe: [M, H, P]; latent_pool: [n_blocks, block_size, R];
// k_pe_pool: [n_blocks, block_size, P]; out_lat: [M, H, R]. Same order as mla_attention_f32. AVX2 kernel when
// cpu_isa_active() has it and R, P are multiples of 8, else the scalar reference.
void mla_attention_paged_f32(const float* q_lat, const float* q_pe, int M, int H, int R, int P,
                             const float* latent_pool, const float* k_pe_pool, const int* block_table,
                             int block_size, int pos0, float scale, float* out_lat);
void mla_attention_paged_f32_scalar(const float* q_lat, const float* q_pe, int M, int H, int R, int P,
                                    const float* latent_pool, const float* k_pe_pool, const int* block_table,
                                    int block_size, int pos0, float scale, float* out_lat);
void mla_attention_paged_f32_avx2(const float* q_lat, const float* q_pe, int M, int H, int R, int P,
                                  const float* latent_pool, const float* k_pe_pool, const int* block_table,
                                  int block_size, int pos0, float scale, float* out_lat);

}  // namespace strata
