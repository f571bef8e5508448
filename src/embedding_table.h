// The embedding table of the modules (C++ nn::Embedding and distributed::VocabParallelEmbedding,
// the Python Embedding through the operators _check_module_options / _check_pretrained): the
// checks of their settings, how the table is registered and initialised, in one place.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/options/embedding.h>
#include <unit_scaling/grad_scale.h>

#include "call_options.h"

namespace unit_scaling::detail {

// A module's settings: num_embeddings and embedding_dim >= 0, the options of a table of
// num_embeddings rows (check_table_options), and a given table (`weight`, may be undefined) of
// shape `table_shape` (the whole table, or one rank's shard). ValueError otherwise.
void check_module_settings(int64_t num_embeddings, int64_t embedding_dim,
                           const CallOptions& options, const at::Tensor& weight,
                           at::IntArrayRef table_shape);

// A module's given table (from_pretrained's embeddings, from_full's full_weight: `name`), a
// defined (TypeError) 2-D (ValueError) tensor.
void check_pretrained(const at::Tensor& table, const char* name);

// The C++ modules' form: check_module_settings of `options` and `grad_scale`, then the wrapped
// padding_idx stored back into options and returned (-1: none).
int64_t check_module_options(torch::nn::EmbeddingOptions& options,
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
