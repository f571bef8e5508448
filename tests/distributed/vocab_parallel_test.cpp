// VocabParallelEmbedding against the single-process op: P = 1..4 child processes (this binary
// re-executed with --child) form a Gloo group over a FileStore on loopback; each checks its
// shard and exits 0 or 1; the parent enforces a deadline and fails if any child hangs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>
#include <unit_scaling/distributed/gloo_group.h>
#include <unit_scaling/distributed/vocab_parallel_embedding.h>
#include <unit_scaling/unit_scaling.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/FileStore.hpp>

namespace dist = unit_scaling::distributed;

namespace {

constexpr int64_t kRows = 37;  // not divisible by 2, 3 or 4
constexpr int64_t kDim = 5;

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.contiguous(), y = b.contiguous();
  return x.sizes() == y.sizes() && x.scalar_type() == y.scalar_type() &&
         (x.nbytes() == 0 || std::memcmp(x.const_data_ptr(), y.const_data_ptr(), x.nbytes()) == 0);
}

// Data parallelism in C++ (docs/SCALING.md): every rank trains its own replica of a
// unit_scaling::nn::Embedding on its own tokens for K = 4 accumulated micro-batches, then the
// gradients are averaged over the group (what DDP does). The optimizer-visible std is
// sqrt(K / P) without a token count, and 1 (within 5%) with token_multiplier = K / P.
int run_data_parallel(int rank, int world, const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
  constexpr int64_t kVocab = 4096, kWidth = 64, kSteps = 4;
  bool ok = true;
  for (const double multiplier : {1.0, static_cast<double>(kSteps) / world}) {
    torch::manual_seed(11);  // the same initial table everywhere
    unit_scaling::nn::Embedding replica(
        unit_scaling::nn::EmbeddingOptions(kVocab, kWidth),
        unit_scaling::GradScaleOptions().token_multiplier(multiplier));
    torch::manual_seed(100 + rank);  // each rank its own data
    for (int64_t step = 0; step < kSteps; ++step) {
      const auto tokens = torch::randint(0, kVocab, {4, 512});
      replica(tokens).backward(torch::randn({4, 512, kWidth}));
    }
    std::vector<at::Tensor> grads{replica->weight.grad()};
    group->allreduce(grads)->wait();
    const double std = grads[0].div(world).std().item<double>();
    const double expected =
        multiplier == 1.0 ? std::sqrt(static_cast<double>(kSteps) / world) : 1.0;
    if (rank == 0) {
      std::cerr << "data parallel P=" << world << " K=" << kSteps
                << " token_multiplier=" << multiplier << ": grad std " << std << " (expected "
                << expected << ")\n";
    }
    ok = ok && std::abs(std / expected - 1) < 0.05;
  }
  return ok ? 0 : 1;
}

// V = 10 over `world` ranks, padding_idx = -3 and token_multiplier = 0.5: this rank's range,
// rows, output and gradient, with the data, pickled for the Python comparison.
int run_dump(int rank, int world, const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
  torch::manual_seed(3);
  const auto full = torch::randn({10, 4});
  const auto input = torch::randint(0, 10, {3, 5});
  const auto grad_out = torch::randn({3, 5, 4});
  auto module = dist::VocabParallelEmbedding::from_full(
      full, group, torch::nn::EmbeddingOptions(10, 4).padding_idx(-3),
      unit_scaling::GradScaleOptions().token_multiplier(0.5));
  const auto out = module(input);
  out.backward(grad_out);
  const dist::ShardRange range = module->shard();
  const std::vector<char> bytes = torch::pickle_save(
      c10::ivalue::Tuple::create({range.begin, range.end, full, input, grad_out,
                                  module->weight.detach(), out.detach(), module->weight.grad()}));
  const std::string path = std::string(std::getenv("UNIT_SCALING_VP_DUMP_DIR")) + "/cpp-" +
                           std::to_string(world) + "-" + std::to_string(rank) + ".pt";
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return 0;
}

// One rank's checks for `scenario`; returns the process exit code.
int run_child(const std::string& scenario, int rank, int world, const std::string& store_path) {
  auto store = c10::make_intrusive<c10d::FileStore>(store_path, world);
  auto group = unit_scaling::distributed::make_gloo_group(store, rank, world);
  if (scenario == "data_parallel") return run_data_parallel(rank, world, group);
  if (scenario == "dump") return run_dump(rank, world, group);
  torch::manual_seed(7);  // identical full table, input and gradient on every rank
  const auto full = torch::randn({kRows, kDim}) * 2;
  auto input = torch::randint(0, kRows, {6, 7});
  input[0][0] = kRows - 1;
  input[1][1] = 0;
  const auto grad_out = torch::randn({6, 7, kDim});
  torch::nn::EmbeddingOptions options(kRows, kDim);
  if (scenario == "padding") options.padding_idx(-3);
  if (scenario == "max_norm") options.max_norm(1.5).norm_type(3.0);

  // With a token count for data parallelism / accumulation (docs/SCALING.md): the scale stays
  // the single-device op's with the same option, global V.
  unit_scaling::GradScaleOptions grad_scale;
  if (scenario == "token_multiplier") grad_scale.token_multiplier(0.25);
  if (scenario == "num_tokens") grad_scale.num_tokens(4096);
  auto module = dist::VocabParallelEmbedding::from_full(full, group, options, grad_scale);
  const dist::ShardRange range = module->shard();
  if (scenario == "bad_index") {
    input[5][6] = kRows;
    try {
      module(input);
    } catch (const c10::IndexError& error) {
      const bool named =
          std::string(error.what()).find("index 37 at input[5, 6]") != std::string::npos;
      return named && same_bits(module->weight, full.narrow(0, range.begin, range.size())) ? 0 : 1;
    }
    return 1;
  }

  if (scenario == "bad_index_on_one_rank" || scenario == "different_inputs") {
    // Only the last rank's input is off; every rank must raise (nobody waits for the others).
    const bool at_fault = rank == world - 1;
    if (at_fault && scenario == "bad_index_on_one_rank") input[2][3] = kRows + 5;
    if (at_fault && scenario == "different_inputs")
      input[2][3] = (input[2][3].item<int64_t>() + 1) % kRows;
    const bool expect_error = scenario == "bad_index_on_one_rank" || world > 1;
    try {
      module(input);
    } catch (const c10::IndexError& error) {  // the rank whose index is bad
      return at_fault &&
                     std::string(error.what()).find("index 42 at input[2, 3]") != std::string::npos
                 ? 0
                 : 1;
    } catch (const c10::ValueError& error) {
      const std::string message = error.what();
      const bool named = message.find("another rank") != std::string::npos ||
                         message.find("ranks were given different inputs") != std::string::npos;
      return named && expect_error ? 0 : 1;
    }
    return expect_error ? 1 : 0;
  }
  if (scenario == "clone_and_double_backward") {
    // A clone is a deep, independent copy that keeps requires_grad.
    module->weight.set_requires_grad(false);
    auto copy = std::dynamic_pointer_cast<dist::VocabParallelEmbeddingImpl>(module->clone());
    bool ok = copy && copy->weight.data_ptr() != module->weight.data_ptr() &&
              !copy->weight.requires_grad() && !module->weight.requires_grad() &&
              same_bits(copy->weight, module->weight);
    module->weight.set_requires_grad(true);
    // Double backward is refused with a clear NotImplementedError on every rank.
    const auto out = module(input);
    try {
      torch::autograd::grad({out}, {module->weight}, {grad_out}, true, /*create_graph=*/true);
      ok = false;
    } catch (const c10::NotImplementedError& error) {
      ok = ok && std::string(error.what()).find("double backward") != std::string::npos;
    }
    return ok ? 0 : 1;
  }

  auto reference_weight = full.clone().requires_grad_();
  const auto reference =
      unit_scaling::functional::embedding(input, reference_weight,
                                          unit_scaling::functional::EmbeddingFuncOptions()
                                              .padding_idx(options.padding_idx())
                                              .max_norm(options.max_norm())
                                              .norm_type(options.norm_type()),
                                          grad_scale);
  reference.backward(grad_out);

  const auto out = module(input);
  out.backward(grad_out);
  bool ok = same_bits(out, reference);
  ok = ok && same_bits(module->weight.grad(),
                       reference_weight.grad().narrow(0, range.begin, range.size()));
  ok = ok && same_bits(module->weight.detach(),
                       reference_weight.detach().narrow(0, range.begin, range.size()));
  ok = ok && same_bits(module->gather_full_weight(), reference_weight.detach());
  if (!ok) std::cerr << "rank " << rank << "/" << world << " " << scenario << ": mismatch\n";
  return ok ? 0 : 1;
}

// Spawns `world` children and waits up to `deadline`; kills them all if one hangs.
void run_group(const std::string& scenario, int world) {
  const std::string store = ::testing::TempDir() + "vp-store-" + scenario + "-" +
                            std::to_string(world) + "-" + std::to_string(getpid());
  std::remove(store.c_str());
  std::vector<pid_t> children;
  for (int rank = 0; rank < world; ++rank) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const std::string r = std::to_string(rank), w = std::to_string(world);
      execl("/proc/self/exe", "vocab_parallel_test", "--child", scenario.c_str(), r.c_str(),
            w.c_str(), store.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    children.push_back(pid);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::vector<int> status(children.size(), -1);
  size_t done = 0;
  while (done < children.size() && std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < children.size(); ++i) {
      int code = 0;
      if (status[i] == -1 && waitpid(children[i], &code, WNOHANG) == children[i]) {
        status[i] = WIFEXITED(code) ? WEXITSTATUS(code) : 128;
        ++done;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (size_t i = 0; i < children.size(); ++i) {
    if (status[i] == -1) {
      kill(children[i], SIGKILL);
      waitpid(children[i], nullptr, 0);
      ADD_FAILURE() << scenario << ": rank " << i << " of " << world << " missed the deadline";
    } else {
      EXPECT_EQ(status[i], 0) << scenario << ": rank " << i << " of " << world << " failed";
    }
  }
  std::remove(store.c_str());
}

class VocabParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabParallel, MatchesTheSingleProcessOpForOneToFourRanks) {
  for (int world = 1; world <= 4; ++world) run_group(GetParam(), world);
}

INSTANTIATE_TEST_SUITE_P(Scenarios, VocabParallel,
                         ::testing::Values("plain", "padding", "max_norm", "bad_index",
                                           "bad_index_on_one_rank", "different_inputs",
                                           "clone_and_double_backward", "token_multiplier",
                                           "num_tokens", "data_parallel"));

// torch.chunk's split (DTensor's Shard(0)): rank r holds chunk r of arange(V), or nothing
// where torch.chunk returns fewer pieces (V = 5 over 4: 2, 2, 1, 0 rows).
TEST(VocabParallelSplit, RowsAreTorchChunksOfTheTable) {
  for (const int64_t rows : {int64_t{0}, int64_t{3}, int64_t{5}, int64_t{10}, kRows}) {
    for (int64_t world = 1; world <= 5; ++world) {
      const auto chunks = torch::arange(rows).chunk(world);
      for (int64_t rank = 0; rank < world; ++rank) {
        const auto range = dist::shard_range(rows, rank, world);
        const auto expected =
            rank < static_cast<int64_t>(chunks.size()) ? chunks[rank] : torch::arange(0);
        EXPECT_TRUE(torch::equal(torch::arange(range.begin, range.end), expected))
            << "V=" << rows << " P=" << world << " rank " << rank;
      }
    }
  }
  EXPECT_THROW(dist::shard_range(10, 3, 3), c10::ValueError);
}

// Writes each rank's rows, output and gradient for V = 10 over 3 and 4 ranks to
// $UNIT_SCALING_VP_DUMP_DIR; tests/python/test_vocab_parallel_agreement.py runs the DTensor path
// on the same data and checks that the two paths agree. Skipped without the variable.
TEST(VocabParallelAgreement, WritesEachRanksShardForTheDTensorComparison) {
  if (std::getenv("UNIT_SCALING_VP_DUMP_DIR") == nullptr) GTEST_SKIP() << "no dump folder";
  for (const int world : {3, 4}) run_group("dump", world);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "--child") {
    try {
      return run_child(argv[2], std::stoi(argv[3]), std::stoi(argv[4]), argv[5]);
    } catch (const std::exception& error) {
      std::cerr << "child failed: " << error.what() << "\n";
      return 1;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
