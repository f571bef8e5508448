// The CUDA kernels' own code (src/kernels/cuda), run on the host emulation of cuda_emulation.h,
// against the CPU kernels: the backward must match bit for bit (both follow
// kernels/summation_order.h), the gather byte for byte, and bad indices must be reported at
// the first bad position. This runs in CI without a GPU; on a GPU the contract suites run the
// real kernels (tests/cpp, tests/python with the cuda backend).
#include "cuda_emulation.h"  // first: the kernels' header then sees the emulated CUDA types
// (a blank line keeps clang-format from moving it)

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/embedding_kernels_cuda.h"
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

size_t element_bytes(DType type) {
  return type == DType::kFloat64 ? 8 : type == DType::kFloat32 ? 4 : 2;
}

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

void expect_backward_matches_cpu(const BackwardCase& c) {
  SCOPED_TRACE(::testing::Message()
               << "dtype " << static_cast<int>(c.dtype) << " index "
               << static_cast<int>(c.index_type) << " N " << c.count << " V " << c.num_rows << " D "
               << c.dim << " spread " << static_cast<int>(c.spread) << " padding " << c.padding_row
               << " misalign " << c.misalign);
  const size_t bytes = element_bytes(c.dtype);
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

  RowGroups groups;
  ASSERT_EQ(group_positions_by_row(indices, c.num_rows, c.padding_row, groups), -1);
  Buffer cpu(out_bytes);
  write_scaled_gradient(c.dtype, groups, grad, c.dim, scale, cpu.data(), Executor{});

  const size_t workspace_bytes =
      cuda::backward_workspace_bytes(c.dtype, c.count, c.num_rows, c.dim);
  Buffer workspace(workspace_bytes);
  Buffer gpu(out_bytes);
  std::memset(gpu.data(), 0xAB, out_bytes);  // every byte must be written
  ASSERT_EQ(
      cuda::write_scaled_gradient(c.dtype, indices, c.num_rows, c.padding_row, grad, c.dim, scale,
                                  gpu.data(), workspace.data(), workspace_bytes, nullptr),
      cudaSuccess);
  EXPECT_EQ(std::memcmp(cpu.data(), gpu.data(), out_bytes), 0) << "differs from the CPU kernel";
}

TEST(CudaKernelsEmulated, BackwardEqualsTheCpuKernelBitForBit) {
  for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}) {
    for (IndexType index_type : {IndexType::kInt64, IndexType::kInt32}) {
      for (Spread spread : {Spread::kUniform, Spread::kZipf, Spread::kOneRow}) {
        expect_backward_matches_cpu({dtype, index_type, 1000, 50, 16, spread, -1, 0});
        expect_backward_matches_cpu({dtype, index_type, 777, 300, 24, spread, 0, 0});
      }
      // Odd widths, a misaligned gradient (the one-column path), tiny and edge sizes.
      expect_backward_matches_cpu({dtype, index_type, 500, 40, 3, Spread::kZipf, 5, 0});
      expect_backward_matches_cpu({dtype, index_type, 500, 40, 8, Spread::kZipf, -1, 2});
      expect_backward_matches_cpu({dtype, index_type, 1, 1, 8, Spread::kUniform, -1, 0});
      expect_backward_matches_cpu({dtype, index_type, 64, 1, 4, Spread::kOneRow, -1, 0});
      expect_backward_matches_cpu({dtype, index_type, 33, 7, 1, Spread::kUniform, 3, 0});
    }
  }
}

TEST(CudaKernelsEmulated, BackwardWithTheHeavyRowAsPaddingAndEmptyShapes) {
  // Row 0 takes most Zipf lookups; as padding they all vanish (sorted after every row).
  expect_backward_matches_cpu(
      {DType::kFloat32, IndexType::kInt64, 2000, 100, 12, Spread::kZipf, 0, 0});
  expect_backward_matches_cpu(
      {DType::kBFloat16, IndexType::kInt32, 2000, 100, 16, Spread::kOneRow, 0, 0});
  expect_backward_matches_cpu(
      {DType::kFloat32, IndexType::kInt64, 0, 10, 8, Spread::kUniform, -1, 0});
  expect_backward_matches_cpu(
      {DType::kFloat32, IndexType::kInt64, 10, 10, 0, Spread::kUniform, -1, 0});
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
  const size_t bytes = element_bytes(c.dtype);
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
  gather_rows(bytes, weight, indices, cpu.data(), Executor{});
  unsigned long long status = 99;
  ASSERT_EQ(cuda::gather_rows(bytes, weight, indices, gpu.data(), {&status, false}, nullptr),
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
  ASSERT_EQ(
      cuda::gather_rows(4, {table.data(), 10, 4, 4, 1}, bad, out.data(), {&status, false}, nullptr),
      cudaSuccess);
  EXPECT_EQ(cuda::bad_position(status, bad.count), 2);
  for (size_t p = 0; p < values.size(); ++p) {
    const float expected = values[p] >= 0 && values[p] < 10 ? 1.5f : 0.0f;
    for (size_t c = 0; c < 4; ++c) EXPECT_EQ(out[p * 4 + c], expected) << p;
  }
}

}  // namespace
}  // namespace unit_scaling::kernels
