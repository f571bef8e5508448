// A standalone check of the CUDA kernels on a real GPU, without LibTorch: the backward and the
// renorm against the CPU kernels bit for bit, the backward's node count in a captured CUDA graph
// against backward_stream_operations(), and the backward's time at the GPT-2 and Llama-3 shapes.
// Build (here; one command over three lines) and run (on the GPU machine):
//   nvcc -std=c++17 -O3 -arch=sm_90 -Isrc tests/cuda_build/device_check.cu src/kernels/cuda/*.cu
//     src/kernels/cuda/backward_plan.cpp src/kernels/backward.cpp src/kernels/renorm.cpp
//     src/kernels/index_checks.cpp -o build-kernels/device_check
//   build-kernels/device_check            (exit status 0: every check passed)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/embedding_kernels_cuda.h"
#include "kernels/embedding_kernels.h"
#include "kernels/float_formats.h"

namespace k = unit_scaling::kernels;

#define CHECK(call)                                                                            \
  do {                                                                                         \
    const cudaError_t error_ = (call);                                                         \
    if (error_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(error_), __FILE__, __LINE__); \
      std::exit(2);                                                                            \
    }                                                                                          \
  } while (0)

static int failures = 0;

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

// One backward case: bitwise vs CPU, repeatability, graph node count, and (if timed) the time.
static void backward_case(k::DType dtype, int64_t n, int64_t v, int64_t d, bool zipf,
                          int64_t padding, bool timed) {
  const size_t eb = static_cast<size_t>(k::dtype_bytes(dtype));
  const std::vector<int64_t> idx = make_indices(n, v, zipf, 7);
  std::vector<char> grad(static_cast<size_t>(n * d) * eb);
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  for (size_t i = 0; i < static_cast<size_t>(n * d); ++i) store(dtype, grad.data(), i, normal(rng));
  const double scale = std::sqrt(static_cast<double>(v) / n);
  const size_t out_bytes = static_cast<size_t>(v * d) * eb;

  std::vector<char> cpu(out_bytes);
  const k::BackwardParams host{
      dtype, {k::IndexType::kInt64, idx.data(), n}, v, padding, grad.data(), d, scale, cpu.data()};
  k::write_scaled_gradient(host, k::Executor{});

  int64_t* d_idx;
  void *d_grad, *d_out, *d_ws = nullptr;
  CHECK(cudaMalloc(&d_idx, static_cast<size_t>(n) * 8));
  CHECK(cudaMalloc(&d_grad, grad.size()));
  CHECK(cudaMalloc(&d_out, out_bytes));
  const k::BackwardParams device{
      dtype, {k::IndexType::kInt64, nullptr, n}, v, padding, nullptr, d, scale, nullptr};
  const size_t ws = k::cuda::backward_workspace_bytes(device);
  if (ws) CHECK(cudaMalloc(&d_ws, ws));
  CHECK(cudaMemcpy(d_idx, idx.data(), static_cast<size_t>(n) * 8, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_grad, grad.data(), grad.size(), cudaMemcpyHostToDevice));
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  k::BackwardParams params = device;
  params.indices.data = d_idx;
  params.grad_out = d_grad;
  params.grad_weight = d_out;
  const auto run = [&] { CHECK(k::cuda::write_scaled_gradient(params, d_ws, ws, stream)); };
  std::vector<char> gpu(out_bytes), again(out_bytes);
  CHECK(cudaMemsetAsync(d_out, 0xAB, out_bytes, stream));
  run();
  CHECK(cudaStreamSynchronize(stream));
  CHECK(cudaMemcpy(gpu.data(), d_out, out_bytes, cudaMemcpyDeviceToHost));
  run();
  CHECK(cudaStreamSynchronize(stream));
  CHECK(cudaMemcpy(again.data(), d_out, out_bytes, cudaMemcpyDeviceToHost));
  const bool equal = std::memcmp(cpu.data(), gpu.data(), out_bytes) == 0;
  const bool repeat = std::memcmp(gpu.data(), again.data(), out_bytes) == 0;

  // Node count of the captured backward.
  cudaGraph_t graph;
  CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  run();
  CHECK(cudaStreamEndCapture(stream, &graph));
  size_t nodes = 0;
  CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
  const int64_t expected = k::cuda::backward_stream_operations(params);
  cudaGraphExec_t exec;
  CHECK(cudaGraphInstantiate(&exec, graph, 0));

  double eager_us = 0, graph_us = 0;
  if (timed) {
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    const auto median = [&](auto&& body) {
      std::vector<float> ms;
      for (int i = 0; i < 25; ++i) {
        CHECK(cudaEventRecord(a, stream));
        body();
        CHECK(cudaEventRecord(b, stream));
        CHECK(cudaEventSynchronize(b));
        float t;
        CHECK(cudaEventElapsedTime(&t, a, b));
        ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      return 1000.0 * ms[ms.size() / 2];
    };
    eager_us = median(run);
    graph_us = median([&] { CHECK(cudaGraphLaunch(exec, stream)); });
    CHECK(cudaEventDestroy(a));
    CHECK(cudaEventDestroy(b));
  }
  const double floor_bytes = static_cast<double>(grad.size() + out_bytes);
  std::printf(
      "backward %-4s N=%-7lld V=%-6lld D=%-4lld %-7s bitwise=%s repeat=%s nodes=%zu expected=%lld "
      "ws=%.2fMiB",
      dtype_name(dtype), static_cast<long long>(n), static_cast<long long>(v),
      static_cast<long long>(d), zipf ? "zipf" : "uniform", equal ? "yes" : "NO",
      repeat ? "yes" : "NO", nodes, static_cast<long long>(expected), ws / 1048576.0);
  if (timed) {
    std::printf(" eager=%.1fus graph=%.1fus (%.0f GB/s of grad+out)", eager_us, graph_us,
                floor_bytes / graph_us / 1e3);
  }
  std::printf("\n");
  if (!equal || !repeat || static_cast<int64_t>(nodes) != expected) ++failures;
  CHECK(cudaGraphExecDestroy(exec));
  CHECK(cudaGraphDestroy(graph));
  CHECK(cudaStreamDestroy(stream));
  CHECK(cudaFree(d_idx));
  CHECK(cudaFree(d_grad));
  CHECK(cudaFree(d_out));
  if (d_ws) CHECK(cudaFree(d_ws));
}

static void renorm_case(k::DType dtype, int64_t rows, int64_t cols, double p) {
  const size_t eb = static_cast<size_t>(k::dtype_bytes(dtype));
  std::vector<char> table(static_cast<size_t>(rows * cols) * eb);
  std::mt19937_64 rng(17);
  std::normal_distribution<double> normal;
  for (size_t i = 0; i < static_cast<size_t>(rows * cols); ++i) {
    store(dtype, table.data(), i, 3.0 * normal(rng));
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

int main(int argc, char** argv) {
  using k::DType;
  const bool phases = argc > 1 && std::strcmp(argv[1], "--phases") == 0;
  if (phases || (argc > 1 && std::strcmp(argv[1], "--profile") == 0)) {  // under ncu: untimed
    backward_case(DType::kBFloat16, 8192, 64, 8, false, -1, phases);     // the sort, mostly
    backward_case(DType::kBFloat16, 65536, 64, 8, false, -1, phases);    // 32 tiles + merge
    backward_case(DType::kBFloat16, 32, 50257, 768, false, -1, phases);  // the rows kernel alone
    backward_case(DType::kBFloat16, 8192, 50257, 768, false, -1, phases);
    backward_case(DType::kBFloat16, 8192, 50257, 768, true, -1, phases);
    return failures ? 1 : 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--sanitize") == 0) {  // under compute-sanitizer: small
    backward_case(DType::kFloat32, 200, 50, 16, true, 3, false);
    backward_case(DType::kBFloat16, 5000, 300, 16, true, -1, false);
    backward_case(DType::kFloat32, 70000, 300, 4, true, -1, false);
    renorm_case(DType::kFloat32, 100, 70, 2.0);
    return failures ? 1 : 0;
  }
  // Correctness over the paths: one tile, several tiles, the radix sort, odd widths, padding.
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat64, DType::kFloat16}) {
    backward_case(t, 1000, 50, 16, true, 3, false);
    backward_case(t, 20000, 300, 12, true, -1, false);
    backward_case(t, 200000, 5000, 8, true, 0, false);
    backward_case(t, 777, 300, 3, false, -1, false);
  }
  backward_case(DType::kFloat32, 200000, 128256, 8, false, -1, false);  // 17 key bits: 3 passes
  // The shapes of the issue, timed.
  for (DType t : {DType::kBFloat16, DType::kFloat32}) {
    for (int64_t n : {int64_t{8192}, int64_t{65536}}) {
      for (bool zipf : {false, true}) {
        backward_case(t, n, 50257, 768, zipf, -1, true);
        backward_case(t, n, 128256, 4096, zipf, -1, true);
      }
    }
  }
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat64}) {
    for (double p : {1.0, 2.0, 3.0, 0.5, static_cast<double>(INFINITY)}) {
      renorm_case(t, 1000, 70, p);
      renorm_case(t, 1000, 768, p);
    }
  }
  std::printf("%s: %d failures\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
