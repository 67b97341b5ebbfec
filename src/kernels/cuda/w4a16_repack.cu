// The one-time repack of compressed-tensors INT4 weights into the kernels' layout (w4a16_layout.h),
// on the device, plus upload/free helpers. Not on the hot path: runs once per weight at load.
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/w4a16_layout.h"
#include "kernels/cuda/w4a16_repack.h"

namespace strata::cuda {

namespace {

// One thread per output word; the scale entries ride on the first 32 words' threads of each tile.
__global__ void repack_kernel(const uint32_t* __restrict__ ct_packed,  // [N, K/8]
                              const uint16_t* __restrict__ ct_scales,  // bf16 [N, K/32]
                              int K, int k_tiles, size_t n_words, int block_stride, int block_offset,
                              uint32_t* __restrict__ out_packed,   // [N'/16, K/64, 32, 4]
                              uint16_t* __restrict__ out_scales) {  // [N'/16, K/64, 8, 4]
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_words; i += size_t(gridDim.x) * blockDim.x) {
    const size_t tile = i / kW4TileWords;
    const int in_tile = int(i % kW4TileWords);
    const int nb = int(tile / size_t(k_tiles)), kt = int(tile % size_t(k_tiles));
    const size_t out_tile = w4_tile_index(nb * block_stride + block_offset, kt, k_tiles);
    out_packed[out_tile * kW4TileWords + in_tile] = w4_repack_word(ct_packed, K, nb, kt, in_tile >> 2, in_tile & 3);
    if (in_tile < kW4TileScales)
      out_scales[out_tile * kW4TileScales + in_tile] = w4_repack_scale(ct_scales, K, nb, kt, in_tile);
  }
}

}  // namespace

void w4a16_check_shape(int N, int K) {
  if (N <= 0 || K <= 0 || N % kW4TileN != 0 || K % kW4TileK != 0)
    throw Error("w4a16: weight shape [" + std::to_string(N) + ", " + std::to_string(K) +
                "] unsupported (needs N % 16 == 0 and K % 64 == 0)");
}

void w4a16_repack(const uint32_t* ct_packed, const uint16_t* ct_scales, int N, int K, uint32_t* out_packed,
                  uint16_t* out_scales, void* stream) {
  w4a16_repack_blocks(ct_packed, ct_scales, N, K, out_packed, out_scales, 1, 0, stream);
}

void w4a16_repack_blocks(const uint32_t* ct_packed, const uint16_t* ct_scales, int N, int K, uint32_t* out_packed,
                         uint16_t* out_scales, int out_block_stride, int out_block_offset, void* stream) {
  w4a16_check_shape(N, K);
  const size_t n_words = size_t(N) * size_t(K) / 8;
  const int threads = 256;
  const size_t want = (n_words + threads - 1) / threads;
  const int blocks = int(want < 65535 * 8 ? want : 65535 * 8);
  repack_kernel<<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(ct_packed, ct_scales, K, K / kW4TileK,
                                                                            n_words, out_block_stride, out_block_offset,
                                                                            out_packed, out_scales);
  STRATA_CUDA_CHECK_LAUNCH();
}

W4A16Weight w4a16_upload(const LinearWeight& hw) {
  if (hw.kind != WeightKind::Int4 || !hw.packed || !hw.scales)
    throw Error("w4a16_upload: " + hw.name + " is not an INT4 weight with packed and scales");
  const int N = hw.n_out, K = hw.n_in;
  w4a16_check_shape(N, K);
  const size_t words = size_t(N) * K / 8, n_scales = size_t(N) * K / 32;
  W4A16Weight w;
  w.n_out = N;
  w.n_in = K;
  w.owned = true;
  uint32_t* tmp_packed = nullptr;
  uint16_t* tmp_scales = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&w.packed, words * 4));
  STRATA_CUDA_CHECK(cudaMalloc(&w.scales, n_scales * 2));
  STRATA_CUDA_CHECK(cudaMalloc(&tmp_packed, words * 4));
  STRATA_CUDA_CHECK(cudaMalloc(&tmp_scales, n_scales * 2));
  STRATA_CUDA_CHECK(cudaMemcpy(tmp_packed, hw.packed, words * 4, cudaMemcpyHostToDevice));
  STRATA_CUDA_CHECK(cudaMemcpy(tmp_scales, hw.scales, n_scales * 2, cudaMemcpyHostToDevice));
  w4a16_repack(tmp_packed, tmp_scales, N, K, w.packed, w.scales, nullptr);
  STRATA_CUDA_CHECK(cudaDeviceSynchronize());
  STRATA_CUDA_CHECK(cudaFree(tmp_packed));
  STRATA_CUDA_CHECK(cudaFree(tmp_scales));
  return w;
}

void w4a16_free(W4A16Weight& w) {
  if (w.owned) {
    cudaFree(w.packed);
    cudaFree(w.scales);
  }
  w = W4A16Weight{};
}

}  // namespace strata::cuda
