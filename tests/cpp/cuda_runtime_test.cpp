// The CUDA backend from C++, where only a GPU can check it (built only with the CUDA backend,
// -DUNIT_SCALING_CUDA=ON; skipped without a visible GPU; scripts/gpu_check.sh runs it through
// its filter '*Cuda*.*'). The Python suite (tests/python/test_cuda_runtime.py) checks the same
// and more through torch.ops; these pin the C++ entry points:
//  - more than 65536 lookups, where the backward sorts with CUB's radix sort (the emulation
//    replaces CUB by a host sort): bitwise equal to the CPU kernels at the GPT-2 shape, and a
//    CUDA graph captured from C++ replays equal to eager;
//  - every backward variant (UNIT_SCALING_BACKWARD_VARIANT, read on each backward call) at that
//    size: bitwise equal to the CPU kernels; an unknown value is a c10::ValueError naming it;
//  - tensors on cuda:1 while cuda:0 is current: forward, backward (also in the side-stream
//    variant 'all') and max_norm equal to the CPU kernels, queued on cuda:1's current stream,
//    the current device left alone (skipped where fewer than two GPUs are visible).
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/cuda/Sleep.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <unit_scaling/unit_scaling.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "operators.h"
#include "test_support.h"

namespace {

namespace F = unit_scaling::functional;
using unit_scaling::detail::call_backward;
using unit_scaling::detail::CallOptions;
using unit_scaling::detail::renorm_op;
using unit_scaling::testing::bitwise_equal;

constexpr int64_t kGpt2Rows = 50257;
constexpr int64_t kGpt2Dim = 768;
constexpr int64_t kLargeN = 131072;  // > 65536: the key kernel and CUB's radix sort
constexpr const char* kVariantEnv = "UNIT_SCALING_BACKWARD_VARIANT";

class CudaRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  }
};

// GPT-2 backward inputs made on the GPU (a CPU randn of 10^8 values takes seconds): Zipf(1.1)
// over rows ranked by id, or uniform.
struct Inputs {
  at::Tensor tokens;
  at::Tensor grad;
};
Inputs gpt2_inputs(int64_t n, bool zipf, at::ScalarType dtype) {
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  at::Tensor tokens =
      zipf ? torch::multinomial(
                 torch::arange(1, kGpt2Rows + 1, cuda.dtype(torch::kDouble)).pow(-1.1), n, true)
           : torch::randint(0, kGpt2Rows, {n}, cuda.dtype(torch::kLong));
  return {tokens, torch::randn({n, kGpt2Dim}, cuda.dtype(torch::kFloat)).to(dtype)};
}

// No padding row for nullopt (a negative row counts from the end, as in torch).
CallOptions padding(std::optional<int64_t> row) {
  CallOptions options;
  if (row) options.padding_idx = c10::SymInt(*row);
  return options;
}

// The environment variable set (or unset, for nullopt) for the object's lifetime.
class ScopedVariant {
 public:
  explicit ScopedVariant(const std::optional<std::string>& value) {
    if (const char* old = std::getenv(kVariantEnv)) saved_ = old;
    if (value) {
      setenv(kVariantEnv, value->c_str(), 1);
    } else {
      unsetenv(kVariantEnv);
    }
  }
  ~ScopedVariant() {
    if (saved_) {
      setenv(kVariantEnv, saved_->c_str(), 1);
    } else {
      unsetenv(kVariantEnv);
    }
  }
  ScopedVariant(const ScopedVariant&) = delete;
  ScopedVariant& operator=(const ScopedVariant&) = delete;

 private:
  std::optional<std::string> saved_;
};

TEST_F(CudaRuntime, LargeNBackwardEqualsTheCpuKernelsBitwise) {
  const ScopedVariant default_backward(std::nullopt);
  torch::manual_seed(0);
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    for (const bool zipf : {false, true}) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + (zipf ? " zipf" : " uniform"));
      const Inputs in = gpt2_inputs(kLargeN, zipf, dtype);
      const CallOptions options = padding(zipf ? std::optional<int64_t>(1) : std::nullopt);
      const at::Tensor cuda = call_backward(in.grad, in.tokens, kGpt2Rows, options);
      const at::Tensor cpu = call_backward(in.grad.cpu(), in.tokens.cpu(), kGpt2Rows, options);
      EXPECT_TRUE(cuda.is_cuda());
      EXPECT_TRUE(bitwise_equal(cuda, cpu));
      EXPECT_TRUE(bitwise_equal(call_backward(in.grad, in.tokens, kGpt2Rows, options), cuda))
          << "not repeatable";
    }
  }
}

TEST_F(CudaRuntime, LargeNCapturedGraphReplaysEqualToEager) {
  const ScopedVariant default_backward(std::nullopt);
  torch::manual_seed(1);
  const Inputs captured = gpt2_inputs(kLargeN, false, at::kBFloat16);
  at::Tensor tokens = captured.tokens.clone();
  at::Tensor grad = captured.grad.clone();
  const auto weight = torch::randn({kGpt2Rows, kGpt2Dim}, grad.options());
  at::Tensor out, grad_weight;
  const auto step = [&] {
    out = F::embedding(tokens, weight);
    grad_weight = call_backward(grad, tokens, kGpt2Rows, padding(0));
  };
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
  torch::cuda::synchronize();  // the inputs above were made on the default stream
  {
    const c10::cuda::CUDAStreamGuard on_side(side);  // warm-up and capture off the default stream
    step();
    step();
    torch::cuda::synchronize();
    at::cuda::CUDAGraph graph;
    graph.capture_begin();
    step();
    graph.capture_end();
    for (const bool zipf : {true, false}) {
      const Inputs fresh = gpt2_inputs(kLargeN, zipf, at::kBFloat16);
      tokens.copy_(fresh.tokens);
      grad.copy_(fresh.grad);
      graph.replay();
      const at::Tensor eager_out = F::embedding(fresh.tokens, weight);
      const at::Tensor eager_grad = call_backward(fresh.grad, fresh.tokens, kGpt2Rows, padding(0));
      torch::cuda::synchronize();
      EXPECT_TRUE(bitwise_equal(out, eager_out)) << (zipf ? "zipf" : "uniform");
      EXPECT_TRUE(bitwise_equal(grad_weight, eager_grad)) << (zipf ? "zipf" : "uniform");
    }
  }
  torch::cuda::synchronize();
}

TEST_F(CudaRuntime, EveryBackwardVariantEqualsTheCpuKernelsBitwise) {
  const auto tokens = torch::tensor({1, 2, 3}, torch::kLong).cuda();
  const auto small_grad = torch::ones({3, 4}).cuda();
  {
    const ScopedVariant unknown(std::string("fastest"));
    bool raised = false;
    try {
      call_backward(small_grad, tokens, 10);
      torch::cuda::synchronize();
    } catch (const c10::ValueError& error) {
      raised = true;
      const std::string message = error.what_without_backtrace();
      EXPECT_EQ(message.rfind("unit_scaling embedding: ", 0), 0u) << message;
      EXPECT_NE(message.find("fastest"), std::string::npos) << message;
    } catch (const std::exception& error) {
      ADD_FAILURE() << "an unknown variant raised something else than c10::ValueError: "
                    << error.what();
      raised = true;
    }
    if (!raised) {
      GTEST_SKIP() << "this library ignores " << kVariantEnv
                   << " (an unknown value raised nothing): built before the backward variants?";
    }
  }
  torch::manual_seed(2);
  const Inputs in = gpt2_inputs(kLargeN, /*zipf=*/true, at::kBFloat16);
  for (const std::optional<int64_t> padding_row : {std::optional<int64_t>(), {0}}) {
    const at::Tensor cpu =
        call_backward(in.grad.cpu(), in.tokens.cpu(), kGpt2Rows, padding(padding_row));
    for (const char* variant : {"baseline", "hot_rows", "side_zero", "merge_path", "all"}) {
      SCOPED_TRACE(std::string(variant) + (padding_row ? ", padding row 0" : ", no padding"));
      const ScopedVariant chosen{std::string(variant)};
      const at::Tensor cuda = call_backward(in.grad, in.tokens, kGpt2Rows, padding(padding_row));
      EXPECT_TRUE(bitwise_equal(cuda, cpu));
    }
  }
}

// cuda:1 tensors while cuda:0 is current. The inputs are written on cuda:1's current stream (a
// stream from the pool, not its default one) behind a long sleep kernel: the results are right
// only if our kernels are queued on that same stream after the copies (on any other stream they
// read the zeros the buffers held before), and the calls return while the sleep runs (no sync).
TEST_F(CudaRuntime, SecondDeviceUsesItsCurrentStreamAndKeepsTheCurrentDevice) {
  if (torch::cuda::device_count() < 2) {
    GTEST_SKIP() << "needs a second CUDA device, cuda:1 (" << torch::cuda::device_count()
                 << " visible): the device guard and the per-device current stream are not "
                    "checked on this machine";
  }
  const c10::Device second(torch::kCUDA, 1);
  constexpr int64_t rows = 3000, dim = 64, n = 4096;
  torch::manual_seed(3);
  const auto table = torch::randn({rows, dim}) * 3;
  const auto input = unit_scaling::testing::zipf_indices(rows, n, 1.1);
  const auto grad = torch::randn({n, dim});
  const std::vector<at::Tensor> sources = {table.to(second), input.to(second), grad.to(second),
                                           table.to(second)};
  std::vector<at::Tensor> buffers;
  for (const auto& source : sources) buffers.push_back(torch::zeros_like(source));
  // Warm-up on cuda:1: kernels load at their first launch on a device.
  F::embedding(sources[1], sources[0].clone(), {}, /*max_norm=*/1.0);
  call_backward(sources[2], sources[1], rows);
  torch::cuda::synchronize(1);
  c10::cuda::set_device(0);

  const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, 1);
  const c10::cuda::CUDAStream previous = c10::cuda::getCurrentCUDAStream(1);
  c10::cuda::setCurrentCUDAStream(stream);  // cuda:1's current stream; cuda:0 stays current
  ASSERT_EQ(c10::cuda::current_device(), 0);
  {
    const c10::cuda::CUDAGuard on_second(1);
    at::cuda::sleep(1'000'000'000);  // about half a second at 2 GHz, on `stream`
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(sources[i]);
  }
  ASSERT_EQ(c10::cuda::current_device(), 0);
  const at::Tensor out = F::embedding(buffers[1], buffers[0], /*padding_idx=*/3);
  const at::Tensor grad_weight = call_backward(buffers[2], buffers[1], rows, padding(3));
  at::Tensor side_stream_grad_weight;
  {  // the variant that forks a pool stream of cuda:1 and creates its events there
    const ScopedVariant all{std::string("all")};
    side_stream_grad_weight = call_backward(buffers[2], buffers[1], rows, padding(3));
  }
  renorm_op().call(buffers[3], buffers[1], 1.0, 2.0);
  const at::Tensor renormed_out = F::embedding(buffers[1], buffers[0].clone(), {}, 1.0);
  const bool still_busy = !stream.query();
  const c10::DeviceIndex current = c10::cuda::current_device();
  stream.synchronize();
  c10::cuda::setCurrentCUDAStream(previous);
  EXPECT_EQ(current, 0) << "a call on cuda:1 changed the current device";
  EXPECT_TRUE(still_busy) << "the host waited for cuda:1";
  EXPECT_EQ(out.device(), second);
  EXPECT_EQ(grad_weight.device(), second);

  auto expected_renormed = table.clone();
  renorm_op().call(expected_renormed, input, 1.0, 2.0);
  EXPECT_TRUE(bitwise_equal(out, unit_scaling::detail::call_lookup(input, table))) << "forward";
  const at::Tensor expected_grad_weight = call_backward(grad, input, rows, padding(3));
  EXPECT_TRUE(bitwise_equal(grad_weight, expected_grad_weight)) << "backward";
  EXPECT_EQ(side_stream_grad_weight.device(), second);
  EXPECT_TRUE(bitwise_equal(side_stream_grad_weight, expected_grad_weight))
      << "backward, variant 'all' (side stream)";
  EXPECT_TRUE(bitwise_equal(buffers[3], expected_renormed)) << "renorm";
  EXPECT_TRUE(bitwise_equal(renormed_out, F::embedding(input, table.clone(), {}, 1.0)))
      << "max_norm forward";
}

}  // namespace
