#include "huge_page_allocation.h"

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "kernels/messages.h"

namespace unit_scaling::detail {
namespace {

class HugePageAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kHugePageMinBytes) return c10::GetCPUAllocator()->allocate(bytes);
    const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    void* data = std::aligned_alloc(kHugePageBytes, rounded);
    TORCH_CHECK(data != nullptr, kernels::message_prefix(), "out of memory allocating ", bytes,
                " bytes");
#ifdef MADV_HUGEPAGE
    madvise(data, rounded, MADV_HUGEPAGE);  // advice only: failure leaves 4 KiB pages
#endif
    return {data, data, &std::free, c10::Device(c10::kCPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
};

HugePageAllocator& huge_page_allocator() {
  static HugePageAllocator allocator;
  return allocator;
}

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (options.device().type() != c10::kCPU) return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &huge_page_allocator(),
                                   c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   options.dtype().toScalarType(), c10::MemoryFormat::Contiguous);
}

}  // namespace unit_scaling::detail
