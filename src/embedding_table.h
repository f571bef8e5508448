// The embedding table of the modules (nn::Embedding, distributed::VocabParallelEmbedding): how
// it is registered and initialised, in one place.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/options/embedding.h>
#include <unit_scaling/grad_scale.h>

namespace unit_scaling::detail {

// The checks of a module's options, shared by both modules (`module` names it in errors):
// num_embeddings and embedding_dim >= 0, the functional options (check_options, padding_idx in
// [-V, V)), the token count, and options._weight's shape (when given) equal to `table_shape`
// (the whole table, or one rank's shard). Stores the wrapped padding_idx back into options and
// returns it (-1: none). ValueError otherwise.
int64_t check_module_options(const char* module, torch::nn::EmbeddingOptions& options,
                             const GradScaleOptions& grad_scale, at::IntArrayRef table_shape);

// Unit-scale initialisation in place: weight ~ N(0, 1), then row `padding_row` zeroed when it
// lies in [0, weight.size(0)).
void init_table(const at::Tensor& weight, int64_t padding_row);

// Registers the parameter "weight" of `module` (rows x options.embedding_dim()), returns it.
//  - options._weight() defined (its shape checked by the caller): the first registration
//    (`current` undefined) adopts that tensor itself (the from_pretrained / _weight contract);
//    a later one (clone() copies the module, then resets the copy) registers a copy of it and
//    points the copy's options._weight() at it, so that no two modules ever share a table.
//  - otherwise a fresh table, initialised by init_table(padding_row).
// requires_grad is kept from `current` when there is one (a clone of a frozen module is frozen).
at::Tensor register_table(torch::nn::Module& module, const at::Tensor& current,
                          torch::nn::EmbeddingOptions& options, int64_t rows, int64_t padding_row);

}  // namespace unit_scaling::detail
