// Element access shared by the CPU and CUDA kernels (internal to src/kernels): storage types,
// their accumulation type, and dispatch from the runtime DType / IndexType to templates.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/float_formats.h"
#include "kernels/host_device.h"
#include "kernels/kernel_types.h"

namespace unit_scaling::kernels::detail {

// Storage of the 16-bit formats: the same bytes as at::Half / at::BFloat16.
struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

// The storage type of each DType, and the DType of each storage type.
template <DType kType>
using StorageOf = std::conditional_t<
    kType == DType::kFloat32, float,
    std::conditional_t<kType == DType::kFloat64, double,
                       std::conditional_t<kType == DType::kFloat16, Float16, BFloat16>>>;
template <typename T>
constexpr DType kDTypeOf = std::is_same_v<T, float>     ? DType::kFloat32
                           : std::is_same_v<T, double>  ? DType::kFloat64
                           : std::is_same_v<T, Float16> ? DType::kFloat16
                                                        : DType::kBFloat16;

// The accumulation type of storage type T: accumulation_dtype's (kernel_types.h) as a C++ type.
template <typename T>
using AccumulatorOf = StorageOf<accumulation_dtype(kDTypeOf<T>)>;

// Acc is the accumulation type; load widens a stored element, store rounds once. float and
// double are their own storage: both conversions are the identity (float to float, double to
// double: accumulation_dtype keeps them).
template <typename T>
struct Element {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  using Acc = AccumulatorOf<T>;
  UNIT_SCALING_HOST_DEVICE static Acc load(T v) { return v; }
  UNIT_SCALING_HOST_DEVICE static T store(Acc v) { return v; }
};
template <>
struct Element<Float16> {
  using Acc = AccumulatorOf<Float16>;
  UNIT_SCALING_HOST_DEVICE static Acc load(Float16 v) { return half_to_float(v.bits); }
  UNIT_SCALING_HOST_DEVICE static Float16 store(Acc v) { return {float_to_half(v)}; }
};
template <>
struct Element<BFloat16> {
  using Acc = AccumulatorOf<BFloat16>;
  UNIT_SCALING_HOST_DEVICE static Acc load(BFloat16 v) { return bfloat16_to_float(v.bits); }
  UNIT_SCALING_HOST_DEVICE static BFloat16 store(Acc v) { return {float_to_bfloat16(v)}; }
};

template <typename T>
struct Tag {
  using type = T;
};

template <typename F>
decltype(auto) with_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(Tag<float>{});
    case DType::kFloat64:
      return f(Tag<double>{});
    case DType::kFloat16:
      return f(Tag<Float16>{});
    case DType::kBFloat16:
      break;
  }
  return f(Tag<BFloat16>{});
}

template <typename F>
decltype(auto) with_index_type(IndexType type, F&& f) {
  if (type == IndexType::kInt32) return f(Tag<int32_t>{});
  return f(Tag<int64_t>{});
}

// Roughly how many elements one parallel task should touch before splitting pays off.
constexpr int64_t kElementsPerTask = 32768;

inline int64_t grain_for(int64_t elements_per_item) {
  const int64_t per_item = elements_per_item > 0 ? elements_per_item : 1;
  return kElementsPerTask / per_item > 0 ? kElementsPerTask / per_item : 1;
}

}  // namespace unit_scaling::kernels::detail
