//===- RandomTest.cpp - Philox-4x32-10 against its known answers ------===//
//
// The generator's IR (frontend/Random.cpp) folded on constant inputs must
// give the published known-answer vectors of Philox-4x32-10 (Random123's
// kat_vectors: counter, key → output).
//
//===----------------------------------------------------------------------===//
#include "frontend/Random.h"
#include "session/Session.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace mlir;

namespace {
struct KnownAnswer {
  std::array<uint32_t, 4> counter;
  std::array<uint32_t, 2> key;
  std::array<uint32_t, 4> output;
};

/// Folds `build`'s values, built from constants, to constants.
std::vector<uint64_t>
fold(function_ref<SmallVector<Value>(OpBuilder &, Location)> build) {
  MLIRContext ctx;
  ctx.loadDialect<arith::ArithDialect, func::FuncDialect, math::MathDialect>();
  OpBuilder b(&ctx);
  Location loc = b.getUnknownLoc();
  auto module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module.getBody());
  auto fn = b.create<func::FuncOp>(loc, "f", b.getFunctionType({}, {}));
  b.setInsertionPointToStart(fn.addEntryBlock());
  SmallVector<Value> values = build(b, loc);
  SmallVector<Type> types;
  for (Value v : values)
    types.push_back(v.getType());
  b.create<func::ReturnOp>(loc, values);
  fn.setFunctionType(b.getFunctionType({}, types));
  RewritePatternSet patterns(&ctx);
  for (RegisteredOperationName op : ctx.getRegisteredOperations())
    op.getCanonicalizationPatterns(patterns, &ctx);
  EXPECT_TRUE(
      succeeded(applyPatternsAndFoldGreedily(module, std::move(patterns))));
  std::vector<uint64_t> out;
  auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
  for (Value v : ret.getOperands()) {
    APInt bits;
    FloatAttr f;
    if (matchPattern(v, m_ConstantInt(&bits)))
      out.push_back(bits.getZExtValue());
    else if (matchPattern(v, m_Constant(&f)))
      out.push_back(f.getValue().bitcastToAPInt().getZExtValue());
    else
      ADD_FAILURE() << "did not fold to a constant";
  }
  module->erase();
  return out;
}
} // namespace

TEST(Random, Philox4x32KnownAnswers) {
  const KnownAnswer answers[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const KnownAnswer &kat : answers) {
    std::vector<uint64_t> words = fold([&](OpBuilder &b, Location loc) {
      auto word = [&](uint32_t v) -> Value {
        return b.create<arith::ConstantOp>(loc,
                                           b.getIntegerAttr(b.getI32Type(), v));
      };
      auto out =
          mlx::buildPhilox4x32(b, loc,
                               {word(kat.counter[0]), word(kat.counter[1]),
                                word(kat.counter[2]), word(kat.counter[3])},
                               {word(kat.key[0]), word(kat.key[1])});
      return SmallVector<Value>(out.begin(), out.end());
    });
    ASSERT_EQ(words.size(), 4u);
    for (int k = 0; k < 4; ++k)
      EXPECT_EQ(words[k], kat.output[k]) << "word " << k;
  }
}

// Uniforms are the top bits of the words scaled into [0, 1).
TEST(Random, UniformIsTheTopBitsOfWordZero) {
  // counter (0, 0, 0, 0), key (0, 0): word 0 = 0x6627e8d5.
  std::vector<uint64_t> bits = fold([&](OpBuilder &b, Location loc) {
    Value zero = b.create<arith::ConstantOp>(loc, b.getI64IntegerAttr(0));
    return SmallVector<Value>{
        mlx::buildRandom(b, loc, false, zero, zero, b.getF32Type())};
  });
  ASSERT_EQ(bits.size(), 1u);
  float value;
  uint32_t raw = (uint32_t)bits[0];
  std::memcpy(&value, &raw, sizeof value);
  EXPECT_EQ(value, (float)(0x6627e8d5u >> 8) / 16777216.0f);
}

namespace rt = mlx::rt;

namespace {
/// `normal(seed, dims)` compiled and called, as doubles.
std::vector<double> draw(const std::string &source, const std::string &name,
                         std::vector<rt::Tensor> args) {
  auto session = mlx::Session::create();
  EXPECT_TRUE(bool(session)) << llvm::toString(session.takeError());
  EXPECT_FALSE(bool((*session)->loadSource("draws.mlx", source)));
  auto fn = (*session)->function(name);
  EXPECT_TRUE(bool(fn));
  auto module = (*session)->compile({{*fn, 0}});
  EXPECT_TRUE(bool(module)) << llvm::toString(module.takeError());
  auto results = (*module)->call(name, std::move(args));
  EXPECT_TRUE(bool(results)) << llvm::toString(results.takeError());
  std::vector<double> out;
  for (int64_t i = 0; i < (*results)[0].numElements(); ++i)
    out.push_back((*results)[0].getDouble(i));
  return out;
}
} // namespace

// 10⁶ normals: mean, variance and the Kolmogorov–Smirnov distance to Φ
// within their 99.9 % bounds (3.29 σ of the mean and of the variance,
// whose standard deviation is √(2/n); KS: 1.949/√n), and the same bits at
// every rank (counters are row-major linear indices) and in every run.
TEST(Random, NormalDrawsAreStandardNormal) {
  const int64_t n = 1000000;
  const char *source = R"(
def flat(x: f32[N], seed: i64) -> f32[N] { return normal(seed, N) }
def square(x: f32[A, B], seed: i64) -> f32[A, B] { return normal(seed, A, B) }
)";
  rt::Tensor seed = rt::Tensor::allocate(rt::DType::i64, {});
  seed.setDouble(0, 20261201);
  std::vector<double> v =
      draw(source, "flat", {rt::Tensor::allocate(rt::DType::f32, {n}), seed});
  ASSERT_EQ((int64_t)v.size(), n);
  double mean = 0, var = 0;
  for (double x : v)
    mean += x;
  mean /= n;
  for (double x : v)
    var += (x - mean) * (x - mean);
  var /= n - 1;
  EXPECT_LT(std::fabs(mean), 3.29 / std::sqrt((double)n));
  EXPECT_LT(std::fabs(var - 1), 3.29 * std::sqrt(2.0 / n));
  std::vector<double> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  double ks = 0;
  for (int64_t i = 0; i < n; ++i) {
    double cdf = 0.5 * std::erfc(-sorted[i] / std::sqrt(2.0));
    ks = std::max({ks, std::fabs(cdf - (double)i / n),
                   std::fabs((double)(i + 1) / n - cdf)});
  }
  EXPECT_LT(ks, 1.949 / std::sqrt((double)n));
  std::vector<double> again =
      draw(source, "flat", {rt::Tensor::allocate(rt::DType::f32, {n}), seed});
  EXPECT_EQ(v, again);
  std::vector<double> square =
      draw(source, "square",
           {rt::Tensor::allocate(rt::DType::f32, {1000, 1000}), seed});
  EXPECT_EQ(v, square);
}
