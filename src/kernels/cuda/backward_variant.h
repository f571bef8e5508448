// The CUDA backward's internal variants (backward.cu states each one's kernels and the saving
// it should bring): one switch, so that a GPU run can measure them side by side. Every variant
// gives the CPU kernels' bits; they differ in kernels, stream operations and speed only. Plain
// C++ (the LibTorch glue reads the switch from the environment; the planner and its tests take
// it as a value).
//   baseline    the tile sort + merge (or the radix sort), window parts, rows kernel
//   hot_rows    rows spanning more than one sum window summed one block each, beside the rows
//   side_zero   the gradient zeroed on a side stream during the sort; a segments kernel writes
//               only the rows looked up, from the heads of their runs in the sorted rows
//   merge_path  for N > 16384, each entry ranked by its own thread (warp-coherent searches)
//               instead of merge_kernel's lane-divergent ones
//   all         hot_rows + side_zero + merge_path
#pragma once

#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace unit_scaling::kernels::cuda {

enum class BackwardVariant { kBaseline, kHotRows, kSideZero, kMergePath, kAll };

inline constexpr BackwardVariant kBackwardVariants[] = {
    BackwardVariant::kBaseline, BackwardVariant::kHotRows, BackwardVariant::kSideZero,
    BackwardVariant::kMergePath, BackwardVariant::kAll};

// The variants' names in the switch, in the enum's order.
inline constexpr const char* kBackwardVariantNames[] = {"baseline", "hot_rows", "side_zero",
                                                        "merge_path", "all"};
static_assert(std::size(kBackwardVariantNames) == std::size(kBackwardVariants));

inline const char* backward_variant_name(BackwardVariant variant) {
  return kBackwardVariantNames[static_cast<int>(variant)];
}

// "baseline, hot_rows, side_zero, merge_path, all": the valid names, for messages.
inline std::string backward_variant_names() {
  std::string names;
  for (const BackwardVariant variant : kBackwardVariants) {
    names += (names.empty() ? "" : ", ") + std::string(backward_variant_name(variant));
  }
  return names;
}

// The variant a name selects; "" (the switch unset) is baseline; any other name is nullopt.
inline std::optional<BackwardVariant> parse_backward_variant(std::string_view name) {
  if (name.empty()) return BackwardVariant::kBaseline;
  for (const BackwardVariant variant : kBackwardVariants) {
    if (name == backward_variant_name(variant)) return variant;
  }
  return std::nullopt;
}

// What a variant turns on.
inline bool uses_hot_rows(BackwardVariant v) {
  return v == BackwardVariant::kHotRows || v == BackwardVariant::kAll;
}
inline bool uses_side_zero(BackwardVariant v) {
  return v == BackwardVariant::kSideZero || v == BackwardVariant::kAll;
}
inline bool uses_merge_path(BackwardVariant v) {
  return v == BackwardVariant::kMergePath || v == BackwardVariant::kAll;
}

}  // namespace unit_scaling::kernels::cuda
