// The report's figures, drawn by gnuplot (Debian's gnuplot-nox), each as PNG (1000 x 600 px)
// and SVG. Data and scripts go to a scratch folder; the images to the paths given.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unit_scaling::report {

// A format's ranges on a log2 axis: subnormal [log2 min_subnormal, log2 min_normal), normal
// [log2 min_normal, log2 max].
struct FormatBand {
  std::string name;
  double subnormal_from, normal_from, normal_to;
};

// True when a gnuplot with the pngcairo and svg terminals can be run.
bool gnuplot_available();

// Histogram of log2|gradient| (fraction of non-zero entries per bin) for both gradients over
// [x_from, x_to], with a panel below on the same axis showing each format's subnormal (light) and
// normal (dark) range; a range beyond the axis is named at that edge with an arrow.
void plot_histogram(const std::string& png, const std::string& svg,
                    const std::vector<double>& bin_centers, const std::vector<double>& plain,
                    const std::vector<double>& unit_scaled, const std::vector<FormatBand>& bands,
                    double x_from, double x_to);

// Gradient std against tokens N on log-log axes (the sweep's D in the title), with the plain
// gradient's law drawn dashed on top: sqrt(N / V), divided by N when the plain loss is a mean.
void plot_sweep(const std::string& png, const std::string& svg, const std::vector<double>& tokens,
                const std::vector<double>& plain_std, const std::vector<double>& unit_std,
                double vocab, int64_t dim, bool plain_loss_mean);

}  // namespace unit_scaling::report
