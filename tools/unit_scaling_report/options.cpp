#include "unit_scaling_report/options.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace unit_scaling::report {
namespace {

const std::vector<std::string> kKnownFormats{"float16", "bfloat16", "e4m3", "e5m2"};
const std::vector<std::string> kKnownDtypes{"float32", "float64", "bfloat16", "float16"};

constexpr int64_t kMaxThreads = 4096;
constexpr int64_t kMaxMicroBatches = 4096;

// The one number grammar of every numeric option, applied to the whole value:
//   integer  -?[0-9]+
//   number   -?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?
// No whitespace, leading '+', hex, inf or nan.

// How many decimal digits start at `at`.
size_t digits_at(const std::string& text, size_t at) {
  size_t count = 0;
  while (at + count < text.size() && text[at + count] >= '0' && text[at + count] <= '9') ++count;
  return count;
}

size_t sign_length(const std::string& text) { return !text.empty() && text[0] == '-' ? 1 : 0; }

bool is_integer(const std::string& text) {
  const size_t sign = sign_length(text);
  return text.size() > sign && digits_at(text, sign) == text.size() - sign;
}

bool is_number(const std::string& text) {
  size_t at = sign_length(text);
  const size_t whole = digits_at(text, at);
  at += whole;
  size_t fraction = 0;
  if (at < text.size() && text[at] == '.') {
    fraction = digits_at(text, ++at);
    at += fraction;
  }
  if (whole + fraction == 0) return false;
  if (at < text.size() && (text[at] == 'e' || text[at] == 'E')) {
    ++at;
    if (at < text.size() && (text[at] == '+' || text[at] == '-')) ++at;
    const size_t exponent = digits_at(text, at);
    if (exponent == 0) return false;
    at += exponent;
  }
  return at == text.size();
}

int64_t parse_integer(const std::string& option, const std::string& text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  if (!is_integer(text) || std::from_chars(text.data(), end, value).ec != std::errc{}) {
    throw UsageError(option + ": expected an integer, got '" + text + "'");
  }
  return value;
}

int64_t parse_positive(const std::string& option, const std::string& text) {
  const int64_t value = parse_integer(option, text);
  if (value <= 0) throw UsageError(option + ": must be > 0, got " + text);
  return value;
}

// A finite number: strtod reads all of a value that fits the grammar (the tool keeps the "C"
// locale); beyond double's range it gives inf, refused too.
double parse_number(const std::string& option, const std::string& text) {
  const bool valid = is_number(text);
  const double value = valid ? std::strtod(text.c_str(), nullptr) : 0.0;
  if (!valid || !std::isfinite(value)) {
    throw UsageError(option + ": expected a number, got '" + text + "'");
  }
  return value;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator)) parts.push_back(part);
  return parts;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  for (const auto& entry : list) {
    if (entry == item) return true;
  }
  return false;
}

// Control characters, e.g. a newline, as C escapes (\n, \x1b): the message stays one line.
std::string escape_control(const std::string& text) {
  std::string escaped;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      escaped += c;
    } else if (c == '\n') {
      escaped += "\\n";
    } else if (c == '\r') {
      escaped += "\\r";
    } else if (c == '\t') {
      escaped += "\\t";
    } else {
      const char* hex = "0123456789abcdef";
      escaped += {'\\', 'x', hex[byte >> 4], hex[byte & 15]};
    }
  }
  return escaped;
}

}  // namespace

UsageError::UsageError(const std::string& message) : std::runtime_error(escape_control(message)) {}

std::string Options::distribution_name() const {
  switch (distribution) {
    case Distribution::kUniform:
      return "uniform";
    case Distribution::kZipf: {
      std::ostringstream name;
      name << "zipf:" << zipf_exponent;
      return name.str();
    }
    case Distribution::kFile:
      break;
  }
  return "file:" + token_file;
}

Options parse_options(const std::vector<std::string>& args) {
  Options options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& option = args[i];
    if (option == "--help" || option == "-h") {
      options.help = true;
      continue;
    }
    if (option == "--no-plots") {
      options.plots = false;
      continue;
    }
    const bool takes_value =
        option == "--vocab" || option == "--dim" || option == "--tokens" || option == "--dist" ||
        option == "--dtype" || option == "--padding-idx" || option == "--seed" ||
        option == "--threads" || option == "--data-parallel" || option == "--accumulation" ||
        option == "--accumulate" || option == "--plain-loss" || option == "--formats" ||
        option == "--out" || option == "--token-type";
    if (!takes_value) throw UsageError("unknown option '" + option + "' (see --help)");
    if (i + 1 >= args.size()) throw UsageError(option + ": missing value");
    const std::string& value = args[++i];
    if (option == "--vocab") {
      options.vocab = parse_positive(option, value);
    } else if (option == "--dim") {
      options.dim = parse_positive(option, value);
    } else if (option == "--tokens") {
      const auto parts = split(value, 'x');
      if (parts.size() != 2)
        throw UsageError("--tokens: expected BxT (e.g. 8x1024), got '" + value + "'");
      options.batch = parse_positive(option, parts[0]);
      options.sequence = parse_positive(option, parts[1]);
      if (options.batch > std::numeric_limits<int64_t>::max() / options.sequence) {
        throw UsageError("--tokens: " + value + " is more tokens than an int64 counts");
      }
    } else if (option == "--dist") {
      if (value == "uniform") {
        options.distribution = Distribution::kUniform;
      } else if (value.rfind("zipf:", 0) == 0) {
        options.distribution = Distribution::kZipf;
        options.zipf_exponent = parse_number(option, value.substr(5));
        if (options.zipf_exponent <= 0)
          throw UsageError("--dist: zipf exponent must be > 0, got " + value.substr(5));
      } else if (value.rfind("file:", 0) == 0 && value.size() > 5) {
        options.distribution = Distribution::kFile;
        options.token_file = value.substr(5);
      } else {
        throw UsageError("--dist: expected uniform, zipf:S or file:PATH, got '" + value + "'");
      }
    } else if (option == "--token-type") {
      if (value == "uint16") {
        options.token_type = TokenType::kUint16;
      } else if (value == "int32") {
        options.token_type = TokenType::kInt32;
      } else {
        throw UsageError("--token-type: expected uint16 or int32, got '" + value + "'");
      }
    } else if (option == "--dtype") {
      if (!contains(kKnownDtypes, value)) {
        throw UsageError("--dtype: expected float32, float64, bfloat16 or float16, got '" + value +
                         "'");
      }
      options.dtype = value;
    } else if (option == "--padding-idx") {
      options.padding_idx = parse_integer(option, value);
    } else if (option == "--seed") {
      const int64_t seed = parse_integer(option, value);
      if (seed < 0) throw UsageError("--seed: must be >= 0, got " + value);
      options.seed = static_cast<uint64_t>(seed);
    } else if (option == "--threads") {
      const int64_t threads = parse_positive(option, value);
      if (threads > kMaxThreads) {
        throw UsageError("--threads: must be <= " + std::to_string(kMaxThreads) + ", got " + value);
      }
      options.threads = static_cast<int>(threads);
    } else if (option == "--formats") {
      options.formats = split(value, ',');
      if (options.formats.empty()) throw UsageError("--formats: empty list");
      for (const auto& format : options.formats) {
        if (!contains(kKnownFormats, format)) {
          throw UsageError("--formats: unknown format '" + format +
                           "' (known: float16, bfloat16, e4m3, e5m2)");
        }
      }
    } else if (option == "--data-parallel") {
      options.data_parallel = parse_positive(option, value);
    } else if (option == "--accumulation") {
      options.accumulation = parse_positive(option, value);
    } else if (option == "--accumulate") {
      if (value != "sum" && value != "mean") {
        throw UsageError("--accumulate: expected sum or mean, got '" + value + "'");
      }
      options.loss_mean = value == "mean";
    } else if (option == "--plain-loss") {
      if (value != "sum" && value != "mean") {
        throw UsageError("--plain-loss: expected mean or sum, got '" + value + "'");
      }
      options.plain_loss_mean = value == "mean";
    } else if (option == "--out") {
      if (value.empty()) throw UsageError("--out: empty path");
      options.out = value;
    }
  }
  if (options.padding_idx &&
      (*options.padding_idx < -options.vocab || *options.padding_idx >= options.vocab)) {
    throw UsageError("--padding-idx: " + std::to_string(*options.padding_idx) +
                     " is outside [-vocab, vocab) = [" + std::to_string(-options.vocab) + ", " +
                     std::to_string(options.vocab) + ")");
  }
  if (options.data_parallel > kMaxMicroBatches / options.accumulation) {
    throw UsageError("--data-parallel x --accumulation: at most " +
                     std::to_string(kMaxMicroBatches) + " micro-batches are simulated");
  }
  constexpr int64_t kMaxElements = std::numeric_limits<int64_t>::max();
  if (options.dim > kMaxElements / options.vocab || options.dim > kMaxElements / options.tokens()) {
    throw UsageError(
        "--vocab/--dim/--tokens: the table or the gradient would have more elements "
        "than an int64 counts");
  }
  if (options.token_type != TokenType::kAuto && options.distribution != Distribution::kFile) {
    throw UsageError("--token-type: only meaningful with --dist file:PATH");
  }
  return options;
}

// m = c^2 P K, c = 1/P (averaged over ranks) x 1/K (when the loss is divided by K).
double Options::token_multiplier() const {
  const double p = static_cast<double>(data_parallel);
  const double k = static_cast<double>(accumulation);
  return loss_mean ? 1.0 / (p * k) : k / p;
}

std::string usage() {
  return R"(usage: unit-scaling-report [options]

Shows where embedding weight gradients land in FP16, BF16 and FP8: plain embedding (ATen) under
a loss averaged over the N tokens (grad_out = r / N, PyTorch's default) against unit-scaled
embedding (unit-scaling-cpp) in a unit-scaled model (grad_out = r), r ~ N(0, 1) standing for the
rest of the model. With no options: GPT-2 shape, 8x1024 Zipf(1.1) tokens, float32.

  --vocab V             table rows (default 50257)
  --dim D               embedding width (default 768)
  --tokens BxT          batch x sequence tokens (default 8x1024)
  --dist KIND           uniform | zipf:S (default zipf:1.1) | file:PATH
  --token-type TYPE     for file: uint16 (raw, nanoGPT .bin) or int32 (raw); default: llm.c
                        shard if the file has its header, else raw uint16
  --dtype TYPE          float32 (default), float64, bfloat16, float16
  --padding-idx I       padding row, in [-V, V)
  --seed S              random seed (default 0)
  --threads N           intra-op threads (default: PyTorch's)
  --data-parallel P     data-parallel ranks whose gradients are averaged (default 1)
  --accumulation K      accumulated micro-batches per optimizer step (default 1)
  --accumulate sum|mean loss summed over the K micro-batches, or divided by K (default sum)
  --plain-loss mean|sum the plain embedding's grad_out: r / N (default) or r, the same as the
                        unit-scaled one receives (compares the two embeddings alone)
  --formats LIST        comma list of float16,bfloat16,e4m3,e5m2 (default: all)
  --out DIR             output folder for report.csv and figures (default report/)
  --no-plots            skip the figures (no gnuplot needed)
  --help                this text

Bad arguments print one line and exit with status 2, writing nothing.
)";
}

}  // namespace unit_scaling::report
