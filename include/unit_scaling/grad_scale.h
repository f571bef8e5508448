// How many tokens the unit scale counts: an extension beyond the reference library's contract
// for data parallelism and gradient accumulation (docs/SCALING.md).
//
// The weight gradient of one call is multiplied by s = sqrt(V / N_eff) with
//   N_eff = num_tokens            when num_tokens is set,
//   N_eff = input.numel() * token_multiplier   otherwise (the default, multiplier 1, is the
//                                               specification's N = input.numel()).
// Under data parallelism and gradient accumulation the optimizer sees a combination of many
// such gradients; docs/SCALING.md gives the multiplier that keeps that combination at unit
// scale for each reduction (e.g. K / P for DDP's averaging over P ranks with K
// accumulated micro-batches whose loss is not divided by K). Prefer token_multiplier under
// torch.compile: it stays constant while the batch shape changes (no recompilation).
//
// Example:
//   namespace F = unit_scaling::functional;
//   F::embedding(tokens, weight, F::EmbeddingFuncOptions(),
//                unit_scaling::GradScaleOptions().token_multiplier(4.0 / 8.0));
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <optional>

namespace unit_scaling {

struct GradScaleOptions {
  // N_eff = input.numel() * token_multiplier; finite and > 0 (ValueError otherwise).
  TORCH_ARG(double, token_multiplier) = 1.0;
  // N_eff = num_tokens (> 0), overriding the multiplier; ValueError if both are set.
  TORCH_ARG(std::optional<int64_t>, num_tokens) = std::nullopt;
};

}  // namespace unit_scaling
