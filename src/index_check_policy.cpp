// The CUDA index-check policy (include/unit_scaling/index_check_policy.h) and its Python
// operators, torch.ops.unit_scaling._index_check_policy(), _set_index_check_policy(name) and
// _cuda_backend_compiled(), which python/unit_scaling_cpp/_index_checks.py wraps.
#include "unit_scaling/index_check_policy.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "kernels/messages.h"

namespace unit_scaling {
namespace {

constexpr const char* kVariable = "UNIT_SCALING_INDEX_CHECKS";

std::string prefix() { return kernels::message_prefix(kernels::Subject::kIndexCheckPolicy); }

std::atomic<IndexCheckPolicy> policy{IndexCheckPolicy::kDeviceAssert};
std::once_flag environment_read;

// The environment decides the initial policy, once; set_index_check_policy reads it first too,
// so that a later first query cannot overwrite an explicit setting.
void read_environment_once() {
  std::call_once(environment_read, [] {
    const char* value = std::getenv(kVariable);
    if (value == nullptr || *value == '\0') return;
    try {
      policy.store(parse_index_check_policy(value));
    } catch (const c10::ValueError&) {
      TORCH_CHECK_VALUE(false, prefix(), "environment variable ", kVariable, "='", value,
                        "' must be 'device_assert' or 'raise'");
    }
  });
}

}  // namespace

IndexCheckPolicy index_check_policy() {
  read_environment_once();
  return policy.load();
}

void set_index_check_policy(IndexCheckPolicy new_policy) {
  read_environment_once();
  policy.store(new_policy);
}

std::string index_check_policy_name(IndexCheckPolicy value) {
  return value == IndexCheckPolicy::kRaise ? "raise" : "device_assert";
}

IndexCheckPolicy parse_index_check_policy(const std::string& name) {
  if (name == "device_assert") return IndexCheckPolicy::kDeviceAssert;
  if (name == "raise") return IndexCheckPolicy::kRaise;
  TORCH_CHECK_VALUE(false, prefix(), "the policy must be 'device_assert' or 'raise', got '", name,
                    "'");
}

bool cuda_backend_compiled() {
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow("unit_scaling::embedding_lookup", "")
      .hasKernelForDispatchKey(c10::DispatchKey::CUDA);
}

IndexCheckPolicyGuard::IndexCheckPolicyGuard(IndexCheckPolicy new_policy)
    : previous_(index_check_policy()) {
  set_index_check_policy(new_policy);
}

IndexCheckPolicyGuard::~IndexCheckPolicyGuard() { set_index_check_policy(previous_); }

namespace {

std::string current_policy_name() { return index_check_policy_name(index_check_policy()); }

// Sets the policy named `name` and returns the previous one's name.
std::string set_policy_by_name(const std::string& name) {
  const IndexCheckPolicy next = parse_index_check_policy(name);
  const std::string previous = current_policy_name();
  set_index_check_policy(next);
  return previous;
}

}  // namespace
}  // namespace unit_scaling

TORCH_LIBRARY_FRAGMENT(unit_scaling, m) {
  m.def("_index_check_policy() -> str", &unit_scaling::current_policy_name);
  m.def("_set_index_check_policy(str policy) -> str", &unit_scaling::set_policy_by_name);
  m.def("_cuda_backend_compiled() -> bool", &unit_scaling::cuda_backend_compiled);
}
