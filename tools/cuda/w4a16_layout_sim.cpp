// Host-only check of the W4A16 device layout (kernels/cuda/w4a16_layout.h): repack round trip, and a
// lane-by-lane emulation of the kernels' fragment math (mma.m16n8k16 per the PTX ISA) against a plain GEMM.
// Not a GPU test: it runs anywhere (no CUDA needed) and catches index/bit mistakes before a device run.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/w4a16_layout.h"

using namespace strata::cuda;

namespace {

float bf16_bits_to_f32(uint32_t h) {
  uint32_t u = (h & 0xFFFFu) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// The two bf16 of a register as floats: [0] = low half (lower index), [1] = high half.
void unpack2(uint32_t r, float out[2]) {
  out[0] = bf16_bits_to_f32(r & 0xFFFFu);
  out[1] = bf16_bits_to_f32(r >> 16);
}

// mma.sync.m16n8k16.row.col f32.bf16.bf16.f32 for one warp, fragments as the PTX ISA defines them:
// A: a[lane][4] regs; reg r holds (row, col) pairs: r0 (g, 2t..+1), r1 (g+8, 2t..), r2 (g, 2t+8..), r3 (g+8, 2t+8..)
// B: b[lane][2]: b0 = (k = 2t, 2t+1; col g), b1 = (k = 2t+8, 2t+9; col g)
// C/D: c[lane][4]: (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)
void emulate_mma(const uint32_t a[32][4], const uint32_t b[32][2], const float c[32][4], float d[32][4]) {
  float A[16][16], B[16][8];
  for (int lane = 0; lane < 32; lane++) {
    const int g = lane >> 2, t = lane & 3;
    float p[2];
    unpack2(a[lane][0], p); A[g][2 * t] = p[0]; A[g][2 * t + 1] = p[1];
    unpack2(a[lane][1], p); A[g + 8][2 * t] = p[0]; A[g + 8][2 * t + 1] = p[1];
    unpack2(a[lane][2], p); A[g][2 * t + 8] = p[0]; A[g][2 * t + 9] = p[1];
    unpack2(a[lane][3], p); A[g + 8][2 * t + 8] = p[0]; A[g + 8][2 * t + 9] = p[1];
    unpack2(b[lane][0], p); B[2 * t][g] = p[0]; B[2 * t + 1][g] = p[1];
    unpack2(b[lane][1], p); B[2 * t + 8][g] = p[0]; B[2 * t + 9][g] = p[1];
  }
  for (int lane = 0; lane < 32; lane++) {
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; i++) {
      const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
      double s = c[lane][i];
      for (int k = 0; k < 16; k++) s += double(A[row][k]) * B[k][col];
      d[lane][i] = float(s);
    }
  }
}

// The kernels' dequant of one word with its scales: four bf16x2 registers bf16((u - 8) * scale), the
// subtraction exact, one rounding in the multiply (bf16x2 mul.rn); registers a0/a2 are row g (s_lo), a1/a3 row g+8.
void dequant(uint32_t q, float s_lo, float s_hi, uint32_t out[4]) {
  for (int r = 0; r < 4; r++) {
    const uint32_t m = w4_magic_pair(q, r);
    float p[2];
    unpack2(m, p);  // 128 + u, exactly
    const float sc = (r & 1) ? s_hi : s_lo;
    out[r] = uint32_t(f32_to_bf16_bits((p[0] - 136.f) * sc)) | uint32_t(f32_to_bf16_bits((p[1] - 136.f) * sc)) << 16;
  }
}

int check(int N, int K, int M, std::mt19937& rng) {
  const int nblk = N / 16, ktiles = K / 64;
  std::vector<uint32_t> src(size_t(N) * K / 8);
  for (auto& v : src) v = uint32_t(rng());
  std::vector<uint16_t> ssrc(size_t(N) * K / 32);
  for (auto& v : ssrc) v = f32_to_bf16_bits(0.01f + float(rng() % 1000) * 1e-5f);
  std::vector<uint16_t> x(size_t(M) * K);  // bf16 [M, K]
  for (auto& v : x) v = f32_to_bf16_bits((rng() & 1 ? 1.f : -1.f) * (0.25f + float(rng() % 1000) * 1e-3f));

  // Repack, as the device kernel does (one thread per word / scale).
  std::vector<uint32_t> dst(src.size());
  std::vector<uint16_t> sdst(ssrc.size());
  for (int nb = 0; nb < nblk; nb++)
    for (int kt = 0; kt < ktiles; kt++) {
      for (int lane = 0; lane < 32; lane++)
        for (int w = 0; w < 4; w++)
          dst[w4_tile_index(nb, kt, ktiles) * kW4TileWords + lane * 4 + w] = w4_repack_word(src.data(), K, nb, kt, lane, w);
      for (int e = 0; e < 32; e++)
        sdst[w4_tile_index(nb, kt, ktiles) * kW4TileScales + e] = w4_repack_scale(ssrc.data(), K, nb, kt, e);
    }

  // Round trip: every code and scale is found where w4_locate / w4_scale_index say.
  int bad = 0;
  std::vector<int> seen(dst.size() * 8, 0);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) {
      const int want = int((src[size_t(n) * (K / 8) + k / 8] >> (4 * (k % 8))) & 0xF) - 8;
      size_t word;
      int nib;
      w4_locate(n, k, K, &word, &nib);
      seen[word * 8 + nib]++;
      if (w4_code(dst.data(), n, k, K) != want) bad++;
      if (sdst[w4_scale_index(n, k, K)] != ssrc[size_t(n) * (K / 32) + k / 32]) bad++;
    }
  for (int v : seen)
    if (v != 1) bad++;  // w4_locate is a bijection

  // Reference y[m][n] in double from the source format, with the kernels' bf16 rounding of code * scale.
  std::vector<double> ref(size_t(M) * N, 0.0);
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double s = 0;
      for (int k = 0; k < K; k++) {
        const int q = int((src[size_t(n) * (K / 8) + k / 8] >> (4 * (k % 8))) & 0xF) - 8;
        const float w = bf16_bits_to_f32(f32_to_bf16_bits(float(q) * bf16_bits_to_f32(ssrc[size_t(n) * (K / 32) + k / 32])));
        s += double(w) * bf16_bits_to_f32(x[size_t(m) * K + k]);
      }
      ref[size_t(m) * N + n] = s;
    }

  // Emulated kernel: per (n block, m tile of 8 tokens) one warp; per k tile and k16 step s one mma on the
  // scaled A fragment of word s (scale group G = s / 2) and the B fragment x[m0 + g][64kt + 16s + 2t (+8)].
  std::vector<double> out(size_t(M) * N, NAN);
  for (int nb = 0; nb < nblk; nb++)
    for (int m0 = 0; m0 < M; m0 += 8) {
      float acc[32][4] = {};
      for (int kt = 0; kt < ktiles; kt++)
        for (int st = 0; st < 4; st++) {
          uint32_t a[32][4], b[32][2];
          for (int lane = 0; lane < 32; lane++) {
            const int g = lane >> 2, t = lane & 3, G = st >> 1;
            const uint32_t* words = &dst[w4_tile_index(nb, kt, ktiles) * kW4TileWords + lane * 4];
            const uint16_t* sc = &sdst[w4_tile_index(nb, kt, ktiles) * kW4TileScales + g * 4];
            dequant(words[st], bf16_bits_to_f32(sc[2 * G]), bf16_bits_to_f32(sc[2 * G + 1]), a[lane]);
            b[lane][0] = b[lane][1] = 0;
            if (m0 + g < M) {
              const uint16_t* xp = &x[size_t(m0 + g) * K + kt * 64 + st * 16 + 2 * t];
              b[lane][0] = uint32_t(xp[0]) | uint32_t(xp[1]) << 16;
              b[lane][1] = uint32_t(xp[8]) | uint32_t(xp[9]) << 16;
            }
          }
          float d[32][4];
          emulate_mma(a, b, acc, d);
          std::memcpy(acc, d, sizeof acc);
        }
      for (int lane = 0; lane < 32; lane++) {
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; i++) {
          const int m = m0 + 2 * t + (i & 1), n = nb * 16 + g + 8 * (i >> 1);
          if (m < M) out[size_t(m) * N + n] = acc[lane][i];
        }
      }
    }
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  const double rel = std::sqrt(num / den);
  const bool ok = bad == 0 && rel < 1e-5;
  std::printf("N=%-4d K=%-4d M=%-3d  round-trip mismatches %d  emulated-mma rel err %.2e  %s\n", N, K, M, bad, rel,
              ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  std::mt19937 rng(std::random_device{}());
  int fails = 0;
  fails += check(16, 64, 1, rng);
  fails += check(48, 192, 5, rng);
  fails += check(32, 512, 16, rng);
  fails += check(64, 128, 13, rng);
  std::printf(fails ? "layout sim: FAILED\n" : "layout sim: all ok\n");
  return fails ? 1 : 0;
}
