// Output tensors backed by transparent huge pages.
//
// The op's outputs are fresh and often large (the V x D weight gradient reaches 1 GiB). With
// 4 KiB pages, first-touch page faults cost more than the arithmetic: writing a fresh 150 MB
// gradient takes ~38k faults, about 3x the time of the writes. glibc serves blocks of 32 MiB
// and more (its largest mmap threshold) with fresh mmap-ed pages on every call, so those pay
// the faults every step. Memory of at least kHugePageMinBytes is therefore allocated 2 MiB-
// aligned and advised MADV_HUGEPAGE, so the kernel maps (and zero-fills) it 2 MiB at a time.
// Smaller blocks go to the default allocator, which usually recycles already-mapped memory.
// Where THP is disabled the advice is a no-op and the memory behaves as usual.
#pragma once

#include <ATen/core/Tensor.h>

namespace unit_scaling::detail {

constexpr size_t kHugePageBytes = size_t{2} << 20;
constexpr size_t kHugePageMinBytes = size_t{32} << 20;

// Like at::empty(sizes, options) (contiguous, uninitialised) for CPU tensors; large ones are
// huge-page backed. Non-CPU options go to at::empty unchanged.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace unit_scaling::detail
