// The order in which the backward kernels add up a row's gradient rows. The CPU and CUDA
// kernels follow the same order, so they produce the same bits.
//
// The positions are sorted by row (stable: ascending positions within a row, padding
// positions left out), giving each valid lookup an offset in [0, N_valid). The offsets are cut
// into windows of kSumWindow. A row's entries are summed window by window: each window's part
// from zero in ascending offset order, then the window sums added in window order, all in the
// accumulation type. On the GPU a window is one thread's serial share of a long (Zipf) row, so
// a heavy row is spread over many threads while the order stays fixed.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace unit_scaling::kernels {

constexpr int64_t kSumWindow = 32;

// The window of a sorted offset.
UNIT_SCALING_HOST_DEVICE inline int64_t sum_window(int64_t offset) { return offset / kSumWindow; }

// The first offset after `offset`'s window, clipped to `end`.
UNIT_SCALING_HOST_DEVICE inline int64_t sum_window_end(int64_t offset, int64_t end) {
  const int64_t window_end = (offset / kSumWindow + 1) * kSumWindow;
  return window_end < end ? window_end : end;
}

}  // namespace unit_scaling::kernels
