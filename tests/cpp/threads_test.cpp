// Concurrency: 8 threads run forward + backward at once on one shared weight and on one shared
// module; every result must equal the single-threaded one bit for bit, on every backend
// (backends.h).
#include <unit_scaling/functional.h>
#include <unit_scaling/nn/embedding.h>

#include <thread>

#include "backends.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

constexpr int kThreads = 8;

struct Work {
  at::Tensor input, grad_out;
};

std::vector<Work> make_work(c10::Device device, int64_t rows, int64_t dim) {
  std::vector<Work> work;
  for (int t = 0; t < kThreads; ++t) {
    work.push_back({zipf_indices(rows, 3000, 1.1).view({30, 100}).to(device),
                    torch::randn({30, 100, dim}).to(device)});
  }
  return work;
}

// Forward + backward through torch::autograd::grad (no shared .grad accumulation).
std::pair<at::Tensor, at::Tensor> step(const std::function<at::Tensor(const at::Tensor&)>& forward,
                                       const at::Tensor& weight, const Work& w) {
  const at::Tensor out = forward(w.input);
  const at::Tensor grad = torch::autograd::grad({out}, {weight}, {w.grad_out})[0];
  return {out, grad};
}

void expect_concurrent_equals_serial(const std::function<at::Tensor(const at::Tensor&)>& forward,
                                     const at::Tensor& weight, const std::vector<Work>& work) {
  std::vector<std::pair<at::Tensor, at::Tensor>> serial, concurrent(kThreads);
  for (const auto& w : work) serial.push_back(step(forward, weight, w));
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] { concurrent[t] = step(forward, weight, work[t]); });
    }
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_TRUE(bitwise_equal(concurrent[t].first, serial[t].first)) << "thread " << t;
      EXPECT_TRUE(bitwise_equal(concurrent[t].second, serial[t].second)) << "thread " << t;
    }
  }
}

class Threads : public BackendTest {};

TEST_P(Threads, SharedWeightEightThreads) {
  torch::manual_seed(40);
  auto weight = on_device(torch::randn({500, 24})).requires_grad_();
  const auto work = make_work(device(), 500, 24);
  expect_concurrent_equals_serial(
      [&](const at::Tensor& input) { return F::embedding(input, weight, /*padding_idx=*/0); },
      weight, work);
}

TEST_P(Threads, SharedModuleEightThreads) {
  torch::manual_seed(41);
  unit_scaling::nn::Embedding module(unit_scaling::nn::EmbeddingOptions(500, 24).padding_idx(3));
  module->to(device());
  const auto work = make_work(device(), 500, 24);
  expect_concurrent_equals_serial([&](const at::Tensor& input) { return module(input); },
                                  module->weight, work);
}

INSTANTIATE_BACKEND_SUITE(Threads);

}  // namespace
