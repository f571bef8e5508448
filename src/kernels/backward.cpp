// The unit-scaled weight gradient.
//
// Math: grad_weight[r, :] = s * sum_{p : indices[p] == r, r != padding} grad_out[p, :].
// Algorithm: a counting sort groups the positions by row in O(N + V), keeping each row's
// positions in ascending order. Every row is then produced by exactly one task: its gradient
// rows are summed in Acc (float32, or float64 for double) in the order of summation_order.h,
// multiplied by s once, rounded once to the storage type and written once; rows nobody looked
// up are written as zeros. The order of additions never depends on the thread count, so
// results are bitwise identical for any number of threads, and equal to the CUDA kernel's.
// Memory traffic: one read of grad_out (N x D), one write of grad_weight (V x D) -- the output
// is allocated uninitialised, so zeroing and writing it is a single pass -- plus O(N + V)
// integers for the sort.
// Load balance: tasks are planned by work ((uses + 1) x columns). A row with many uses (Zipf
// tokens) becomes its own task, split by columns when it alone exceeds the task size; those go
// first, largest first, and idle workers pull the next task from a shared counter.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "kernels/element.h"
#include "kernels/embedding_kernels.h"
#include "kernels/summation_order.h"

namespace unit_scaling::kernels {
namespace {

using detail::Element;

// Rows [row_begin, row_end) restricted to columns [col_begin, col_end).
struct Task {
  int64_t row_begin, row_end, col_begin, col_end;
};

std::vector<Task> plan_tasks(const RowGroups& groups, int64_t num_rows, int64_t dim,
                             int num_threads) {
  const auto used = static_cast<int64_t>(groups.positions.size());
  const int64_t total_work = (used + num_rows) * dim;
  const int64_t target =
      std::max<int64_t>(detail::kElementsPerTask, total_work / (8 * num_threads));
  std::vector<std::pair<int64_t, Task>> heavy;  // (uses, task)
  std::vector<Task> light;
  int64_t block_begin = 0;
  int64_t block_work = 0;
  const auto close_block = [&](int64_t end) {
    if (end > block_begin) light.push_back({block_begin, end, 0, dim});
    block_begin = end;
    block_work = 0;
  };
  for (int64_t r = 0; r < num_rows; ++r) {
    const int64_t work = (groups.uses(r) + 1) * dim;
    if (work <= target) {
      block_work += work;
      if (block_work >= target) close_block(r + 1);
      continue;
    }
    close_block(r);
    // Split the row's columns into pieces of about `target` work, 16-column aligned.
    const int64_t pieces = (work + target - 1) / target;
    int64_t width = (dim + pieces - 1) / pieces;
    width = std::min(dim, (width + 15) / 16 * 16);
    for (int64_t c = 0; c < dim; c += width) {
      heavy.push_back({groups.uses(r), {r, r + 1, c, std::min(dim, c + width)}});
    }
    block_begin = r + 1;
  }
  close_block(num_rows);
  std::stable_sort(heavy.begin(), heavy.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<Task> tasks;
  tasks.reserve(heavy.size() + light.size());
  for (const auto& entry : heavy) tasks.push_back(entry.second);
  tasks.insert(tasks.end(), light.begin(), light.end());
  return tasks;
}

// Grouped by row, the gradient rows of one output row lie scattered over grad_out, so each
// load would wait for memory. Touching the rows a few positions ahead overlaps those waits:
// the first cache lines of the row, then one line per 4 KiB page for long rows.
constexpr int64_t kPrefetchDistance = 8;

inline void prefetch_row(const void* row, int64_t bytes) {
  const auto* p = static_cast<const char*>(row);
  const int64_t head = bytes < 256 ? bytes : 256;
  for (int64_t offset = 0; offset < head; offset += 64) __builtin_prefetch(p + offset);
  for (int64_t offset = kPageBytes; offset < bytes; offset += kPageBytes) {
    __builtin_prefetch(p + offset);
  }
}

// sum[c] += g[c] and out[c] = round(sum[c] * scale): separate functions with restrict-qualified
// parameters, so that the compiler vectorises them.
template <typename T>
void accumulate_row(typename Element<T>::Acc* __restrict sum, const T* __restrict g,
                    int64_t width) {
  for (int64_t c = 0; c < width; ++c) sum[c] += Element<T>::load(g[c]);
}

template <typename T>
void store_scaled_row(T* __restrict out, const typename Element<T>::Acc* __restrict sum,
                      typename Element<T>::Acc scale, int64_t width) {
  for (int64_t c = 0; c < width; ++c) out[c] = Element<T>::store(sum[c] * scale);
}

template <typename Acc>
void add_row(Acc* __restrict sum, const Acc* __restrict part, int64_t width) {
  for (int64_t c = 0; c < width; ++c) sum[c] += part[c];
}

// One task: its rows' columns [col_begin, col_end), each row summed in the order of
// summation_order.h (window parts from zero, then added in order). `sum` and `part` hold
// `width` accumulators each.
template <typename T>
void run_task(const Task& task, const RowGroups& groups, const T* grad, int64_t dim,
              typename Element<T>::Acc scale, typename Element<T>::Acc* sum,
              typename Element<T>::Acc* part, T* result) {
  using Acc = typename Element<T>::Acc;
  const int64_t width = task.col_end - task.col_begin;
  const int64_t* positions = groups.positions.data();
  const auto total = static_cast<int64_t>(groups.positions.size());
  for (int64_t r = task.row_begin; r < task.row_end; ++r) {
    T* out = result + r * dim + task.col_begin;
    const int64_t first = groups.start[static_cast<size_t>(r)];
    const int64_t last = groups.start[static_cast<size_t>(r) + 1];
    if (first == last) {  // +0.0 is all-zero bits in every format
      std::memset(static_cast<void*>(out), 0, static_cast<size_t>(width) * sizeof(T));
      continue;
    }
    for (int64_t i = first; i < last;) {
      // The first window's part is summed straight into `sum`: 0 + its rows, as on the GPU.
      Acc* target = i == first ? sum : part;
      std::fill(target, target + width, Acc{0});
      for (const int64_t window_end = sum_window_end(i, last); i < window_end; ++i) {
        if (i + kPrefetchDistance < total) {
          prefetch_row(grad + positions[i + kPrefetchDistance] * dim + task.col_begin,
                       width * static_cast<int64_t>(sizeof(T)));
        }
        accumulate_row<T>(target, grad + positions[i] * dim + task.col_begin, width);
      }
      if (target == part) add_row<Acc>(sum, part, width);
    }
    store_scaled_row<T>(out, sum, scale, width);
  }
}

}  // namespace

void group_positions_by_row(IndexArray indices, int64_t num_rows, int64_t padding_row,
                            RowGroups& groups) {
  detail::with_index_type(indices.type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    const auto* idx = static_cast<const Index*>(indices.data);
    groups.start.assign(static_cast<size_t>(num_rows) + 1, 0);
    for (int64_t p = 0; p < indices.count; ++p) {
      const int64_t r = idx[p];
      if (r != padding_row) ++groups.start[static_cast<size_t>(r) + 1];
    }
    for (size_t r = 0; r < static_cast<size_t>(num_rows); ++r) {
      groups.start[r + 1] += groups.start[r];
    }
    groups.positions.resize(static_cast<size_t>(groups.start.back()));
    std::vector<int64_t> cursor(groups.start.begin(), groups.start.end() - 1);
    for (int64_t p = 0; p < indices.count; ++p) {
      const int64_t r = idx[p];
      if (r != padding_row)
        groups.positions[static_cast<size_t>(cursor[static_cast<size_t>(r)]++)] = p;
    }
  });
}

void write_scaled_gradient(const BackwardParams& params, const Executor& executor) {
  const int64_t num_rows = params.num_rows;
  const int64_t dim = params.dim;
  if (num_rows <= 0 || dim == 0) return;  // nothing to write: no V + 1 counters either
  RowGroups groups;
  group_positions_by_row(params.indices, num_rows, params.padding_row, groups);
  const std::vector<Task> tasks = plan_tasks(groups, num_rows, dim, executor.num_threads);
  const auto task_count = static_cast<int64_t>(tasks.size());
  const int64_t workers = std::min<int64_t>(std::max(1, executor.num_threads), task_count);

  detail::with_dtype(params.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = typename Element<T>::Acc;
    const auto* grad = static_cast<const T*>(params.grad_out);
    auto* result = static_cast<T*>(params.grad_weight);
    const auto scale = static_cast<Acc>(params.scale);
    std::atomic<int64_t> next_task{0};
    executor.parallel_for(0, workers, 1, [&](int64_t, int64_t) {
      std::vector<Acc> sums(2 * static_cast<size_t>(dim));  // `sum` and `part` of run_task
      for (int64_t t = next_task++; t < task_count; t = next_task++) {
        run_task<T>(tasks[static_cast<size_t>(t)], groups, grad, dim, scale, sums.data(),
                    sums.data() + dim, result);
      }
    });
  });
}

}  // namespace unit_scaling::kernels
