// How the index values of CUDA tensors are checked: one explicit, process-wide setting.
//
// It applies to builds with the CUDA backend (-DUNIT_SCALING_CUDA=ON; cuda_backend_compiled()
// says whether this library is one). The default build runs CUDA tensors on the ATen fallback,
// which reads one status word back and raises c10::IndexError under either policy. CPU tensors
// always raise c10::IndexError for a bad index (the check is free there). In the CUDA backend a
// precise host-side error costs a device-to-host read, i.e. a host synchronisation per call,
// so it is an opt-in for debugging:
//   kDeviceAssert (default)  nothing is read back, anywhere (forward, backward, max_norm; eager,
//       compiled and captured alike). A bad index stops the device with an assertion whose
//       message names the value, its flat position and the row count; max_norm writes no row.
//       As after ATen's own device assertions, the CUDA context is unusable afterwards.
//   kRaise  each operator that reads indices reads one status word back and throws
//       c10::IndexError (Python IndexError) naming the value and its position; the weight stays
//       bit-identical and its version unchanged. While the stream captures a CUDA graph nothing
//       can be read back, so kDeviceAssert applies there.
// The initial policy comes from the environment variable UNIT_SCALING_INDEX_CHECKS
// ("device_assert" or "raise"), read once, at the first use; unset means kDeviceAssert.
#pragma once

#include <string>

#include "unit_scaling/export.h"

namespace unit_scaling {

enum class IndexCheckPolicy { kDeviceAssert, kRaise };

// The policy in force (the environment's, until set_index_check_policy is called). A value of
// UNIT_SCALING_INDEX_CHECKS other than the two names is a c10::ValueError.
UNIT_SCALING_API IndexCheckPolicy index_check_policy();

// Sets the policy for the whole process (all threads), from the next operator call on.
UNIT_SCALING_API void set_index_check_policy(IndexCheckPolicy policy);

// "device_assert" / "raise", and back (c10::ValueError naming any other string).
UNIT_SCALING_API std::string index_check_policy_name(IndexCheckPolicy policy);
UNIT_SCALING_API IndexCheckPolicy parse_index_check_policy(const std::string& name);

// Whether this library was built with the CUDA backend (-DUNIT_SCALING_CUDA=ON), the only one
// the policy changes: CUDA tensors then run our kernels, else the ATen fallback.
UNIT_SCALING_API bool cuda_backend_compiled();

// Sets a policy for its lifetime and then restores the one before:
//   { unit_scaling::IndexCheckPolicyGuard raise(unit_scaling::IndexCheckPolicy::kRaise); ... }
// Process-wide like the setting it changes: guards on several threads at once do not nest.
class UNIT_SCALING_API IndexCheckPolicyGuard {
 public:
  explicit IndexCheckPolicyGuard(IndexCheckPolicy policy);
  ~IndexCheckPolicyGuard();
  IndexCheckPolicyGuard(const IndexCheckPolicyGuard&) = delete;
  IndexCheckPolicyGuard& operator=(const IndexCheckPolicyGuard&) = delete;

 private:
  IndexCheckPolicy previous_;
};

}  // namespace unit_scaling
