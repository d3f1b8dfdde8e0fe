//===- ReciprocalDivisorsTest.cpp - divisions by a row's sum at the edges ===//
//
// mlx-cpu-reciprocal-divisors turns x / d, d the same across a loop, into
// x · (1/d) where 1/d is a normal float, and keeps the division elsewhere.
// Compiled through the whole pipeline: rows normalized by their own sums
// (the sum lands in a buffer of the function, as softmax's does), each row
// a case — a normal sum (the product, within 1 ulp of the quotient), and
// sums that are zero, subnormal, above 2^126, infinite or NaN, which must
// give exactly what the division gives (the reciprocal would give inf or
// NaN for 0 / 1e-39, and lose bits for 2e38 / 3e38).
//
//===----------------------------------------------------------------------===//
#include "session/Session.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

using namespace mlx;

namespace {
const char *kSource = R"(
def normalize(x: f32[N, K]) -> f32[N, K] {
  y[i, j] = x[i, j] / sum[k] x[i, k]
  return y
}
)";

TEST(ReciprocalDivisors, RowSumsAtTheEdges) {
  auto created = Session::create();
  ASSERT_TRUE(bool(created));
  std::unique_ptr<Session> session = std::move(*created);
  ASSERT_FALSE(bool(session->loadSource("normalize.mlx", kSource)));
  auto compiled = session->compile(session->allExports());
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  std::unique_ptr<Module> module = std::move(*compiled);

  const float inf = INFINITY, nan = NAN;
  const std::vector<std::pair<float, float>> rows = {
      {1, 2},         {0, 0},         {1, -1},  {1e-39f, 0}, {2e-39f, -1e-39f},
      {2e38f, 1e38f}, {3e38f, 3e38f}, {inf, 1}, {nan, 1},    {5, 7}};
  rt::Tensor x =
      rt::Tensor::allocate(rt::DType::f32, {(int64_t)rows.size(), 2});
  auto *in = static_cast<float *>(x.data());
  for (size_t r = 0; r < rows.size(); ++r) {
    in[2 * r] = rows[r].first;
    in[2 * r + 1] = rows[r].second;
  }
  auto results = module->call("normalize", {x});
  ASSERT_TRUE(bool(results)) << llvm::toString(results.takeError());
  const auto *out = static_cast<const float *>((*results)[0].data());
  for (size_t r = 0; r < rows.size(); ++r) {
    float a = rows[r].first, b = rows[r].second, sum = a + b;
    float normal = std::fabs(sum) >= 0x1p-126f && std::fabs(sum) <= 0x1p126f;
    for (int c = 0; c < 2; ++c) {
      float quotient = (c ? b : a) / sum, got = out[2 * r + c];
      SCOPED_TRACE(testing::Message() << "row " << r << " column " << c);
      if (std::isnan(quotient)) {
        EXPECT_TRUE(std::isnan(got)) << got;
      } else if (normal) {
        EXPECT_NEAR(got, quotient, std::fabs(quotient) * 0x1p-23f);
      } else {
        EXPECT_EQ(got, quotient);
      }
    }
  }
}
} // namespace
