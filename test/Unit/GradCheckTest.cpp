//===- GradCheckTest.cpp - stdlib gradients vs finite differences -----===//
//
// Every differentiable stdlib function, instantiated in f64, differentiated
// with respect to all its float parameters by the compiler (loops included:
// back-propagation through time), and compared
// with central finite differences of the compiled function itself on random
// inputs (relative error < 1e-6).
//
//===----------------------------------------------------------------------===//
#include "session/Session.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>

using namespace mlx;

namespace {

/// How to draw one parameter's values.
enum class Domain { Normal, Positive, Simplex, Unit, Small, SPD, Class, Mask };

struct Case {
  std::string module, function;
  std::map<std::string, Domain> domains = {};
  /// The values of integer parameters (loop counts).
  std::map<std::string, int64_t> counts = {};
  /// Sizes of dims other than sizeOf's (rope and nt_xent need even ones).
  std::map<std::string, int64_t> sizes = {};
};

std::ostream &operator<<(std::ostream &os, const Case &c) {
  return os << c.module << "." << c.function;
}

int64_t sizeOf(const std::string &symbol) {
  static const std::map<std::string, int64_t> sizes = {
      {"N", 4}, {"D", 3}, {"K", 5}, {"M", 3}, {"B", 2}, {"I", 3},
      {"H", 4}, {"O", 2}, {"T", 3}, {"S", 4}, {"E", 2}, {"F", 5}};
  auto it = sizes.find(symbol);
  return it == sizes.end() ? 3 : it->second;
}

class GradCheck : public ::testing::TestWithParam<Case> {};

TEST_P(GradCheck, MatchesCentralDifferences) {
  const Case &c = GetParam();
  auto session = Session::create();
  ASSERT_TRUE(bool(session)) << llvm::toString(session.takeError());
  llvm::Error loaded = (*session)->loadFile(
      c.module == "weighted"
          ? std::string(MLX_WEIGHTED_MLX)
          : std::string(MLX_STDLIB_BUILD_DIR) + "/" + c.module + ".mlx");
  ASSERT_FALSE(bool(loaded)) << llvm::toString(std::move(loaded));
  auto found = (*session)->function(c.function);
  ASSERT_TRUE(bool(found)) << llvm::toString(found.takeError());
  const ast::Function *fn = *found;
  int64_t rank = fn->isShapePolymorphic() ? 2 : 0;
  ExportRequest value{fn, rank, rt::DType::f64};
  for (const ast::Param &p : fn->params)
    if (p.isStatic && c.counts.count(p.name))
      value.statics[p.name] = c.counts.at(p.name);
  ExportRequest gradient = value;
  for (auto [k, p] : llvm::enumerate(fn->params))
    if (rt::isFloat(p.type.dtype))
      gradient.wrt.push_back(k);
  auto compiled = (*session)->compile({value, gradient});
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  const Module &module = **compiled;
  rt::Signature valueSig = (*session)->signature(value);
  rt::Signature gradSig = (*session)->signature(gradient);
  auto call = [&](const rt::Signature &sig, const std::vector<rt::Tensor> &at) {
    auto results = module.call(sig.name, at);
    if (!results) {
      ADD_FAILURE() << llvm::toString(results.takeError());
      return std::vector<rt::Tensor>();
    }
    return *results;
  };

  // Random inputs in each parameter's domain.
  std::mt19937_64 rng(std::hash<std::string>()(c.module + c.function));
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(0.1, 1.0);
  // The sizes the symbols get, for dims given by formulas (W: f32[4 * H,
  // H + M]).
  std::map<std::string, int64_t> sizes;
  for (const char *symbol : {"N", "D", "K", "M", "B", "I", "H", "O", "T", "S",
                             "E", "F", "Q", "V", "A", "Z", "R", "X"})
    sizes[symbol] = sizeOf(symbol);
  for (const auto &[symbol, size] : c.sizes)
    sizes[symbol] = size;
  std::vector<rt::Tensor> args;
  for (auto [k, p] : llvm::enumerate(valueSig.params)) {
    std::vector<int64_t> shape;
    for (const rt::DimSpec &d : p.dims) {
      shape.push_back(d.formula     ? *d.formula->evaluate(sizes)
                      : d.size >= 0 ? d.size
                      : d.symbol.rfind("...", 0) == 0
                          ? 3 - (int64_t)shape.size()
                      : sizes.count(d.symbol) ? sizes.at(d.symbol)
                                              : sizeOf(d.symbol));
    }
    rt::Tensor t = rt::Tensor::allocate(p.dtype, shape);
    Domain domain =
        c.domains.count(p.name) ? c.domains.at(p.name) : Domain::Normal;
    if (c.counts.count(p.name)) {
      t.setDouble(0, (double)c.counts.at(p.name));
      args.push_back(t);
      continue;
    }
    double total = 0;
    for (int64_t i = 0; i < t.numElements(); ++i) {
      double v = domain == Domain::Class    ? (double)(i % 2) // a class index
                 : domain == Domain::Mask   ? (double)(i % 3 != 1)
                 : domain == Domain::Normal ? normal(rng)
                 : domain == Domain::Unit   ? uniform(rng) - 0.1
                 : domain == Domain::Small  ? 0.1 * uniform(rng)
                                            : uniform(rng);
      t.setDouble(i, v);
      total += v;
    }
    if (domain == Domain::Simplex)
      for (int64_t i = 0; i < t.numElements(); ++i)
        t.setDouble(i, t.getDouble(i) / total);
    if (domain == Domain::SPD) {
      // MᵀM + n·I for the normal M drawn above: symmetric positive definite.
      int64_t n = shape[0];
      rt::Tensor m = t.copy();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double v = i == j ? n : 0;
          for (int64_t k = 0; k < n; ++k)
            v += m.getDouble(k * n + i) * m.getDouble(k * n + j);
          t.setDouble(i * n + j, v);
        }
    }
    args.push_back(t);
  }
  // The convention: the gradient of the sum of all float result elements.
  auto objective = [&](const std::vector<rt::Tensor> &at) {
    double sum = 0;
    for (const rt::Tensor &r : call(valueSig, at))
      if (rt::isFloat(r.dtype()))
        for (int64_t i = 0; i < r.numElements(); ++i)
          sum += r.getDouble(i);
    return sum;
  };
  std::vector<rt::Tensor> grads = call(gradSig, args);
  size_t numValues = valueSig.results.size();
  ASSERT_EQ(grads.size(), numValues + gradient.wrt.size());
  double worst = 0;
  for (auto [g, k] : llvm::enumerate(gradient.wrt)) {
    const rt::Tensor &analytic = grads[numValues + g];
    double maxDiff = 0, maxMagnitude = 0;
    for (int64_t i = 0; i < args[k].numElements(); ++i) {
      std::vector<rt::Tensor> plus = args, minus = args;
      plus[k] = args[k].copy();
      minus[k] = args[k].copy();
      double x = args[k].getDouble(i);
      double h = 1e-6 * std::max(1.0, std::fabs(x));
      plus[k].setDouble(i, x + h);
      minus[k].setDouble(i, x - h);
      double numeric = (objective(plus) - objective(minus)) / (2 * h);
      double exact = analytic.getDouble(i);
      maxDiff = std::max(maxDiff, std::fabs(numeric - exact));
      maxMagnitude =
          std::max({maxMagnitude, std::fabs(numeric), std::fabs(exact)});
    }
    double relative = maxDiff / std::max(maxMagnitude, 1e-2);
    worst = std::max(worst, relative);
    EXPECT_LT(relative, 1e-6) << c << " d/d" << valueSig.params[k].name
                              << ": max |fd - grad| = " << maxDiff
                              << " for gradients up to " << maxMagnitude;
  }
  // Read by scripts/stdlib-doc.py from the XML report.
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g", worst);
  RecordProperty("max_relative_error", text);
}

const Domain P = Domain::Positive, S = Domain::Simplex, U = Domain::Unit;

INSTANTIATE_TEST_SUITE_P(
    Stdlib, GradCheck,
    ::testing::Values(
        Case{"linalg", "matmul"}, Case{"linalg", "matvec"},
        Case{"linalg", "dot"}, Case{"linalg", "transpose"},
        Case{"linalg", "outer"},
        Case{"linalg", "cholesky", {{"A", Domain::SPD}}},
        Case{"linalg", "solve_spd", {{"A", Domain::SPD}}},
        Case{"prob", "bayes_posterior", {{"likelihood", P}, {"prior", S}}},
        Case{"prob", "entropy", {{"p", S}}},
        Case{"prob", "cross_entropy", {{"p", S}, {"q", S}}},
        Case{"prob", "kl_divergence", {{"p", S}, {"q", S}}},
        Case{"supervised", "sigmoid"}, Case{"supervised", "softmax"},
        Case{"supervised", "log_softmax"},
        Case{"supervised", "softmax_cross_entropy", {{"y", S}}},
        Case{"supervised", "mse_loss"},
        Case{"supervised", "bce_loss", {{"y", U}}},
        Case{"supervised", "l2_penalty"}, Case{"supervised", "l1_penalty"},
        Case{"supervised", "normal_equation"},
        // 50 steps of gradient descent, also with respect to the learning
        // rate (a small one: the iterates stay bounded).
        Case{"supervised",
             "gd_linear_regression",
             {{"lr", Domain::Small}},
             {{"steps", 50}}},
        Case{"rnn", "rnn_cell"}, Case{"rnn", "rnn_sequence"},
        Case{"rnn", "lstm_cell"}, Case{"rnn", "lstm_sequence"},
        Case{"rnn", "gru_cell"}, Case{"sort", "sort"},
        Case{"unsupervised", "autoencoder_loss"},
        Case{"optim", "sgd_momentum_step"},
        Case{"optim", "adam_step", {{"v", P}}, {{"t", 3}}},
        Case{"gan", "gan_d_loss"}, Case{"gan", "gan_g_loss"},
        Case{"llm", "nll_loss", {{"targets", Domain::Class}}},
        Case{"llm", "scaling_law", {{"n", P}, {"n_c", P}}},
        Case{"llm", "temperature_softmax", {{"temp", P}}},
        // (rope needs an even D: its gradient is a PyTorch fixture.)
        Case{"context", "speculative_speedup", {{"alpha", U}, {"beta", U}}},
        Case{"lora", "lora_forward"},
        Case{"diffusion", "ddpm_alpha_bar", {{"betas", Domain::Small}}},
        Case{"diffusion", "ddpm_q_sample", {{"abar_t", U}}},
        Case{"diffusion", "ddpm_loss"},
        Case{"diffusion",
             "ddpm_posterior_mean",
             {{"alpha_t", P}, {"abar_t", U}}},
        Case{"diffusion", "cfg"},
        Case{"rl", "policy_gradient_loss", {{"actions", Domain::Class}}},
        Case{"rl", "ppo_clip_loss", {{"eps", Domain::Small}}},
        Case{"rl", "rlhf_loss", {{"eps", Domain::Small}}},
        Case{"nn", "clip_by_norm", {{"tau", Domain::Small}}},
        Case{"rag", "cosine_similarity"},
        Case{"rag",
             "bm25",
             {{"tf", P},
              {"df", P},
              {"doc_len", P},
              {"avgdl", P},
              {"n_docs", P},
              {"k1", P},
              {"b", U}}},
        Case{"rag", "rag_marginal", {{"answer_probs", P}}},
        Case{"gan", "optimal_discriminator", {{"p_data", P}, {"p_g", P}}},
        Case{"unsupervised", "reparameterize"}, Case{"unsupervised", "vae_kl"},
        Case{"unsupervised", "vae_loss"}, Case{"rl", "discounted_return"},
        Case{
            "rl", "q_learning_update", {}, {{"s", 1}, {"a", 2}, {"s_next", 3}}},
        Case{"rl", "value_iteration_step", {{"P", S}}},
        Case{"rl", "q_backup", {{"P", S}}}, Case{"rl", "reinforce_loss"},
        Case{"rl", "advantage"}, Case{"nn", "relu"}, Case{"nn", "leaky_relu"},
        Case{"nn", "gelu"}, Case{"nn", "gelu_tanh"}, Case{"nn", "linear"},
        Case{"nn", "mlp2"}, Case{"nn", "tiny_net_loss"},
        Case{"transformer", "attention"},
        Case{"transformer", "causal_attention"},
        Case{"transformer", "layer_norm", {{"eps", P}}},
        Case{"transformer", "ffn"}, Case{"transformer", "multi_head_attention"},
        Case{"transformer", "transformer_block"}, Case{"llm", "gqa_attention"},
        Case{"cnn", "conv2d", {}, {{"stride", 1}, {"pad", 1}}},
        Case{"context", "flash_attention"},
        Case{"cnn", "maxpool2d", {}, {{"size", 2}, {"stride", 1}}},
        Case{"optim", "nesterov_step"},
        Case{"optim", "adamw_step", {{"v", P}}, {{"t", 3}}},
        Case{"optim",
             "warmup_cosine_lr",
             {},
             {{"t", 3}, {"warmup", 2}, {"total", 10}}},
        Case{"llm", "perplexity", {{"targets", Domain::Class}}},
        Case{"llm", "renormalized", {{"p", S}, {"keep", Domain::Mask}}},
        Case{"llm", "top_k_filter", {{"p", S}}, {{"k", 2}}},
        Case{"llm", "top_p_filter", {{"p", S}, {"top_p", U}}},
        Case{"llm", "min_p_filter", {{"p", S}, {"p_min", Domain::Small}}},
        Case{"context", "constrained_softmax", {{"valid", Domain::Mask}}},
        Case{"context", "rope", {}, {}, {{"D", 4}}},
        Case{"unsupervised", "nt_xent", {{"tau", P}}, {}, {{"M", 4}}},
        Case{"unsupervised", "kmeans_objective", {{"assign", Domain::Class}}},
        Case{"unsupervised", "kmeans_update", {{"assign", Domain::Class}}},
        Case{"unsupervised", "kmeans", {}, {{"iters", 2}}},
        Case{"unsupervised", "pca"},
        Case{"linalg", "eigh", {{"A", Domain::SPD}}},
        Case{"lora", "nf4_quantize", {}, {{"block", 2}}},
        // Functions whose results sum to a constant, through the weighted
        // sums of test/Stdlib/Inputs/weighted.mlx (the plain sum's gradient
        // is 0 or 1 whatever the derivative).
        Case{"weighted", "softmax_weighted"},
        Case{"weighted",
             "bayes_posterior_weighted",
             {{"likelihood", P}, {"prior", S}}},
        Case{"weighted", "temperature_softmax_weighted", {{"temp", P}}},
        Case{"weighted",
             "renormalized_weighted",
             {{"p", S}, {"keep", Domain::Mask}}},
        Case{"weighted", "top_k_filter_weighted", {{"p", S}}, {{"k", 2}}},
        Case{"weighted", "top_p_filter_weighted", {{"p", S}, {"top_p", U}}},
        Case{"weighted",
             "min_p_filter_weighted",
             {{"p", S}, {"p_min", Domain::Small}}},
        Case{"weighted",
             "constrained_softmax_weighted",
             {{"valid", Domain::Mask}}},
        Case{"weighted", "sort_weighted"}, Case{"weighted", "eigh_weighted"},
        Case{"lora",
             "nf4_dequantize",
             {{"codes", Domain::Class}, {"absmax", P}},
             {{"block", 2}}}),
    [](const ::testing::TestParamInfo<Case> &info) {
      return info.param.module + "_" + info.param.function;
    });

} // namespace
