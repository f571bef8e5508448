// unit-scaling-report: where plain and unit-scaled embedding gradients land in FP16, BF16 and
// FP8, for a configuration and token stream of the user's (README: "Main job").
#include <ATen/ATen.h>
#include <torch/torch.h>
#include <unistd.h>
#include <unit_scaling/functional.h>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "unit_scaling_report/format_stats.h"
#include "unit_scaling_report/options.h"
#include "unit_scaling_report/output_files.h"
#include "unit_scaling_report/plots.h"
#include "unit_scaling_report/report_csv.h"
#include "unit_scaling_report/tokens.h"

using namespace unit_scaling::report;

namespace {

at::ScalarType dtype_of(const std::string& name) {
  if (name == "float64") return at::kDouble;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  return at::kFloat;
}

double rms(const at::Tensor& x) { return x.to(at::kDouble).square().mean().sqrt().item<double>(); }
double stddev(const at::Tensor& x) { return x.to(at::kDouble).std().item<double>(); }

struct Gradients {
  at::Tensor plain, unit_scaled, output;
};

// The factor on the plain embedding's grad_out: 1/N for a loss averaged over the N tokens (what
// `reduction="mean"` sends back), 1 for a summed loss.
double plain_factor(const Options& options, int64_t tokens) {
  return options.plain_loss_mean ? 1.0 / static_cast<double>(tokens) : 1.0;
}

// Plain: ATen's dense backward of grad_out * plain_factor. Unit-scaled: our op, through autograd,
// of grad_out itself (a unit-scaled model keeps grad_out at unit scale).
// `weight` has options.vocab rows.
Gradients run_both(const Options& options, const at::Tensor& tokens, const at::Tensor& weight,
                   const at::Tensor& grad_out, double plain_factor) {
  Gradients g;
  g.plain = at::embedding_dense_backward(grad_out * plain_factor, tokens, weight.size(0),
                                         options.padding_row(), false);
  auto w = weight.detach().clone().requires_grad_();
  g.output = unit_scaling::functional::embedding(tokens, w, options.padding_idx);
  g.output.backward(grad_out);
  g.unit_scaled = w.grad();
  return g;
}

void progress(int done, int total) {
  if (!isatty(STDERR_FILENO)) return;
  const int width = 30;
  const int filled = width * done / total;
  std::cerr << "\rsweep [" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
            << done << "/" << total << (done == total ? "\n" : "") << std::flush;
}

std::string fixed(double value, int precision = 4) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(precision) << value;
  return text.str();
}

// Four decimals, or three significant digits in scientific notation below 0.001 (the plain
// gradient of a mean loss is ~1e-5).
std::string number(double value) {
  if (value == 0 || std::abs(value) >= 0.001 || !std::isfinite(value)) return fixed(value);
  std::ostringstream text;
  text << std::scientific << std::setprecision(2) << value;
  return text.str();
}

std::string percent(double fraction) { return fixed(100 * fraction, 3) + "%"; }

// The main run: its tokens, the table and output gradient drawn for it, and both weight gradients.
struct MainRun {
  at::Tensor tokens, weight, grad_out;
  Gradients grads;
};

// The sweep's token counts and the weight-grad std of each variant at each count.
struct Sweep {
  std::vector<double> n, plain, unit;
  int64_t dim = 0;
};

// Refuses what would otherwise fail only at the end (no gnuplot, --out a file), seeds, sets the
// threads and returns the main run's tokens (a bad token file is refused too): nothing written.
at::Tensor prepare(const Options& options) {
  if (options.plots && !gnuplot_available()) {
    throw UsageError(
        "gnuplot (with the pngcairo terminal) not found: install gnuplot-nox or pass --no-plots");
  }
  if (exists(options.out) && !is_directory(options.out)) {
    throw UsageError("--out: '" + options.out + "' exists and is not a folder");
  }
  torch::manual_seed(options.seed);
  if (options.threads) torch::set_num_threads(*options.threads);
  return main_tokens(options);
}

// Config section: the settings, the heading line and the scale sqrt(V/N).
void report_config(const Options& options, Results& results) {
  const int64_t n = options.tokens();
  const double scale = unit_scaling::functional::unit_scale(options.vocab, n);
  results.add_text("config", "vocab", std::to_string(options.vocab));
  results.add_text("config", "dim", std::to_string(options.dim));
  results.add_text("config", "tokens",
                   std::to_string(options.batch) + "x" + std::to_string(options.sequence));
  results.add_text("config", "dist", options.distribution_name());
  results.add_text("config", "dtype", options.dtype);
  results.add_text("config", "seed", std::to_string(options.seed));
  results.add_text("config", "data_parallel", std::to_string(options.data_parallel));
  results.add_text("config", "accumulation", std::to_string(options.accumulation));
  results.add_text("config", "accumulate", options.loss_mean ? "mean" : "sum");
  results.add_text("config", "threads", std::to_string(torch::get_num_threads()));
  results.add_text("config", "padding_idx",
                   options.padding_idx ? std::to_string(*options.padding_idx) : "none");

  std::cout << "unit-scaling-report: V=" << options.vocab << " D=" << options.dim
            << " tokens=" << options.batch << "x" << options.sequence << " (N=" << n
            << ") dist=" << options.distribution_name() << " dtype=" << options.dtype
            << " seed=" << options.seed << " threads=" << torch::get_num_threads() << "\n"
            << "scale sqrt(V/N) = " << fixed(scale) << "\n"
            << "what you are looking at: the weight gradient each setup hands the optimizer "
               "(r ~ N(0,1) stands for the rest of the model's backward)\n"
            << "  plain:       ATen's embedding, "
            << (options.plain_loss_mean
                    ? "loss averaged over the N tokens (PyTorch's default): grad_out = r/N\n"
                    : "loss summed over the tokens (--plain-loss sum): grad_out = r\n")
            << "  unit-scaled: this library's embedding in a unit-scaled model (its losses keep "
               "grad_out at unit scale): grad_out = r\n\n";
  results.add_text("config", "plain_loss", options.plain_loss_mean ? "mean" : "sum");
  results.add("summary", "scale", "", scale);
}

// Draws the main run's table and output gradient and computes both weight gradients.
MainRun compute_main_run(const Options& options, const at::Tensor& tokens) {
  const at::ScalarType dtype = dtype_of(options.dtype);
  MainRun main_run;
  main_run.tokens = tokens;
  main_run.weight = at::randn({options.vocab, options.dim}).to(dtype);
  main_run.grad_out = at::randn({options.batch, options.sequence, options.dim}).to(dtype);
  main_run.grads = run_both(options, tokens, main_run.weight, main_run.grad_out,
                            plain_factor(options, options.tokens()));
  return main_run;
}

// 1st, 50th and 99th percentile of the per-row RMS over the `used` rows. No row gets gradient
// when every token is padding: the spread is then undefined (NaN).
at::Tensor row_rms_quantiles(const at::Tensor& grad, const at::Tensor& used) {
  const at::Tensor rows = grad.to(at::kDouble).index({used}).square().mean(1).sqrt();
  if (rows.numel() == 0) return at::full({3}, std::nan(""), at::kDouble);
  return at::quantile(rows, at::tensor({0.01, 0.5, 0.99}, at::kDouble));
}

// Summary section: output and weight-gradient statistics of the main run, plain vs unit-scaled.
void report_summary(const Options& options, const MainRun& main_run, Results& results) {
  // Rows that received gradient (padding excluded).
  at::Tensor uses = at::bincount(main_run.tokens.reshape({-1}), {}, options.vocab);
  if (options.padding_idx) uses[options.padding_row()] = 0;
  const at::Tensor used = uses.gt(0);
  const Gradients& g = main_run.grads;
  const at::Tensor plain_q = row_rms_quantiles(g.plain, used);
  const at::Tensor unit_q = row_rms_quantiles(g.unit_scaled, used);

  struct Line {
    std::string label, item;
    double plain, unit;
  };
  const std::vector<Line> lines{
      {"output rms", "output_rms", rms(g.output), rms(g.output)},
      {"output std", "output_std", stddev(g.output), stddev(g.output)},
      {"weight-grad rms", "grad_rms", rms(g.plain), rms(g.unit_scaled)},
      {"weight-grad std", "grad_std", stddev(g.plain), stddev(g.unit_scaled)},
      {"row rms, median (used rows)", "row_rms_median", plain_q[1].item<double>(),
       unit_q[1].item<double>()},
      {"row rms, 1st percentile", "row_rms_p01", plain_q[0].item<double>(),
       unit_q[0].item<double>()},
      {"row rms, 99th percentile", "row_rms_p99", plain_q[2].item<double>(),
       unit_q[2].item<double>()},
  };
  std::cout << std::left << std::setw(30) << "" << std::setw(16) << "plain (ATen)"
            << "unit-scaled\n";
  for (const auto& line : lines) {
    std::cout << std::setw(30) << line.label << std::setw(16) << number(line.plain)
              << number(line.unit) << "\n";
    results.add("summary", line.item, "plain", line.plain);
    results.add("summary", line.item, "unit_scaled", line.unit);
  }
  std::cout << "rows that received gradient: " << used.sum().item<int64_t>() << " of "
            << options.vocab << "\n\n";
  results.add("summary", "rows_with_gradient", "", static_cast<double>(used.sum().item<int64_t>()));
}

// The optimizer-visible gradient without and with the token_multiplier correction.
struct StepGradients {
  at::Tensor uncorrected, corrected;
};

// P x K micro-batches of N tokens (the first is the main run's, the others fresh draws), each
// rank's K summed (or averaged), then averaged over the P ranks.
StepGradients optimizer_step(const Options& options, const MainRun& main_run, double multiplier) {
  StepGradients step;
  step.uncorrected = at::zeros({options.vocab, options.dim}, at::kDouble);
  step.corrected = at::zeros_like(step.uncorrected);
  const double combine =
      (options.loss_mean ? 1.0 / static_cast<double>(options.accumulation) : 1.0) /
      static_cast<double>(options.data_parallel);
  for (int64_t micro = 0; micro < options.data_parallel * options.accumulation; ++micro) {
    const at::Tensor t =
        micro == 0
            ? main_run.tokens
            : sweep_tokens(options, options.tokens(), main_run.tokens).view_as(main_run.tokens);
    const at::Tensor go = micro == 0 ? main_run.grad_out : at::randn_like(main_run.grad_out);
    for (const auto& [sum, m] :
         {std::pair<at::Tensor, double>{step.uncorrected, 1.0}, {step.corrected, multiplier}}) {
      auto w = main_run.weight.detach().clone().requires_grad_();
      unit_scaling::functional::embedding(
          t, w, unit_scaling::functional::EmbeddingFuncOptions().padding_idx(options.padding_idx),
          unit_scaling::GradScaleOptions().token_multiplier(m))
          .backward(go);
      sum.add_(w.grad().to(at::kDouble), combine);
    }
  }
  return step;
}

// Optimizer-step section: the gradient std the optimizer sees, with and without the correction.
void report_optimizer_step(const Options& options, const MainRun& main_run, Results& results) {
  const double multiplier = options.token_multiplier();
  const StepGradients step = optimizer_step(options, main_run, multiplier);
  std::cout << "optimizer step: P=" << options.data_parallel
            << " data-parallel ranks (averaged), K=" << options.accumulation
            << " micro-batches (loss " << (options.loss_mean ? "divided by K" : "summed") << ")\n"
            << "optimizer-visible grad std: " << fixed(stddev(step.uncorrected)) << " uncorrected, "
            << fixed(stddev(step.corrected)) << " with token_multiplier=" << multiplier << "\n\n";
  results.add("optimizer_step", "token_multiplier", "", multiplier);
  results.add("optimizer_step", "grad_std", "uncorrected", stddev(step.uncorrected));
  results.add("optimizer_step", "grad_std", "corrected", stddev(step.corrected));
}

// Formats section: where both weight gradients land in each format. Returns the formats' bands
// for the histogram.
std::vector<FormatBand> report_formats(const Options& options, const Gradients& g,
                                       Results& results) {
  std::cout << std::setw(10) << "format" << std::setw(14) << "gradient" << std::setw(17)
            << "flush to zero" << std::setw(12) << "subnormal" << std::setw(12) << "saturated"
            << "relative error\n";
  std::vector<FormatBand> bands;
  // The headline: the format where the plain gradient leaves the normal range most often.
  std::string worst;
  double worst_plain = -1, worst_unit = 0;
  for (const auto& name : options.formats) {
    const FloatFormat& format = float_format(name);
    bands.push_back({name, std::log2(format.min_subnormal), std::log2(format.min_normal),
                     std::log2(format.max)});
    for (const auto& [variant, grad] :
         {std::pair<std::string, at::Tensor>{"plain", g.plain}, {"unit_scaled", g.unit_scaled}}) {
      const FormatStats stats = format_stats(grad, format);
      std::cout << std::setw(10) << name << std::setw(14) << variant << std::setw(17)
                << percent(stats.flush_to_zero) << std::setw(12) << percent(stats.subnormal)
                << std::setw(12) << percent(stats.saturated) << fixed(stats.relative_error, 6)
                << "\n";
      const std::string section = "format:" + name;
      results.add(section, "flush_to_zero", variant, stats.flush_to_zero);
      results.add(section, "subnormal", variant, stats.subnormal);
      results.add(section, "saturated", variant, stats.saturated);
      results.add(section, "relative_error", variant, stats.relative_error);
      const double outside = stats.flush_to_zero + stats.subnormal + stats.saturated;
      if (variant == "plain" && outside > worst_plain) {
        worst = name;
        worst_plain = outside;
      } else if (variant == "unit_scaled" && name == worst) {
        worst_unit = outside;
      }
    }
  }
  std::cout << "\nheadline (" << worst
            << "): non-zero entries flushed, subnormal or saturated: plain " << percent(worst_plain)
            << ", unit-scaled " << percent(worst_unit) << "\n";
  results.add_text("headline", "format", worst);
  results.add("headline", "outside_normal_range", "plain", worst_plain);
  results.add("headline", "outside_normal_range", "unit_scaled", worst_unit);
  return bands;
}

// Sweep section: weight-grad std for N = 2^8 .. 2^20. The std does not depend on D, so 64
// columns keep it light.
Sweep report_sweep(const Options& options, const at::Tensor& tokens, Results& results) {
  const int64_t sweep_dim = std::min<int64_t>(options.dim, 64);
  Sweep sweep;
  sweep.dim = sweep_dim;
  std::cout << "\nsweep (D=" << sweep_dim << "): weight-grad std\n"
            << std::setw(12) << "N" << std::setw(16) << "plain (ATen)" << std::setw(14)
            << "unit-scaled" << (options.plain_loss_mean ? "sqrt(N/V)/N" : "sqrt(N/V)") << "\n";
  const at::ScalarType dtype = dtype_of(options.dtype);
  const at::Tensor sweep_weight = at::randn({options.vocab, sweep_dim}).to(dtype);
  const int steps = 13;
  for (int step = 0; step < steps; ++step) {
    progress(step, steps);
    const int64_t count = int64_t{1} << (8 + step);
    const at::Tensor t = sweep_tokens(options, count, tokens);
    const Gradients s = run_both(options, t, sweep_weight, at::randn({count, sweep_dim}).to(dtype),
                                 plain_factor(options, count));
    sweep.n.push_back(static_cast<double>(count));
    sweep.plain.push_back(stddev(s.plain));
    sweep.unit.push_back(stddev(s.unit_scaled));
    results.add("sweep:" + std::to_string(count), "grad_std", "plain", sweep.plain.back());
    results.add("sweep:" + std::to_string(count), "grad_std", "unit_scaled", sweep.unit.back());
  }
  progress(steps, steps);
  for (size_t i = 0; i < sweep.n.size(); ++i) {
    const double law = std::sqrt(sweep.n[i] / static_cast<double>(options.vocab)) *
                       plain_factor(options, static_cast<int64_t>(sweep.n[i]));
    std::cout << std::setw(12) << static_cast<int64_t>(sweep.n[i]) << std::setw(16)
              << number(sweep.plain[i]) << std::setw(14) << number(sweep.unit[i]) << number(law)
              << "\n";
  }
  return sweep;
}

// The figures: a histogram of log2|gradient| in quarter-octave bins, and the sweep.
void write_figures(const Options& options, const Gradients& g, const std::vector<FormatBand>& bands,
                   const Sweep& sweep, PendingFiles& files) {
  const auto log2_abs = [](const at::Tensor& grad) {
    const at::Tensor x = grad.to(at::kDouble).reshape({-1});
    return x.masked_select(x.ne(0)).abs().log2();
  };
  const at::Tensor lp = log2_abs(g.plain), lu = log2_abs(g.unit_scaled);
  const double lo = std::floor(std::min(lp.min().item<double>(), lu.min().item<double>()));
  const double hi = std::ceil(std::max(lp.max().item<double>(), lu.max().item<double>()));
  const int64_t bins = std::max<int64_t>(1, static_cast<int64_t>((hi - lo) * 4));
  const auto fractions = [&](const at::Tensor& values) {
    const at::Tensor h = at::histc(values, bins, lo, hi) / static_cast<double>(values.numel());
    return std::vector<double>(h.data_ptr<double>(), h.data_ptr<double>() + bins);
  };
  std::vector<double> centers;
  for (int64_t b = 0; b < bins; ++b) centers.push_back(lo + (b + 0.5) * (hi - lo) / bins);
  plot_histogram(files.path("histogram.png"), files.path("histogram.svg"), centers, fractions(lp),
                 fractions(lu), bands, std::min(lo, -26.0), std::max(hi, 18.0));
  plot_sweep(files.path("sweep.png"), files.path("sweep.svg"), sweep.n, sweep.plain, sweep.unit,
             static_cast<double>(options.vocab), sweep.dim, options.plain_loss_mean);
}

// Writes report.csv (and the figures) into --out, all or nothing (output_files.h).
void write_outputs(const Options& options, const Results& results, const Gradients& g,
                   const std::vector<FormatBand>& bands, const Sweep& sweep) {
  write_output_files(options.out, [&](PendingFiles& files) {
    results.write(files.path("report.csv"));
    if (options.plots) write_figures(options, g, bands, sweep, files);
  });
  std::cout << "\nwrote " << options.out << "/report.csv"
            << (options.plots ? ", histogram.{png,svg}, sweep.{png,svg}" : "") << "\n";
}

// The report: its sections in order, then the outputs.
int run(const Options& options) {
  const at::Tensor tokens = prepare(options);
  Results results;
  report_config(options, results);
  const MainRun main_run = compute_main_run(options, tokens);
  report_summary(options, main_run, results);
  report_optimizer_step(options, main_run, results);
  const std::vector<FormatBand> bands = report_formats(options, main_run.grads, results);
  const Sweep sweep = report_sweep(options, tokens, results);
  write_outputs(options, results, main_run.grads, bands, sweep);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse_options(std::vector<std::string>(argv + 1, argv + argc));
    if (options.help) {
      std::cout << usage();
      return 0;
    }
    return run(options);
  } catch (const UsageError& error) {
    std::cerr << "unit-scaling-report: " << error.what() << "\n";
    return 2;
  } catch (const std::exception& error) {
    std::string message = error.what();
    message = message.substr(0, message.find('\n'));
    std::cerr << "unit-scaling-report: error: " << message << "\n";
    return 1;
  }
}
