#include "unit_scaling_report/tokens.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace unit_scaling::report {
namespace {

constexpr int32_t kLlmcMagic = 20240520;
constexpr int64_t kLlmcHeaderInts = 256;
// torch.multinomial draws from at most 2^24 categories; larger vocabularies invert the CDF.
constexpr int64_t kMultinomialLimit = int64_t{1} << 24;

at::Tensor synthetic(const Options& options, int64_t n) {
  if (options.distribution == Distribution::kUniform) {
    return at::randint(0, options.vocab, {n}, at::kLong);
  }
  // Zipf(s) over ranks 1..V, rank k drawn with probability ~ k^-s (rank 1 = token 0).
  const at::Tensor weights =
      at::arange(1, options.vocab + 1, at::kDouble).pow(-options.zipf_exponent);
  if (options.vocab <= kMultinomialLimit) {
    return at::multinomial(weights, n, /*replacement=*/true);
  }
  const at::Tensor cdf = weights.cumsum(0);
  const at::Tensor u = at::rand({n}, at::kDouble) * cdf[-1];
  return at::searchsorted(cdf, u, /*out_int32=*/false, /*right=*/true)
      .clamp_max_(options.vocab - 1);
}

// An open token file, read with pread at explicit offsets: only the bytes used are ever read,
// so a file of many GB costs no more memory than the tokens asked for.
class TokenFile {
 public:
  explicit TokenFile(const std::string& path) : path_(path) {
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(std::strerror(errno));
    struct stat info;
    if (fstat(fd_, &info) != 0) fail(std::strerror(errno));
    if (!S_ISREG(info.st_mode)) fail("not a file");
    size_ = info.st_size;
  }
  ~TokenFile() {
    if (fd_ >= 0) close(fd_);
  }
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  int64_t size() const { return size_; }

  void read(int64_t offset, void* out, int64_t bytes) const {
    auto* target = static_cast<char*>(out);
    while (bytes > 0) {
      const ssize_t got = pread(fd_, target, static_cast<size_t>(bytes), offset);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) fail(got < 0 ? std::strerror(errno) : "unexpected end of file");
      target += got;
      offset += got;
      bytes -= got;
    }
  }

  [[noreturn]] void fail(const std::string& why) const {
    throw UsageError("cannot read token file '" + path_ + "': " + why);
  }

 private:
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

// The first `wanted` tokens of type T starting at byte `offset`, after checking that the file
// holds them (`available` tokens there).
template <typename T>
std::vector<int64_t> read_tokens(const TokenFile& file, int64_t offset, int64_t available,
                                 int64_t wanted, const std::string& path) {
  if (available < wanted) {
    throw UsageError("token file '" + path + "' holds " + std::to_string(available) +
                     " tokens, fewer than --tokens asks for (" + std::to_string(wanted) + ")");
  }
  std::vector<T> raw(static_cast<size_t>(wanted));
  file.read(offset, raw.data(), wanted * static_cast<int64_t>(sizeof(T)));
  return std::vector<int64_t>(raw.begin(), raw.end());
}

at::Tensor file_tokens(const Options& options) {
  const std::string& path = options.token_file;
  const TokenFile file(path);
  const int64_t wanted = options.tokens();
  std::vector<int64_t> tokens;
  int32_t first = 0;
  if (file.size() >= static_cast<int64_t>(sizeof first)) file.read(0, &first, sizeof first);
  if (options.token_type == TokenType::kInt32) {
    tokens = read_tokens<int32_t>(file, 0, file.size() / 4, wanted, path);
  } else if (options.token_type == TokenType::kAuto && first == kLlmcMagic) {
    // llm.c shard: 256 int32 (magic, version, token count, ...), then the uint16 tokens.
    const int64_t header_bytes = kLlmcHeaderInts * 4;
    if (file.size() < header_bytes) file.fail("truncated llm.c header");
    int32_t header[3];
    file.read(0, header, sizeof header);
    const int64_t declared = header[2];
    const int64_t present = (file.size() - header_bytes) / 2;
    if (declared < 0 || declared > present) {
      file.fail("llm.c header declares " + std::to_string(declared) +
                " tokens but the file holds " + std::to_string(present));
    }
    tokens = read_tokens<uint16_t>(file, header_bytes, declared, wanted, path);
  } else {
    tokens = read_tokens<uint16_t>(file, 0, file.size() / 2, wanted, path);
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= options.vocab) {
      throw UsageError("token " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                       " of '" + path + "' is outside [0, vocab=" + std::to_string(options.vocab) +
                       ")");
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
