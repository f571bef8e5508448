// The backend axis itself: the AtenFallback route really runs the ATen fallback on CPU tensors
// (and only while it exists), and every backend's results land on the backend's device.
#include "backends.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/record_function.h>
#include <unit_scaling/functional.h>

#include <mutex>
#include <set>

#include "operators.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

// The line of an operator's computed dispatch table for one key, e.g.
// "CPU: registered at .../src/backends/cpu.cpp:70 [kernel]".
std::string table_entry(const std::string& op, const std::string& key) {
  const auto handle =
      c10::Dispatcher::singleton().findSchemaOrThrow(("unit_scaling::" + op).c_str(), "");
  std::istringstream table(handle.dumpComputedTable());
  for (std::string line; std::getline(table, line);) {
    if (line.rfind(key + ": ", 0) == 0) return line;
  }
  return "";
}

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// The names of the operators that run (through the dispatcher) while it is alive, on any thread.
class OperatorLog {
 public:
  OperatorLog()
      : handle_(at::addGlobalCallback(at::RecordFunctionCallback(&OperatorLog::on_start)
                                          .scopes({at::RecordScope::FUNCTION}))) {
    std::lock_guard<std::mutex> lock(mutex());
    names().clear();
  }
  ~OperatorLog() { at::removeCallback(handle_); }
  OperatorLog(const OperatorLog&) = delete;
  OperatorLog& operator=(const OperatorLog&) = delete;

  bool saw(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex());
    return names().count(name) > 0;
  }

 private:
  static std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
    std::lock_guard<std::mutex> lock(mutex());
    names().insert(fn.name());
    return nullptr;
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::set<std::string>& names() {
    static std::set<std::string> n;
    return n;
  }

  at::CallbackHandle handle_;
};

// Forward with max_norm (renorm + lookup), backward, and the internal scaled backward.
void run_every_device_operator() {
  auto weight = (torch::randn({10, 4}) * 5).requires_grad_();
  const auto input = torch::tensor({1, 3, 3, 7});
  F::embedding(input, weight, F::EmbeddingFuncOptions().max_norm(1.0)).sum().backward();
  unit_scaling::detail::scaled_backward_op().call(torch::ones({4, 4}), input, c10::SymInt(10),
                                                  c10::SymInt(-1), 2.0);
}

TEST(AtenFallbackRoute, DispatcherRoutesCpuCallsToTheCompositeExplicitAutogradKernels) {
  for (const auto& op : AtenFallbackRoute::operators()) {
    SCOPED_TRACE(op);
    // Without a route: the CPU kernels; what a device without kernels gets is the fallback.
    EXPECT_TRUE(contains(table_entry(op, "CPU"), "backends/cpu.cpp")) << table_entry(op, "CPU");
    const std::string fallback = table_entry(op, "PrivateUse1");
    EXPECT_TRUE(contains(fallback, "backends/aten_fallback.cpp")) << fallback;
    {
      const AtenFallbackRoute route;
      const std::string routed = table_entry(op, "CPU");
      EXPECT_TRUE(contains(routed, AtenFallbackRoute::source_file())) << routed;
      EXPECT_FALSE(contains(routed, "backends/cpu.cpp")) << routed;
      EXPECT_EQ(table_entry(op, "PrivateUse1"), fallback);
    }
    // Destroying the route restores the CPU kernels.
    EXPECT_TRUE(contains(table_entry(op, "CPU"), "backends/cpu.cpp")) << table_entry(op, "CPU");
  }
}

// Behaviour, not just the table: with the route every device operator runs the ATen operators
// the fallback is built from (the CPU kernels call none of them), and the route counts the calls.
TEST(AtenFallbackRoute, RoutedCallsRunTheFallbacksAtenOperators) {
  const std::vector<std::string> fallback_ops{
      "aten::index_select", "aten::embedding_dense_backward", "aten::embedding_renorm_"};
  torch::manual_seed(50);
  {
    const OperatorLog log;
    run_every_device_operator();
    EXPECT_TRUE(log.saw("unit_scaling::embedding_lookup"));  // the log does see our operators
    for (const auto& name : fallback_ops) EXPECT_FALSE(log.saw(name)) << name;
  }
  {
    const AtenFallbackRoute route;
    const int64_t calls_before = AtenFallbackRoute::calls();
    const OperatorLog log;
    run_every_device_operator();
    for (const auto& name : fallback_ops) EXPECT_TRUE(log.saw(name)) << name;
    // embedding_renorm_, embedding_lookup, embedding_backward, _scaled_embedding_backward.
    EXPECT_EQ(AtenFallbackRoute::calls() - calls_before, 4);
  }
  const int64_t calls_after = AtenFallbackRoute::calls();
  run_every_device_operator();
  EXPECT_EQ(AtenFallbackRoute::calls(), calls_after) << "a destroyed route still routes";
}

// Collects the warnings issued on this thread while it is installed.
class WarningLog : public c10::WarningHandler {
 public:
  WarningLog() : guard_(this) {}
  void process(const c10::Warning& warning) override { messages.push_back(warning.msg()); }
  std::vector<std::string> messages;

 private:
  c10::WarningUtils::WarningHandlerGuard guard_;
};

// Registering over the CPU kernels makes torch warn "Overriding a previously registered kernel"
// (once per process: this checks something when it runs first, e.g. filtered on its own).
TEST(AtenFallbackRoute, RegistrationWarnsNothing) {
  WarningLog log;
  { const AtenFallbackRoute route; }
  EXPECT_TRUE(log.messages.empty()) << log.messages.front();
}

TEST(AtenFallbackRoute, OverridesTheFourDeviceOperators) {
  EXPECT_EQ(AtenFallbackRoute::operators(),
            (std::vector<std::string>{"_scaled_embedding_backward", "embedding_backward",
                                      "embedding_lookup", "embedding_renorm_"}));
}

TEST(BackendTable, NamesDevicesAndActivation) {
  EXPECT_EQ(all_backends(),
            (std::vector<Backend>{Backend::kCpuKernels, Backend::kAtenFallback, Backend::kCuda}));
  std::set<std::string> names;
  for (const BackendSpec& spec : backend_table()) {
    SCOPED_TRACE(spec.name);
    EXPECT_EQ(&backend_spec(spec.id), &spec);
    EXPECT_TRUE(names.insert(spec.name).second) << "two rows named " << spec.name;
    EXPECT_EQ(spec.needs_gpu, spec.skip_reason != nullptr);
    EXPECT_EQ(spec.needs_gpu, !spec.device.is_cpu());
  }
  EXPECT_EQ(backend_name(Backend::kCpuKernels), "CpuKernels");
  EXPECT_EQ(backend_name(Backend::kAtenFallback), "AtenFallback");
  EXPECT_EQ(backend_name(Backend::kCuda), "Cuda");
  EXPECT_EQ(backend_device(Backend::kAtenFallback), c10::Device(c10::kCPU));
  EXPECT_TRUE(backend_device(Backend::kCuda).is_cuda());
  EXPECT_EQ(backend_spec(Backend::kCuda).skip_reason(),
            torch::cuda::is_available() ? "" : "no CUDA device visible");
  EXPECT_EQ(backend_spec(Backend::kCpuKernels).activate, nullptr);
  // The fallback's activation is a route: alive while held, gone when released.
  const int64_t calls_before = AtenFallbackRoute::calls();
  std::shared_ptr<void> active = backend_spec(Backend::kAtenFallback).activate();
  unit_scaling::detail::scaled_backward_op().call(torch::ones({1, 2}), torch::tensor({1}),
                                                  c10::SymInt(4), c10::SymInt(-1), 1.0);
  EXPECT_EQ(AtenFallbackRoute::calls() - calls_before, 1);
  active.reset();
  unit_scaling::detail::scaled_backward_op().call(torch::ones({1, 2}), torch::tensor({1}),
                                                  c10::SymInt(4), c10::SymInt(-1), 1.0);
  EXPECT_EQ(AtenFallbackRoute::calls() - calls_before, 1);
}

TEST(BackendTable, ParamNames) {
  EXPECT_EQ(param_name(std::make_tuple(Backend::kCuda, at::kBFloat16, at::kInt)),
            "Cuda_BFloat16_Int");
  EXPECT_EQ(param_name(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(param_name(2.0), "2");
}

class BackendAxis : public BackendTest {};

// Every backend's outputs and gradients live on its device; the fallback's route is active
// exactly for its instance.
TEST_P(BackendAxis, ResultsLiveOnTheBackendsDevice) {
  const int64_t calls_before = AtenFallbackRoute::calls();
  auto weight = on_device(torch::randn({6, 3})).requires_grad_();
  const auto out = F::embedding(on_device(torch::tensor({0, 5, 5})), weight);
  out.sum().backward();
  EXPECT_EQ(out.device(), device());
  EXPECT_EQ(weight.grad().device(), device());
  EXPECT_EQ(AtenFallbackRoute::calls() > calls_before, backend() == Backend::kAtenFallback);
}

INSTANTIATE_BACKEND_SUITE(BackendAxis);

}  // namespace
