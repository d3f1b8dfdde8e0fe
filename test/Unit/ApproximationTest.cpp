//===- ApproximationTest.cpp - f32 transcendentals against libm -------===//
//
// The CPU target computes f32 exp, log, log1p, tanh and erf with polynomial
// approximations (mlx-approximate-math). Compiled through the whole
// pipeline and compared with libm in double precision rounded to f32 over
// each function's range (2^20 points each, spaced evenly plus logarithmic
// sweeps where the range spans magnitudes), in ulps; and the values at the
// edges (±inf, NaN, overflow, subnormal results and arguments) exactly.
//
//===----------------------------------------------------------------------===//
#include "session/Session.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

using namespace mlx;

namespace {
const char *kSource = R"(
def exp_(x: f32[N]) -> f32[N] { return exp(x) }
def log_(x: f32[N]) -> f32[N] { return log(x) }
def log1p_(x: f32[N]) -> f32[N] { return log1p(x) }
def tanh_(x: f32[N]) -> f32[N] { return tanh(x) }
def erf_(x: f32[N]) -> f32[N] { return erf(x) }
)";

/// The distance in representable floats between a and b (0 when equal, or
/// both NaN).
int64_t ulps(float a, float b) {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b) ? 0 : INT64_MAX;
  auto ordered = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, sizeof i);
    return i < 0 ? (int64_t)INT32_MIN - i : (int64_t)i;
  };
  return std::llabs(ordered(a) - ordered(b));
}

struct Approximations : public ::testing::Test {
  static void SetUpTestSuite() {
    auto created = Session::create();
    ASSERT_TRUE(bool(created));
    session = std::move(*created).release();
    ASSERT_FALSE(bool(session->loadSource("approx.mlx", kSource)));
    std::vector<ExportRequest> all = session->allExports();
    auto compiled = session->compile(all);
    ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
    module = std::move(*compiled).release();
  }
  static void TearDownTestSuite() {
    delete module;
    delete session;
  }

  /// The compiled f32 function `name` at `xs`.
  std::vector<float> run(const std::string &name,
                         const std::vector<float> &xs) {
    rt::Tensor x = rt::Tensor::allocate(rt::DType::f32, {(int64_t)xs.size()});
    std::memcpy(x.data(), xs.data(), xs.size() * sizeof(float));
    auto results = module->call(name, {x});
    EXPECT_TRUE(bool(results));
    if (!results)
      return {};
    std::vector<float> out(xs.size());
    std::memcpy(out.data(), (*results)[0].data(), out.size() * sizeof(float));
    return out;
  }

  /// The largest error in ulps against `reference` at `xs`.
  int64_t maxUlps(const std::string &name, const std::vector<float> &xs,
                  const std::function<double(double)> &reference) {
    std::vector<float> got = run(name, xs);
    int64_t worst = 0;
    float at = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      int64_t d = ulps(got[i], (float)reference(xs[i]));
      if (d > worst) {
        worst = d;
        at = xs[i];
      }
    }
    std::cout << name << ": max " << worst << " ulp (at " << at << ")\n";
    return worst;
  }

  static std::vector<float> linear(float lo, float hi, int n = 1 << 20) {
    std::vector<float> xs;
    for (int i = 0; i < n; ++i)
      xs.push_back(lo + (hi - lo) * (float)i / (float)(n - 1));
    return xs;
  }
  static std::vector<float> logarithmic(float lo, float hi, int n = 1 << 20) {
    std::vector<float> xs;
    for (int i = 0; i < n; ++i)
      xs.push_back(
          (float)(lo * std::pow((double)hi / lo, (double)i / (n - 1))));
    return xs;
  }

  static Session *session;
  static Module *module;
};
Session *Approximations::session = nullptr;
Module *Approximations::module = nullptr;

const float inf = INFINITY, qnan = NAN;
} // namespace

TEST_F(Approximations, Exp) {
  auto ref = [](double x) { return std::exp(x); };
  EXPECT_LE(maxUlps("exp_", linear(-87.3f, 88.0f), ref), 1);
  // Next to overflow (exp(88.7228) = FLT_MAX): 2^k as two factors.
  EXPECT_LE(maxUlps("exp_", linear(88.0f, 88.7228f), ref), 1);
  // Subnormal results: one rounding, of p · 2^(k>>1) · 2^(k−(k>>1)).
  EXPECT_LE(maxUlps("exp_", linear(-103.9f, -87.3f), ref), 1);
  // Small arguments of both signs, where exp(x) ≈ 1 + x.
  EXPECT_LE(maxUlps("exp_", logarithmic(1e-10f, 1.0f), ref), 1);
  EXPECT_LE(maxUlps("exp_", logarithmic(-1e-10f, -1.0f), ref), 1);
  std::vector<float> edges =
      run("exp_", {-inf, inf, qnan, 89.0f, -110.0f, 0.0f, -0.0f, 88.7228f,
                   88.7229f, 88.79f, 1000.0f, -103.97f, -104.0f, -1000.0f});
  EXPECT_EQ(edges[0], 0.0f);
  EXPECT_EQ(edges[1], inf);
  EXPECT_TRUE(std::isnan(edges[2]));
  EXPECT_EQ(edges[3], inf);
  EXPECT_EQ(edges[4], 0.0f);
  EXPECT_EQ(edges[5], 1.0f);
  EXPECT_EQ(edges[6], 1.0f);
  EXPECT_LE(ulps(edges[7], (float)std::exp((double)88.7228f)), 1); // finite
  EXPECT_LT(edges[7], inf); // near FLT_MAX
  EXPECT_EQ(edges[8], inf);
  EXPECT_EQ(edges[9], inf);
  EXPECT_EQ(edges[10], inf);
  EXPECT_EQ(edges[11], 0x1p-149f); // rounds up to the least subnormal
  EXPECT_EQ(edges[12], 0.0f);
  EXPECT_EQ(edges[13], 0.0f);
}

TEST_F(Approximations, Log) {
  auto ref = [](double x) { return std::log(x); };
  EXPECT_LE(maxUlps("log_", logarithmic(1e-30f, 1e30f), ref), 1);
  EXPECT_LE(maxUlps("log_", logarithmic(1e-45f, 1.2e-38f), ref), 1);
  std::vector<float> edges = run("log_", {0.0f, -1.0f, inf, qnan, 1.0f});
  EXPECT_EQ(edges[0], -inf);
  EXPECT_TRUE(std::isnan(edges[1]));
  EXPECT_EQ(edges[2], inf);
  EXPECT_TRUE(std::isnan(edges[3]));
  EXPECT_EQ(edges[4], 0.0f);
}

TEST_F(Approximations, Log1p) {
  auto ref = [](double x) { return std::log1p(x); };
  EXPECT_LE(maxUlps("log1p_", linear(-0.9f, 10.0f), ref), 2);
  EXPECT_LE(maxUlps("log1p_", logarithmic(1e-30f, 1e-3f), ref), 2);
  std::vector<float> edges = run("log1p_", {-1.0f, inf, 0.0f, 1e-40f});
  EXPECT_EQ(edges[0], -inf);
  EXPECT_EQ(edges[1], inf);
  EXPECT_EQ(edges[2], 0.0f);
  EXPECT_EQ(edges[3], 1e-40f);
}

TEST_F(Approximations, Tanh) {
  auto ref = [](double x) { return std::tanh(x); };
  EXPECT_LE(maxUlps("tanh_", linear(-10.0f, 10.0f), ref), 5);
  EXPECT_LE(maxUlps("tanh_", logarithmic(1e-30f, 1e-2f), ref), 5);
  std::vector<float> edges = run("tanh_", {-inf, inf, qnan, 0.0f, 50.0f});
  EXPECT_EQ(edges[0], -1.0f);
  EXPECT_EQ(edges[1], 1.0f);
  EXPECT_TRUE(std::isnan(edges[2]));
  EXPECT_EQ(edges[3], 0.0f);
  EXPECT_EQ(edges[4], 1.0f);
}

TEST_F(Approximations, Erf) {
  auto ref = [](double x) { return std::erf(x); };
  EXPECT_LE(maxUlps("erf_", linear(-5.0f, 5.0f), ref), 5);
  EXPECT_LE(maxUlps("erf_", logarithmic(1e-30f, 1e-2f), ref), 4);
  std::vector<float> edges = run("erf_", {-inf, inf, qnan, 0.0f});
  EXPECT_EQ(edges[0], -1.0f);
  EXPECT_EQ(edges[1], 1.0f);
  EXPECT_TRUE(std::isnan(edges[2]));
  EXPECT_EQ(edges[3], 0.0f);
}
