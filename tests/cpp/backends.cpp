// The backend axis of the contract suites (backends.h) and the route that runs the ATen fallback
// on CPU tensors.
#include "backends.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace unit_scaling::testing {
namespace {

std::atomic<int64_t> route_calls{0};

// The CPU kernel of a routed operator: the call goes on to the kernel the dispatcher computed for
// PrivateUse1, a backend with no kernels of its own, i.e. the CompositeExplicitAutograd fallback.
void redispatch_to_fallback(const c10::OperatorHandle& op, c10::DispatchKeySet /*keys*/,
                            torch::jit::Stack* stack) {
  route_calls.fetch_add(1, std::memory_order_relaxed);
  op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::PrivateUse1), stack);
}

// Drops torch's (once per process) "Overriding a previously registered kernel" warning, which the
// route's registration triggers by design; passes every other warning on.
class DropKernelOverrideWarning : public c10::WarningHandler {
 public:
  explicit DropKernelOverrideWarning(c10::WarningHandler* next) : next_(next) {}
  void process(const c10::Warning& warning) override {
    if (warning.msg().find("Overriding a previously registered kernel") != std::string::npos) {
      return;
    }
    next_->process(warning);
  }

 private:
  c10::WarningHandler* next_;
};

std::string no_cuda_device() { return torch::cuda::is_available() ? "" : "no CUDA device visible"; }

std::shared_ptr<void> route_to_fallback() { return std::make_shared<AtenFallbackRoute>(); }

}  // namespace

// Adding a backend: an id in backends.h and a row here.
const std::vector<BackendSpec>& backend_table() {
  static const std::vector<BackendSpec> table{
      // id, name, device, needs_gpu, skip_reason, activate
      {Backend::kCpuKernels, "CpuKernels", c10::Device(c10::kCPU), false, nullptr, nullptr},
      {Backend::kAtenFallback, "AtenFallback", c10::Device(c10::kCPU), false, nullptr,
       &route_to_fallback},
      {Backend::kCuda, "Cuda", c10::Device(c10::kCUDA, 0), true, &no_cuda_device, nullptr},
  };
  return table;
}

const BackendSpec& backend_spec(Backend backend) {
  const auto& table = backend_table();
  const auto row = std::find_if(table.begin(), table.end(),
                                [backend](const BackendSpec& spec) { return spec.id == backend; });
  TORCH_CHECK(row != table.end(), "backend ", static_cast<int>(backend),
              " has no row in backend_table()");
  return *row;
}

const std::vector<Backend>& all_backends() {
  static const std::vector<Backend> ids = [] {
    std::vector<Backend> result;
    for (const BackendSpec& spec : backend_table()) result.push_back(spec.id);
    return result;
  }();
  return ids;
}

std::string backend_name(Backend backend) { return backend_spec(backend).name; }

c10::Device backend_device(Backend backend) { return backend_spec(backend).device; }

std::string param_name(double value) {
  if (std::isinf(value)) return value > 0 ? "inf" : "minus_inf";
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  std::string name(text);
  for (char& c : name) {
    if (c == '.') c = '_';
    if (c == '-') c = 'm';
  }
  return name;
}

AtenFallbackRoute::AtenFallbackRoute() {
  DropKernelOverrideWarning handler(c10::WarningUtils::get_warning_handler());
  c10::WarningUtils::WarningHandlerGuard guard(&handler);
  library_ = std::make_unique<torch::Library>(torch::Library::IMPL, "unit_scaling",
                                              c10::DispatchKey::CPU, __FILE__, __LINE__);
  for (const auto& name : operators()) {
    library_->impl(name.c_str(),
                   torch::CppFunction::makeFromBoxedFunction<&redispatch_to_fallback>());
  }
}

AtenFallbackRoute::~AtenFallbackRoute() = default;

int64_t AtenFallbackRoute::calls() { return route_calls.load(std::memory_order_relaxed); }

const std::vector<std::string>& AtenFallbackRoute::operators() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> result;
    for (const c10::OperatorName& op :
         c10::Dispatcher::singleton().getAllOpNamesForDispatchKey(c10::DispatchKey::CPU)) {
      constexpr std::string_view kNamespace = "unit_scaling::";
      if (op.name.rfind(kNamespace, 0) == 0) result.push_back(op.name.substr(kNamespace.size()));
    }
    std::sort(result.begin(), result.end());
    return result;
  }();
  return names;
}

const char* AtenFallbackRoute::source_file() { return __FILE__; }

}  // namespace unit_scaling::testing
