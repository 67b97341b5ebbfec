// GPTQ (Frantar et al. 2022) for one linear: quantise W column by column on the INT4 grid of
// quant/int4_quantize.h, spreading each column's rounding error over the columns not yet quantised
// through the inverse Hessian of the layer's inputs. Not a calibration driver (quant/calibration.h
// collects H) and no act-order: columns go in natural order so groups stay contiguous.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/int4_quantize.h"

namespace strata {

struct GptqOptions {
  double damp = 0.01;  // lambda = damp * mean(diag H), added to the diagonal
};

// Inputs: W [N, K] f32 row-major; H [K, K] = sum over calibration tokens of x x^T (any positive
// multiple works: damping is relative). Outputs: q [N, K] codes, scales [N, K/gs] bf16 bits,
// zeros [N, K/gs]. Group parameters are taken from the error-updated weights when the first
// column of each group is reached (the exact sequential form: AutoGPTQ's blocked version reads
// them before the current block's own updates).
// With H = identity there is no error feedback and the result equals rtn_quantize_row's.
void gptq_quantize(const float* W, int N, int K, const std::vector<float>& H, const Int4Scheme& scheme,
                   const GptqOptions& opt, int8_t* q, uint16_t* scales, int8_t* zeros);

// U, upper triangular with U^T U = (H + lambda I)^-1, [K, K] row-major (the "Cholesky of the
// inverse" GPTQ walks). Columns of H with a zero diagonal (inputs never seen) get H_ii = 1.
// Exposed for tests.
std::vector<double> gptq_inverse_cholesky(const std::vector<float>& H, int K, double damp);

}  // namespace strata
