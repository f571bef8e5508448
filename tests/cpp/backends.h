// The backend axis of the contract suites: every TEST_P over BackendTest runs once per row of the
// backend table (backend_table() in backends.cpp). Adding a backend adds an id below and a row
// there; every suite instantiated with INSTANTIATE_BACKEND_SUITE(_WITH) picks it up.
//
//   kCpuKernels   CPU tensors, the CPU dispatch key's kernels (src/backends/cpu.cpp).
//   kAtenFallback CPU tensors routed to the CompositeExplicitAutograd fallback
//                 (src/backends/aten_fallback.cpp), the kernels a device without kernels of its
//                 own gets. While the test runs, an AtenFallbackRoute overrides the CPU kernels
//                 of the device operators with a boxed kernel that redispatches to the kernel
//                 the dispatcher holds for PrivateUse1 (a backend with no kernels).
//   kCuda         CUDA tensors, whatever CUDA dispatches to; skipped without a visible GPU.
//
// Tests build their data on the CPU (references are float64 on the CPU), move the op's inputs
// with on_device(), and bring results back with .cpu() to compare.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unit_scaling/index_check_policy.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace unit_scaling::testing {

// A backend's id: the key of its row in the backend table.
enum class Backend { kCpuKernels, kAtenFallback, kCuda };

// A row of the backend table: everything the fixture needs to know of a backend.
struct BackendSpec {
  Backend id;
  const char* name;    // test-name friendly: "CpuKernels"
  c10::Device device;  // where its tensors live
  // Whether it needs a GPU; if so, skip_reason() says why it cannot run in this process (its
  // tests are skipped with that message), or "" when it can.
  bool needs_gpu;
  std::string (*skip_reason)();
  // What a test on this backend holds while it runs (nullptr: nothing), e.g. an
  // AtenFallbackRoute; destroying it deactivates the backend.
  std::shared_ptr<void> (*activate)();
};

// Every backend, in test order.
const std::vector<BackendSpec>& backend_table();
const BackendSpec& backend_spec(Backend backend);

// The ids of backend_table(), the values INSTANTIATE_BACKEND_SUITE runs over.
const std::vector<Backend>& all_backends();

// The row's name and device.
std::string backend_name(Backend backend);
inline void PrintTo(Backend backend, std::ostream* os) { *os << backend_name(backend); }
c10::Device backend_device(Backend backend);

// For its lifetime, CPU calls of the device operators (those register_backend registers, see
// src/backends/entry_points.h) run the ATen fallback.
// Destroying it restores the CPU kernels. Not thread-safe to create or destroy while another
// thread calls the operators; calls from many threads while it is alive are fine.
class AtenFallbackRoute {
 public:
  AtenFallbackRoute();
  ~AtenFallbackRoute();
  AtenFallbackRoute(const AtenFallbackRoute&) = delete;
  AtenFallbackRoute& operator=(const AtenFallbackRoute&) = delete;

  // Calls that went through a route since the program started (all routes together).
  static int64_t calls();
  // The device operators a route overrides: every unit_scaling operator with a kernel of its
  // own under the CPU key (register_backend registers exactly those), read from the dispatcher.
  static const std::vector<std::string>& operators();
  // The file that registers the route's kernels (their debug string in the dispatcher names it).
  static const char* source_file();

 private:
  std::unique_ptr<torch::Library> library_;
};

// The fixture base of the parameterized contract suites. Param is Backend, or a tuple whose
// first element is the Backend (see BackendTestWith).
template <typename Param>
class BackendFixture : public ::testing::TestWithParam<Param> {
 public:
  Backend backend() const { return backend_of(this->GetParam()); }
  c10::Device device() const { return backend_spec(backend()).device; }
  // t on the backend's device (t itself when it is already there, as Tensor::to does);
  // undefined stays undefined. Views with gaps between elements (slices with a step, expanded
  // tensors) come out contiguous from another device: build those on the device instead.
  at::Tensor on_device(const at::Tensor& t) const { return t.defined() ? t.to(device()) : t; }
  // Tensor options for a tensor of the given dtype made directly on the backend's device.
  torch::TensorOptions options(at::ScalarType dtype) const {
    return torch::TensorOptions().dtype(dtype).device(device());
  }

 protected:
  void SetUp() override {
    const BackendSpec& spec = backend_spec(backend());
    const std::string skip = spec.needs_gpu ? spec.skip_reason() : "";
    if (!skip.empty()) GTEST_SKIP() << skip;
    if (spec.activate != nullptr) activation_ = spec.activate();
  }
  void TearDown() override { activation_.reset(); }

 private:
  static Backend backend_of(Backend backend) { return backend; }
  template <typename... Rest>
  static Backend backend_of(const std::tuple<Backend, Rest...>& param) {
    return std::get<0>(param);
  }

  std::shared_ptr<void> activation_;
};

using BackendTest = BackendFixture<Backend>;

// A suite that pins the IndexError of a bad index on every backend: its tests run under the
// kRaise index-check policy (on CUDA the default is a device-side assertion instead, pinned in
// child processes by device_assertion_test.cpp; the CPU backends raise under either policy).
class RaisingIndexErrorsTest : public BackendTest {
 private:
  unit_scaling::IndexCheckPolicyGuard raise_{unit_scaling::IndexCheckPolicy::kRaise};
};
template <typename... Extra>
using BackendTestWith = BackendFixture<std::tuple<Backend, Extra...>>;

// Readable parameter names: AtenFallback, Cuda_BFloat16_Int, CpuKernels_inf, ...
inline std::string param_name(Backend backend) { return backend_name(backend); }
inline std::string param_name(at::ScalarType type) { return c10::toString(type); }
std::string param_name(double value);
template <typename... T>
std::string param_name(const std::tuple<T...>& values) {
  std::string name;
  std::apply([&](const auto&... v) { ((name += (name.empty() ? "" : "_") + param_name(v)), ...); },
             values);
  return name;
}

struct ParamName {
  template <typename P>
  std::string operator()(const ::testing::TestParamInfo<P>& info) const {
    return param_name(info.param);
  }
};

}  // namespace unit_scaling::testing

// Runs every TEST_P of `suite` (a fixture derived from BackendTest) once per backend. No
// instantiation prefix: tests are named Suite.Test/AtenFallback, so suite filters such as
// -LargeSizes.* match every backend, and --gtest_filter='*/AtenFallback*' picks one backend.
#define INSTANTIATE_BACKEND_SUITE(suite)                                                          \
  INSTANTIATE_TEST_SUITE_P(, suite, ::testing::ValuesIn(::unit_scaling::testing::all_backends()), \
                           ::unit_scaling::testing::ParamName())

// The same for a fixture derived from BackendTestWith<Extra...>: the backends combined with one
// generator per extra parameter (::testing::Values, ValuesIn, ...).
#define INSTANTIATE_BACKEND_SUITE_WITH(suite, ...)                                     \
  INSTANTIATE_TEST_SUITE_P(                                                            \
      , suite,                                                                         \
      ::testing::Combine(::testing::ValuesIn(::unit_scaling::testing::all_backends()), \
                         __VA_ARGS__),                                                 \
      ::unit_scaling::testing::ParamName())
