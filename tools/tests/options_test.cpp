// The report's command line: one strict number grammar for every numeric option, and usage
// errors that stay one line whatever value they echo.
#include "unit_scaling_report/options.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <unit_scaling/functional.h>

#include <algorithm>
#include <cstdint>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace report = unit_scaling::report;

namespace {

// The UsageError message for `args`, or "" when they parse.
std::string usage_error(const std::vector<std::string>& args) {
  try {
    report::parse_options(args);
  } catch (const report::UsageError& error) {
    return error.what();
  }
  return "";
}

const std::vector<std::string> kIntegerOptions{"--vocab",        "--dim",  "--data-parallel",
                                               "--accumulation", "--seed", "--threads",
                                               "--padding-idx"};

TEST(Options, IntegersAreOptionalMinusThenDigits) {
  for (const auto& option : kIntegerOptions) {
    for (const std::string bad : {" 2", "+2", "2 ", "0x10", "1e3", "2.0", "1 000", "-", "", "--2",
                                  "99999999999999999999"}) {
      EXPECT_EQ(usage_error({option, bad}), option + ": expected an integer, got '" + bad + "'")
          << option << " '" << bad << "'";
    }
  }
  const report::Options options = report::parse_options(
      {"--vocab", "100", "--dim", "8", "--padding-idx", "-100", "--seed", "0", "--threads", "3",
       "--data-parallel", "2", "--accumulation", "4", "--tokens", "2x16"});
  EXPECT_EQ(options.vocab, 100);
  EXPECT_EQ(options.dim, 8);
  EXPECT_EQ(*options.padding_idx, -100);
  EXPECT_EQ(options.seed, 0u);
  EXPECT_EQ(*options.threads, 3);
  EXPECT_EQ(options.data_parallel, 2);
  EXPECT_EQ(options.accumulation, 4);
  EXPECT_EQ(options.batch, 2);
  EXPECT_EQ(options.sequence, 16);
}

TEST(Options, TokenCountsUseTheIntegerGrammar) {
  for (const std::string bad : {" 2x4", "+2x4", "2x4 ", "2x 4", "2x+4", "1e1x4"}) {
    EXPECT_NE(usage_error({"--tokens", bad}).find("--tokens: expected an integer"),
              std::string::npos)
        << bad;
  }
}

TEST(Options, ZipfExponentIsAPlainDecimal) {
  for (const std::string bad : {" 1.1", "+1.1", "1.1 ", "nan", "inf", "-inf", "infinity", "0x1p0",
                                "1e", "1e+", ".", "", "1e999", "1,5"}) {
    EXPECT_EQ(usage_error({"--dist", "zipf:" + bad}),
              "--dist: expected a number, got '" + bad + "'")
        << bad;
  }
  for (const auto& [text, value] : std::vector<std::pair<std::string, double>>{
           {"1.1", 1.1}, {"2", 2.0}, {"1.", 1.0}, {".5", 0.5}, {"15e-1", 1.5}, {"1E+1", 10.0}}) {
    EXPECT_EQ(report::parse_options({"--dist", "zipf:" + text}).zipf_exponent, value) << text;
  }
  EXPECT_EQ(usage_error({"--dist", "zipf:-1.5"}), "--dist: zipf exponent must be > 0, got -1.5");
}

TEST(Options, EchoedControlCharactersAreEscaped) {
  EXPECT_EQ(usage_error({"--vocab", "1\n2"}), "--vocab: expected an integer, got '1\\n2'");
  EXPECT_EQ(usage_error({"--dist", "zipf:1\r\x1b"}), "--dist: expected a number, got '1\\r\\x1b'");
  EXPECT_EQ(usage_error({"--bo\x7fgus"}), "unknown option '--bo\\x7fgus' (see --help)");
  EXPECT_EQ(usage_error({"--dtype", "caf\xc3\xa9"}),  // UTF-8 passes through
            "--dtype: expected float32, float64, bfloat16 or float16, got 'caf\xc3\xa9'");
}

// The option lines of --help ("  --name ARG   help"), as (name, takes a value).
std::vector<std::pair<std::string, bool>> listed_options() {
  std::vector<std::pair<std::string, bool>> listed;
  std::istringstream text(report::usage());
  for (std::string line; std::getline(text, line);) {
    if (line.rfind("  --", 0) != 0) continue;
    const size_t name_end = line.find(' ', 2);
    listed.emplace_back(line.substr(2, name_end - 2), line[name_end + 1] != ' ');
  }
  return listed;
}

// --help, the parser and the unknown-option error agree: every listed option is recognized, a
// listed value is required exactly where --help shows one, and anything else is unknown.
TEST(Options, HelpListsWhatTheParserAccepts) {
  const auto listed = listed_options();
  ASSERT_EQ(listed.size(), 17u) << report::usage();
  for (const auto& [name, takes_value] : listed) {
    if (takes_value) {
      EXPECT_EQ(usage_error({name}), name + ": missing value");
    } else {
      EXPECT_EQ(usage_error({name}), "") << name;
    }
    EXPECT_EQ(usage_error({name + "x"}), "unknown option '" + name + "x' (see --help)");
  }
  EXPECT_FALSE(report::parse_options({"--no-plots"}).plots);
  EXPECT_TRUE(report::parse_options({"--help"}).help);
  EXPECT_TRUE(report::parse_options({"-h"}).help);
  EXPECT_FALSE(report::parse_options({}).help);
  EXPECT_EQ(usage_error({"vocab"}), "unknown option 'vocab' (see --help)");
}

// Help text starts in column 24, continuation lines too; an argument too long for the column
// gets one space.
TEST(Options, HelpColumns) {
  const std::string usage = report::usage();
  for (const std::string line :
       {"  --vocab V             table rows (default 50257)\n",
        "  --accumulate sum|mean loss summed over the K micro-batches, or divided by K (default "
        "sum)\n",
        "  --plain-loss mean|sum the plain embedding's grad_out: r / N (default) or r, the same as "
        "the\n                        unit-scaled one receives (compares the two embeddings "
        "alone)\n",
        "  --no-plots            skip the figures (no gnuplot needed)\n  --help                "
        "this text\n\nBad arguments print one line and exit with status 2, writing nothing.\n"}) {
    EXPECT_NE(usage.find(line), std::string::npos) << line;
  }
}

TEST(Options, ValuesReachTheirFields) {
  const report::Options options = report::parse_options(
      {"--dist", "file:tokens.bin", "--token-type", "int32", "--dtype", "bfloat16", "--accumulate",
       "mean", "--plain-loss", "sum", "--formats", "e4m3,float16", "--out", "dir", "--no-plots"});
  EXPECT_EQ(options.distribution, report::Distribution::kFile);
  EXPECT_EQ(options.token_file, "tokens.bin");
  EXPECT_EQ(options.token_type, report::TokenType::kInt32);
  EXPECT_EQ(options.dtype, "bfloat16");
  EXPECT_TRUE(options.loss_mean);
  EXPECT_FALSE(options.plain_loss_mean);
  EXPECT_EQ(options.formats, (std::vector<std::string>{"e4m3", "float16"}));
  EXPECT_EQ(options.out, "dir");
  EXPECT_FALSE(options.plots);
  EXPECT_EQ(usage_error({"--token-type", "int32"}),
            "--token-type: only meaningful with --dist file:PATH");
}

// The integers a message names, e.g. {3, -10, 10} for "3 is outside [-10, 10)".
std::vector<int64_t> integers_in(const std::string& message) {
  std::vector<int64_t> integers;
  const std::regex integer("-?[0-9]+");
  for (auto it = std::sregex_iterator(message.begin(), message.end(), integer);
       it != std::sregex_iterator(); ++it) {
    integers.push_back(std::stoll(it->str()));
  }
  return integers;
}

bool contains(const std::vector<int64_t>& list, int64_t value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// --padding-idx is checked by the library (functional::check_options), not by the tool: outside
// [-V, V) it is a usage error, "--padding-idx: " then the library's own message, which names
// the value and V.
TEST(Options, PaddingIdxOutsideTheVocabularyIsTheLibrarysError) {
  namespace F = unit_scaling::functional;
  for (const int64_t bad : {int64_t{100}, int64_t{-101}, int64_t{99999999999999}}) {
    const std::string message =
        usage_error({"--vocab", "100", "--dim", "4", "--padding-idx", std::to_string(bad)});
    ASSERT_EQ(message.rfind("--padding-idx: ", 0), 0u) << message;
    const std::string detail = message.substr(std::string("--padding-idx: ").size());
    const std::vector<int64_t> named = integers_in(detail);
    EXPECT_TRUE(contains(named, bad)) << message;
    EXPECT_TRUE(contains(named, 100)) << message;
    try {
      F::check_options(100, F::EmbeddingFuncOptions().padding_idx(bad));
      ADD_FAILURE() << "the library accepts padding_idx=" << bad << " for V = 100";
    } catch (const c10::ValueError& error) {
      const std::string library = error.what_without_backtrace();
      EXPECT_EQ(library, detail) << message;
    }
  }
}

// Inside [-V, V) --padding-idx parses; padding_row() is the library's row (a negative one counts
// from the end).
TEST(Options, PaddingRowWrapsNegativeIndices) {
  for (const auto& [value, row] : std::vector<std::pair<std::string, int64_t>>{
           {"-100", 0}, {"-1", 99}, {"0", 0}, {"99", 99}, {"-37", 63}}) {
    EXPECT_EQ(report::parse_options({"--vocab", "100", "--padding-idx", value}).padding_row(), row)
        << value;
  }
  EXPECT_EQ(report::parse_options({"--vocab", "100"}).padding_row(), -1);
}

}  // namespace
