# The CUDA backend: kernels in src/kernels/cuda (nvcc) registered under the CUDA dispatch key by
# src/backends/cuda.cpp. Option UNIT_SCALING_CUDA:
#   OFF  (default until the kernels have passed on a GPU) CUDA tensors take the ATen fallback
#   AUTO build the backend when nvcc and a CUDA build of torch are found
#   ON   build it, and fail when either is missing (CI, so that a compile error cannot land)
# Sets UNIT_SCALING_WITH_CUDA. Architectures: UNIT_SCALING_CUDA_ARCHITECTURES (sm_80 and sm_90
# code, plus PTX for newer GPUs). ptxas treats a register spill as an error.
set(UNIT_SCALING_CUDA OFF CACHE STRING "Build the CUDA backend: OFF, AUTO or ON")
set_property(CACHE UNIT_SCALING_CUDA PROPERTY STRINGS OFF AUTO ON)
set(UNIT_SCALING_CUDA_ARCHITECTURES "80-real;90" CACHE STRING "CUDA architectures we ship")
set(UNIT_SCALING_WITH_CUDA OFF)
if(UNIT_SCALING_CUDA STREQUAL "OFF")
  return()
endif()

set(_us_cuda_missing)
if(NOT EXISTS "${UNIT_SCALING_TORCH_ROOT}/lib/libtorch_cuda.so")
  list(APPEND _us_cuda_missing "a CUDA build of torch (no libtorch_cuda.so under ${UNIT_SCALING_TORCH_ROOT}/lib)")
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  list(APPEND _us_cuda_missing "nvcc (put it on PATH or set CMAKE_CUDA_COMPILER)")
endif()
if(_us_cuda_missing)
  if(UNIT_SCALING_CUDA STREQUAL "ON")
    message(FATAL_ERROR "UNIT_SCALING_CUDA=ON but missing: ${_us_cuda_missing}")
  endif()
  message(STATUS "unit_scaling: no CUDA backend (missing: ${_us_cuda_missing})")
  return()
endif()

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES ${UNIT_SCALING_CUDA_ARCHITECTURES})
endif()
if(CCACHE_PROGRAM AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${CCACHE_PROGRAM}")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

# The toolkit must be the CUDA major release torch was built with (kernels and torch share one
# runtime, the wheel's libcudart).
file(STRINGS "${UNIT_SCALING_TORCH_ROOT}/version.py" _us_torch_cuda REGEX "^cuda")
string(REGEX MATCH "'([0-9]+)\\." _us_match "${_us_torch_cuda}")
set(_us_torch_cuda_major "${CMAKE_MATCH_1}")
string(REGEX MATCH "^[0-9]+" _us_nvcc_major "${CMAKE_CUDA_COMPILER_VERSION}")
if(NOT _us_torch_cuda_major STREQUAL _us_nvcc_major)
  message(FATAL_ERROR "nvcc ${CMAKE_CUDA_COMPILER_VERSION} does not match torch's CUDA "
                      "${_us_torch_cuda_major}.x: use the matching toolkit or UNIT_SCALING_CUDA=OFF")
endif()

include(UnitScalingTorchCuda)
set(UNIT_SCALING_WITH_CUDA ON)
