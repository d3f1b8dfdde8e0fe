//===- ReciprocalDivisorsTest.cpp - divisions by a row's sum at the edges ===//
//
// mlx-cpu-reciprocal-divisors turns x / d, d the same across a loop, into
// x · (1/d) where 1/d is a normal float, and keeps the division elsewhere.
// Compiled through the whole pipeline: rows normalized by their own sums
// (the sum lands in a buffer of the function, as softmax's does), each row
// a case, in f32 and f64: a normal sum (the product, within 1 ulp of the
// quotient), and sums that are zero, subnormal, above 2^126 (2^1022),
// infinite or NaN, which must give exactly what the division gives (the
// reciprocal would give inf or NaN for 0 / 1e-39, and lose bits for
// 2e38 / 3e38).
//
//===----------------------------------------------------------------------===//
#include "session/Session.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

using namespace mlx;

namespace {
const char *kSource = R"(
def normalize(x: f32[N, K]) -> f32[N, K] {
  y[i, j] = x[i, j] / sum[k] x[i, k]
  return y
}
def normalize64(x: f64[N, K]) -> f64[N, K] {
  y[i, j] = x[i, j] / sum[k] x[i, k]
  return y
}
)";

/// Normalizes `rows` (pairs) with the compiled `name` and compares each
/// element with the quotient: within 1 ulp where the row's sum is in
/// [smallest normal, 1 / smallest normal] (the product by the reciprocal),
/// exactly elsewhere.
template <typename T>
void checkRows(Module &module, const std::string &name, rt::DType dtype,
               const std::vector<std::pair<T, T>> &rows) {
  rt::Tensor x = rt::Tensor::allocate(dtype, {(int64_t)rows.size(), 2});
  auto *in = static_cast<T *>(x.data());
  for (size_t r = 0; r < rows.size(); ++r) {
    in[2 * r] = rows[r].first;
    in[2 * r + 1] = rows[r].second;
  }
  auto results = module.call(name, {x});
  ASSERT_TRUE(bool(results)) << llvm::toString(results.takeError());
  const auto *out = static_cast<const T *>((*results)[0].data());
  const T smallest = std::numeric_limits<T>::min();
  for (size_t r = 0; r < rows.size(); ++r) {
    T a = rows[r].first, b = rows[r].second, sum = a + b;
    bool normal = std::fabs(sum) >= smallest && std::fabs(sum) <= 1 / smallest;
    for (int c = 0; c < 2; ++c) {
      T quotient = (c ? b : a) / sum, got = out[2 * r + c];
      SCOPED_TRACE(testing::Message()
                   << name << " row " << r << " column " << c);
      if (std::isnan(quotient))
        EXPECT_TRUE(std::isnan(got)) << got;
      else if (normal)
        EXPECT_NEAR(got, quotient,
                    std::fabs(quotient) * std::numeric_limits<T>::epsilon());
      else
        EXPECT_EQ(got, quotient);
    }
  }
}

TEST(ReciprocalDivisors, RowSumsAtTheEdges) {
  auto created = Session::create();
  ASSERT_TRUE(bool(created));
  std::unique_ptr<Session> session = std::move(*created);
  ASSERT_FALSE(bool(session->loadSource("normalize.mlx", kSource)));
  auto compiled = session->compile(session->allExports());
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  std::unique_ptr<Module> module = std::move(*compiled);

  const float inf = INFINITY, nan = NAN;
  checkRows<float>(*module, "normalize", rt::DType::f32,
                   {{1, 2},
                    {0, 0},
                    {1, -1},
                    {1e-39f, 0},
                    {2e-39f, -1e-39f},
                    {2e38f, 1e38f},
                    {3e38f, 3e38f},
                    {inf, 1},
                    {nan, 1},
                    {5, 7}});
  checkRows<double>(*module, "normalize64", rt::DType::f64,
                    {{1, 2},
                     {0, 0},
                     {1, -1},
                     {1e-310, 0},
                     {2e-310, -1e-310},
                     {1e308, 5e307},
                     {1e308, 1e308},
                     {inf, 1},
                     {nan, 1},
                     {5, 7}});
}
} // namespace
