// Command-line options of unit-scaling-report. Parsing only checks syntax and ranges; nothing is
// read or written here, so a bad command line leaves no trace.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace unit_scaling::report {

// A bad command line: the message is printed as one line and the tool exits with status 2.
// Control characters in it (from an echoed value) are escaped, e.g. a newline as \n.
struct UsageError : std::runtime_error {
  explicit UsageError(const std::string& message);
};

enum class Distribution { kUniform, kZipf, kFile };
enum class TokenType { kAuto, kUint16, kInt32 };

struct Options {
  int64_t vocab = 50257;
  int64_t dim = 768;
  int64_t batch = 8;
  int64_t sequence = 1024;
  Distribution distribution = Distribution::kZipf;
  double zipf_exponent = 1.1;
  std::string token_file;
  TokenType token_type = TokenType::kAuto;
  std::string dtype = "float32";
  std::optional<int64_t> padding_idx;
  uint64_t seed = 0;
  std::optional<int> threads;
  // The optimizer step (docs/SCALING.md): P data-parallel ranks whose gradients are averaged,
  // K accumulated micro-batches, the loss summed over them or divided by K ("mean").
  int64_t data_parallel = 1;
  int64_t accumulation = 1;
  bool loss_mean = false;
  // The output gradient the plain embedding receives: a loss averaged over the N tokens
  // (PyTorch's default reduction: grad_out = r / N) or summed (grad_out = r, what the unit-scaled
  // embedding receives from a unit-scaled model, whose losses do not divide the backward by N).
  bool plain_loss_mean = true;
  std::vector<std::string> formats{"float16", "bfloat16", "e4m3", "e5m2"};
  std::string out = "report";
  bool plots = true;
  bool help = false;

  int64_t tokens() const { return batch * sequence; }
  // The padding row, as the library names it (functional::padding_row: padding_idx wrapped into
  // [0, vocab)), or -1 when there is none: for what the tool computes itself, ATen's
  // embedding_dense_backward and the rows that received gradient.
  int64_t padding_row() const;
  // The token_multiplier that keeps the optimizer-visible gradient at unit scale.
  double token_multiplier() const;
  std::string distribution_name() const;
};

// Parses argv (without argv[0]); throws UsageError with a one-line message.
Options parse_options(const std::vector<std::string>& args);

std::string usage();

}  // namespace unit_scaling::report
