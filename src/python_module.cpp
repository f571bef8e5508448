// The Python extension unit_scaling_cpp._C: the functional's fast path from Python.
//
// torch.ops parses a call's Python arguments against the operator's schema on every call; at
// decode sizes (a few tokens) that parsing is most of the call. _C.embedding takes the
// functional's nine arguments positionally and, when they are the plain types a call usually
// has, builds the options block itself (call_options.h) and calls the operator through the
// dispatcher, as torch's own Python bindings do for torch.embedding (the GIL released). It
// decides nothing: the checks are the operators' own. For anything else it returns
// NotImplemented and the Python functional takes its usual route (functional.py), which raises
// Python's TypeError for a wrongly typed argument and serves tensor subclasses, torch function
// and dispatch modes (FakeTensor, tracing, ONNX export) and torch.func transforms.
#include <ATen/PythonTorchFunctionTLS.h>
#include <Python.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>

#include "call_options.h"
#include "operators.h"

namespace unit_scaling::detail {
namespace {

// A plain int that fits int64, or nothing.
std::optional<int64_t> plain_int(PyObject* value) {
  if (!PyLong_CheckExact(value)) return std::nullopt;
  int overflow = 0;
  const long long result = PyLong_AsLongLongAndOverflow(value, &overflow);
  if (overflow != 0 || (result == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return std::nullopt;
  }
  return result;
}

// A plain float, or a plain int that fits int64 (the schema's float), or nothing.
std::optional<double> plain_real(PyObject* value) {
  if (PyFloat_CheckExact(value)) return PyFloat_AS_DOUBLE(value);
  if (const auto integer = plain_int(value)) return static_cast<double>(*integer);
  return std::nullopt;
}

// The options block from the functional's arguments 2..8, when each has a plain type.
std::optional<CallOptions> plain_options(PyObject* const* args) {
  CallOptions options;
  if (args[0] != Py_None) {
    const auto padding_idx = plain_int(args[0]);
    if (!padding_idx) return std::nullopt;
    options.padding_idx = c10::SymInt(*padding_idx);
  }
  if (args[1] != Py_None) {
    options.max_norm = plain_real(args[1]);
    if (!options.max_norm) return std::nullopt;
  }
  const auto norm_type = plain_real(args[2]);
  if (!norm_type) return std::nullopt;
  options.norm_type = *norm_type;
  if (!PyBool_Check(args[3]) || !PyBool_Check(args[4])) return std::nullopt;
  options.scale_grad_by_freq = args[3] == Py_True;
  options.sparse = args[4] == Py_True;
  const auto token_multiplier = plain_real(args[5]);
  if (!token_multiplier) return std::nullopt;
  options.token_multiplier = *token_multiplier;
  if (args[6] != Py_None) {
    const auto num_tokens = plain_int(args[6]);
    if (!num_tokens) return std::nullopt;
    options.num_tokens = c10::SymInt(*num_tokens);
  }
  return options;
}

// Whether the call may skip the Python route: plain tensors (torch.Tensor or nn.Parameter, no
// __torch_function__ of their own), no torch function or dispatch mode, no torch.func transform.
bool plain_call(PyObject* input, PyObject* weight) {
  return THPVariable_CheckExact(input) && THPVariable_CheckExact(weight) &&
         at::impl::PythonTorchFunctionTLS::stack_len() == 0 &&
         c10::impl::TorchDispatchModeTLS::stack_len() == 0 &&
         // functorch marks an active transform by this key in the thread's included set
         !c10::impl::tls_is_dispatch_key_included(c10::DispatchKey::FuncTorchDynamicLayerFrontMode);
}

// _C.embedding(input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
//              token_multiplier, num_tokens) -> Tensor, or NotImplemented.
PyObject* embedding(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs != 9) {
    PyErr_SetString(PyExc_TypeError, "_C.embedding takes 9 positional arguments");
    return nullptr;
  }
  const std::optional<CallOptions> options = plain_options(args + 2);
  if (!options || !plain_call(args[0], args[1])) Py_RETURN_NOTIMPLEMENTED;
  const at::Tensor& input = THPVariable_Unpack(args[0]);
  const at::Tensor& weight = THPVariable_Unpack(args[1]);
  at::Tensor out;
  {
    pybind11::gil_scoped_release no_gil;
    // Without max_norm the composite `embedding` is its checks and the lookup, which checks the
    // same: call the lookup itself (one dispatch less).
    out = options->max_norm ? call_embedding(input, weight, *options)
                            : call_lookup(input, weight, *options);
  }
  return THPVariable_Wrap(std::move(out));
  END_HANDLE_TH_ERRORS
}

PyMethodDef methods[] = {
    {"embedding", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&embedding)),
     METH_FASTCALL, "The functional's fast path (unit_scaling_cpp.functional.embedding)."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT,
                      "_C",
                      "unit_scaling_cpp's fast path from Python.",
                      -1,
                      methods,
                      nullptr,
                      nullptr,
                      nullptr,
                      nullptr};

}  // namespace
}  // namespace unit_scaling::detail

PyMODINIT_FUNC PyInit__C() { return PyModule_Create(&unit_scaling::detail::module); }
