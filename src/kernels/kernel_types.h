// Types shared by the CPU and CUDA kernels: the storage formats and the framework-free views of
// indices and tables (sizes and strides counted in elements).
#pragma once

#include <cstdint>

namespace unit_scaling::kernels {

// Floating storage formats of the table (the supported list: src/dtypes.h maps torch's onto it).
enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

// The one accumulation rule of every sum (backward, renorm's norms) on every device: float64
// tables accumulate in float64, the others in float32. element.h's Element<T>::Acc follows it.
constexpr DType accumulation_dtype(DType type) {
  return type == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
}

// Bytes of one element of `type`.
constexpr int64_t dtype_bytes(DType type) {
  return type == DType::kFloat64 ? 8 : type == DType::kFloat32 ? 4 : 2;
}
// Index formats of the lookups.
enum class IndexType { kInt32, kInt64 };

// N lookups: indices[0, count) stored as `type`, contiguous.
struct IndexArray {
  IndexType type;
  const void* data;
  int64_t count;
};

// A 2-D view: element (r, c) lives at data + r * row_stride + c * col_stride.
struct ConstMatrix {
  const void* data;
  int64_t rows, cols, row_stride, col_stride;
};
struct MutableMatrix {
  void* data;
  int64_t rows, cols, row_stride, col_stride;
};

}  // namespace unit_scaling::kernels
