// Unit-scaled embedding against ATen and against the memory floor, same process, same run.
//
// Benchmark names are op/impl/shape/dtype/dist/threads, for example
// "bwd/ours/gpt2/bf16/zipf/t2". bench/report.py turns the JSON output into ratio tables.
//   fwd  ours:  unit_scaling::functional::embedding          aten: torch::embedding
//        floor: allocate the N x D output + memcpy of its bytes from a contiguous buffer
//        floorhp: the same with the huge-page allocation the op uses for its outputs
//   bwd  ours:  the op's backward through autograd (weight.grad of the unit-scaled op)
//        aten:  torch::embedding_dense_backward then mul_(sqrt(V/N)) (the reference library's path)
//        floor: allocate + zero V x D, plus one read of grad_out;  floorhp: huge-page version
//   fwdbwd ours: forward + backward;  aten: torch::embedding + dense backward + mul_
#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <unit_scaling/functional.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "huge_page_allocation.h"

namespace {

struct Shape {
  const char* name;
  int64_t rows, dim, lookups;
};

const Shape kShapes[] = {{"gpt2", 50257, 768, 8192},
                         {"llama", 32000, 4096, 4096},
                         {"bigvocab", 256000, 1024, 4096},
                         {"small", 1000, 64, 65536}};

at::Tensor make_indices(const Shape& shape, bool zipf) {
  torch::manual_seed(0);
  if (!zipf) return torch::randint(0, shape.rows, {shape.lookups});
  const auto ranks = torch::arange(1, shape.rows + 1, torch::kDouble);
  return torch::multinomial(ranks.pow(-1.1), shape.lookups, /*replacement=*/true);
}

// Inputs are built once per configuration and shared by all its benchmarks.
struct Inputs {
  at::Tensor weight, indices, grad_out, source;
};

Inputs& inputs_for(const Shape& shape, at::ScalarType type, bool zipf) {
  static std::map<std::string, Inputs> cache;
  const std::string key = std::string(shape.name) + c10::toString(type) + (zipf ? "z" : "u");
  auto found = cache.find(key);
  if (found != cache.end()) return found->second;
  if (cache.size() > 1) cache.clear();  // keep memory bounded: tables reach 1 GiB
  Inputs in;
  in.weight = torch::randn({shape.rows, shape.dim}).to(type);
  in.indices = make_indices(shape, zipf);
  in.grad_out = torch::randn({shape.lookups, shape.dim}).to(type);
  in.source = torch::randn({shape.lookups, shape.dim}).to(type);
  return cache.emplace(key, std::move(in)).first->second;
}

void parallel_memcpy(void* dst, const void* src, int64_t bytes) {
  at::parallel_for(0, bytes, 1 << 20, [&](int64_t b, int64_t e) {
    std::memcpy(static_cast<char*>(dst) + b, static_cast<const char*>(src) + b,
                static_cast<size_t>(e - b));
  });
}

uint64_t parallel_read(const void* data, int64_t bytes) {
  const int64_t words = bytes / 8;
  std::vector<uint64_t> partial(static_cast<size_t>(at::get_num_threads()) + 1, 0);
  at::parallel_for(0, words, 1 << 17, [&](int64_t b, int64_t e) {
    const auto* w = static_cast<const uint64_t*>(data);
    uint64_t x = 0;
    for (int64_t i = b; i < e; ++i) x ^= w[i];
    partial[static_cast<size_t>(at::get_thread_num())] ^= x;
  });
  uint64_t x = 0;
  for (auto p : partial) x ^= p;
  return x;
}

void run(benchmark::State& state, const Shape& shape, at::ScalarType type, bool zipf, int threads,
         const std::string& op, const std::string& impl) {
  torch::set_num_threads(threads);
  Inputs& in = inputs_for(shape, type, zipf);
  const double scale = std::sqrt(double(shape.rows) / double(shape.lookups));
  const int64_t out_bytes = shape.lookups * shape.dim * in.weight.element_size();
  at::Tensor weight = in.weight.detach();
  at::Tensor out, grad_weight;
  if (op != "fwd" && impl == "ours") weight = in.weight.detach().requires_grad_();
  if (op == "bwd" && impl == "ours") out = unit_scaling::functional::embedding(in.indices, weight);

  const auto body = [&] {
    if (op == "fwd" && impl == "ours") {
      out = unit_scaling::functional::embedding(in.indices, weight);
    } else if (op == "fwd" && impl == "aten") {
      out = torch::embedding(weight, in.indices);
    } else if (op == "fwd") {  // floor, floorhp
      out = impl == "floor"
                ? at::empty({shape.lookups, shape.dim}, weight.options())
                : unit_scaling::detail::empty_output({shape.lookups, shape.dim}, weight.options());
      parallel_memcpy(out.data_ptr(), in.source.data_ptr(), out_bytes);
    } else if (op == "bwd" && impl == "ours") {
      grad_weight = torch::autograd::grad({out}, {weight}, {in.grad_out}, true)[0];
    } else if (op == "bwd" && impl == "aten") {
      grad_weight = torch::embedding_dense_backward(in.grad_out, in.indices, shape.rows, -1, false)
                        .mul_(scale);
    } else if (op == "bwd") {  // floor, floorhp
      grad_weight = impl == "floor" ? at::zeros({shape.rows, shape.dim}, weight.options())
                                    : unit_scaling::detail::empty_output({shape.rows, shape.dim},
                                                                         weight.options())
                                          .zero_();
      benchmark::DoNotOptimize(parallel_read(in.grad_out.data_ptr(), out_bytes));
    } else if (impl == "ours") {  // fwdbwd
      out = unit_scaling::functional::embedding(in.indices, weight);
      grad_weight = torch::autograd::grad({out}, {weight}, {in.grad_out})[0];
    } else {
      out = torch::embedding(weight, in.indices);
      grad_weight = torch::embedding_dense_backward(in.grad_out, in.indices, shape.rows, -1, false)
                        .mul_(scale);
    }
    benchmark::DoNotOptimize(out.defined() ? out.data_ptr() : nullptr);
    benchmark::DoNotOptimize(grad_weight.defined() ? grad_weight.data_ptr() : nullptr);
    benchmark::ClobberMemory();
    if (op != "fwd") grad_weight.reset();  // free inside the loop, as training would
  };
  body();  // untimed warm-up: allocator state and caches settle
  for (auto _ : state) body();
  state.SetBytesProcessed(
      state.iterations() *
      (op == "fwd" ? out_bytes : out_bytes + shape.rows * shape.dim * in.weight.element_size()));
}

void register_all() {
  for (const Shape& shape : kShapes) {
    for (auto type : {at::kFloat, at::kBFloat16}) {
      const std::string dtype = type == at::kFloat ? "f32" : "bf16";
      for (bool zipf : {false, true}) {
        for (int threads : {1, 2}) {
          for (std::string op : {"fwd", "bwd", "fwdbwd"}) {
            for (std::string impl : {"ours", "aten", "floor", "floorhp"}) {
              if (op == "fwdbwd" && impl.rfind("floor", 0) == 0) continue;
              const std::string name = op + "/" + impl + "/" + shape.name + "/" + dtype + "/" +
                                       (zipf ? "zipf" : "uniform") + "/t" + std::to_string(threads);
              benchmark::RegisterBenchmark(name.c_str(),
                                           [=](benchmark::State& state) {
                                             run(state, shape, type, zipf, threads, op, impl);
                                           })
                  ->Unit(benchmark::kMillisecond)
                  ->UseRealTime();
            }
          }
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
