// A standalone check of the CUDA kernels on a real GPU, without LibTorch (for a GPU machine where
// the library fails to build or load): every backward variant (backward_variant.h) against the
// CPU kernel bit for bit, repeatable, its captured CUDA graph's node count against
// backward_stream_operations(), and its time at the GPT-2 and Llama-3 shapes, N = 8192, 65536 and
// 131072 (CUB's radix sort), in one table; then the renorm against the CPU kernel. Compiled from
// the library's own kernel sources (no copies). The host work is sized for the GPU check's first
// minute: inputs from a counter hash (not std::normal_distribution: 40 ns a value, a minute at
// these sizes), the CPU references on every host core.
// Build: the CMake target `device_check` (built with the tests when the CUDA backend is on:
// BUILD_DIR/tests/device_check), or here, one command over three lines:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Isrc tests/cuda_build/device_check.cu src/kernels/cuda/*.cu
//     src/kernels/cuda/backward_plan.cpp src/kernels/backward.cpp src/kernels/renorm.cpp
//     src/kernels/index_checks.cpp -o build-kernels/device_check
// Run (on the GPU machine): build-kernels/device_check [options]; --help lists them. Exit status
// 0: every check passed; 1: a check failed; 2: a CUDA error.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/embedding_kernels_cuda.h"
#include "kernels/embedding_kernels.h"
#include "kernels/float_formats.h"

namespace k = unit_scaling::kernels;
using k::cuda::BackwardVariant;

#define CHECK(call)                                                                            \
  do {                                                                                         \
    const cudaError_t error_ = (call);                                                         \
    if (error_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(error_), __FILE__, __LINE__); \
      std::exit(2);                                                                            \
    }                                                                                          \
  } while (0)

constexpr const char* kUsage =
    R"(usage: device_check [--quick | --full] [--variants=NAME,...] [--reps=R]
       device_check --sanitize | --profile | --phases | --help
Checks the library's CUDA kernels on this GPU, without LibTorch. By default: the backward in
every variant on one and several tiles (merged, ranked), 64-bit tile keys, the radix sort, odd
widths and padding (bitwise equal to the CPU kernel, repeatable, graph nodes ==
backward_stream_operations), then timed in bf16 at GPT-2 (V=50257, D=768) and Llama-3
(V=128256, D=4096), N = 8192, 65536 and 131072 (CUB's radix sort; GPT-2 only), uniform and
Zipf(1.1): one table, a row per case and variant (median us of R graph replays and eager calls,
the ratio to baseline's graph time, bitwise, repeat, nodes/expected); then the renorm against
the CPU kernel.
  --quick            timed cases at GPT-2 only, no renorm (the short run)
  --full             the timed cases in fp32 too
  --variants=a,b     only these variants (baseline, hot_rows, side_zero, merge_path, all)
  --reps=R           timed repetitions per case (default 25)
  --sanitize         small cases only, for compute-sanitizer (memcheck, racecheck, synccheck)
  --profile          the phase cases untimed, for ncu / nsys; --phases: the same, timed
Exit status: 0 every check passed, 1 a check failed, 2 a CUDA error.
)";

static int failures = 0;
static int repetitions = 25;

// Zero-mean, unit-variance noise: splitmix64 of a counter, uniform on [-sqrt(3), sqrt(3)). The
// checks need varied values (a wrong summation order changes the bits), not normal ones.
static double noise(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (static_cast<double>(z >> 11) * 0x1.0p-53 - 0.5) * 3.4641016151377544;
}

// The CPU references on every host core: the kernels give the same bits for any thread count.
static k::Executor host_threads() {
  k::Executor executor;
  executor.num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  executor.parallel_for = [threads = executor.num_threads](
                              int64_t begin, int64_t end, int64_t grain, const k::RangeBody& body) {
    const int64_t chunks = std::min<int64_t>(
        threads, std::max<int64_t>(1, (end - begin) / std::max<int64_t>(grain, 1)));
    if (chunks <= 1) {
      if (begin < end) body(begin, end);
      return;
    }
    std::vector<std::thread> workers;
    const int64_t step = (end - begin + chunks - 1) / chunks;
    for (int64_t at = begin; at < end; at += step) {
      workers.emplace_back(body, at, std::min(end, at + step));
    }
    for (auto& worker : workers) worker.join();
  };
  return executor;
}

static void store(k::DType t, void* data, size_t i, double v) {
  switch (t) {
    case k::DType::kFloat64:
      static_cast<double*>(data)[i] = v;
      break;
    case k::DType::kFloat32:
      static_cast<float*>(data)[i] = static_cast<float>(v);
      break;
    case k::DType::kFloat16:
      static_cast<uint16_t*>(data)[i] = k::float_to_half(static_cast<float>(v));
      break;
    case k::DType::kBFloat16:
      static_cast<uint16_t*>(data)[i] = k::float_to_bfloat16(static_cast<float>(v));
      break;
  }
}

static std::vector<int64_t> make_indices(int64_t n, int64_t v, bool zipf, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (zipf) {
    std::vector<double> w(static_cast<size_t>(v));
    for (int64_t r = 0; r < v; ++r) w[static_cast<size_t>(r)] = std::pow(r + 1.0, -1.1);
    std::discrete_distribution<int64_t> d(w.begin(), w.end());
    for (auto& x : out) x = d(rng);
  } else {
    std::uniform_int_distribution<int64_t> d(0, v - 1);
    for (auto& x : out) x = d(rng);
  }
  return out;
}

static const char* dtype_name(k::DType t) {
  return t == k::DType::kFloat64   ? "f64"
         : t == k::DType::kFloat32 ? "f32"
         : t == k::DType::kFloat16 ? "f16"
                                   : "bf16";
}

// The median of `repetitions` timings of body() on `stream`, in microseconds.
template <typename Body>
static double median_us(cudaStream_t stream, Body&& body) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < repetitions; ++i) {
    CHECK(cudaEventRecord(a, stream));
    body();
    CHECK(cudaEventRecord(b, stream));
    CHECK(cudaEventSynchronize(b));
    float t;
    CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return 1000.0 * ms[ms.size() / 2];
}

static void print_table_header() {
  std::printf(
      "\n| dtype | N | V | D | indices | pad | variant | graph us | eager us | vs baseline | "
      "bitwise | repeat | nodes/expected | ws MiB |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

// One backward case in every variant: bitwise vs its CPU reference (computed once), repeatable,
// graph node count, and (if timed) the times; one table row per variant.
static void backward_case(k::DType dtype, int64_t n, int64_t v, int64_t d, bool zipf,
                          int64_t padding, bool timed,
                          const std::vector<BackwardVariant>& variants) {
  const size_t eb = static_cast<size_t>(k::dtype_bytes(dtype));
  const std::vector<int64_t> idx = make_indices(n, v, zipf, 7);
  std::vector<char> grad(static_cast<size_t>(n * d) * eb);
  for (size_t i = 0; i < static_cast<size_t>(n * d); ++i)
    store(dtype, grad.data(), i, noise(11, i));
  const double scale = std::sqrt(static_cast<double>(v) / n);
  const size_t out_bytes = static_cast<size_t>(v * d) * eb;

  std::vector<char> cpu(out_bytes);
  const k::BackwardParams host{
      dtype, {k::IndexType::kInt64, idx.data(), n}, v, padding, grad.data(), d, scale, cpu.data()};
  k::write_scaled_gradient(host, host_threads());

  int64_t* d_idx;
  void *d_grad, *d_out, *d_ws = nullptr;
  CHECK(cudaMalloc(&d_idx, static_cast<size_t>(n) * 8));
  CHECK(cudaMalloc(&d_grad, grad.size()));
  CHECK(cudaMalloc(&d_out, out_bytes));
  const k::BackwardParams shape{
      dtype, {k::IndexType::kInt64, nullptr, n}, v, padding, nullptr, d, scale, nullptr};
  const size_t ws = k::cuda::backward_workspace_bytes(shape);  // the same for every variant
  if (ws) CHECK(cudaMalloc(&d_ws, ws));
  CHECK(cudaMemcpy(d_idx, idx.data(), static_cast<size_t>(n) * 8, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_grad, grad.data(), grad.size(), cudaMemcpyHostToDevice));
  cudaStream_t stream;
  k::cuda::SideStream side;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CHECK(cudaStreamCreateWithFlags(&side.stream, cudaStreamNonBlocking));
  CHECK(cudaEventCreateWithFlags(&side.fork, cudaEventDisableTiming));
  CHECK(cudaEventCreateWithFlags(&side.join, cudaEventDisableTiming));
  k::BackwardParams params = shape;
  params.indices.data = d_idx;
  params.grad_out = d_grad;
  params.grad_weight = d_out;
  std::vector<char> gpu(out_bytes), again(out_bytes);
  double baseline_us = 0;
  for (const BackwardVariant variant : variants) {
    if (k::cuda::backward_workspace_bytes(params, variant) != ws) ++failures;
    const auto run = [&] {
      CHECK(k::cuda::write_scaled_gradient(params, d_ws, ws, stream, variant, side));
    };
    CHECK(cudaMemsetAsync(d_out, 0xAB, out_bytes, stream));  // every byte must be written
    run();
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaMemcpy(gpu.data(), d_out, out_bytes, cudaMemcpyDeviceToHost));
    CHECK(cudaMemsetAsync(d_out, 0xCD, out_bytes, stream));
    run();
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaMemcpy(again.data(), d_out, out_bytes, cudaMemcpyDeviceToHost));
    const bool equal = std::memcmp(cpu.data(), gpu.data(), out_bytes) == 0;
    const bool repeat = std::memcmp(gpu.data(), again.data(), out_bytes) == 0;

    // Node count of the captured backward (the side stream joins the capture through `fork`).
    cudaGraph_t graph;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    run();
    CHECK(cudaStreamEndCapture(stream, &graph));
    size_t nodes = 0;
    CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
    const int64_t expected = k::cuda::backward_stream_operations(params, variant);
    cudaGraphExec_t exec;
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    double eager_us = 0, graph_us = 0;
    if (timed) {
      eager_us = median_us(stream, run);
      graph_us = median_us(stream, [&] { CHECK(cudaGraphLaunch(exec, stream)); });
      if (variant == BackwardVariant::kBaseline) baseline_us = graph_us;
    }
    const char* spread = zipf ? "zipf" : "uniform";
    std::printf("| %s | %lld | %lld | %lld | %s | %lld | %s | ", dtype_name(dtype),
                static_cast<long long>(n), static_cast<long long>(v), static_cast<long long>(d),
                spread, static_cast<long long>(padding), k::cuda::backward_variant_name(variant));
    if (timed) {
      std::printf("%.1f | %.1f | ", graph_us, eager_us);
      if (baseline_us > 0) {
        std::printf("%.2fx | ", graph_us / baseline_us);
      } else {
        std::printf("- | ");
      }
    } else {
      std::printf("- | - | - | ");
    }
    std::printf("%s | %s | %zu/%lld | %.2f |\n", equal ? "yes" : "NO", repeat ? "yes" : "NO", nodes,
                static_cast<long long>(expected), ws / 1048576.0);
    std::fflush(stdout);
    if (!equal || !repeat || static_cast<int64_t>(nodes) != expected) ++failures;
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
  }
  CHECK(cudaEventDestroy(side.fork));
  CHECK(cudaEventDestroy(side.join));
  CHECK(cudaStreamDestroy(side.stream));
  CHECK(cudaStreamDestroy(stream));
  CHECK(cudaFree(d_idx));
  CHECK(cudaFree(d_grad));
  CHECK(cudaFree(d_out));
  if (d_ws) CHECK(cudaFree(d_ws));
}

static void renorm_case(k::DType dtype, int64_t rows, int64_t cols, double p) {
  const size_t eb = static_cast<size_t>(k::dtype_bytes(dtype));
  std::vector<char> table(static_cast<size_t>(rows * cols) * eb);
  for (size_t i = 0; i < static_cast<size_t>(rows * cols); ++i) {
    store(dtype, table.data(), i, 3.0 * noise(17, i));
  }
  std::vector<char> cpu(table);
  const std::vector<int64_t> idx = make_indices(4096, rows, true, 9);
  const double max_norm =
      std::isinf(p) ? 4.0 : (p < 1 ? 1.5 : 3.0) * std::pow(static_cast<double>(cols), 1 / p);
  const k::IndexArray host_indices{k::IndexType::kInt64, idx.data(),
                                   static_cast<int64_t>(idx.size())};
  k::renorm_rows({dtype, {cpu.data(), rows, cols, cols, 1}, host_indices, max_norm, p},
                 k::Executor{});
  void *d_table, *d_ws;
  int64_t* d_idx;
  unsigned long long* d_status;
  CHECK(cudaMalloc(&d_table, table.size()));
  CHECK(cudaMalloc(&d_idx, idx.size() * 8));
  CHECK(cudaMalloc(&d_status, 8));
  const k::RenormParams params{dtype, {nullptr, rows, cols, cols, 1}, {}, max_norm, p};
  CHECK(cudaMalloc(&d_ws, k::cuda::renorm_workspace_bytes(params)));
  CHECK(cudaMemcpy(d_table, table.data(), table.size(), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_idx, idx.data(), idx.size() * 8, cudaMemcpyHostToDevice));
  const k::IndexArray indices{k::IndexType::kInt64, d_idx, static_cast<int64_t>(idx.size())};
  CHECK(k::cuda::check_indices(indices, rows, {d_status, false}, nullptr));
  k::RenormParams device = params;
  device.weight.data = d_table;
  device.indices = indices;
  CHECK(k::cuda::renorm_rows(device, d_status, d_ws, nullptr));
  std::vector<char> gpu(table.size());
  CHECK(cudaMemcpy(gpu.data(), d_table, table.size(), cudaMemcpyDeviceToHost));
  size_t differing = 0;
  for (size_t i = 0; i < gpu.size(); i += eb) differing += std::memcmp(&gpu[i], &cpu[i], eb) != 0;
  const bool libm = !(p == 1.0 || p == 2.0 || std::isinf(p));  // powf: device vs host libm
  std::printf("renorm %-4s %lldx%lld p=%g: %zu elements differ from the CPU%s\n", dtype_name(dtype),
              static_cast<long long>(rows), static_cast<long long>(cols), p, differing,
              libm && differing ? " (powf ulps, informational)" : "");
  if (differing && !libm) ++failures;
  CHECK(cudaFree(d_table));
  CHECK(cudaFree(d_idx));
  CHECK(cudaFree(d_status));
  CHECK(cudaFree(d_ws));
}

// The variants named in "a,b,c", or an empty list (and a message) for an unknown name.
static std::vector<BackwardVariant> parse_variants(const std::string& names) {
  std::vector<BackwardVariant> variants;
  for (size_t at = 0; at <= names.size();) {
    const size_t comma = std::min(names.find(',', at), names.size());
    const std::string name = names.substr(at, comma - at);
    const auto variant = k::cuda::parse_backward_variant(name);
    if (name.empty() || !variant) {
      std::printf("unknown variant '%s'; valid: %s\n", name.c_str(),
                  k::cuda::backward_variant_names().c_str());
      return {};
    }
    variants.push_back(*variant);
    at = comma + 1;
  }
  return variants;
}

int main(int argc, char** argv) {
  using k::DType;
  std::vector<BackwardVariant> variants(std::begin(k::cuda::kBackwardVariants),
                                        std::end(k::cuda::kBackwardVariants));
  std::string mode = "default";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      return 0;
    }
    if (arg.rfind("--variants=", 0) == 0) {
      variants = parse_variants(arg.substr(11));
      if (variants.empty()) return 2;
    } else if (arg.rfind("--reps=", 0) == 0) {
      repetitions = std::max(1, std::atoi(arg.c_str() + 7));
    } else if (arg == "--quick" || arg == "--full" || arg == "--sanitize" || arg == "--profile" ||
               arg == "--phases") {
      mode = arg.substr(2);
    } else {
      std::printf("unknown option '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  int device = 0;
  cudaDeviceProp properties;
  CHECK(cudaGetDevice(&device));
  CHECK(cudaGetDeviceProperties(&properties, device));
  std::printf("device_check on %s (sm_%d%d), mode %s\n", properties.name, properties.major,
              properties.minor, mode.c_str());
  print_table_header();
  if (mode == "profile" || mode == "phases") {  // under ncu: untimed
    const bool timed = mode == "phases";
    backward_case(DType::kBFloat16, 8192, 64, 8, false, -1, timed, variants);   // the sort, mostly
    backward_case(DType::kBFloat16, 65536, 64, 8, false, -1, timed, variants);  // 32 tiles
    backward_case(DType::kBFloat16, 32, 50257, 768, false, -1, timed, variants);  // rows alone
    backward_case(DType::kBFloat16, 8192, 50257, 768, false, -1, timed, variants);
    backward_case(DType::kBFloat16, 8192, 50257, 768, true, -1, timed, variants);
    return failures ? 1 : 0;
  }
  if (mode == "sanitize") {  // under compute-sanitizer: small
    backward_case(DType::kFloat32, 200, 50, 16, true, 3, false, variants);
    backward_case(DType::kBFloat16, 5000, 300, 16, true, -1, false, variants);
    backward_case(DType::kBFloat16, 20000, 300, 8, true, -1, false, variants);  // rank kernel
    backward_case(DType::kFloat32, 70000, 300, 4, true, -1, false, variants);
    renorm_case(DType::kFloat32, 100, 70, 2.0);
    return failures ? 1 : 0;
  }
  // Correctness over the paths: one tile, several tiles (merge and rank), the radix sort, odd
  // widths, padding.
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat64, DType::kFloat16}) {
    backward_case(t, 1000, 50, 16, true, 3, false, variants);
    backward_case(t, 20000, 300, 12, true, -1, false, variants);
    backward_case(t, 200000, 5000, 8, true, 0, false, variants);
    backward_case(t, 777, 300, 3, false, -1, false, variants);
  }
  backward_case(DType::kFloat32, 200000, 128256, 8, false, -1, false, variants);  // 3 passes
  backward_case(DType::kFloat32, 20000, 1 << 23, 2, false, 5, false, variants);   // 64-bit tiles
  // The shapes of the issue, timed.
  const bool quick = mode == "quick";
  for (DType t : {DType::kBFloat16, DType::kFloat32}) {
    if (t == DType::kFloat32 && mode != "full") continue;
    for (int64_t n : {int64_t{8192}, int64_t{65536}, int64_t{131072}}) {
      for (bool zipf : {false, true}) {
        backward_case(t, n, 50257, 768, zipf, -1, true, variants);
        if (!quick && n <= 65536) backward_case(t, n, 128256, 4096, zipf, -1, true, variants);
      }
    }
  }
  if (!quick) {
    for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat64}) {
      for (double p : {1.0, 2.0, 3.0, 0.5, static_cast<double>(INFINITY)}) {
        renorm_case(t, 1000, 70, p);
        renorm_case(t, 1000, 768, p);
      }
    }
  }
  std::printf("%s: %d failures\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
