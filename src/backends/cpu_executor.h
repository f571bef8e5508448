// The Executor of the CPU kernels: ATen's intra-op thread pool.
#pragma once

#include <ATen/Parallel.h>

#include "kernels/parallel.h"

namespace unit_scaling::detail {

// Runs kernel work on ATen's intra-op thread pool (sized by torch::set_num_threads).
inline kernels::Executor aten_executor() {
  kernels::Executor executor;
  executor.parallel_for = [](int64_t begin, int64_t end, int64_t grain,
                             const kernels::RangeBody& body) {
    at::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) { body(b, e); });
  };
  executor.num_threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  return executor;
}

}  // namespace unit_scaling::detail
