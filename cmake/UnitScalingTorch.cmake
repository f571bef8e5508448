# Defines the imported target UnitScaling::torch for the CPU parts of LibTorch.
#
# LibTorch is found through CMAKE_PREFIX_PATH, normally set to `torch.utils.cmake_prefix_path`
# of the pip wheel. By default we do NOT call find_package(Torch): the CUDA wheel's config looks
# for a matching CUDA toolkit and fails hard when the machine has none or another version. The
# CPU library only needs the wheel's headers and libtorch/libtorch_cpu/libc10, so we import those
# directly (as torch.utils.cpp_extension does). Set UNIT_SCALING_USE_TORCH_CONFIG=ON to use the
# stock TorchConfig.cmake instead (e.g. for a standalone LibTorch with a matching toolkit).
# This file is installed with the package so downstream projects get the same target.
include_guard(GLOBAL)

option(UNIT_SCALING_USE_TORCH_CONFIG "Use LibTorch's own TorchConfig.cmake" OFF)

if(UNIT_SCALING_USE_TORCH_CONFIG)
  find_package(Torch REQUIRED)
  if(NOT TARGET UnitScaling::torch)
    add_library(UnitScaling::torch INTERFACE IMPORTED)
    set_target_properties(UnitScaling::torch PROPERTIES INTERFACE_LINK_LIBRARIES "${TORCH_LIBRARIES}")
  endif()
  get_filename_component(UNIT_SCALING_TORCH_ROOT "${TORCH_INSTALL_PREFIX}" ABSOLUTE)
  return()
endif()

find_path(UNIT_SCALING_TORCH_CMAKE_DIR TorchConfig.cmake
  PATH_SUFFIXES Torch share/cmake/Torch
  HINTS ${UNIT_SCALING_TORCH_ROOT_HINT}
  DOC "Folder holding LibTorch's TorchConfig.cmake (torch.utils.cmake_prefix_path/Torch)")
if(NOT UNIT_SCALING_TORCH_CMAKE_DIR)
  # A Python build (scikit-build-core, pip) names its interpreter: ask its torch where it is.
  foreach(_us_python IN ITEMS "${Python_EXECUTABLE}" "${PYTHON_EXECUTABLE}")
    if(_us_python AND NOT UNIT_SCALING_TORCH_CMAKE_DIR)
      execute_process(
        COMMAND "${_us_python}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
        OUTPUT_VARIABLE _us_prefix OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(EXISTS "${_us_prefix}/Torch/TorchConfig.cmake")
        set(UNIT_SCALING_TORCH_CMAKE_DIR "${_us_prefix}/Torch" CACHE PATH "" FORCE)
      endif()
    endif()
  endforeach()
endif()
if(NOT UNIT_SCALING_TORCH_CMAKE_DIR)
  message(FATAL_ERROR
    "LibTorch not found. Pass -DCMAKE_PREFIX_PATH=$(python -c "
    "'import torch.utils; print(torch.utils.cmake_prefix_path)') or run scripts/setup.sh.")
endif()
get_filename_component(UNIT_SCALING_TORCH_ROOT "${UNIT_SCALING_TORCH_CMAKE_DIR}/../../.." ABSOLUTE)

set(_us_torch_libs)
foreach(_name torch torch_cpu c10)
  find_library(UNIT_SCALING_TORCH_LIB_${_name} ${_name}
    PATHS "${UNIT_SCALING_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
  if(NOT UNIT_SCALING_TORCH_LIB_${_name})
    message(FATAL_ERROR "lib${_name} not found under ${UNIT_SCALING_TORCH_ROOT}/lib")
  endif()
  list(APPEND _us_torch_libs "${UNIT_SCALING_TORCH_LIB_${_name}}")
endforeach()

# The C++ ABI must match the one LibTorch was built with; libc10 tells by its symbol names.
if(NOT DEFINED UNIT_SCALING_TORCH_CXX11_ABI)
  file(STRINGS "${UNIT_SCALING_TORCH_LIB_c10}" _us_cxx11_symbols REGEX "__cxx11" LIMIT_COUNT 1)
  if(_us_cxx11_symbols)
    set(UNIT_SCALING_TORCH_CXX11_ABI 1)
  else()
    set(UNIT_SCALING_TORCH_CXX11_ABI 0)
  endif()
  set(UNIT_SCALING_TORCH_CXX11_ABI ${UNIT_SCALING_TORCH_CXX11_ABI} CACHE STRING
    "_GLIBCXX_USE_CXX11_ABI value of the LibTorch build")
endif()

# ATen's parallel_for is a header template that expands to `#pragma omp parallel` in the
# caller's code (AT_PARALLEL_OPENMP builds, such as the wheels): without -fopenmp it silently
# runs on one thread. Compile with OpenMP and link the wheel's own libgomp so that we share
# LibTorch's thread pool (and torch::set_num_threads governs our kernels too).
file(STRINGS "${UNIT_SCALING_TORCH_ROOT}/include/ATen/Config.h" _us_parallel_openmp
  REGEX "#define AT_PARALLEL_OPENMP 1")
# (clang, used for the sanitizer/fuzzer build, has its own OpenMP ABI: it links libomp.)
set(_us_torch_compile_options)
if(_us_parallel_openmp)
  set(_us_torch_compile_options -fopenmp)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND EXISTS "${UNIT_SCALING_TORCH_ROOT}/lib/libgomp.so.1")
    list(APPEND _us_torch_libs "${UNIT_SCALING_TORCH_ROOT}/lib/libgomp.so.1")
  else()
    list(APPEND _us_torch_libs -fopenmp)
  endif()
endif()

# Newer LibTorch releases (2.15 on) require C++20 in their headers; older ones work with C++17.
# The imported target carries the standard as a compile feature, so every consumer gets it.
file(STRINGS "${UNIT_SCALING_TORCH_ROOT}/include/ATen/ATen.h" _us_needs_cxx20
  REGEX "C\\+\\+20 or later")
set(_us_torch_cxx_standard cxx_std_17)
if(_us_needs_cxx20)
  set(_us_torch_cxx_standard cxx_std_20)
endif()

if(NOT TARGET UnitScaling::torch)
  add_library(UnitScaling::torch INTERFACE IMPORTED)
  set_target_properties(UnitScaling::torch PROPERTIES
    INTERFACE_COMPILE_FEATURES ${_us_torch_cxx_standard}
    INTERFACE_INCLUDE_DIRECTORIES
      "${UNIT_SCALING_TORCH_ROOT}/include;${UNIT_SCALING_TORCH_ROOT}/include/torch/csrc/api/include"
    INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=${UNIT_SCALING_TORCH_CXX11_ABI}"
    INTERFACE_COMPILE_OPTIONS "${_us_torch_compile_options}"
    INTERFACE_LINK_LIBRARIES "${_us_torch_libs}")
endif()
set(UNIT_SCALING_TORCH_LIBRARY_DIR "${UNIT_SCALING_TORCH_ROOT}/lib")
