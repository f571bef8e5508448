// The CUDA kernels' own code (src/kernels/cuda), run on the host emulation of cuda_emulation.h,
// against the CPU kernels: the backward must match bit for bit (both follow
// kernels/summation_order.h) in every variant (backward_variant.h; the backward tests are
// instantiated once per variant, e.g. --gtest_filter='*/side_zero'), with the stream and event
// operations its plan states; the gather byte for byte, and bad indices must be reported at
// the first bad position. This runs in CI without a GPU; on a GPU the contract suites run the
// real kernels (tests/cpp, tests/python with the cuda backend).
#include "cuda_emulation.h"  // first: the kernels' header then sees the emulated CUDA types
// (a blank line keeps clang-format from moving it)

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/embedding_kernels_cuda.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/embedding_kernels.h"
#include "kernels/float_formats.h"

namespace unit_scaling::kernels {
namespace {

// 256-byte aligned host memory (as the CUDA caching allocator gives).
class Buffer {
 public:
  explicit Buffer(size_t bytes) : blocks_(bytes / sizeof(Block) + 1) {}
  char* data() { return blocks_.front().bytes; }
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data());
  }

 private:
  struct alignas(256) Block {
    char bytes[256];
  };
  std::vector<Block> blocks_;
};

// Writes value into element i of a table of `type`.
void store(DType type, void* data, int64_t i, double value) {
  switch (type) {
    case DType::kFloat64:
      static_cast<double*>(data)[i] = value;
      break;
    case DType::kFloat32:
      static_cast<float*>(data)[i] = static_cast<float>(value);
      break;
    case DType::kFloat16:
      static_cast<uint16_t*>(data)[i] = float_to_half(static_cast<float>(value));
      break;
    case DType::kBFloat16:
      static_cast<uint16_t*>(data)[i] = float_to_bfloat16(static_cast<float>(value));
      break;
  }
}

// Index values: uniform, Zipf(1.1)-like (heavy rows spanning many sum windows) or all one row.
enum class Spread { kUniform, kZipf, kOneRow };

std::vector<int64_t> make_indices(int64_t count, int64_t num_rows, Spread spread, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> weights(static_cast<size_t>(num_rows));
  for (int64_t r = 0; r < num_rows; ++r) weights[static_cast<size_t>(r)] = std::pow(r + 1.0, -1.1);
  std::discrete_distribution<int64_t> zipf(weights.begin(), weights.end());
  std::uniform_int_distribution<int64_t> uniform(0, num_rows - 1);
  std::vector<int64_t> indices(static_cast<size_t>(count));
  for (auto& index : indices) {
    index = spread == Spread::kUniform ? uniform(rng) : spread == Spread::kZipf ? zipf(rng) : 0;
  }
  return indices;
}

// The indices as `type` in `buffer`.
IndexArray index_array(const std::vector<int64_t>& values, IndexType type, Buffer& buffer) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (type == IndexType::kInt32) {
      buffer.as<int32_t>()[i] = static_cast<int32_t>(values[i]);
    } else {
      buffer.as<int64_t>()[i] = values[i];
    }
  }
  return {type, buffer.data(), static_cast<int64_t>(values.size())};
}

struct BackwardCase {
  DType dtype;
  IndexType index_type;
  int64_t count, num_rows, dim;
  Spread spread;
  int64_t padding_row;
  size_t misalign;  // bytes added to grad_out's address (forces the one-column path)
};

using cuda::BackwardVariant;

// A side stream and its fork and join events, as the emulation has them.
struct EmulatedSide {
  emulation::Stream stream;
  emulation::Event fork, join;
  cuda::SideStream handles() { return {&stream, &fork, &join}; }
  bool all_joined() const { return stream.held.empty() && fork.held.empty() && join.held.empty(); }
};

void expect_backward_matches_cpu(const BackwardCase& c, BackwardVariant variant) {
  SCOPED_TRACE(::testing::Message()
               << cuda::backward_variant_name(variant) << " dtype " << static_cast<int>(c.dtype)
               << " index " << static_cast<int>(c.index_type) << " N " << c.count << " V "
               << c.num_rows << " D " << c.dim << " spread " << static_cast<int>(c.spread)
               << " padding " << c.padding_row << " misalign " << c.misalign);
  const size_t bytes = static_cast<size_t>(dtype_bytes(c.dtype));
  const std::vector<int64_t> values = make_indices(c.count, c.num_rows, c.spread, 7);
  Buffer index_buffer(static_cast<size_t>(c.count) * 8);
  const IndexArray indices = index_array(values, c.index_type, index_buffer);
  Buffer grad_buffer(static_cast<size_t>(c.count * c.dim) * bytes + c.misalign);
  void* grad = grad_buffer.data() + c.misalign;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  for (int64_t i = 0; i < c.count * c.dim; ++i) store(c.dtype, grad, i, normal(rng));
  const double scale = std::sqrt(static_cast<double>(c.num_rows) / std::max<int64_t>(c.count, 1));
  const size_t out_bytes = static_cast<size_t>(c.num_rows * c.dim) * bytes;

  Buffer cpu(out_bytes);
  Buffer gpu(out_bytes);
  // One set of parameters for both kernels; only the output differs.
  const BackwardParams params{c.dtype, indices, c.num_rows, c.padding_row,
                              grad,    c.dim,   scale,      cpu.data()};
  write_scaled_gradient(params, Executor{});

  BackwardParams gpu_params = params;
  gpu_params.grad_weight = gpu.data();
  const size_t workspace_bytes = cuda::backward_workspace_bytes(gpu_params, variant);
  EXPECT_EQ(workspace_bytes, cuda::backward_workspace_bytes(gpu_params));  // one for all
  Buffer workspace(workspace_bytes);
  std::memset(gpu.data(), 0xAB, out_bytes);  // every byte must be written
  EmulatedSide side;
  emulation::stream_operations = 0;
  emulation::event_operations = 0;
  ASSERT_EQ(cuda::write_scaled_gradient(gpu_params, workspace.data(), workspace_bytes, nullptr,
                                        variant, side.handles()),
            cudaSuccess);
  EXPECT_EQ(std::memcmp(cpu.data(), gpu.data(), out_bytes), 0) << "differs from the CPU kernel";
  EXPECT_EQ(emulation::stream_operations, cuda::backward_stream_operations(gpu_params, variant));
  const bool uses_side = cuda::backward_uses_side_stream(gpu_params, variant);
  EXPECT_EQ(uses_side, cuda::uses_side_zero(variant) && c.count > 0 && c.num_rows * c.dim > 0);
  EXPECT_EQ(emulation::event_operations, uses_side ? 4 : 0);
  EXPECT_TRUE(side.all_joined()) << "side-stream work never joined";
}

// The backward tests, once per variant (the suffix of their names: /baseline, /hot_rows, ...).
class CudaBackwardEmulated : public ::testing::TestWithParam<BackwardVariant> {
 protected:
  void expect_matches_cpu(const BackwardCase& c) { expect_backward_matches_cpu(c, GetParam()); }
};

// The parameters of a backward of these shapes, without data: what the workspace size and the
// stream operation count depend on.
BackwardParams backward_shape(DType dtype, int64_t count, int64_t num_rows, int64_t dim) {
  return {dtype, {IndexType::kInt64, nullptr, count}, num_rows, -1, nullptr, dim, 1.0, nullptr};
}

// Sets the emulated device's configuration for one scope.
class ScopedConfig {
 public:
  explicit ScopedConfig(const emulation::Config& config) : saved_(emulation::config) {
    emulation::config = config;
  }
  ~ScopedConfig() { emulation::config = saved_; }

 private:
  emulation::Config saved_;
};

emulation::Config with(emulation::Order order, unsigned block_cap) {
  emulation::Config config;
  config.order = order;
  config.block_cap = block_cap;
  return config;
}

TEST_P(CudaBackwardEmulated, EqualsTheCpuKernelBitForBit) {
  for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}) {
    for (IndexType index_type : {IndexType::kInt64, IndexType::kInt32}) {
      for (Spread spread : {Spread::kUniform, Spread::kZipf, Spread::kOneRow}) {
        expect_matches_cpu({dtype, index_type, 1000, 50, 16, spread, -1, 0});
        expect_matches_cpu({dtype, index_type, 777, 300, 24, spread, 0, 0});
      }
      // Odd widths, a misaligned gradient (the one-column path), tiny and edge sizes.
      expect_matches_cpu({dtype, index_type, 500, 40, 3, Spread::kZipf, 5, 0});
      expect_matches_cpu({dtype, index_type, 500, 40, 8, Spread::kZipf, -1, 2});
      expect_matches_cpu({dtype, index_type, 1, 1, 8, Spread::kUniform, -1, 0});
      expect_matches_cpu({dtype, index_type, 64, 1, 4, Spread::kOneRow, -1, 0});
      expect_matches_cpu({dtype, index_type, 33, 7, 1, Spread::kUniform, 3, 0});
    }
  }
}

TEST_P(CudaBackwardEmulated, WithTheHeavyRowAsPaddingAndEmptyShapes) {
  // Row 0 takes most Zipf lookups; as padding they all vanish (sorted after every row).
  expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 2000, 100, 12, Spread::kZipf, 0, 0});
  expect_matches_cpu({DType::kBFloat16, IndexType::kInt32, 2000, 100, 16, Spread::kOneRow, 0, 0});
  expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 0, 10, 8, Spread::kUniform, -1, 0});
  expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 10, 10, 0, Spread::kUniform, -1, 0});
}

TEST_P(CudaBackwardEmulated, OnTinyGridsInAnyOrder) {
  // Grid-stride loops turn several times (a cap of 1-3 blocks), and threads and blocks run
  // forward, reversed and shuffled: the result must not depend on any of it.
  for (const emulation::Order order :
       {emulation::Order::kForward, emulation::Order::kReverse, emulation::Order::kShuffled}) {
    for (const unsigned cap : {1u, 2u, 3u}) {
      const ScopedConfig scoped(with(order, cap));
      SCOPED_TRACE(::testing::Message() << "order " << static_cast<int>(order) << " cap " << cap);
      expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 700, 90, 12, Spread::kZipf, 1, 0});
      expect_matches_cpu(
          {DType::kBFloat16, IndexType::kInt32, 300, 40, 16, Spread::kOneRow, -1, 0});
    }
  }
}

TEST_P(CudaBackwardEmulated, WithSeveralSortTiles) {
  // Tiles of 512 to 2048 positions, at most 32, merged by rank: 5000 positions make 10 tiles of
  // 512, 16383 make 32 of 512, 16385 make 17 of 1024.
  const ScopedConfig scoped(with(emulation::Order::kShuffled, 3));
  for (Spread spread : {Spread::kUniform, Spread::kZipf, Spread::kOneRow}) {
    expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 5000, 300, 4, spread, 2, 0});
  }
  expect_matches_cpu({DType::kBFloat16, IndexType::kInt32, 16383, 5, 8, Spread::kZipf, -1, 0});
  expect_matches_cpu({DType::kFloat64, IndexType::kInt64, 16385, 2000, 2, Spread::kUniform, 0, 0});
}

TEST_P(CudaBackwardEmulated, With64BitKeysAndTheRadixSortPath) {
  for (const bool wide : {false, true}) {
    for (const bool radix : {false, true}) {
      if (!wide && !radix) continue;  // the other tests
      emulation::Config config;
      config.wide_keys = wide;
      config.large_sort = radix;
      config.order = emulation::Order::kReverse;
      config.block_cap = 3;
      const ScopedConfig scoped(config);
      SCOPED_TRACE(::testing::Message() << "wide " << wide << " radix " << radix);
      for (Spread spread : {Spread::kUniform, Spread::kZipf, Spread::kOneRow}) {
        expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 1000, 50, 8, spread, 4, 0});
        // Several 64-bit tiles.
        expect_matches_cpu({DType::kFloat16, IndexType::kInt32, 3000, 700, 2, spread, -1, 0});
      }
      expect_matches_cpu({DType::kFloat64, IndexType::kInt32, 97, 3, 5, Spread::kZipf, -1, 2});
    }
  }
}

TEST_P(CudaBackwardEmulated, InColumnSlicesWhenTheWindowSlotsAreCapped) {
  for (const size_t budget : {size_t{1}, size_t{4096}, size_t{20000}}) {
    emulation::Config config;
    config.parts_budget = budget;  // slices of 8 columns and up
    config.order = emulation::Order::kShuffled;
    const ScopedConfig scoped(config);
    SCOPED_TRACE(::testing::Message() << "budget " << budget);
    expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 2000, 60, 40, Spread::kZipf, 3, 0});
    expect_matches_cpu({DType::kBFloat16, IndexType::kInt64, 2000, 60, 36, Spread::kZipf, -1, 0});
    expect_matches_cpu({DType::kFloat64, IndexType::kInt32, 900, 10, 21, Spread::kOneRow, -1, 2});
  }
}

TEST_P(CudaBackwardEmulated, AroundTheMergePathAndRadixSortBoundaries) {
  // 16384 positions: 16 tiles of 1024, merged by merge_kernel in every variant; 16385: 17 tiles,
  // ranked by rank_kernel in merge_path and all; 65536: 32 tiles of 2048; 65537: the radix sort.
  const ScopedConfig scoped(with(emulation::Order::kShuffled, 3));
  for (const int64_t count : {int64_t{16384}, int64_t{16385}, int64_t{65536}, int64_t{65537}}) {
    expect_matches_cpu({DType::kBFloat16, IndexType::kInt32, count, 3000, 8, Spread::kZipf, -1, 0});
  }
  expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 16385, 5, 4, Spread::kUniform, 2, 0});
  emulation::Config wide = with(emulation::Order::kReverse, 2);
  wide.wide_keys = true;  // 64-bit tile keys through the rank kernel
  const ScopedConfig scoped_wide(wide);
  expect_matches_cpu({DType::kFloat64, IndexType::kInt64, 20000, 700, 2, Spread::kZipf, 0, 0});
}

TEST_P(CudaBackwardEmulated, StreamOperationsAtTheGpt2Shape) {
  // GPT-2: V = 50257, D = 768. The count is fixed on the host (a CUDA graph of the backward has
  // this many nodes: tests/cuda_build/device_check.cu); a regression shows here. It was 12.
  // side_zero and all add the side stream's memset (and 4 event operations, no nodes).
  constexpr int64_t kVocab = 50257;
  const BackwardVariant variant = GetParam();
  struct Pinned {
    int64_t n32, n512, n8192, n65536, n131072;
  };
  const std::map<std::string, Pinned> pinned{{"baseline", {2, 3, 4, 4, 11}},
                                             {"hot_rows", {2, 3, 4, 4, 11}},
                                             {"side_zero", {3, 4, 5, 5, 12}},
                                             {"merge_path", {2, 3, 4, 4, 11}},
                                             {"all", {3, 4, 5, 5, 12}}};
  const Pinned& expected = pinned.at(cuda::backward_variant_name(variant));
  const auto operations = [&](DType dtype, int64_t count, int64_t num_rows, int64_t dim) {
    return cuda::backward_stream_operations(backward_shape(dtype, count, num_rows, dim), variant);
  };
  EXPECT_EQ(operations(DType::kBFloat16, 8192, kVocab, 768), expected.n8192);
  EXPECT_EQ(operations(DType::kFloat32, 8192, kVocab, 768), expected.n8192);
  EXPECT_EQ(operations(DType::kBFloat16, 65536, kVocab, 768), expected.n65536);
  EXPECT_EQ(operations(DType::kBFloat16, 65536, 128256, 4096), expected.n65536);
  EXPECT_EQ(operations(DType::kBFloat16, 131072, kVocab, 768), expected.n131072);
  EXPECT_EQ(operations(DType::kBFloat16, 512, kVocab, 768), expected.n512);
  EXPECT_EQ(operations(DType::kBFloat16, 32, kVocab, 768), expected.n32);
  for (const int64_t count : {int64_t{8192}, int64_t{65536}, int64_t{131072}, int64_t{1} << 20}) {
    emulation::Config config;
    config.count_only = true;  // enqueue, count, run nothing
    const ScopedConfig scoped(config);
    const std::vector<int64_t> values(static_cast<size_t>(count), 0);
    Buffer index_buffer(values.size() * 8);
    const IndexArray indices = index_array(values, IndexType::kInt64, index_buffer);
    Buffer out(64);
    const BackwardParams params{DType::kBFloat16, indices, kVocab, -1,
                                out.data(),       768,     1.0,    out.data()};
    const size_t bytes = cuda::backward_workspace_bytes(params, variant);
    Buffer workspace(bytes);
    EmulatedSide side;
    emulation::stream_operations = 0;
    emulation::event_operations = 0;
    ASSERT_EQ(cuda::write_scaled_gradient(params, workspace.data(), bytes, nullptr, variant,
                                          side.handles()),
              cudaSuccess);
    EXPECT_EQ(emulation::stream_operations, cuda::backward_stream_operations(params, variant))
        << count;
    EXPECT_EQ(emulation::event_operations, cuda::uses_side_zero(variant) ? 4 : 0) << count;
  }
  // And the GPT-2 shape for real: bfloat16 (96 words of 8 columns a row), Zipf and uniform;
  // float32 at a narrow width.
  expect_matches_cpu(
      {DType::kBFloat16, IndexType::kInt64, 8192, kVocab, 768, Spread::kZipf, -1, 0});
  expect_matches_cpu(
      {DType::kBFloat16, IndexType::kInt32, 8192, kVocab, 768, Spread::kUniform, -1, 0});
  expect_matches_cpu({DType::kFloat32, IndexType::kInt64, 8192, kVocab, 8, Spread::kZipf, -1, 0});
}

std::string variant_test_name(const ::testing::TestParamInfo<BackwardVariant>& info) {
  return cuda::backward_variant_name(info.param);
}
INSTANTIATE_TEST_SUITE_P(Variants, CudaBackwardEmulated,
                         ::testing::ValuesIn(cuda::kBackwardVariants), variant_test_name);

TEST(CudaKernelsEmulated, BackwardVariantsNeedTheirSideStream) {
  // side_zero and all refuse to run without a side stream; nothing is enqueued then.
  Buffer out(10 * 8 * 4);
  const std::vector<int64_t> values{1, 2, 3};
  Buffer index_buffer(values.size() * 8);
  const BackwardParams params{DType::kFloat32,
                              index_array(values, IndexType::kInt64, index_buffer),
                              10,
                              -1,
                              out.data(),
                              8,
                              1.0,
                              out.data()};
  Buffer workspace(cuda::backward_workspace_bytes(params));
  for (const BackwardVariant variant : cuda::kBackwardVariants) {
    emulation::stream_operations = 0;
    const cudaError_t expected =
        cuda::uses_side_zero(variant) ? cudaErrorInvalidValue : cudaSuccess;
    EXPECT_EQ(cuda::write_scaled_gradient(params, workspace.data(),
                                          cuda::backward_workspace_bytes(params), nullptr, variant),
              expected)
        << cuda::backward_variant_name(variant);
    if (expected != cudaSuccess) {
      EXPECT_EQ(emulation::stream_operations, 0);
    }
  }
}

TEST(CudaKernelsEmulated, BackwardWorkspaceIsBoundedByNeed) {
  // The window slots take at most 32 MiB per column slice; no offsets array, no part pairs.
  const auto workspace_bytes = [](DType dtype, int64_t count, int64_t num_rows, int64_t dim) {
    return cuda::backward_workspace_bytes(backward_shape(dtype, count, num_rows, dim));
  };
  const size_t mib = size_t{1} << 20;
  const size_t llama = workspace_bytes(DType::kFloat32, int64_t{1} << 20, 128256, 4096);
  EXPECT_LE(llama, 32 * mib + 4 * (size_t{4} << 20) + mib) << llama;  // 4 key arrays + sort temp
  const size_t gpt2 = workspace_bytes(DType::kBFloat16, 8192, 50257, 768);
  EXPECT_LE(gpt2, 3 * 4 * 8192 + 255 * 768 * 4 + 768) << gpt2;  // sorted, tile keys, 255 slots
  EXPECT_EQ(workspace_bytes(DType::kFloat32, 0, 10, 8), 0u);
  EXPECT_EQ(workspace_bytes(DType::kFloat32, 32, 10, 8), 2 * 256u);  // no slots
}

struct GatherCase {
  DType dtype;
  IndexType index_type;
  int64_t rows, cols, row_stride, col_stride;
  size_t misalign;  // bytes added to the table's address
};

void expect_gather_matches_cpu(const GatherCase& c) {
  SCOPED_TRACE(::testing::Message()
               << "dtype " << static_cast<int>(c.dtype) << " rows " << c.rows << " cols " << c.cols
               << " strides " << c.row_stride << "," << c.col_stride << " misalign " << c.misalign);
  const size_t bytes = static_cast<size_t>(dtype_bytes(c.dtype));
  const int64_t span = (c.rows - 1) * c.row_stride + (c.cols - 1) * c.col_stride + 1;
  Buffer table_buffer(static_cast<size_t>(span) * bytes + c.misalign);
  void* table = table_buffer.data() + c.misalign;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  for (int64_t i = 0; i < span; ++i) store(c.dtype, table, i, normal(rng));
  const std::vector<int64_t> values = make_indices(301, c.rows, Spread::kZipf, 5);
  Buffer index_buffer(values.size() * 8);
  const IndexArray indices = index_array(values, c.index_type, index_buffer);
  const ConstMatrix weight{table, c.rows, c.cols, c.row_stride, c.col_stride};
  const size_t out_bytes = values.size() * static_cast<size_t>(c.cols) * bytes;
  Buffer cpu(out_bytes);
  Buffer gpu(out_bytes);
  gather_rows({weight, bytes, indices, cpu.data()}, Executor{});
  unsigned long long status = 99;
  ASSERT_EQ(cuda::gather_rows({weight, bytes, indices, gpu.data()}, {&status, false}, nullptr),
            cudaSuccess);
  EXPECT_EQ(status, 0u);
  EXPECT_EQ(std::memcmp(cpu.data(), gpu.data(), out_bytes), 0);
}

TEST(CudaKernelsEmulated, GatherEqualsTheCpuKernelForEveryLayout) {
  for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}) {
    for (IndexType index_type : {IndexType::kInt64, IndexType::kInt32}) {
      expect_gather_matches_cpu({dtype, index_type, 50, 16, 16, 1, 0});  // 16-byte words
      expect_gather_matches_cpu({dtype, index_type, 50, 6, 6, 1, 0});    // narrower words
      expect_gather_matches_cpu({dtype, index_type, 50, 5, 7, 1, 0});    // odd width, padded rows
      expect_gather_matches_cpu({dtype, index_type, 50, 16, 16, 1, 2});  // misaligned table
      expect_gather_matches_cpu({dtype, index_type, 20, 9, 1, 20, 0});   // transposed storage
      expect_gather_matches_cpu({dtype, index_type, 50, 0, 0, 1, 0});    // zero width
    }
  }
}

TEST(CudaKernelsEmulated, GatherCountsIn32BitsUpTo2To31Items) {
  // The limit: t < N x words <= 2^31, so t + the grid's stride (<= 2^26) stays below 2^32.
  EXPECT_TRUE(cuda::detail::narrow_items(int64_t{1} << 31));
  EXPECT_FALSE(cuda::detail::narrow_items((int64_t{1} << 31) + 1));
  // Lowered to the size of a case, both sides of it: the kernel instantiation changes exactly
  // there (uint32_t or int64_t offsets), the bytes moved do not. 301 positions x 4 words of 16
  // bytes (float32, 16 columns) = 1204 items; with a cap of 2 blocks the loops turn.
  std::vector<const void*> kernels;
  for (const int64_t limit : {int64_t{1203}, int64_t{1204}, int64_t{1205}}) {
    emulation::Config config = with(emulation::Order::kShuffled, 2);
    config.narrow_items = limit;
    const ScopedConfig scoped(config);
    SCOPED_TRACE(::testing::Message() << "limit " << limit);
    expect_gather_matches_cpu({DType::kFloat32, IndexType::kInt64, 50, 16, 16, 1, 0});
    kernels.emplace_back(emulation::last_kernel);
    expect_gather_matches_cpu({DType::kBFloat16, IndexType::kInt32, 50, 5, 7, 1, 0});
  }
  EXPECT_NE(kernels[0], kernels[1]);  // 1204 items over a limit of 1203: 64-bit offsets
  EXPECT_EQ(kernels[1], kernels[2]);
}

TEST(CudaKernelsEmulated, BadIndicesAreReportedAtTheFirstPosition) {
  const std::vector<int64_t> values{3, 9, -1, 10, 2, 10};
  Buffer index_buffer(values.size() * 8);
  const IndexArray indices = index_array(values, IndexType::kInt64, index_buffer);
  unsigned long long status = 12345;
  ASSERT_EQ(cuda::check_indices(indices, 10, {&status, false}, nullptr), cudaSuccess);
  EXPECT_EQ(cuda::bad_position(status, indices.count), 2);
  ASSERT_EQ(cuda::check_indices(indices, 11, {&status, false}, nullptr), cudaSuccess);
  EXPECT_EQ(cuda::bad_position(status, indices.count), 2);
  const std::vector<int64_t> good{0, 1, 9};
  const IndexArray valid = index_array(good, IndexType::kInt64, index_buffer);
  ASSERT_EQ(cuda::check_indices(valid, 10, {&status, false}, nullptr), cudaSuccess);
  EXPECT_EQ(cuda::bad_position(status, valid.count), -1);

  // The gather reports the same position and writes zeros for every bad row.
  std::vector<float> table(10 * 4, 1.5f);
  std::vector<float> out(values.size() * 4, -7.0f);
  const IndexArray bad = index_array(values, IndexType::kInt64, index_buffer);
  ASSERT_EQ(cuda::gather_rows({{table.data(), 10, 4, 4, 1}, 4, bad, out.data()}, {&status, false},
                              nullptr),
            cudaSuccess);
  EXPECT_EQ(cuda::bad_position(status, bad.count), 2);
  for (size_t p = 0; p < values.size(); ++p) {
    const float expected = values[p] >= 0 && values[p] < 10 ? 1.5f : 0.0f;
    for (size_t c = 0; c < 4; ++c) EXPECT_EQ(out[p * 4 + c], expected) << p;
  }
}

struct RenormCase {
  DType dtype;
  IndexType index_type;
  int64_t rows, cols, row_stride, col_stride;
  double norm_type;
};

// The CUDA renorm against the CPU kernel, bit for bit: the same rows rescaled, by the same
// factor, with norms accumulated in the same order.
void expect_renorm_matches_cpu(const RenormCase& c) {
  SCOPED_TRACE(::testing::Message()
               << "dtype " << static_cast<int>(c.dtype) << " rows " << c.rows << " cols " << c.cols
               << " strides " << c.row_stride << "," << c.col_stride << " p " << c.norm_type);
  const size_t bytes = static_cast<size_t>(dtype_bytes(c.dtype));
  const int64_t span = (c.rows - 1) * c.row_stride + (c.cols - 1) * c.col_stride + 1;
  Buffer cpu_table(static_cast<size_t>(span) * bytes);
  Buffer gpu_table(static_cast<size_t>(span) * bytes);
  std::mt19937_64 rng(17);
  std::normal_distribution<double> normal;
  for (int64_t i = 0; i < span; ++i) store(c.dtype, cpu_table.data(), i, 3.0 * normal(rng));
  // One row of NaN and one of zeros: the norm stays NaN (no rescale), zero is never rescaled.
  store(c.dtype, cpu_table.data(), 1 * c.row_stride, std::nan(""));
  for (int64_t col = 0; col < c.cols; ++col) {
    store(c.dtype, cpu_table.data(), 2 * c.row_stride + col * c.col_stride, 0.0);
  }
  std::memcpy(gpu_table.data(), cpu_table.data(), static_cast<size_t>(span) * bytes);
  Buffer initial(static_cast<size_t>(span) * bytes);
  std::memcpy(initial.data(), cpu_table.data(), static_cast<size_t>(span) * bytes);
  // Repeated rows (Zipf): each distinct row is rescaled once.
  std::vector<int64_t> values = make_indices(200, c.rows, Spread::kZipf, 9);
  values[0] = 1;
  values[1] = 2;
  Buffer index_buffer(values.size() * 8);
  const IndexArray indices = index_array(values, c.index_type, index_buffer);
  // A max_norm that some rows exceed and others do not: the median norm, roughly.
  const double max_norm =
      std::isinf(c.norm_type)
          ? 4.0
          : (c.norm_type < 1 ? 1.5 : 3.0) * std::pow(static_cast<double>(c.cols), 1 / c.norm_type);
  // One set of parameters for both kernels; only the table differs.
  const RenormParams params{c.dtype,
                            {cpu_table.data(), c.rows, c.cols, c.row_stride, c.col_stride},
                            indices,
                            max_norm,
                            c.norm_type};
  renorm_rows(params, Executor{});

  RenormParams gpu_params = params;
  gpu_params.weight.data = gpu_table.data();
  Buffer claimed(cuda::renorm_workspace_bytes(gpu_params));
  const unsigned long long status = 0;
  ASSERT_EQ(cuda::renorm_rows(gpu_params, &status, claimed.data(), nullptr), cudaSuccess);
  EXPECT_EQ(std::memcmp(cpu_table.data(), gpu_table.data(), static_cast<size_t>(span) * bytes), 0)
      << "differs from the CPU kernel";
  EXPECT_NE(std::memcmp(initial.data(), gpu_table.data(), static_cast<size_t>(span) * bytes), 0)
      << "no row was rescaled: the case tests nothing";
}

TEST(CudaKernelsEmulated, RenormEqualsTheCpuKernelBitForBit) {
  for (const emulation::Order order : {emulation::Order::kForward, emulation::Order::kShuffled}) {
    const ScopedConfig scoped(with(order, 2));  // 16 warps for 200 positions: the loop turns
    for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}) {
      for (const double p : {1.0, 2.0, 3.0, 0.5, static_cast<double>(INFINITY)}) {
        expect_renorm_matches_cpu({dtype, IndexType::kInt64, 40, 70, 70, 1, p});  // 32 + 32 + 6
        expect_renorm_matches_cpu({dtype, IndexType::kInt32, 40, 5, 9, 1, p});    // padded rows
        expect_renorm_matches_cpu({dtype, IndexType::kInt64, 30, 33, 1, 30, p});  // transposed
      }
    }
  }
}

TEST(CudaKernelsEmulated, RenormWritesNothingAfterABadIndex) {
  std::vector<float> table(10 * 4, 100.0f);
  const std::vector<float> original(table);
  const std::vector<int64_t> values{3, 9, 1};
  Buffer index_buffer(values.size() * 8);
  const IndexArray indices = index_array(values, IndexType::kInt64, index_buffer);
  const RenormParams params{DType::kFloat32, {table.data(), 10, 4, 4, 1}, indices, 1.0, 2.0};
  Buffer claimed(cuda::renorm_workspace_bytes(params));
  const unsigned long long status = 2;  // what check_indices leaves after a bad index
  ASSERT_EQ(cuda::renorm_rows(params, &status, claimed.data(), nullptr), cudaSuccess);
  EXPECT_EQ(table, original);
  // No work, no stream operation (and no zero-byte memset): zero rows, zero width, inf.
  emulation::stream_operations = 0;
  RenormParams no_rows = params;
  no_rows.weight = {nullptr, 0, 4, 4, 1};
  EXPECT_EQ(cuda::renorm_rows(no_rows, &status, nullptr, nullptr), cudaSuccess);
  RenormParams no_columns = params;
  no_columns.weight = {table.data(), 10, 0, 0, 1};
  EXPECT_EQ(cuda::renorm_rows(no_columns, &status, nullptr, nullptr), cudaSuccess);
  RenormParams no_limit = params;
  no_limit.max_norm = static_cast<double>(INFINITY);
  EXPECT_EQ(cuda::renorm_rows(no_limit, &status, nullptr, nullptr), cudaSuccess);
  EXPECT_EQ(emulation::stream_operations, 0);
}

// The emulation itself: what it must refuse, as a GPU would.
__global__ void barrier_in_a_branch() {
  if (threadIdx.x < 16) __syncthreads();
}
__global__ void warp_sum(int* out) {
  int value = static_cast<int>(threadIdx.x);
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xFFFFFFFFu, value, offset);
  out[threadIdx.x] = value;
}
__global__ void block_reverse(int* data) {
  UNIT_SCALING_SHARED_ARRAY(int, tile, 64);
  tile[threadIdx.x] = data[threadIdx.x];
  __syncthreads();
  data[threadIdx.x] = tile[63 - threadIdx.x];
}
__global__ void too_much_shared(int* data) {
  UNIT_SCALING_SHARED_ARRAY(int, tile, 13000);
  data[threadIdx.x] = tile[threadIdx.x];
}
__global__ void noop() {}

TEST(CudaEmulation, BarriersShufflesAndSharedMemoryWork) {
  for (const emulation::Order order : {emulation::Order::kForward, emulation::Order::kShuffled}) {
    const ScopedConfig scoped(with(order, 65536));
    std::vector<int> out(64, -1);
    UNIT_SCALING_LAUNCH(1, 64, 64, nullptr, warp_sum)(out.data());
    for (int t = 0; t < 64; ++t) EXPECT_EQ(out[t], t < 32 ? 496 : 32 * 32 + 496) << t;
    std::vector<int> data(64);
    std::iota(data.begin(), data.end(), 0);
    UNIT_SCALING_LAUNCH(1, 64, 64, nullptr, block_reverse)(data.data());
    for (int t = 0; t < 64; ++t) EXPECT_EQ(data[t], 63 - t);
  }
}

TEST(CudaEmulationDeathTest, RefusesWhatAGpuWouldRefuse) {
  EXPECT_DEATH(UNIT_SCALING_LAUNCH(1, 2048, 1024, nullptr, noop)(), "threads per block");
  EXPECT_DEATH(UNIT_SCALING_LAUNCH(1, 512, 256, nullptr, noop)(), "__launch_bounds__");
  EXPECT_DEATH(UNIT_SCALING_LAUNCH(0, 32, 32, nullptr, noop)(), "blocks outside");
  EXPECT_DEATH(UNIT_SCALING_LAUNCH(1, 32, 32, nullptr, barrier_in_a_branch)(), "__syncthreads");
  std::vector<int> data(64);
  EXPECT_DEATH(UNIT_SCALING_LAUNCH(1, 32, 32, nullptr, too_much_shared)(data.data()), "48 KiB");
  EXPECT_DEATH(cudaMemsetAsync(nullptr, 0, 0, nullptr), "cudaMemsetAsync");
  // Side streams: work only after a fork from the default stream, memsets only.
  EmulatedSide side;
  EXPECT_DEATH(cudaMemsetAsync(data.data(), 0, 64, &side.stream), "without a wait");
  EXPECT_DEATH(UNIT_SCALING_LAUNCH(1, 32, 32, &side.stream, noop)(), "side stream");
  EXPECT_DEATH(cudaStreamWaitEvent(nullptr, &side.join, 0), "never recorded");
}

TEST(CudaEmulation, SideStreamWorkHappensAtTheJoinAndIsPoisonUntilThen) {
  EmulatedSide side;
  std::vector<unsigned char> bytes(64, 1);
  ASSERT_EQ(cudaEventRecord(&side.fork, nullptr), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(&side.stream, &side.fork, 0), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(bytes.data(), 0, bytes.size(), &side.stream), cudaSuccess);
  EXPECT_EQ(bytes, std::vector<unsigned char>(64, emulation::kPoison));  // no join yet
  ASSERT_EQ(cudaEventRecord(&side.join, &side.stream), cudaSuccess);
  bytes[5] = 9;  // written before the join: lost at the join (a join placed too late shows)
  EXPECT_FALSE(side.all_joined());
  ASSERT_EQ(cudaStreamWaitEvent(nullptr, &side.join, 0), cudaSuccess);
  EXPECT_EQ(bytes, std::vector<unsigned char>(64, 0));
  EXPECT_TRUE(side.all_joined());
  EXPECT_FALSE(side.stream.forked);  // the next side-stream work needs a new fork
}

// The launches' bounds, read from the sources: every __global__ kernel of src/kernels/cuda
// declares __launch_bounds__(constant), and every UNIT_SCALING_LAUNCH names its kernel's constant
// (the emulation checks each launch's block size against the constant it names; on a GPU a block
// larger than the kernel's bound fails to launch, which the emulation alone would not see).
std::string without_comments_and_defines(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  std::string kept;
  while (std::getline(lines, line)) {
    const size_t comment = line.find("//");
    if (comment != std::string::npos) line.erase(comment);
    if (line.find("#define") == std::string::npos) kept += line + "\n";
  }
  return kept;
}

// The last identifier of a qualified name, before any template arguments: detail::kThreads ->
// kThreads, detail::rows_kernel<T, kWord, Key, hot> -> rows_kernel.
std::string last_name(std::string text) {
  text = text.substr(0, text.find('<'));
  std::smatch match;
  std::regex_search(text, match, std::regex(R"((\w+)\s*$)"));
  return match[1];
}

TEST(CudaKernelsEmulated, EveryKernelIsLaunchedWithTheBoundItDeclares) {
  std::map<std::string, std::string> declared;                // kernel -> bound
  std::vector<std::pair<std::string, std::string>> launches;  // (kernel, bound)
  size_t globals = 0;
  const std::filesystem::path directory =
      std::filesystem::path(UNIT_SCALING_SOURCE_DIR) / "src" / "kernels" / "cuda";
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    const std::string extension = entry.path().extension().string();
    if (extension != ".cu" && extension != ".cuh") continue;
    std::ifstream file(entry.path());
    std::stringstream buffer;
    buffer << file.rdbuf();
    const std::string text = without_comments_and_defines(buffer.str());
    for (size_t at = text.find("__global__"); at != std::string::npos;
         at = text.find("__global__", at + 1)) {
      ++globals;
    }
    const std::regex kernel(
        R"(__global__\s+void\s+__launch_bounds__\(([\w:]+)(,[^\n]*)?\)\s+(\w+)\s*\()");
    for (std::sregex_iterator it(text.begin(), text.end(), kernel), end; it != end; ++it) {
      declared[(*it)[3]] = last_name((*it)[1]);
    }
    const std::string launch = "UNIT_SCALING_LAUNCH(";
    for (size_t at = text.find(launch); at != std::string::npos; at = text.find(launch, at + 1)) {
      std::vector<std::string> arguments(1);
      int depth = 0;
      for (size_t i = at + launch.size(); i < text.size() && depth >= 0; ++i) {
        const char c = text[i];
        depth += c == '(' ? 1 : c == ')' ? -1 : 0;
        if (depth < 0) break;
        if (c == ',' && depth == 0) {
          arguments.emplace_back();
        } else {
          arguments.back() += c;
        }
      }
      ASSERT_GE(arguments.size(), 5u) << entry.path() << ": " << text.substr(at, 80);
      std::string kernel_name;
      for (size_t i = 4; i < arguments.size(); ++i)
        kernel_name += (i > 4 ? "," : "") + arguments[i];
      launches.emplace_back(last_name(kernel_name), last_name(arguments[2]));
    }
  }
  EXPECT_EQ(declared.size(), globals) << "a __global__ kernel without __launch_bounds__(constant)";
  EXPECT_GE(declared.size(), 10u);
  std::map<std::string, int> launched;
  for (const auto& [kernel, bound] : launches) {
    ASSERT_EQ(declared.count(kernel), 1u) << kernel << " is launched but not declared";
    EXPECT_EQ(bound, declared[kernel]) << kernel << " is launched with the bound of another";
    ++launched[kernel];
  }
  for (const auto& [kernel, bound] : declared) EXPECT_GT(launched[kernel], 0) << kernel;
}

}  // namespace
}  // namespace unit_scaling::kernels
