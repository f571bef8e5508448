#include "report/tokens.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

namespace unit_scaling::report {
namespace {

constexpr int32_t kLlmcMagic = 20240520;
constexpr int64_t kLlmcHeaderInts = 256;

at::Tensor synthetic(const Options& options, int64_t n) {
  if (options.distribution == Distribution::kUniform) {
    return at::randint(0, options.vocab, {n}, at::kLong);
  }
  // Zipf(s) over ranks 1..V, rank k drawn with probability ~ k^-s (rank 1 = token 0).
  const at::Tensor weights =
      at::arange(1, options.vocab + 1, at::kDouble).pow(-options.zipf_exponent);
  return at::multinomial(weights, n, /*replacement=*/true);
}

std::vector<char> read_file(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    throw UsageError("cannot read token file '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(info.st_mode)) throw UsageError("cannot read token file '" + path + "': not a file");
  std::ifstream file(path, std::ios::binary);
  if (!file) throw UsageError("cannot read token file '" + path + "': " + std::strerror(errno));
  std::vector<char> bytes(static_cast<size_t>(info.st_size));
  if (!file.read(bytes.data(), info.st_size)) {
    throw UsageError("cannot read token file '" + path + "'");
  }
  return bytes;
}

template <typename T>
std::vector<int64_t> decode(const char* data, size_t bytes, int64_t wanted,
                            const std::string& path) {
  const auto available = static_cast<int64_t>(bytes / sizeof(T));
  if (available < wanted) {
    throw UsageError("token file '" + path + "' holds " + std::to_string(available) +
                     " tokens, fewer than --tokens asks for (" + std::to_string(wanted) + ")");
  }
  std::vector<int64_t> tokens(static_cast<size_t>(wanted));
  for (int64_t i = 0; i < wanted; ++i) {
    T value;
    std::memcpy(&value, data + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
    tokens[static_cast<size_t>(i)] = value;
  }
  return tokens;
}

at::Tensor file_tokens(const Options& options) {
  const std::vector<char> bytes = read_file(options.token_file);
  const int64_t wanted = options.tokens();
  std::vector<int64_t> tokens;
  int32_t first = 0;
  if (bytes.size() >= sizeof first) std::memcpy(&first, bytes.data(), sizeof first);
  if (options.token_type == TokenType::kInt32) {
    tokens = decode<int32_t>(bytes.data(), bytes.size(), wanted, options.token_file);
  } else if (options.token_type == TokenType::kAuto && first == kLlmcMagic) {
    const size_t header = kLlmcHeaderInts * sizeof(int32_t);
    if (bytes.size() < header)
      throw UsageError("token file '" + options.token_file + "': truncated llm.c header");
    tokens =
        decode<uint16_t>(bytes.data() + header, bytes.size() - header, wanted, options.token_file);
  } else {
    tokens = decode<uint16_t>(bytes.data(), bytes.size(), wanted, options.token_file);
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= options.vocab) {
      throw UsageError("token " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                       " of '" + options.token_file +
                       "' is outside [0, vocab=" + std::to_string(options.vocab) + ")");
    }
  }
  return at::tensor(tokens, at::kLong);
}

}  // namespace

at::Tensor main_tokens(const Options& options) {
  const at::Tensor flat = options.distribution == Distribution::kFile
                              ? file_tokens(options)
                              : synthetic(options, options.tokens());
  return flat.view({options.batch, options.sequence});
}

at::Tensor sweep_tokens(const Options& options, int64_t n, const at::Tensor& file_tokens) {
  if (options.distribution != Distribution::kFile) return synthetic(options, n);
  const at::Tensor flat = file_tokens.reshape({-1});
  return flat.index_select(0, at::randint(0, flat.numel(), {n}, at::kLong));
}

}  // namespace unit_scaling::report
