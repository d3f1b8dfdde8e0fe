//===- Random.cpp - counter-based random numbers as arith ops ---------===//
#include "frontend/Random.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;

namespace {
/// Philox's constants (Random123's PHILOX_M4x32_0/1, PHILOX_W32_0/1).
constexpr uint32_t kMultiplier0 = 0xD2511F53, kMultiplier1 = 0xCD9E8D57;
constexpr uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;

Value i32Constant(OpBuilder &b, Location loc, uint32_t v) {
  return b.create<arith::ConstantOp>(loc, b.getIntegerAttr(b.getI32Type(), v));
}
} // namespace

std::array<Value, 4> mlx::buildPhilox4x32(OpBuilder &b, Location loc,
                                          std::array<Value, 4> c,
                                          std::array<Value, 2> k) {
  Value m0 = i32Constant(b, loc, kMultiplier0);
  Value m1 = i32Constant(b, loc, kMultiplier1);
  Value w0 = i32Constant(b, loc, kWeyl0), w1 = i32Constant(b, loc, kWeyl1);
  auto xor3 = [&](Value x, Value y, Value z) {
    return b.create<arith::XOrIOp>(loc, b.create<arith::XOrIOp>(loc, x, y), z);
  };
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] = b.create<arith::AddIOp>(loc, k[0], w0);
      k[1] = b.create<arith::AddIOp>(loc, k[1], w1);
    }
    // (hi, lo) of M0·c0 and M1·c2; then
    // c = (hi1 ⊕ c1 ⊕ k0, lo1, hi0 ⊕ c3 ⊕ k1, lo0).
    auto p0 = b.create<arith::MulUIExtendedOp>(loc, m0, c[0]);
    auto p1 = b.create<arith::MulUIExtendedOp>(loc, m1, c[2]);
    c = {xor3(p1.getHigh(), c[1], k[0]), p1.getLow(),
         xor3(p0.getHigh(), c[3], k[1]), p0.getLow()};
  }
  return c;
}

Value mlx::buildRandom(OpBuilder &b, Location loc, bool normal, Value seed,
                       Value index, FloatType type) {
  Type i32 = b.getI32Type(), i64 = b.getI64Type();
  auto low = [&](Value v) { return b.create<arith::TruncIOp>(loc, i32, v); };
  auto high = [&](Value v) {
    Value shift = b.create<arith::ConstantOp>(loc, b.getIntegerAttr(i64, 32));
    return b.create<arith::TruncIOp>(loc, i32,
                                     b.create<arith::ShRUIOp>(loc, v, shift));
  };
  Value zero = i32Constant(b, loc, 0);
  std::array<Value, 4> words = buildPhilox4x32(
      b, loc, {low(index), high(index), zero, zero}, {low(seed), high(seed)});
  auto fconst = [&](double v) {
    return b.create<arith::ConstantOp>(loc, b.getFloatAttr(type, v));
  };
  // A uniform in [0, 1) from words[at] (and words[at + 1] for f64).
  auto uniform = [&](int at) -> Value {
    bool f64 = type.getWidth() == 64;
    Type wide = f64 ? i64 : i32;
    auto bits = [&](int word, int drop) -> Value {
      Value w = words[word];
      if (f64)
        w = b.create<arith::ExtUIOp>(loc, i64, w);
      Value shift =
          b.create<arith::ConstantOp>(loc, b.getIntegerAttr(wide, drop));
      return b.create<arith::ShRUIOp>(loc, w, shift);
    };
    if (!f64) {
      Value top = b.create<arith::UIToFPOp>(loc, type, bits(at, 8));
      return b.create<arith::MulFOp>(loc, top, fconst(std::ldexp(1.0, -24)));
    }
    // (w₀ >> 5)·2²⁶ + (w₁ >> 6): 53 bits.
    Value hi = bits(at, 5), lo = bits(at + 1, 6);
    Value shift = b.create<arith::ConstantOp>(loc, b.getIntegerAttr(i64, 26));
    Value all = b.create<arith::OrIOp>(
        loc, b.create<arith::ShLIOp>(loc, hi, shift), lo);
    Value asFloat = b.create<arith::UIToFPOp>(loc, type, all);
    return b.create<arith::MulFOp>(loc, asFloat, fconst(std::ldexp(1.0, -53)));
  };
  if (!normal)
    return uniform(0);
  int second = type.getWidth() == 64 ? 2 : 1;
  // 1 − u₁ ∈ (0, 1]: log never sees 0.
  Value u1 = b.create<arith::SubFOp>(loc, fconst(1.0), uniform(0));
  Value u2 = uniform(second);
  Value radius = b.create<math::SqrtOp>(
      loc, b.create<arith::MulFOp>(loc, fconst(-2.0),
                                   b.create<math::LogOp>(loc, u1)));
  Value angle = b.create<arith::MulFOp>(loc, fconst(2 * M_PI), u2);
  return b.create<arith::MulFOp>(loc, radius,
                                 b.create<math::CosOp>(loc, angle));
}
