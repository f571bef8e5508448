// How kernels run work in parallel without depending on a threading library: the caller hands
// in an Executor (the LibTorch glue wraps at::parallel_for, so torch::set_num_threads governs
// it). Kernels split work so that every output element is produced by exactly one task, in a
// fixed order, which keeps results identical for any thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace unit_scaling::kernels {

using RangeBody = std::function<void(int64_t begin, int64_t end)>;

// Calls body over disjoint subranges covering [begin, end); grain is the smallest useful chunk.
using ParallelFor =
    std::function<void(int64_t begin, int64_t end, int64_t grain, const RangeBody& body)>;

inline void serial_for(int64_t begin, int64_t end, int64_t /*grain*/, const RangeBody& body) {
  if (begin < end) body(begin, end);
}

struct Executor {
  ParallelFor parallel_for = serial_for;
  int num_threads = 1;  // how many workers parallel_for may use at most
};

}  // namespace unit_scaling::kernels
