// unit_scaling::nn::Embedding: construction, init statistics, padding, training, save/load. The
// tests that call the op (ModuleCalls) run on every backend (backends.h).
#include <unit_scaling/nn/embedding.h>

#include <cstdio>
#include <sstream>

#include "backends.h"
#include "test_support.h"

namespace nn = unit_scaling::nn;
using namespace unit_scaling::testing;

namespace {

TEST(Module, InitialisedUnitNormal) {
  torch::manual_seed(10);
  nn::Embedding embedding(1000, 64);
  const auto& w = embedding->weight;
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{1000, 64}));
  EXPECT_TRUE(w.requires_grad());
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.02);
  EXPECT_NEAR(w.std().item<double>(), 1.0, 0.02);
}

TEST(Module, PaddingRowZeroedAndNegativeIndexWrapped) {
  nn::Embedding embedding(nn::EmbeddingOptions(10, 4).padding_idx(-2));
  EXPECT_EQ(*embedding->options.padding_idx(), 8);
  EXPECT_TRUE(embedding->weight[8].eq(0).all().item<bool>());
  EXPECT_EQ(embedding->weight.ne(0).sum().item<int64_t>(), 36);
  embedding->reset_parameters();
  EXPECT_TRUE(embedding->weight[8].eq(0).all().item<bool>());
}

class ModuleCalls : public BackendTest {};

TEST_P(ModuleCalls, ForwardIsTheUnitScaledLookup) {
  nn::Embedding embedding(nn::EmbeddingOptions(6, 3).padding_idx(0));
  embedding->to(device());
  const auto input = torch::tensor({{0, 5, 5}});
  const auto out = embedding(on_device(input));
  EXPECT_EQ(out.device(), device());
  EXPECT_TRUE(
      out.cpu().to(at::kDouble).equal(reference_lookup(input, embedding->weight.detach().cpu())));
  out.backward(torch::ones_like(out));
  const auto expected = reference_weight_grad(input, torch::ones({1, 3, 3}), 6, 0);
  EXPECT_TRUE(torch::allclose(embedding->weight.grad().cpu().to(at::kDouble), expected));
}

TEST_P(ModuleCalls, SgdStepUpdatesUsedRowsExceptPadding) {
  torch::manual_seed(11);
  nn::Embedding embedding(nn::EmbeddingOptions(12, 5).padding_idx(3));
  embedding->to(device());
  const auto before = embedding->weight.detach().cpu().clone();
  torch::optim::SGD optimizer(embedding->parameters(), /*lr=*/0.1);
  const auto input = on_device(torch::tensor({{1, 3, 4}, {3, 9, 1}}));
  optimizer.zero_grad();
  embedding(input).pow(2).sum().backward();
  optimizer.step();
  const auto after = embedding->weight.detach().cpu();
  for (int64_t r = 0; r < 12; ++r) {
    const bool used = r == 1 || r == 4 || r == 9;
    EXPECT_EQ(!after[r].equal(before[r]), used) << "row " << r;
  }
  EXPECT_TRUE(after[3].eq(0).all().item<bool>());
}

TEST_P(ModuleCalls, MaxNormOptionRenormsTheModuleWeight) {
  nn::Embedding embedding(nn::EmbeddingOptions(4, 8).max_norm(1.0));
  embedding->to(device());
  embedding(on_device(torch::tensor({2})));
  EXPECT_LE(embedding->weight[2].norm().item<double>(), 1.0 + 1e-5);
}

INSTANTIATE_BACKEND_SUITE(ModuleCalls);

TEST(Module, SaveLoadRoundTrip) {
  nn::Embedding saved(nn::EmbeddingOptions(7, 3).padding_idx(1));
  const std::string path = ::testing::TempDir() + "unit_scaling_embedding.pt";
  torch::save(saved, path);
  nn::Embedding loaded(nn::EmbeddingOptions(7, 3).padding_idx(1));
  ASSERT_FALSE(loaded->weight.equal(saved->weight));
  torch::load(loaded, path);
  EXPECT_TRUE(bitwise_equal(loaded->weight.detach(), saved->weight.detach()));
  std::remove(path.c_str());
}

TEST(Module, PrettyPrint) {
  std::ostringstream stream;
  stream << *nn::Embedding(nn::EmbeddingOptions(10, 3).padding_idx(-1).max_norm(2.0));
  EXPECT_EQ(stream.str(),
            "unit_scaling::nn::Embedding(num_embeddings=10, embedding_dim=3, padding_idx=9, "
            "max_norm=2)");
}

TEST(Module, FromPretrainedKeepsTheTableAndFreezesByDefault) {
  const auto table = torch::randn({5, 2});
  auto frozen =
      nn::Embedding::from_pretrained(table, nn::EmbeddingFromPretrainedOptions().padding_idx(0));
  EXPECT_FALSE(frozen->weight.requires_grad());
  EXPECT_TRUE(frozen->weight.equal(table));  // padding row not zeroed
  EXPECT_EQ(*frozen->options.padding_idx(), 0);
  auto trainable =
      nn::Embedding::from_pretrained(table, nn::EmbeddingFromPretrainedOptions().freeze(false));
  EXPECT_TRUE(trainable->weight.requires_grad());
  EXPECT_THROW(nn::Embedding::from_pretrained(torch::randn({5})), c10::ValueError);
}

TEST(Module, CloneIsDeep) {
  nn::Embedding embedding(4, 2);
  auto copy = std::dynamic_pointer_cast<nn::EmbeddingImpl>(embedding->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(copy->weight.equal(embedding->weight));
  EXPECT_NE(copy->weight.data_ptr(), embedding->weight.data_ptr());
}

TEST(Module, BadOptionsAreValueErrors) {
  EXPECT_THROW(nn::Embedding(nn::EmbeddingOptions(5, 2).padding_idx(5)), c10::ValueError);
  EXPECT_THROW(nn::Embedding(nn::EmbeddingOptions(5, 2).max_norm(-1.0)), c10::ValueError);
  EXPECT_THROW(nn::Embedding(nn::EmbeddingOptions(5, 2).sparse(true)), c10::ValueError);
  EXPECT_THROW(nn::Embedding(nn::EmbeddingOptions(5, 2).scale_grad_by_freq(true)), c10::ValueError);
  EXPECT_THROW(nn::Embedding(nn::EmbeddingOptions(-1, 2)), c10::ValueError);
  EXPECT_THROW(nn::Embedding(nn::EmbeddingOptions(5, 2)._weight(torch::randn({4, 2}))),
               c10::ValueError);
}

}  // namespace
