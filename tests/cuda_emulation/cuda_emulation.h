// A host emulation of the part of CUDA that our kernels use, so that the CUDA kernels' own
// source (src/kernels/cuda/*.cu) is compiled by the host compiler and run in CI, where there is
// no GPU.
//
// A launch runs the blocks one after the other; inside a block every thread is a fiber on this one
// OS thread (its own stack; switched by a few instructions on x86-64, by ucontext elsewhere), so
// block- and warp-level cooperation is real:
//  - __syncthreads() waits until every thread of the block has arrived; a barrier that some
//    thread of the block never reaches (it returned, or waits at another barrier) is an error,
//    as is a deadlock;
//  - __shfl_sync / __shfl_xor_sync exchange values between the 32 lanes of a warp (full mask
//    only, blockDim.x a multiple of 32), with a warp barrier around the exchange;
//  - __shared__ arrays (UNIT_SCALING_SHARED_ARRAY) are one array per kernel instantiation,
//    shared by the block's threads (blocks run one at a time), counted against 48 KiB;
//  - atomics (atomicCAS, atomicAdd, atomicMax) are read-modify-writes that no other thread can
//    interrupt (fibers switch only at barriers and shuffles).
// Threads and blocks run in a configurable order (forward, reverse, shuffled), so a kernel whose
// result depends on scheduling shows it. Launch limits are checked (threads in [1, 1024] and at
// most the kernel's __launch_bounds__, which UNIT_SCALING_LAUNCH names; blocks in
// [1, 2^31 - 1]), every stream operation (launch, memset, sort) is counted, and blocks_for() can
// be capped so that grid-stride loops iterate more than once.
// Streams: the default stream (nullptr) runs its work at once. A side stream (an
// emulation::Stream) takes memsets only, and holds them back: their bytes hold kPoison until an
// event recorded on the side stream after them is waited for on the default stream (the join),
// which runs them then. So a join that is missing, or comes after a kernel that writes the same
// bytes, gives wrong bytes; side-stream work without a wait for an event of the default stream
// first (the fork) is an error. Event records and waits are counted apart from stream operations.
// What it cannot see (docs/DEVICES.md): the memory model across blocks, real warp scheduling and
// independent thread progress, timing, occupancy, bank conflicts, the device math library's
// ulps, and the real CUB.
#pragma once

#include <math.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <type_traits>
#include <vector>

#define UNIT_SCALING_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__ __restrict

using cudaError_t = int;
using cudaStream_t = void*;
namespace emulation {
struct Event;
}
using cudaEvent_t = emulation::Event*;
constexpr cudaError_t cudaSuccess = 0;
constexpr cudaError_t cudaErrorInvalidValue = 1;

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};

namespace emulation {
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};
}  // namespace emulation

// The built-in indices; threadIdx is set by the block's scheduler before it resumes a fiber.
inline thread_local emulation::Dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emulation {

enum class Order { kForward, kReverse, kShuffled };

// Settings of the emulated device, changed by the tests (Config::scoped restores them).
struct Config {
  Order order = Order::kForward;  // of the threads in a block and of the blocks in a grid
  uint64_t seed = 1;              // for kShuffled
  unsigned block_cap = 65536;     // the cap of launch.cuh's blocks_for()
  // backward.cu passes these to its planner (backward_plan.h's PlanOverrides):
  bool wide_keys = false;   // 64-bit keys even where 32 bits would do
  bool large_sort = false;  // the device radix sort path even for small N
  size_t parts_budget = 0;  // bytes of window slots per column slice (0: the planner's own)
  bool count_only = false;  // count stream operations, run nothing
  // launch.cuh's narrow_items() limit: the most items a grid-stride loop counts in 32 bits.
  int64_t narrow_items = int64_t{1} << 31;
};
inline Config config;

// Stream operations enqueued since the last reset (kernel launches, memsets, sort calls).
inline int64_t stream_operations = 0;
// Event records and waits since the last reset.
inline int64_t event_operations = 0;
// The last kernel launched (its address): tests tell instantiations apart.
inline const void* last_kernel = nullptr;

// A side stream (cudaStream_t is its address); see the header comment.
struct Stream {
  std::vector<std::function<void()>> held;  // memsets since the last record
  bool forked = false;                      // waited for the default stream since its last join
};
// What an event records: on a side stream, the memsets held until then (run at the join).
struct Event {
  bool recorded = false;
  Stream* side = nullptr;  // nullptr: recorded on the default stream
  std::vector<std::function<void()>> held;
};
// What a side-stream memset writes until its join.
constexpr unsigned char kPoison = 0x7F;

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "cuda emulation: %s\n", what);
  std::abort();
}

constexpr unsigned kWarp = 32;
constexpr size_t kStaticSharedLimit = 48 * 1024;
constexpr size_t kStackBytes = 256 * 1024;

// A fiber's saved context and the switch between two. On x86-64 the switch saves the
// callee-saved registers, MXCSR and the x87 control word on the current stack and moves to the
// other stack: a few instructions. Elsewhere, and under a sanitizer (which must see stack
// switches), ucontext, whose swapcontext also saves the signal mask: a system call per switch,
// the emulation's main cost there.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNIT_SCALING_EMULATION_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNIT_SCALING_EMULATION_SANITIZED 1
#endif
#if defined(__x86_64__) && !defined(UNIT_SCALING_EMULATION_SANITIZED)
#define UNIT_SCALING_EMULATION_STACK_SWITCH 1
#endif

struct Context {
#ifdef UNIT_SCALING_EMULATION_STACK_SWITCH
  void* stack_pointer = nullptr;
#else
  ucontext_t context;
#endif
};

#ifdef UNIT_SCALING_EMULATION_STACK_SWITCH
// Saves this context's registers on its stack and the stack pointer in *from; resumes `to`.
[[gnu::naked, gnu::noinline]] inline void switch_stacks(void** /*from*/, void* /*to*/) {
  asm("pushq %rbp\n pushq %rbx\n pushq %r12\n pushq %r13\n pushq %r14\n pushq %r15\n"
      "subq $8, %rsp\n stmxcsr (%rsp)\n fnstcw 4(%rsp)\n"
      "movq %rsp, (%rdi)\n movq %rsi, %rsp\n"
      "ldmxcsr (%rsp)\n fldcw 4(%rsp)\n addq $8, %rsp\n"
      "popq %r15\n popq %r14\n popq %r13\n popq %r12\n popq %rbx\n popq %rbp\n ret\n");
}
#endif

// Makes `context` start entry() (which never returns) on `stack` when switched to.
inline void prepare(Context& context, std::vector<char>& stack, void (*entry)()) {
#ifdef UNIT_SCALING_EMULATION_STACK_SWITCH
  const uintptr_t top = (reinterpret_cast<uintptr_t>(stack.data()) + stack.size()) & ~uintptr_t{15};
  auto* frame = reinterpret_cast<uint64_t*>(top);
  *--frame = 0;                                  // entry's return address: none
  *--frame = reinterpret_cast<uint64_t>(entry);  // where switch_stacks returns to
  for (int i = 0; i < 6; ++i) *--frame = 0;      // rbp, rbx, r12-r15
  *--frame = uint64_t{0x037F} << 32 | 0x1F80;    // the default x87 control word and MXCSR
  context.stack_pointer = frame;
#else
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack.data();
  context.context.uc_stack.ss_size = stack.size();
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
#endif
}

inline void switch_context(Context& from, Context& to) {
#ifdef UNIT_SCALING_EMULATION_STACK_SWITCH
  switch_stacks(&from.stack_pointer, to.stack_pointer);
#else
  swapcontext(&from.context, &to.context);
#endif
}

// One block's threads as fibers.
class Block {
 public:
  struct Fiber {
    Context context;
    std::vector<char> stack;
    unsigned thread = 0;
    bool done = false;
    int waiting = 0;  // 0: runnable, 1: block barrier, 2: warp barrier
  };

  static Block& current() { return *current_block(); }
  static Block*& current_block() {
    static Block* block = nullptr;
    return block;
  }

  // Runs body() for every thread of a block of `threads` threads.
  template <typename Body>
  void run(unsigned block, unsigned threads, const std::vector<unsigned>& order, Body& body);

  void sync_block();
  void sync_warp();
  // Stores a lane's 8-byte value for the exchange of its warp, returns the value of `source`.
  uint64_t exchange(uint64_t value, unsigned source);
  void note_shared(const void* array, size_t bytes);

 private:
  // A fiber's start: the body, then the checks at its end, then back to the scheduler for good.
  template <typename Body>
  static void entry();
  void yield();
  Fiber& self() { return fibers_[running_]; }

  Context scheduler_;
  std::vector<Fiber> fibers_;
  unsigned threads_ = 0;
  unsigned finished_ = 0;  // threads that returned
  unsigned running_ = 0;
  unsigned block_arrived_ = 0;
  std::vector<unsigned> warp_arrived_;
  std::vector<uint64_t> lane_values_;
  std::vector<const void*> shared_arrays_;
  size_t shared_bytes_ = 0;
  void* body_ = nullptr;
};

inline Block& block_storage() {
  static Block block;
  return block;
}

template <typename Body>
void Block::entry() {
  Block& block = current();
  (*static_cast<Body*>(block.body_))();
  block.self().done = true;
  ++block.finished_;
  if (block.block_arrived_ > 0) fail("__syncthreads() not reached by every thread of the block");
  if (!block.warp_arrived_.empty() && block.warp_arrived_[block.running_ / kWarp] > 0) {
    fail("a warp operation not reached by every lane of the warp");
  }
  switch_context(block.self().context, block.scheduler_);
  fail("a returned thread resumed");
}

inline void Block::yield() { switch_context(self().context, scheduler_); }

template <typename Body>
void Block::run(unsigned block, unsigned threads, const std::vector<unsigned>& order, Body& body) {
  (void)block;
  threads_ = threads;
  finished_ = 0;
  // Fibers never move (a ucontext_t points into itself): room for the largest block up front.
  if (fibers_.capacity() < 1024) fibers_.reserve(1024);
  if (fibers_.size() < threads) fibers_.resize(threads);
  block_arrived_ = 0;
  warp_arrived_.assign((threads + kWarp - 1) / kWarp, 0);
  lane_values_.assign(threads, 0);
  shared_arrays_.clear();
  shared_bytes_ = 0;
  body_ = &body;
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& fiber = fibers_[t];
    fiber.thread = t;
    fiber.done = false;
    fiber.waiting = 0;
    if (fiber.stack.empty()) fiber.stack.resize(kStackBytes);  // later blocks reuse the stack
    prepare(fiber.context, fiber.stack, &entry<Body>);
  }
  for (;;) {
    bool progress = false;
    bool all_done = true;
    for (unsigned t : order) {
      Fiber& fiber = fibers_[t];
      if (fiber.done) continue;
      all_done = false;
      if (fiber.waiting != 0) continue;
      running_ = t;
      threadIdx.x = t;
      switch_context(scheduler_, fiber.context);
      progress = true;
    }
    if (all_done) break;
    if (!progress) fail("deadlock: every live thread waits at a barrier that cannot complete");
  }
  current_block() = nullptr;
}

inline void Block::sync_block() {
  if (finished_ > 0) fail("__syncthreads() after some thread of the block returned");
  self().waiting = 1;
  if (++block_arrived_ == threads_) {
    block_arrived_ = 0;
    for (unsigned t = 0; t < threads_; ++t) fibers_[t].waiting = 0;
    return;
  }
  const unsigned me = running_;
  yield();
  running_ = me;
}

inline void Block::sync_warp() {
  if (threads_ % kWarp != 0) fail("warp operation in a block that is not whole warps");
  const unsigned warp = running_ / kWarp;
  for (unsigned l = 0; l < kWarp; ++l) {
    if (fibers_[warp * kWarp + l].done) fail("warp operation after a lane of the warp returned");
  }
  self().waiting = 2;
  if (++warp_arrived_[warp] == kWarp) {
    warp_arrived_[warp] = 0;
    for (unsigned l = 0; l < kWarp; ++l) fibers_[warp * kWarp + l].waiting = 0;
    return;
  }
  const unsigned me = running_;
  yield();
  running_ = me;
}

inline uint64_t Block::exchange(uint64_t value, unsigned source) {
  const unsigned me = running_;
  const unsigned warp = me / kWarp;
  lane_values_[me] = value;
  sync_warp();
  const uint64_t result = lane_values_[warp * kWarp + source % kWarp];
  sync_warp();  // nobody overwrites its value before every lane has read
  return result;
}

inline void Block::note_shared(const void* array, size_t bytes) {
  if (std::find(shared_arrays_.begin(), shared_arrays_.end(), array) != shared_arrays_.end()) {
    return;
  }
  shared_arrays_.push_back(array);
  shared_bytes_ += bytes;
  if (shared_bytes_ > kStaticSharedLimit) fail("static shared memory over 48 KiB per block");
}

// A permutation of [0, n) in the configured order.
inline std::vector<unsigned> ordered(unsigned n, uint64_t salt) {
  std::vector<unsigned> order(n);
  std::iota(order.begin(), order.end(), 0u);
  if (config.order == Order::kReverse) std::reverse(order.begin(), order.end());
  if (config.order == Order::kShuffled) {
    std::mt19937_64 rng(config.seed * 1000003u + salt);
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

}  // namespace emulation

inline void __syncthreads() { emulation::Block::current().sync_block(); }

template <typename T>
T __shfl_sync(unsigned mask, T value, int source) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  if (mask != 0xFFFFFFFFu) emulation::fail("only full-warp shuffles are emulated");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = emulation::Block::current().exchange(bits, static_cast<unsigned>(source));
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask) {
  return __shfl_sync(mask, value, static_cast<int>(threadIdx.x % 32) ^ lane_mask);
}

inline int atomicCAS(int* address, int compare, int value) {
  const int old = *address;
  if (old == compare) *address = value;
  return old;
}
template <typename T>
T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
inline unsigned long long atomicMax(unsigned long long* address, unsigned long long value) {
  const unsigned long long old = *address;
  if (value > old) *address = value;
  return old;
}

inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max(int64_t a, int64_t b) { return a > b ? a : b; }

inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* target, int value, size_t bytes, cudaStream_t stream) {
  if (target == nullptr || bytes == 0) emulation::fail("cudaMemsetAsync of nothing");
  ++emulation::stream_operations;
  if (stream == nullptr) {
    if (!emulation::config.count_only) std::memset(target, value, bytes);
    return cudaSuccess;
  }
  auto& side = *static_cast<emulation::Stream*>(stream);
  if (!side.forked) emulation::fail("side-stream work without a wait for the default stream");
  if (!emulation::config.count_only) {
    std::memset(target, emulation::kPoison, bytes);
    side.held.push_back([=] { std::memset(target, value, bytes); });
  }
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  ++emulation::event_operations;
  event->recorded = true;
  event->side = static_cast<emulation::Stream*>(stream);
  event->held.clear();
  if (event->side != nullptr) event->held.swap(event->side->held);
  return cudaSuccess;
}
inline cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  ++emulation::event_operations;
  if (!event->recorded || flags != 0) emulation::fail("a wait for an event never recorded");
  if (stream != nullptr) {  // the fork
    if (event->side != nullptr) emulation::fail("a side stream waits for another side stream");
    static_cast<emulation::Stream*>(stream)->forked = true;
    return cudaSuccess;
  }
  if (event->side != nullptr) {  // the join: the side stream's work so far happens now
    for (const auto& work : event->held) work();
    event->held.clear();
    event->side->forked = false;
  }
  return cudaSuccess;
}

namespace emulation {

// Runs kernel(args...) for every (block, thread) of a 1-D grid; `bound`: the kernel's
// __launch_bounds__.
template <typename Kernel>
auto launch(unsigned blocks, int threads, int bound, cudaStream_t stream, Kernel kernel) {
  return [=](auto... args) {
    static_assert((sizeof(args) + ... + 0) <= 4096, "a launch's parameters exceed 4 KiB");
    if (threads < 1 || threads > 1024) fail("threads per block outside [1, 1024]");
    if (bound < 1 || bound > 1024) fail("__launch_bounds__ outside [1, 1024]");
    if (threads > bound) fail("more threads per block than the kernel's __launch_bounds__");
    if (blocks < 1 || blocks > 0x7FFFFFFFu) fail("blocks outside [1, 2^31 - 1]");
    if (stream != nullptr) fail("kernel launches on a side stream are not emulated");
    ++stream_operations;
    last_kernel = reinterpret_cast<const void*>(kernel);
    if (config.count_only) return;
    gridDim.x = blocks;
    blockDim.x = static_cast<unsigned>(threads);
    auto body = [&] { kernel(args...); };
    const std::vector<unsigned> thread_order = ordered(static_cast<unsigned>(threads), 0);
    for (unsigned b : ordered(blocks, 1)) {
      blockIdx.x = b;
      Block& block = block_storage();
      Block::current_block() = &block;
      block.run(b, static_cast<unsigned>(threads), thread_order, body);
    }
  };
}

}  // namespace emulation

#define UNIT_SCALING_LAUNCH(blocks, threads, bound, stream, ...) \
  ::emulation::launch(blocks, threads, bound, stream, &__VA_ARGS__)

// A block's static shared array: one per kernel instantiation (blocks run one at a time).
#define UNIT_SCALING_SHARED_ARRAY(type, name, count) \
  static type name[count];                           \
  ::emulation::Block::current().note_shared(name, sizeof(name))

// blocks_for()'s cap (launch.cuh), so that tests can force grid-stride loops to iterate.
#define UNIT_SCALING_BLOCK_CAP (::emulation::config.block_cap)
// narrow_items()'s limit (launch.cuh), so that tests cross it at small sizes.
#define UNIT_SCALING_NARROW_ITEMS (::emulation::config.narrow_items)

// CUB's stable radix sort of (key, value) pairs over key bits [begin_bit, end_bit), as a host
// stable sort (the real CUB is device code). Counts the stream operations of CUB's onesweep
// sort (backward_plan.h's radix_sort_operations) and asks for a real, non-empty temporary storage.
namespace cub {
struct DeviceRadixSort {
  template <typename Key, typename Value, typename NumItems>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const Key* keys_in, Key* keys_out,
                               const Value* values_in, Value* values_out, NumItems count,
                               int begin_bit, int end_bit, cudaStream_t = nullptr) {
    const int passes = (end_bit - begin_bit + 7) / 8;
    if (temp == nullptr) {
      temp_bytes = 256 * (2 + static_cast<size_t>(passes));  // histograms and look-back states
      return cudaSuccess;
    }
    if (temp_bytes < 256 * (2 + static_cast<size_t>(passes))) emulation::fail("sort temp short");
    // CUB 3.0's onesweep as captured on an H100: 4 nodes of set-up, a memset and a pass per 8 bits
    emulation::stream_operations += 4 + 2 * passes;
    if (emulation::config.count_only) return cudaSuccess;
    const auto n = static_cast<size_t>(count);
    const auto bits = [&](Key key) {
      const int width = end_bit - begin_bit;
      const Key shifted = static_cast<Key>(key >> begin_bit);
      return width >= static_cast<int>(8 * sizeof(Key))
                 ? shifted
                 : static_cast<Key>(shifted & ((Key{1} << width) - 1));
    };
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return bits(keys_in[a]) < bits(keys_in[b]); });
    for (size_t i = 0; i < n; ++i) {
      keys_out[i] = keys_in[order[i]];
      values_out[i] = values_in[order[i]];
    }
    return cudaSuccess;
  }
};
}  // namespace cub
