#include "unit_scaling_report/plots.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

// Runs the script once per terminal: PNG then SVG, same commands.
void render(const ScratchDir& scratch, const std::string& commands, const std::string& png,
            const std::string& svg) {
  const auto script = scratch / "plot.gp";
  std::ofstream out(script);
  out << "set terminal pngcairo size 1000,600 enhanced font 'sans,11'\n"
      << "set output " << gnuplot_quoted(png) << "\n"
      << commands << "\nset terminal svg size 1000,600 dynamic enhanced font 'sans,11'\n"
      << "set output " << gnuplot_quoted(svg) << "\nreplot\nunset output\n";
  out.close();
  const std::string log = scratch / "gnuplot.log";
  if (run_gnuplot({script}, log) != 0) {
    std::ifstream in(log);
    std::string first_line;
    std::getline(in, first_line);
    throw std::runtime_error("gnuplot failed: " + first_line);
  }
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
  std::string commands =
      "set title 'Where embedding weight gradients land: log2|g| of non-zero entries'\n"
      "set xlabel 'log2 |gradient|'\nset ylabel 'fraction of non-zero entries per bin'\n"
      "set key left center box opaque\nset grid xtics ytics lc rgb '#dddddd'\n";
  commands += "set xrange [" + std::to_string(x_from) + ":" + std::to_string(x_to) + "]\n";
  commands += "set yrange [0:" + std::to_string(peak * (1.25 + 0.12 * bands.size())) + "]\n";
  const char* colours[] = {"#1f77b4", "#2ca02c", "#d62728", "#9467bd"};
  for (size_t i = 0; i < bands.size(); ++i) {
    const double top = 0.98 - 0.07 * static_cast<double>(i);
    const double bottom = top - 0.05;
    const std::string colour = colours[i % 4];
    const auto rect = [&](double from, double to, const char* density) {
      return "set object rect from first " + std::to_string(from) + ", graph " +
             std::to_string(bottom) + " to first " + std::to_string(to) + ", graph " +
             std::to_string(top) + " fc rgb '" + colour + "' fs transparent solid " + density +
             " noborder behind\n";
    };
    commands += rect(bands[i].subnormal_from, bands[i].normal_from, "0.2");
    commands += rect(bands[i].normal_from, bands[i].normal_to, "0.5");
    commands += "set label '" + bands[i].name +
                " (light: subnormal, dark: normal)' at graph 0.01, graph " +
                std::to_string((top + bottom) / 2) + " left front font ',9'\n";
  }
  commands += "plot " + gnuplot_quoted(scratch / "histogram.dat") +
              " using 1:2 with steps lw 2 lc rgb '#ff7f0e' title 'plain embedding (ATen)', '' "
              "using 1:3 with steps lw 2 lc rgb '#000000' title 'unit-scaled embedding'";
  render(scratch, commands, png, svg);
}

void plot_sweep(const std::string& png, const std::string& svg, const std::vector<double>& tokens,
                const std::vector<double>& plain_std, const std::vector<double>& unit_std,
                double vocab) {
  ScratchDir scratch;
  std::ofstream data(scratch / "sweep.dat");
  for (size_t i = 0; i < tokens.size(); ++i) {
    data << tokens[i] << ' ' << plain_std[i] << ' ' << unit_std[i] << '\n';
  }
  data.close();
  const std::string commands =
      "set title 'Weight-gradient std against batch size (V = " +
      std::to_string(static_cast<long long>(vocab)) +
      ")'\nset xlabel 'tokens N'\nset ylabel 'std of the weight gradient'\n"
      "set logscale xy 2\nset format x '2^{%L}'\nset key left top box opaque\n"
      "set grid xtics ytics mxtics mytics lc rgb '#dddddd'\n"
      "plot " +
      gnuplot_quoted(scratch / "sweep.dat") +
      " using 1:2 with linespoints lw 2 pt 7 lc rgb '#ff7f0e' title 'plain embedding (ATen)', "
      "'' using 1:3 with linespoints lw 2 pt 5 lc rgb '#000000' title 'unit-scaled embedding', "
      "sqrt(x / " +
      std::to_string(vocab) + ") with lines dt 2 lc rgb '#888888' title 'sqrt(N / V)'";
  render(scratch, commands, png, svg);
}

}  // namespace unit_scaling::report
