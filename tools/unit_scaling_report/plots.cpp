#include "unit_scaling_report/plots.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace unit_scaling::report {
namespace {

// A scratch folder, removed with its files when the plot is done. (POSIX calls rather than
// std::filesystem: libtorch.so exports its own, incompatible copy of those symbols.)
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/unit-scaling-report-XXXXXX";
    if (!mkdtemp(pattern.data())) throw std::runtime_error("cannot create a scratch folder");
    path_ = pattern;
  }
  ~ScratchDir() {
    for (const auto& file : files_) std::remove(file.c_str());
    rmdir(path_.c_str());
  }
  std::string operator/(const std::string& name) const {
    files_.push_back(path_ + "/" + name);
    return files_.back();
  }

 private:
  std::string path_;
  mutable std::vector<std::string> files_;
};

// A path inside a single-quoted gnuplot string, where '' stands for one quote.
std::string gnuplot_quoted(const std::string& path) {
  std::string quoted = "'";
  for (const char c : path) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  return quoted + "'";
}

// Runs gnuplot with `arguments` (no shell: paths with spaces or quotes stay intact), its
// standard error sent to `log` ("" discards it); returns its exit status (-1 if not started).
int run_gnuplot(const std::vector<std::string>& arguments, const std::string& log) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    const int err =
        open(log.empty() ? "/dev/null" : log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int null_out = open("/dev/null", O_WRONLY);
    if (err >= 0) dup2(err, STDERR_FILENO);
    if (null_out >= 0) dup2(null_out, STDOUT_FILENO);
    std::vector<char*> argv{const_cast<char*>("gnuplot")};
    for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    execvp("gnuplot", argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs the commands once per terminal, PNG then SVG, each time from a reset state (multiplot
// figures cannot be replotted).
void render(const ScratchDir& scratch, const std::string& commands, const std::string& png,
            const std::string& svg) {
  const auto script = scratch / "plot.gp";
  std::ofstream out(script);
  out << "set terminal pngcairo size 1000,600 enhanced font 'sans,11'\n"
      << "set output " << gnuplot_quoted(png) << "\nreset\n"
      << commands
      << "\nunset output\nset terminal svg size 1000,600 dynamic enhanced font 'sans,11'\n"
      << "set output " << gnuplot_quoted(svg) << "\nreset\n"
      << commands << "\nunset output\n";
  out.close();
  const std::string log = scratch / "gnuplot.log";
  if (run_gnuplot({script}, log) != 0) {
    std::ifstream in(log);
    std::string first_line;
    std::getline(in, first_line);
    throw std::runtime_error("gnuplot failed: " + first_line);
  }
}

std::string num(double value) { return std::to_string(value); }

// "2^{e}" with e an integer when it is one (gnuplot enhanced text).
std::string power_of_two(double exponent) {
  const double rounded = std::round(exponent);
  std::string text = std::abs(exponent - rounded) < 1e-9
                         ? std::to_string(static_cast<long long>(rounded))
                         : std::to_string(exponent).substr(0, 5);
  return "2^{" + text + "}";
}

}  // namespace

bool gnuplot_available() { return run_gnuplot({"-e", "set terminal pngcairo"}, "") == 0; }

void plot_histogram(const std::string& png, const std::string& svg,
                    const std::vector<double>& bin_centers, const std::vector<double>& plain,
                    const std::vector<double>& unit_scaled, const std::vector<FormatBand>& bands,
                    double x_from, double x_to) {
  ScratchDir scratch;
  std::ofstream data(scratch / "histogram.dat");
  double peak = 0;
  for (size_t i = 0; i < bin_centers.size(); ++i) {
    data << bin_centers[i] << ' ' << plain[i] << ' ' << unit_scaled[i] << '\n';
    peak = std::max({peak, plain[i], unit_scaled[i]});
  }
  data.close();
  const std::string xrange = "set xrange [" + num(x_from) + ":" + num(x_to) + "]\n";
  // Top panel: the data. Bottom panel: each format's ranges on the same x axis, one row each.
  const double split = 0.30 + 0.035 * static_cast<double>(bands.size());
  std::string commands =
      "set multiplot\nset lmargin at screen 0.11\nset rmargin at screen 0.97\n"
      "set tmargin at screen 0.93\nset bmargin at screen " +
      num(split + 0.02) + "\n" + xrange +
      "set title 'Where embedding weight gradients land: log2|g| of the non-zero entries'\n"
      "set format x ''\nset ylabel 'fraction of entries per bin'\n"
      "set key right top box opaque\nset grid xtics ytics lc rgb '#dddddd'\n"
      "set yrange [0:" +
      num(peak * 1.15) + "]\nplot " + gnuplot_quoted(scratch / "histogram.dat") +
      " using 1:2 with steps lw 2 lc rgb '#ff7f0e' title 'plain embedding (ATen)', '' "
      "using 1:3 with steps lw 2 lc rgb '#000000' title 'unit-scaled embedding'\n";
  commands +=
      "unset title\nunset key\nset tmargin at screen " + num(split - 0.02) +
      "\nset bmargin at screen 0.10\nset format x '%g'\n"
      "set xlabel 'log2 |gradient|   (format ranges below: light = subnormal, dark = normal; "
      "outside them a value flushes to zero or saturates)'\n"
      "set ylabel 'format'\nset grid xtics noytics\nset yrange [0.4:" +
      num(static_cast<double>(bands.size()) + 0.6) + "] reverse\nset ytics (";
  for (size_t i = 0; i < bands.size(); ++i) {
    commands += (i ? ", '" : "'") + bands[i].name + "' " + std::to_string(i + 1);
  }
  commands += ")\n";
  const char* colours[] = {"#1f77b4", "#2ca02c", "#d62728", "#9467bd"};
  for (size_t i = 0; i < bands.size(); ++i) {
    const double row = static_cast<double>(i + 1);
    const std::string colour = colours[i % 4];
    const auto rect = [&](double from, double to, const char* density) {
      from = std::max(from, x_from);
      to = std::min(to, x_to);
      if (from >= to) return std::string();
      return "set object rect from first " + num(from) + ", first " + num(row - 0.32) +
             " to first " + num(to) + ", first " + num(row + 0.32) + " fc rgb '" + colour +
             "' fs solid " + density + " border lc rgb '" + colour + "'\n";
    };
    commands += rect(bands[i].subnormal_from, bands[i].normal_from, "0.25");
    commands += rect(bands[i].normal_from, bands[i].normal_to, "0.75");
    // A range beyond the axis is named at the edge it lies past, with an arrow pointing there.
    const auto off_axis = [&](const std::string& text, bool left) {
      const double edge = left ? x_from : x_to;
      const double inward = left ? 2.5 : -2.5;
      return "set arrow from first " + num(edge + inward) + ", first " + num(row) + " to first " +
             num(edge) + ", first " + num(row) + " lw 2 lc rgb '" + colour + "' front\n" +
             "set label '" + text + "' at first " + num(edge + 1.15 * inward) + ", first " +
             num(row) + (left ? " left" : " right") + " front font ',9'\n";
    };
    if (bands[i].normal_from < x_from) {
      commands += off_axis("subnormal " + power_of_two(bands[i].subnormal_from) + " to " +
                               power_of_two(bands[i].normal_from) + ", normal from " +
                               power_of_two(bands[i].normal_from) + " (left of this axis)",
                           true);
    }
    if (bands[i].normal_to > x_to) {
      commands += off_axis(
          "normal up to " + power_of_two(bands[i].normal_to) + " (right of this axis)", false);
    }
  }
  commands += "plot NaN notitle\nunset multiplot";
  render(scratch, commands, png, svg);
}

void plot_sweep(const std::string& png, const std::string& svg, const std::vector<double>& tokens,
                const std::vector<double>& plain_std, const std::vector<double>& unit_std,
                double vocab, int64_t dim, bool plain_loss_mean) {
  ScratchDir scratch;
  std::ofstream data(scratch / "sweep.dat");
  for (size_t i = 0; i < tokens.size(); ++i) {
    data << tokens[i] << ' ' << plain_std[i] << ' ' << unit_std[i] << '\n';
  }
  data.close();
  const double n_from = tokens.empty() ? 1 : tokens.front();
  const double n_to = tokens.empty() ? 2 : tokens.back();
  const std::string v = std::to_string(static_cast<long long>(vocab));
  const std::string law =
      plain_loss_mean ? "sqrt(x / " + num(vocab) + ") / x" : "sqrt(x / " + num(vocab) + ")";
  // The law is drawn last, dashed and wider, so it stays visible on top of the plain points.
  const std::string commands =
      "set title 'Weight-gradient std against batch size (V = " + v +
      ", D = " + std::to_string(dim) + (plain_loss_mean ? ", plain: loss averaged over N" : "") +
      ")'\nset xlabel 'tokens N'\nset ylabel 'std of the weight gradient'\n"
      "set logscale xy 2\nset format x '2^{%L}'\nset format y '2^{%L}'\n"
      "set xrange [" +
      num(n_from / 1.3) + ":" + num(n_to * 1.3) +
      "]\n"
      "set key " +
      (plain_loss_mean ? "left bottom" : "left top") +
      " box opaque\n"
      "set grid xtics ytics lc rgb '#dddddd'\nset offsets 0, 0, graph 0.04, graph 0.04\n"
      "plot " +
      gnuplot_quoted(scratch / "sweep.dat") +
      " using 1:2 with points pt 7 ps 1.6 lc rgb '#ff7f0e' title 'plain embedding (ATen)', "
      "'' using 1:3 with linespoints lw 2 pt 5 lc rgb '#000000' title 'unit-scaled embedding', " +
      law + " with lines dt 2 lw 2.5 lc rgb '#1f3fbf' title '" +
      (plain_loss_mean ? "predicted for plain: sqrt(N / V) / N"
                       : "predicted for plain: sqrt(N / V)") +
      "'";
  render(scratch, commands, png, svg);
}

}  // namespace unit_scaling::report
