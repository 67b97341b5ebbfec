// CUDA error checking for the CUDA kernels and tools: a failed runtime call throws strata::Error
// naming the call, the file:line and cudaGetErrorString. Internal to src/kernels/cuda and tools/bench.
// Not for device code; not a logger.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

#define STRATA_CUDA_CHECK(expr)                                                                            \
  do {                                                                                                     \
    const cudaError_t strata_cuda_err_ = (expr);                                                           \
    if (strata_cuda_err_ != cudaSuccess)                                                                   \
      throw ::strata::Error(std::string(#expr) + " failed at " + __FILE__ + ":" + std::to_string(__LINE__) + \
                            ": " + cudaGetErrorString(strata_cuda_err_));                                  \
  } while (0)

// After a kernel launch: launch-configuration errors (asynchronous faults surface at the next sync).
#define STRATA_CUDA_CHECK_LAUNCH() STRATA_CUDA_CHECK(cudaGetLastError())
