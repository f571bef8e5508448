// The shape of a lookup's output: the input's shape followed by the embedding width D.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace unit_scaling::detail {

inline std::vector<int64_t> lookup_shape(at::IntArrayRef input_shape, int64_t dim) {
  std::vector<int64_t> shape(input_shape.begin(), input_shape.end());
  shape.push_back(dim);
  return shape;
}

// Symbolic sizes stay symbolic (FakeTensor tracing under torch.compile).
inline std::vector<c10::SymInt> lookup_shape(c10::SymIntArrayRef input_shape, c10::SymInt dim) {
  std::vector<c10::SymInt> shape(input_shape.begin(), input_shape.end());
  shape.push_back(std::move(dim));
  return shape;
}

}  // namespace unit_scaling::detail
