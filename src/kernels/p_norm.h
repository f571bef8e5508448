// The p-norm and the rescale of the max_norm renorm, shared by the CPU kernel (renorm.cpp) and
// the CUDA kernel (cuda/renorm.cu), so that both compute the same bits.
//
// Math, for a row x and p = norm_type, accumulated in Acc (float32; float64 for double tables):
//   term_c = |x_c|^p            (p = 1: |x_c|; p = 2: |x_c|^2; p = inf: |x_c|)
//   total  = sum_c term_c       in ascending column order, from zero
//            max_c term_c       for p = inf; a NaN wins and stays (as in at::norm)
//   norm   = total^(1/p)        (p = 1: total; p = 2: sqrt(total); p = inf: total)
//   a row with norm > max_norm is multiplied by max_norm / (norm + 1e-7): computed in double,
//   rounded once to Acc.
// The host uses std::abs / std::pow / std::sqrt / std::isnan; the device its own fabsf / powf /
// sqrtf / isnan (and the double versions). The two powers may differ in the last bit, so only
// p = 1, 2 and inf are bitwise equal across the two devices; the emulation of the CUDA kernels
// on the host (tests/cuda_emulation) runs the host functions and is bitwise equal for every p.
#pragma once

#include <cmath>

#include "kernels/host_device.h"

namespace unit_scaling::kernels::p_norm {

// One function per operation and accumulation type, each choosing the device's type-named
// intrinsic (fabsf for float, fabs for double, ...) or the host's std:: overload: the shapes
// repeat on purpose, so that no overload resolution decides which math the device runs.

UNIT_SCALING_HOST_DEVICE inline float absolute(float a) {
#ifdef __CUDA_ARCH__
  return fabsf(a);
#else
  return std::abs(a);
#endif
}
UNIT_SCALING_HOST_DEVICE inline double absolute(double a) {
#ifdef __CUDA_ARCH__
  return fabs(a);
#else
  return std::abs(a);
#endif
}
UNIT_SCALING_HOST_DEVICE inline float power(float a, float p) {
#ifdef __CUDA_ARCH__
  return powf(a, p);
#else
  return std::pow(a, p);
#endif
}
UNIT_SCALING_HOST_DEVICE inline double power(double a, double p) {
#ifdef __CUDA_ARCH__
  return pow(a, p);
#else
  return std::pow(a, p);
#endif
}
UNIT_SCALING_HOST_DEVICE inline float square_root(float a) {
#ifdef __CUDA_ARCH__
  return sqrtf(a);
#else
  return std::sqrt(a);
#endif
}
UNIT_SCALING_HOST_DEVICE inline double square_root(double a) {
#ifdef __CUDA_ARCH__
  return sqrt(a);
#else
  return std::sqrt(a);
#endif
}
template <typename Acc>
UNIT_SCALING_HOST_DEVICE inline bool is_nan(Acc a) {
#ifdef __CUDA_ARCH__
  return isnan(a);
#else
  return std::isnan(a);
#endif
}

// term_c from a = |x_c|; acc_p is p rounded to Acc.
template <typename Acc>
UNIT_SCALING_HOST_DEVICE inline Acc term(Acc a, bool is_inf, double p, Acc acc_p) {
  return is_inf ? a : p == 1.0 ? a : p == 2.0 ? a * a : power(a, acc_p);
}

// The running total after one more term: the sum, or for p = inf the max in which a NaN wins
// (a NaN term replaces the total, and a NaN total stays).
template <typename Acc>
UNIT_SCALING_HOST_DEVICE inline Acc add(Acc total, Acc next, bool is_inf) {
  if (!is_inf) return total + next;
  return !(next <= total) && !is_nan(total) ? next : total;
}

// The norm from the total of all the row's terms.
template <typename Acc>
UNIT_SCALING_HOST_DEVICE inline Acc root(Acc total, bool is_inf, double p) {
  if (is_inf || p == 1.0) return total;
  if (p == 2.0) return square_root(total);
  return power(total, static_cast<Acc>(1.0 / p));
}

// Whether a row of this norm is rescaled (never for a NaN norm), and by what factor.
UNIT_SCALING_HOST_DEVICE inline bool exceeds(double norm, double max_norm) {
  return norm > max_norm;
}
template <typename Acc>
UNIT_SCALING_HOST_DEVICE inline Acc rescale_factor(double norm, double max_norm) {
  return static_cast<Acc>(max_norm / (norm + 1e-7));
}

}  // namespace unit_scaling::kernels::p_norm
