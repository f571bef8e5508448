// Token streams of the report: synthetic (uniform, Zipf) or read from a token file.
#pragma once

#include <ATen/core/Tensor.h>

#include "unit_scaling_report/options.h"

namespace unit_scaling::report {

// The main run's B x T tokens (int64). For files: the first B*T tokens, as raw uint16
// (nanoGPT .bin), llm.c shards (256 int32 header with magic 20240520, then uint16), or raw int32
// (--token-type int32). Throws UsageError for an unreadable or short file, or a token outside
// [0, vocab) (naming the value and its position).
at::Tensor main_tokens(const Options& options);

// n tokens from the same distribution, for the sweep: synthetic draws, or for a file, draws with
// replacement from `file_tokens` (the main run's tokens).
at::Tensor sweep_tokens(const Options& options, int64_t n, const at::Tensor& file_tokens);

}  // namespace unit_scaling::report
