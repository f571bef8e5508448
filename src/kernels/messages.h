// The words of the library's errors, shared by the host (LibTorch glue) and the CUDA kernels.
//
// Every message starts with message_prefix(subject), "unit_scaling <subject>: ": "embedding" for
// everything about the embedding (the functional, the modules, the operators, the vocab-parallel
// paths, the DTensor rules), "scale_fwd" / "scale_bwd" for the primitives, "index_check_policy"
// for the CUDA index-check setting. A bad index is one sentence on the host (IndexError) and on
// the device (assertion): UNIT_SCALING_BAD_INDEX_FORMAT, printf-style, since device code can
// only print through printf.
#pragma once

#include <cstdio>
#include <string>

// Arguments: the index (long long), where it is in input's shape (a string: "[1, 3]" on the
// host, "" on the device, which does not know the shape), its flat position in input (long
// long), the table's row count V twice (long long).
#define UNIT_SCALING_BAD_INDEX_FORMAT                                                       \
  "unit_scaling embedding: index %lld at input%s (flat position %lld) is out of range for " \
  "weight with %lld rows; every index must satisfy 0 <= index < %lld"

namespace unit_scaling::kernels {

enum class Subject { kEmbedding, kScaleFwd, kScaleBwd, kIndexCheckPolicy };

inline const char* subject_name(Subject subject) {
  switch (subject) {
    case Subject::kScaleFwd:
      return "scale_fwd";
    case Subject::kScaleBwd:
      return "scale_bwd";
    case Subject::kIndexCheckPolicy:
      return "index_check_policy";
    case Subject::kEmbedding:
      break;
  }
  return "embedding";
}

// "unit_scaling <subject>: " (UNIT_SCALING_BAD_INDEX_FORMAT starts with the embedding's).
inline std::string message_prefix(Subject subject = Subject::kEmbedding) {
  return std::string("unit_scaling ") + subject_name(subject) + ": ";
}

// The host's rendering of UNIT_SCALING_BAD_INDEX_FORMAT.
inline std::string bad_index_message(long long value, const std::string& where, long long position,
                                     long long num_rows) {
  const int size = std::snprintf(nullptr, 0, UNIT_SCALING_BAD_INDEX_FORMAT, value, where.c_str(),
                                 position, num_rows, num_rows);
  std::string text(static_cast<size_t>(size) + 1, '\0');
  std::snprintf(text.data(), text.size(), UNIT_SCALING_BAD_INDEX_FORMAT, value, where.c_str(),
                position, num_rows, num_rows);
  text.pop_back();
  return text;
}

}  // namespace unit_scaling::kernels
