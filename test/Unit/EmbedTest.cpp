//===- EmbedTest.cpp - the embedding API, through its public header -----===//
//
// Every entry point of include/mlxc/mlxc.h, linked against libmlxc.so
// only (no internal header): compiling source strings and files, calling
// functions, gradients and value-and-gradients on owned tensors and on
// strided views, f64 instances, `[...]` ranks and static parameters, one
// function called from 8 threads at once, and every error path with the
// exact diagnostic text the CLI prints.
//
//===----------------------------------------------------------------------===//
#include "mlxc/mlxc.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

namespace {

using mlxc::DType;
using mlxc::Tensor;

mlxc::Compiler compiler() {
  auto c = mlxc::Compiler::create();
  EXPECT_TRUE(bool(c)) << c.error();
  return *c;
}

Tensor f32(std::vector<int64_t> shape, std::vector<float> values) {
  return Tensor::copyOf(DType::f32, std::move(shape), values.data());
}

std::vector<double> valuesOf(const Tensor &t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numElements(); ++i)
    out.push_back(t.at(i));
  return out;
}

/// softmax(Q Kᵀ/√D) V with the causal mask, in double.
std::vector<double> causalAttention(const std::vector<float> &Q,
                                    const std::vector<float> &K,
                                    const std::vector<float> &V, int T, int D,
                                    int E) {
  std::vector<double> out(T * E, 0.0);
  for (int i = 0; i < T; ++i) {
    std::vector<double> s(i + 1);
    double m = -INFINITY, total = 0;
    for (int j = 0; j <= i; ++j) {
      for (int d = 0; d < D; ++d)
        s[j] += (double)Q[i * D + d] * K[j * D + d] / std::sqrt((double)D);
      m = std::max(m, s[j]);
    }
    for (int j = 0; j <= i; ++j)
      total += s[j] = std::exp(s[j] - m);
    for (int j = 0; j <= i; ++j)
      for (int e = 0; e < E; ++e)
        out[i * E + e] += s[j] / total * V[j * E + e];
  }
  return out;
}

const char *attendSource =
    "import transformer\n"
    "def attend(Q: f32[T, D], K: f32[T, D], V: f32[T, E]) -> f32[T, E] {\n"
    "  return causal_attention(Q, K, V)\n"
    "}\n";

TEST(Embed, Tensors) {
  Tensor z = Tensor::zeros(DType::i64, {2, 3});
  EXPECT_EQ(z.dtype(), DType::i64);
  EXPECT_EQ(z.rank(), 2);
  EXPECT_EQ(z.numElements(), 6);
  EXPECT_EQ(z.strides(), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(valuesOf(z), std::vector<double>(6, 0.0));
  z.data<int64_t>()[4] = 7; // copies share the buffer
  Tensor same = z;
  EXPECT_EQ(same.at(4), 7);
  double values[2] = {1.5, -2};
  Tensor copied = Tensor::copyOf(DType::f64, {2}, values);
  values[0] = 0; // a copy, not a view
  EXPECT_EQ(valuesOf(copied), (std::vector<double>{1.5, -2}));
  Tensor viewed = Tensor::view(DType::f64, {2}, values);
  EXPECT_EQ(viewed.data(), (void *)values);
  EXPECT_EQ(valuesOf(viewed), (std::vector<double>{0, -2}));
  Tensor scalar;
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(std::string(mlxc::dtypeName(DType::boolean)), "bool");
  EXPECT_EQ(mlxc::dtypeSize(DType::f64), 8u);
  EXPECT_EQ(mlxc::dtypeSize(DType::boolean), 1u);
}

TEST(Embed, CompilesSourceAndCallsIt) {
  auto module = compiler().compileSource(attendSource);
  ASSERT_TRUE(bool(module)) << module.error();
  EXPECT_EQ(module->functions(), std::vector<std::string>{"attend"});
  auto attend = module->function("attend");
  ASSERT_TRUE(bool(attend)) << attend.error();
  EXPECT_EQ(attend->name(), "attend");
  EXPECT_EQ(attend->parameters(), (std::vector<std::string>{"Q", "K", "V"}));
  std::vector<float> Q = {1, 0, 0.5, -1, 2, 0.25}, K = {0.5, 0.5, 1, -1, 0, 3},
                     V = {1, 0, 0, 1, 2, 2};
  auto out = (*attend)({f32({3, 2}, Q), f32({3, 2}, K), f32({3, 2}, V)});
  ASSERT_TRUE(bool(out)) << out.error();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].dtype(), DType::f32);
  EXPECT_EQ((*out)[0].shape(), (std::vector<int64_t>{3, 2}));
  std::vector<double> expected = causalAttention(Q, K, V, 3, 2, 2);
  std::vector<double> got = valuesOf((*out)[0]);
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(got[i], expected[i], 1e-6) << "element " << i;
}

TEST(Embed, GradientsAndValueAndGradients) {
  auto module =
      compiler().compileSource("import supervised\n"
                               "def loss(z: f32[K], y: f32[K]) -> f32 {\n"
                               "  return softmax_cross_entropy(z, y)\n"
                               "}\n");
  ASSERT_TRUE(bool(module)) << module.error();
  std::vector<float> z = {1, 2, 0.5}, y = {0, 1, 0};
  double total = 0;
  for (float v : z)
    total += std::exp((double)v);
  // d/dz = softmax(z) − y (Σy = 1).
  auto grad = module->grad("loss", {"z"});
  ASSERT_TRUE(bool(grad)) << grad.error();
  auto dz = (*grad)({f32({3}, z), f32({3}, y)});
  ASSERT_TRUE(bool(dz)) << dz.error();
  ASSERT_EQ(dz->size(), 1u);
  for (int k = 0; k < 3; ++k)
    EXPECT_NEAR((*dz)[0].at(k), std::exp((double)z[k]) / total - y[k], 1e-6);
  auto both = module->valueAndGrad("loss", {"z", "y"});
  ASSERT_TRUE(bool(both)) << both.error();
  auto results = (*both)({f32({3}, z), f32({3}, y)});
  ASSERT_TRUE(bool(results)) << results.error();
  ASSERT_EQ(results->size(), 3u); // loss, dz, dy
  EXPECT_NEAR((*results)[0].at(0), std::log(total) - z[1], 1e-6);
  for (int k = 0; k < 3; ++k)
    EXPECT_NEAR((*results)[2].at(k), -(z[k] - std::log(total)), 1e-6);
}

TEST(Embed, ViewsAreReadInPlaceWithTheirStrides) {
  auto module =
      compiler().compileFile(std::string(MLX_STDLIB_BUILD_DIR) + "/linalg.mlx");
  ASSERT_TRUE(bool(module)) << module.error();
  auto matvec = module->function("matvec");
  ASSERT_TRUE(bool(matvec)) << matvec.error();
  // A = the transpose of the row-major 3×2 buffer below, as a view.
  float buffer[6] = {1, 2, 3, 4, 5, 6};
  float x[3] = {1, 0, -1};
  Tensor A = Tensor::view(DType::f32, {2, 3}, buffer, {1, 2});
  auto y = (*matvec)({A, Tensor::view(DType::f32, {3}, x)});
  ASSERT_TRUE(bool(y)) << y.error();
  // Aᵀ rows: [1, 3, 5], [2, 4, 6].
  EXPECT_EQ(valuesOf((*y)[0]), (std::vector<double>{-4, -4}));
}

TEST(Embed, ArgumentsChooseTheInstance) {
  auto module = compiler().compileSource(
      "import nn\n"
      "import cnn\n"
      "def act(z: f32[...]) -> f32[...] { return relu(z) }\n"
      "def pool(x: f32[C, H, W], s: static i32) -> f32[C, H - s + 1, W - s + "
      "1] {\n"
      "  return maxpool2d(x, s, 1)\n"
      "}\n");
  ASSERT_TRUE(bool(module)) << module.error();
  auto act = module->function("act");
  ASSERT_TRUE(bool(act)) << act.error();
  // f64 arrays run the f64 instance; ranks 1 and 2 two more instances.
  double z64[3] = {-1, 0.5, 2};
  auto r64 = (*act)({Tensor::view(DType::f64, {3}, z64)});
  ASSERT_TRUE(bool(r64)) << r64.error();
  EXPECT_EQ((*r64)[0].dtype(), DType::f64);
  EXPECT_EQ(valuesOf((*r64)[0]), (std::vector<double>{0, 0.5, 2}));
  auto r2 = (*act)({f32({2, 2}, {-1, 1, 2, -2})});
  ASSERT_TRUE(bool(r2)) << r2.error();
  EXPECT_EQ((*r2)[0].shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(valuesOf((*r2)[0]), (std::vector<double>{0, 1, 2, 0}));
  auto pool = module->function("pool");
  ASSERT_TRUE(bool(pool)) << pool.error();
  int32_t two = 2;
  auto pooled = (*pool)({f32({1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}),
                         Tensor::copyOf(DType::i32, {}, &two)});
  ASSERT_TRUE(bool(pooled)) << pooled.error();
  EXPECT_EQ((*pooled)[0].shape(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(valuesOf((*pooled)[0]), (std::vector<double>{5, 6, 8, 9}));
}

/// Eight threads calling one compiled function 20 times each, every
/// result checked against a double-precision reference.
void callFromEightThreads(mlxc::Compiler c) {
  auto module = c.compileSource(attendSource);
  ASSERT_TRUE(bool(module)) << module.error();
  auto attend = module->function("attend");
  ASSERT_TRUE(bool(attend)) << attend.error();
  constexpr int threads = 8, T = 16, D = 4, calls = 20;
  std::vector<std::vector<float>> inputs(threads);
  std::vector<int> wrong(threads, 0), failed(threads, 0);
  for (int t = 0; t < threads; ++t)
    for (int i = 0; i < T * D; ++i)
      inputs[t].push_back(std::sin(0.37 * i + t)); // a different Q=K=V each
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<double> expected =
          causalAttention(inputs[t], inputs[t], inputs[t], T, D, D);
      Tensor x = f32({T, D}, inputs[t]);
      for (int c = 0; c < calls; ++c) {
        auto out = (*attend)({x, x, x});
        if (!out) {
          ++failed[t];
          continue;
        }
        for (int i = 0; i < T * D; ++i)
          if (std::fabs((*out)[0].at(i) - expected[i]) > 1e-5)
            ++wrong[t];
      }
    });
  for (std::thread &t : pool)
    t.join();
  for (int t = 0; t < threads; ++t) {
    EXPECT_EQ(failed[t], 0) << "thread " << t;
    EXPECT_EQ(wrong[t], 0) << "thread " << t;
  }
}

TEST(Embed, OneFunctionFromEightThreads) { callFromEightThreads(compiler()); }

#ifdef MLX_HAVE_VULKAN
// The same on the Vulkan device (lavapipe in CI): calls record and submit
// concurrently, each in its own command buffer.
TEST(Embed, OneFunctionFromEightThreadsOnVulkan) {
  mlxc::Options options;
  options.backend = "vulkan";
  auto c = mlxc::Compiler::create(options);
  ASSERT_TRUE(bool(c)) << c.error();
  callFromEightThreads(*c);
}
#endif

// Error paths: the exact text `mlxc` prints.

TEST(EmbedErrors, BadSource) {
  auto module = compiler().compileSource(
      "def f(x: f32) -> f32 {\n  return x + y\n}\n", "bad.mlx");
  ASSERT_FALSE(bool(module));
  EXPECT_EQ(module.error(), "bad.mlx:2:14: error: unknown name 'y'\n"
                            "  return x + y\n"
                            "             ^\n");
}

TEST(EmbedErrors, MissingFile) {
  auto module = compiler().compileFile("/nonexistent/model.mlx");
  ASSERT_FALSE(bool(module));
  EXPECT_EQ(module.error(),
            "mlxc: error: cannot read '/nonexistent/model.mlx': "
            "No such file or directory\n");
}

TEST(EmbedErrors, UnknownBackend) {
  mlxc::Options options;
  options.backend = "tpu";
  auto c = mlxc::Compiler::create(options);
  ASSERT_FALSE(bool(c));
  EXPECT_EQ(c.error(), "error: unknown backend 'tpu' (--backend cpu or "
                       "vulkan)\n");
}

TEST(EmbedErrors, UnknownCpuAndOptLevel) {
  mlxc::Options options;
  options.cpu = "pentium9";
  auto c = mlxc::Compiler::create(options);
  ASSERT_FALSE(bool(c));
  EXPECT_EQ(c.error(), "error: unknown CPU 'pentium9' for "
                       "x86_64-pc-linux-gnu (host, or an LLVM CPU name such "
                       "as x86-64, x86-64-v2, x86-64-v3, x86-64-v4, znver4)\n");
  options.cpu = "x86-64";
  options.optLevel = 9;
  auto o = mlxc::Compiler::create(options);
  ASSERT_FALSE(bool(o));
  EXPECT_EQ(o.error(), "error: the optimisation level must be 0 to 3, got 9\n");
}

TEST(Embed, PortableCpuAndOptLevel) {
  mlxc::Options options;
  options.cpu = "x86-64";
  options.optLevel = 1;
  auto c = mlxc::Compiler::create(options);
  ASSERT_TRUE(bool(c)) << c.error();
  auto module = c->compileSource(attendSource);
  ASSERT_TRUE(bool(module)) << module.error();
  std::vector<float> Q = {1, 0, 1, 0}, K = {0.5, 0.5, 1, -1}, V = {1, 0, 0, 1};
  auto out = (*module->function("attend"))(
      {f32({2, 2}, Q), f32({2, 2}, K), f32({2, 2}, V)});
  ASSERT_TRUE(bool(out)) << out.error();
  EXPECT_NEAR((*out)[0].at(2), 0.412521, 1e-6);
}

TEST(EmbedErrors, UnknownFunction) {
  auto module = compiler().compileSource(attendSource, "model.mlx");
  ASSERT_TRUE(bool(module)) << module.error();
  auto f = module->function("atend");
  ASSERT_FALSE(bool(f));
  EXPECT_EQ(f.error(), "model.mlx: error: no function 'atend'; did you mean "
                       "'attend'? (it defines: attend)\n");
}

TEST(EmbedErrors, WrongArity) {
  auto module = compiler().compileSource(attendSource, "model.mlx");
  ASSERT_TRUE(bool(module)) << module.error();
  auto out = (*module->function("attend"))({f32({1, 1}, {1})});
  ASSERT_FALSE(bool(out));
  EXPECT_EQ(out.error(), "model.mlx:2:5: error: 'attend' takes 3 arguments "
                         "but 1 were given\n"
                         "def attend(Q: f32[T, D], K: f32[T, D], V: f32[T, "
                         "E]) -> f32[T, E] {\n"
                         "    ^\n");
}

TEST(EmbedErrors, WrongShapes) {
  auto module = compiler().compileSource(attendSource, "model.mlx");
  ASSERT_TRUE(bool(module)) << module.error();
  auto out = (*module->function("attend"))({f32({2, 2}, {1, 2, 3, 4}),
                                            f32({3, 2}, {1, 2, 3, 4, 5, 6}),
                                            f32({2, 1}, {1, 2})});
  ASSERT_FALSE(bool(out));
  EXPECT_EQ(out.error(),
            "model.mlx:2:5: error: argument 'K' dimension 0 (T) is 3 but "
            "argument 'Q' has T = 2 (expected f32[T, D], received f32[3, 2])\n"
            "def attend(Q: f32[T, D], K: f32[T, D], V: f32[T, E]) -> f32[T, "
            "E] {\n"
            "    ^\n");
}

TEST(EmbedErrors, WrongDType) {
  auto module = compiler().compileSource(attendSource, "model.mlx");
  ASSERT_TRUE(bool(module)) << module.error();
  int32_t ones[4] = {1, 1, 1, 1};
  Tensor i = Tensor::view(DType::i32, {2, 2}, ones);
  auto out = (*module->function("attend"))({i, i, i});
  ASSERT_FALSE(bool(out));
  EXPECT_EQ(out.error(),
            "model.mlx:2:5: error: argument 'Q' must be f32 but is i32 "
            "(expected f32[T, D], received i32[2, 2])\n"
            "def attend(Q: f32[T, D], K: f32[T, D], V: f32[T, E]) -> f32[T, "
            "E] {\n"
            "    ^\n");
}

TEST(EmbedErrors, GradientOfAnIntegerParameter) {
  auto module =
      compiler().compileSource("def scale(x: f32[N], k: i32) -> f32 {\n"
                               "  return sum[n] x[n] * f32(k)\n"
                               "}\n",
                               "scale.mlx");
  ASSERT_TRUE(bool(module)) << module.error();
  auto g = module->grad("scale", {"k"});
  ASSERT_FALSE(bool(g));
  EXPECT_EQ(g.error(), "scale.mlx:1:22: error: cannot differentiate "
                       "with respect to 'k', it is i32\n"
                       "def scale(x: f32[N], k: i32) -> f32 {\n"
                       "                     ^\n");
}

TEST(EmbedErrors, RunTimeChecksAndNumerics) {
  mlxc::Options options;
  options.checkNumerics = true;
  auto c = mlxc::Compiler::create(options);
  ASSERT_TRUE(bool(c)) << c.error();
  auto module = c->compileSource("def f(x: f32[N]) -> f32 {\n"
                                 "  check N > 1\n"
                                 "  return log(sum[n] x[n])\n"
                                 "}\n",
                                 "f.mlx");
  ASSERT_TRUE(bool(module)) << module.error();
  auto f = module->function("f");
  ASSERT_TRUE(bool(f)) << f.error();
  auto one = (*f)({f32({1}, {1})});
  ASSERT_FALSE(bool(one));
  EXPECT_EQ(one.error(), "f.mlx:2:3: error: check failed: N > 1\n"
                         "  check N > 1\n"
                         "  ^\n");
  auto negative = (*f)({f32({2}, {1, -3})});
  ASSERT_FALSE(bool(negative));
  EXPECT_EQ(negative.error(),
            "f.mlx:3:10: error: first NaN produced here (--check-numerics)\n"
            "  return log(sum[n] x[n])\n"
            "         ^\n");
  auto fine = (*f)({f32({2}, {1, 2})});
  ASSERT_TRUE(bool(fine)) << fine.error();
  EXPECT_NEAR((*fine)[0].at(0), std::log(3.0), 1e-6);
}

} // namespace
