// Marks the functions that CPU kernels and CUDA kernels share (element formats, summation
// order): compiled for the device too when nvcc compiles a .cu file, plain inline C++ otherwise.
#pragma once

#ifdef __CUDACC__
#define UNIT_SCALING_HOST_DEVICE __host__ __device__
#else
#define UNIT_SCALING_HOST_DEVICE
#endif
