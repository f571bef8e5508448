# Defines the imported target UnitScaling::torch_cuda: LibTorch's CUDA libraries from the same
# wheel as UnitScaling::torch (include UnitScalingTorch.cmake first), and the wheel's shared
# CUDA runtime -- the one libtorch_cuda itself loads, never a second (static) copy.
# libtorch_cuda is linked even though nothing references it directly: loading it registers
# ATen's CUDA kernels, without which a C++ program has no CUDA tensors (as TorchConfig does).
# Installed with the package: a consumer of a CUDA-enabled build gets the same target.
include_guard(GLOBAL)

set(_us_cuda_libs)
foreach(_name torch_cuda c10_cuda)
  find_library(UNIT_SCALING_TORCH_LIB_${_name} ${_name}
    PATHS "${UNIT_SCALING_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
  if(NOT UNIT_SCALING_TORCH_LIB_${_name})
    message(FATAL_ERROR "lib${_name} not found under ${UNIT_SCALING_TORCH_ROOT}/lib")
  endif()
endforeach()

# The wheel's runtime: site-packages/nvidia/cu<major>/lib (CUDA 13 wheels) or
# site-packages/nvidia/cuda_runtime/lib (CUDA 12 wheels).
file(GLOB _us_cudart_candidates
  "${UNIT_SCALING_TORCH_ROOT}/../nvidia/cu*/lib/libcudart.so.*"
  "${UNIT_SCALING_TORCH_ROOT}/../nvidia/cuda_runtime/lib/libcudart.so.*")
list(FILTER _us_cudart_candidates EXCLUDE REGEX "\\.so\\.[0-9]+\\.[0-9]")
if(_us_cudart_candidates)
  list(GET _us_cudart_candidates 0 UNIT_SCALING_CUDART)
  get_filename_component(UNIT_SCALING_CUDART_DIR "${UNIT_SCALING_CUDART}" DIRECTORY)
else()
  # A LibTorch without the pip layout: the toolkit's shared runtime.
  find_package(CUDAToolkit REQUIRED)
  get_target_property(UNIT_SCALING_CUDART CUDA::cudart IMPORTED_LOCATION)
  get_filename_component(UNIT_SCALING_CUDART_DIR "${UNIT_SCALING_CUDART}" DIRECTORY)
endif()

if(NOT TARGET UnitScaling::torch_cuda)
  add_library(UnitScaling::torch_cuda INTERFACE IMPORTED)
  set_target_properties(UnitScaling::torch_cuda PROPERTIES
    INTERFACE_LINK_LIBRARIES
      "-Wl,--no-as-needed,${UNIT_SCALING_TORCH_LIB_torch_cuda},--as-needed;${UNIT_SCALING_TORCH_LIB_c10_cuda};${UNIT_SCALING_CUDART};UnitScaling::torch")
endif()
