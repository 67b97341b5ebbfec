// The CUDA backend (Hopper, built with STRATA_CUDA=ON): the Backend op table with the W4A16 kernels of
// kernels/cuda where they exist (INT4 linear, INT4 SwiGLU FFN, MoE routing, MoE experts) and the CPU backend
// for every other op and weight kind. Not a device-resident pipeline: ops take and return host f32 as the
// interface says, so each call copies its activations (as bf16) and results; weights upload once, cached by address.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace strata {

// Throws strata::Error when no CUDA device is usable.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace strata
