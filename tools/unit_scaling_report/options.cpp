#include "unit_scaling_report/options.h"

#include <c10/util/Exception.h>
#include <unit_scaling/functional.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string_view>

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

namespace {

// One row per option: parse_options, the unknown-option error and --help all read this table.
struct OptionSpec {
  const char* name;      // e.g. "--vocab"
  const char* alias;     // another accepted spelling, not listed in --help; or nullptr
  const char* argument;  // the value's name in --help, e.g. "V"; nullptr for a flag (no value)
  const char* help;      // the --help text; each '\n' starts a continuation line
  // Stores the value in `options` (a flag gets ""); throws UsageError for a bad one.
  void (*parse)(Options& options, const std::string& option, const std::string& value);
};

const OptionSpec kOptionTable[] = {
    {"--vocab", nullptr, "V", "table rows (default 50257)",
     [](Options& o, const std::string& option, const std::string& value) {
       o.vocab = parse_positive(option, value);
     }},
    {"--dim", nullptr, "D", "embedding width (default 768)",
     [](Options& o, const std::string& option, const std::string& value) {
       o.dim = parse_positive(option, value);
     }},
    {"--tokens", nullptr, "BxT", "batch x sequence tokens (default 8x1024)",
     [](Options& o, const std::string& option, const std::string& value) {
       const auto parts = split(value, 'x');
       if (parts.size() != 2) {
         throw UsageError("--tokens: expected BxT (e.g. 8x1024), got '" + value + "'");
       }
       o.batch = parse_positive(option, parts[0]);
       o.sequence = parse_positive(option, parts[1]);
       if (o.batch > std::numeric_limits<int64_t>::max() / o.sequence) {
         throw UsageError("--tokens: " + value + " is more tokens than an int64 counts");
       }
     }},
    {"--dist", nullptr, "KIND", "uniform | zipf:S (default zipf:1.1) | file:PATH",
     [](Options& o, const std::string& option, const std::string& value) {
       if (value == "uniform") {
         o.distribution = Distribution::kUniform;
       } else if (value.rfind("zipf:", 0) == 0) {
         o.distribution = Distribution::kZipf;
         o.zipf_exponent = parse_number(option, value.substr(5));
         if (o.zipf_exponent <= 0) {
           throw UsageError("--dist: zipf exponent must be > 0, got " + value.substr(5));
         }
       } else if (value.rfind("file:", 0) == 0 && value.size() > 5) {
         o.distribution = Distribution::kFile;
         o.token_file = value.substr(5);
       } else {
         throw UsageError("--dist: expected uniform, zipf:S or file:PATH, got '" + value + "'");
       }
     }},
    {"--token-type", nullptr, "TYPE",
     "for file: uint16 (raw, nanoGPT .bin) or int32 (raw); default: llm.c\n"
     "shard if the file has its header, else raw uint16",
     [](Options& o, const std::string&, const std::string& value) {
       if (value == "uint16") {
         o.token_type = TokenType::kUint16;
       } else if (value == "int32") {
         o.token_type = TokenType::kInt32;
       } else {
         throw UsageError("--token-type: expected uint16 or int32, got '" + value + "'");
       }
     }},
    {"--dtype", nullptr, "TYPE", "float32 (default), float64, bfloat16, float16",
     [](Options& o, const std::string&, const std::string& value) {
       if (!contains(kKnownDtypes, value)) {
         throw UsageError("--dtype: expected float32, float64, bfloat16 or float16, got '" + value +
                          "'");
       }
       o.dtype = value;
     }},
    {"--padding-idx", nullptr, "I", "padding row, in [-V, V)",
     [](Options& o, const std::string& option, const std::string& value) {
       o.padding_idx = parse_integer(option, value);
     }},
    {"--seed", nullptr, "S", "random seed (default 0)",
     [](Options& o, const std::string& option, const std::string& value) {
       const int64_t seed = parse_integer(option, value);
       if (seed < 0) throw UsageError("--seed: must be >= 0, got " + value);
       o.seed = static_cast<uint64_t>(seed);
     }},
    {"--threads", nullptr, "N", "intra-op threads (default: PyTorch's)",
     [](Options& o, const std::string& option, const std::string& value) {
       const int64_t threads = parse_positive(option, value);
       if (threads > kMaxThreads) {
         throw UsageError("--threads: must be <= " + std::to_string(kMaxThreads) + ", got " +
                          value);
       }
       o.threads = static_cast<int>(threads);
     }},
    {"--data-parallel", nullptr, "P",
     "data-parallel ranks whose gradients are averaged (default 1)",
     [](Options& o, const std::string& option, const std::string& value) {
       o.data_parallel = parse_positive(option, value);
     }},
    {"--accumulation", nullptr, "K", "accumulated micro-batches per optimizer step (default 1)",
     [](Options& o, const std::string& option, const std::string& value) {
       o.accumulation = parse_positive(option, value);
     }},
    {"--accumulate", nullptr, "sum|mean",
     "loss summed over the K micro-batches, or divided by K (default sum)",
     [](Options& o, const std::string&, const std::string& value) {
       if (value != "sum" && value != "mean") {
         throw UsageError("--accumulate: expected sum or mean, got '" + value + "'");
       }
       o.loss_mean = value == "mean";
     }},
    {"--plain-loss", nullptr, "mean|sum",
     "the plain embedding's grad_out: r / N (default) or r, the same as the\n"
     "unit-scaled one receives (compares the two embeddings alone)",
     [](Options& o, const std::string&, const std::string& value) {
       if (value != "sum" && value != "mean") {
         throw UsageError("--plain-loss: expected mean or sum, got '" + value + "'");
       }
       o.plain_loss_mean = value == "mean";
     }},
    {"--formats", nullptr, "LIST", "comma list of float16,bfloat16,e4m3,e5m2 (default: all)",
     [](Options& o, const std::string&, const std::string& value) {
       o.formats = split(value, ',');
       if (o.formats.empty()) throw UsageError("--formats: empty list");
       for (const auto& format : o.formats) {
         if (!contains(kKnownFormats, format)) {
           throw UsageError("--formats: unknown format '" + format +
                            "' (known: float16, bfloat16, e4m3, e5m2)");
         }
       }
     }},
    {"--out", nullptr, "DIR", "output folder for report.csv and figures (default report/)",
     [](Options& o, const std::string&, const std::string& value) {
       if (value.empty()) throw UsageError("--out: empty path");
       o.out = value;
     }},
    {"--no-plots", nullptr, nullptr, "skip the figures (no gnuplot needed)",
     [](Options& o, const std::string&, const std::string&) { o.plots = false; }},
    {"--help", "-h", nullptr, "this text",
     [](Options& o, const std::string&, const std::string&) { o.help = true; }},
};

// The row of `option` (its name or alias), or nullptr.
const OptionSpec* find_option(const std::string& option) {
  for (const OptionSpec& spec : kOptionTable) {
    if (option == spec.name || (spec.alias != nullptr && option == spec.alias)) return &spec;
  }
  return nullptr;
}

// The library's own check of padding_idx for a table of `vocab` rows (in [-vocab, vocab)), its
// c10::ValueError turned into a UsageError with the library's message.
void check_padding_idx(int64_t padding_idx, int64_t vocab) {
  try {
    unit_scaling::functional::check_options(
        vocab, unit_scaling::functional::EmbeddingFuncOptions().padding_idx(padding_idx));
  } catch (const c10::ValueError& error) {
    throw UsageError(std::string("--padding-idx: ") + error.what_without_backtrace());
  }
}

// The checks that involve more than one option, once all are read.
void check_combinations(const Options& options) {
  if (options.padding_idx) check_padding_idx(*options.padding_idx, options.vocab);
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
}

// The option list of --help: "  NAME ARGUMENT" then the help text from column 24, its
// continuation lines indented to the same column.
std::string option_help() {
  constexpr size_t kHelpColumn = 24;
  std::string text;
  for (const OptionSpec& spec : kOptionTable) {
    std::string line = std::string("  ") + spec.name;
    if (spec.argument != nullptr) line += std::string(" ") + spec.argument;
    line.resize(std::max(line.size() + 1, kHelpColumn), ' ');
    for (const std::string& help_line : split(spec.help, '\n')) {
      text += line + help_line + '\n';
      line.assign(kHelpColumn, ' ');
    }
  }
  return text;
}

}  // namespace

Options parse_options(const std::vector<std::string>& args) {
  Options options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& option = args[i];
    const OptionSpec* spec = find_option(option);
    if (spec == nullptr) throw UsageError("unknown option '" + option + "' (see --help)");
    if (spec->argument != nullptr && i + 1 >= args.size()) {
      throw UsageError(option + ": missing value");
    }
    spec->parse(options, option, spec->argument != nullptr ? args[++i] : std::string());
  }
  check_combinations(options);
  return options;
}

int64_t Options::padding_row() const {
  if (!padding_idx) return -1;
  return unit_scaling::functional::padding_row(
      vocab, unit_scaling::functional::EmbeddingFuncOptions().padding_idx(padding_idx));
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

)" + option_help() +
         R"(
Bad arguments print one line and exit with status 2, writing nothing.
)";
}

}  // namespace unit_scaling::report
