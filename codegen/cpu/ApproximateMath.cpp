//===- ApproximateMath.cpp - f32 transcendentals as arithmetic ---*- C++
//-*-===//
//
// `mlx-approximate-math`: f32 exp, log, log1p, tanh and erf as plain
// arithmetic that LLVM vectorizes (a libm call keeps a loop scalar). exp is
// expanded here (it is the inner loop of softmax, attention and the
// sigmoids); the others are MLIR's polynomial approximations. Errors against
// libm are measured in test/Unit/ApproximationTest.cpp.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

using namespace mlir;

namespace {
/// Coefficients c0..c4 of q in exp(r) ≈ 1 + r + r²·q(r) on
/// |r| ≤ ln 2 / 2: a minimax fit of the relative error (scripts/
/// fit-exp-polynomial.py): at most 3.7e-9 (0.03 ulp) with the coefficients
/// rounded to f32.
constexpr float kExpQ[] = {0x1.fffffcp-2f, 0x1.555492p-3f, 0x1.5558f4p-5f,
                           0x1.123a22p-7f, 0x1.6a23cp-10f};

/// exp(x) for f32 over the whole range without a branch or a table:
/// x = k·ln 2 + r with k = round(x·log2 e) (the 1.5·2²³ rounding trick, so
/// k's bits come with it), r by a two-part ln 2 (k·ln2Hi is exact), exp(r)
/// by the polynomial above, then scaled by 2^k as two factors 2^(k>>1) and
/// 2^(k−(k>>1)), each a normal float, so results that overflow give inf and
/// results below the smallest normal round once into subnormals. x is
/// clamped to [−104, 88.8] first (exp rounds to 0 below, to inf above) by
/// comparisons that let NaN through. Scalar f32 (LLVM vectorizes the loop:
/// 27 instructions a vector, no long dependent chain of selects).
Value expandExp(ImplicitLocOpBuilder &b, Value x) {
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  auto real = [&](float v) -> Value {
    return b.create<arith::ConstantOp>(b.getF32FloatAttr(v));
  };
  auto integer = [&](int32_t v) -> Value {
    return b.create<arith::ConstantOp>(b.getI32IntegerAttr(v));
  };
  // Products and sums that may become FMAs where the target has them.
  auto contract = arith::FastMathFlags::contract;
  auto mul = [&](Value l, Value r) {
    return b.create<arith::MulFOp>(l, r, contract).getResult();
  };
  auto add = [&](Value l, Value r) {
    return b.create<arith::AddFOp>(l, r, contract).getResult();
  };
  auto clamp = [&](arith::CmpFPredicate beyond, float bound) {
    Value c = real(bound);
    Value out = b.create<arith::CmpFOp>(beyond, x, c);
    x = b.create<arith::SelectOp>(out, c, x);
  };
  clamp(arith::CmpFPredicate::OGT, 88.8f);
  clamp(arith::CmpFPredicate::OLT, -104.0f);

  constexpr float magic = 0x1.8p23f;
  constexpr float ln2Hi = 0x1.62e4p-1f;
  constexpr float ln2Lo = (float)(M_LN2 - (double)ln2Hi);
  Value t = add(mul(x, real((float)M_LOG2E)), real(magic));
  Value k = b.create<arith::SubFOp>(t, real(magic));
  Value r = add(mul(k, real(-ln2Hi)), x);
  r = add(mul(k, real(-ln2Lo)), r);

  Value q = real(kExpQ[4]);
  for (int i = 3; i >= 0; --i)
    q = add(mul(q, r), real(kExpQ[i]));
  Value p = add(add(mul(mul(r, r), q), r), real(1));

  // k as an integer: t's low mantissa bits hold k + 2²².
  Value ki = b.create<arith::SubIOp>(b.create<arith::BitcastOp>(i32, t),
                                     integer(0x4b400000));
  Value half = b.create<arith::ShRSIOp>(ki, integer(1));
  auto powerOfTwo = [&](Value e) -> Value {
    Value bits = b.create<arith::ShLIOp>(
        b.create<arith::AddIOp>(e, integer(127)), integer(23));
    return b.create<arith::BitcastOp>(f32, bits);
  };
  Value scaled = b.create<arith::MulFOp>(p, powerOfTwo(half));
  return b.create<arith::MulFOp>(scaled,
                                 powerOfTwo(b.create<arith::SubIOp>(ki, half)));
}

/// `mlx-approximate-math`: f32 exp (expandExp, at most 1 ulp over the whole
/// range, subnormal results included), log, log1p, tanh and erf (MLIR's
/// polynomial approximations). Measured against libm in
/// test/Unit/ApproximationTest.cpp (2^20 points per range): at most 1 ulp for
/// log, also of subnormal arguments and results; 2 for log1p; 5 for tanh and
/// erf. Other math ops keep libm or LLVM intrinsics: the approximations of
/// sin and cos are not accurate enough. f64 is left alone.
///
/// For a GPU (`strictRounding` false: drivers may fold expandExp's
/// (y + 1.5·2²³) − 1.5·2²³ back into y) exp is MLIR's approximation, scaled
/// out of the subnormal range first: exp(x) = exp(x + 40)·e^−40 where
/// x < −87.
struct ApproximateMathPass
    : public PassWrapper<ApproximateMathPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ApproximateMathPass)
  explicit ApproximateMathPass(bool strictRounding = true)
      : strictRounding(strictRounding) {}
  StringRef getArgument() const final { return "mlx-approximate-math"; }
  StringRef getDescription() const final {
    return "f32 exp/log/log1p/tanh/erf as polynomial approximations";
  }
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<math::ExpOp, math::LogOp, math::Log1pOp, math::TanhOp,
              math::ErfOp>(op) &&
          op->getResult(0).getType().isF32())
        ops.push_back(op);
    });
    for (Operation *&op : ops) {
      ImplicitLocOpBuilder b(op->getLoc(), op);
      Value x = op->getOperand(0);
      auto f32 = [&](float v) {
        return b.create<arith::ConstantOp>(b.getF32FloatAttr(v));
      };
      if (isa<math::ExpOp>(op) && strictRounding) {
        op->getResult(0).replaceAllUsesWith(expandExp(b, x));
        op->erase();
        op = nullptr;
      } else if (isa<math::ExpOp>(op)) {
        Value small =
            b.create<arith::CmpFOp>(arith::CmpFPredicate::OLT, x, f32(-87));
        Value shifted = b.create<arith::SelectOp>(
            small, b.create<arith::AddFOp>(x, f32(40)), x);
        auto exp = b.create<math::ExpOp>(shifted);
        Value scale =
            b.create<arith::SelectOp>(small, f32(std::exp(-40.0f)), f32(1));
        op->getResult(0).replaceAllUsesWith(
            b.create<arith::MulFOp>(exp, scale));
        op->erase();
        op = exp;
      } else if (isa<math::LogOp>(op)) {
        // MLIR's log assumes a normal argument: log(x) = log(x·2^64) −
        // 64·ln 2 where 0 < x < 2^−126.
        Value tiny = b.create<arith::CmpFOp>(arith::CmpFPredicate::OLT, x,
                                             f32(0x1p-126f));
        Value scaled = b.create<arith::SelectOp>(
            tiny, b.create<arith::MulFOp>(x, f32(0x1p64f)), x);
        auto log = b.create<math::LogOp>(scaled);
        Value shift =
            b.create<arith::SelectOp>(tiny, f32(64 * std::log(2.0f)), f32(0));
        op->getResult(0).replaceAllUsesWith(
            b.create<arith::SubFOp>(log, shift));
        op->erase();
        op = log;
      }
    }
    llvm::erase(ops, nullptr);
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns);
    GreedyRewriteConfig config;
    // Only these ops and what their expansions create (log1p → log).
    config.strictMode = GreedyRewriteStrictness::ExistingAndNewOps;
    (void)applyOpPatternsAndFold(ops, std::move(patterns), config);
  }

private:
  bool strictRounding;
};
} // namespace

std::unique_ptr<Pass> mlx::createApproximateMathPass(bool strictRounding) {
  return std::make_unique<ApproximateMathPass>(strictRounding);
}
