//===- ScalarAdjoints.cpp - derivative rules of scalar ops ------*- C++ -*-===//
//
// The calculus of the mlx.generic body: one rule per arith/math op, applied
// in reverse program order. Each rule adds its operands' contributions,
// written beside the derivative it implements.
//
//===----------------------------------------------------------------------===//
#include "passes/AutodiffUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"

#include <cmath>

using namespace mlir;
using namespace mlir::mlx;

SmallVector<Value> mlx::tensorSizes(OpBuilder &b, Location loc, Value tensor) {
  SmallVector<Value> sizes;
  auto type = cast<RankedTensorType>(tensor.getType());
  for (int64_t d = 0; d < type.getRank(); ++d)
    sizes.push_back(b.create<tensor::DimOp>(loc, tensor, d));
  return sizes;
}

static SmallVector<AffineMap> identityMaps(OpBuilder &b, unsigned rank,
                                           unsigned count) {
  return SmallVector<AffineMap>(
      count, AffineMap::getMultiDimIdentityMap(rank, b.getContext()));
}

Value mlx::buildFilled(OpBuilder &b, Location loc, Value like, double value) {
  auto type = cast<RankedTensorType>(like.getType());
  return b.create<GenericOp>(
      loc, type, ValueRange{}, tensorSizes(b, loc, like), ArrayRef<AffineMap>{},
      type.getRank(), Combiner::none,
      [&](OpBuilder &bb, Location l, ValueRange) -> Value {
        return bb.create<arith::ConstantOp>(
            l, bb.getFloatAttr(type.getElementType(), value));
      });
}

Value mlx::buildAdd(OpBuilder &b, Location loc, Value lhs, Value rhs) {
  auto type = cast<RankedTensorType>(lhs.getType());
  if (rhs.getType() != type)
    rhs = b.create<tensor::CastOp>(loc, type, rhs);
  return b.create<GenericOp>(
      loc, type, ValueRange{lhs, rhs}, tensorSizes(b, loc, lhs),
      identityMaps(b, type.getRank(), 2), type.getRank(), Combiner::none,
      [&](OpBuilder &bb, Location l, ValueRange args) -> Value {
        return bb.create<arith::AddFOp>(l, args[0], args[1]);
      });
}

namespace {
/// Scalar adjoints of one body, accumulated by addition.
class ScalarSweep {
public:
  ScalarSweep(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  void add(Value v, Value contribution) {
    if (!isa<FloatType>(v.getType()))
      return;
    Value &slot = adjoints[v];
    slot = slot ? b.create<arith::AddFOp>(loc, slot, contribution).getResult()
                : contribution;
  }
  Value get(Value v) const { return adjoints.lookup(v); }

  Value constant(Type type, double value) {
    return b.create<arith::ConstantOp>(loc, b.getFloatAttr(type, value));
  }
  Value mul(Value x, Value y) { return b.create<arith::MulFOp>(loc, x, y); }
  Value div(Value x, Value y) { return b.create<arith::DivFOp>(loc, x, y); }
  Value sub(Value x, Value y) { return b.create<arith::SubFOp>(loc, x, y); }
  Value neg(Value x) { return b.create<arith::NegFOp>(loc, x); }
  Value select(Value c, Value x, Value y) {
    return b.create<arith::SelectOp>(loc, c, x, y);
  }
  Value cmp(arith::CmpFPredicate p, Value x, Value y) {
    return b.create<arith::CmpFOp>(loc, p, x, y);
  }

  /// Applies the rule of `op`, whose result has adjoint `g`.
  LogicalResult apply(Operation *op, Value g) {
    Type t = g.getType();
    Value zero = constant(t, 0);
    if (auto o = dyn_cast<arith::AddFOp>(op)) {
      // d(a + b) = da + db
      add(o.getLhs(), g);
      add(o.getRhs(), g);
    } else if (auto o = dyn_cast<arith::SubFOp>(op)) {
      // d(a − b) = da − db
      add(o.getLhs(), g);
      add(o.getRhs(), neg(g));
    } else if (auto o = dyn_cast<arith::MulFOp>(op)) {
      // d(a·b) = b·da + a·db
      add(o.getLhs(), mul(g, o.getRhs()));
      add(o.getRhs(), mul(g, o.getLhs()));
    } else if (auto o = dyn_cast<arith::DivFOp>(op)) {
      // d(a/b) = da/b − (a/b)·db/b
      add(o.getLhs(), div(g, o.getRhs()));
      add(o.getRhs(), neg(div(mul(g, o.getResult()), o.getRhs())));
    } else if (auto o = dyn_cast<arith::NegFOp>(op)) {
      add(o.getOperand(), neg(g));
    } else if (auto o = dyn_cast<arith::MaximumFOp>(op)) {
      // max(a, b): the gradient goes to a where a > b, else to b (so
      // relu(z) = max(z, 0) has relu'(0) = 0).
      Value aWins = cmp(arith::CmpFPredicate::OGT, o.getLhs(), o.getRhs());
      add(o.getLhs(), select(aWins, g, zero));
      add(o.getRhs(), select(aWins, zero, g));
    } else if (auto o = dyn_cast<arith::MinimumFOp>(op)) {
      // min(a, b): to a where a < b, else to b.
      Value aWins = cmp(arith::CmpFPredicate::OLT, o.getLhs(), o.getRhs());
      add(o.getLhs(), select(aWins, g, zero));
      add(o.getRhs(), select(aWins, zero, g));
    } else if (auto o = dyn_cast<arith::SelectOp>(op)) {
      // c ? a : b sends the gradient to the chosen branch only.
      add(o.getTrueValue(), select(o.getCondition(), g, zero));
      add(o.getFalseValue(), select(o.getCondition(), zero, g));
    } else if (auto o = dyn_cast<arith::ExtFOp>(op)) {
      add(o.getIn(), b.create<arith::TruncFOp>(loc, o.getIn().getType(), g));
    } else if (auto o = dyn_cast<arith::TruncFOp>(op)) {
      add(o.getIn(), b.create<arith::ExtFOp>(loc, o.getIn().getType(), g));
    } else if (auto o = dyn_cast<math::ExpOp>(op)) {
      // d exp(a) = exp(a)·da
      add(o.getOperand(), mul(g, o.getResult()));
    } else if (auto o = dyn_cast<math::LogOp>(op)) {
      // d log(a) = da/a
      add(o.getOperand(), div(g, o.getOperand()));
    } else if (auto o = dyn_cast<math::SqrtOp>(op)) {
      // d √a = da / (2√a)
      add(o.getOperand(), div(g, mul(constant(t, 2), o.getResult())));
    } else if (auto o = dyn_cast<math::TanhOp>(op)) {
      // d tanh(a) = (1 − tanh²(a))·da
      Value y = o.getResult();
      add(o.getOperand(), mul(g, sub(constant(t, 1), mul(y, y))));
    } else if (auto o = dyn_cast<math::ErfOp>(op)) {
      // d erf(a) = (2/√π)·e^(−a²)·da
      Value a = o.getOperand();
      Value e = b.create<math::ExpOp>(loc, neg(mul(a, a)));
      add(a, mul(g, mul(constant(t, 2 / std::sqrt(M_PI)), e)));
    } else if (auto o = dyn_cast<math::AbsFOp>(op)) {
      // d|a| = sign(a)·da, with sign(0) = 0
      Value a = o.getOperand();
      Value pos = cmp(arith::CmpFPredicate::OGT, a, zero);
      Value negv = cmp(arith::CmpFPredicate::OLT, a, zero);
      add(a, select(pos, g, select(negv, neg(g), zero)));
    } else if (auto o = dyn_cast<math::SinOp>(op)) {
      // d sin(a) = cos(a)·da
      add(o.getOperand(), mul(g, b.create<math::CosOp>(loc, o.getOperand())));
    } else if (auto o = dyn_cast<math::CosOp>(op)) {
      // d cos(a) = −sin(a)·da
      add(o.getOperand(),
          neg(mul(g, b.create<math::SinOp>(loc, o.getOperand()))));
    } else if (auto o = dyn_cast<math::PowFOp>(op)) {
      // d a^b = b·a^(b−1)·da + a^b·log(a)·db
      Value a = o.getLhs(), e = o.getRhs();
      Value am1 = b.create<math::PowFOp>(loc, a, sub(e, constant(t, 1)));
      add(a, mul(g, mul(e, am1)));
      if (!matchPattern(e, m_Constant()))
        add(e, mul(g, mul(o.getResult(), b.create<math::LogOp>(loc, a))));
    } else if (isa<arith::SIToFPOp, arith::UIToFPOp, arith::ConstantOp,
                   StopGradientOp>(op)) {
      // Integer, constant or stopped inputs: nothing to propagate.
    } else {
      return op->emitError("cannot differentiate '")
             << op->getName() << "' (no derivative rule)";
    }
    return success();
  }

private:
  OpBuilder &b;
  Location loc;
  DenseMap<Value, Value> adjoints;
};
} // namespace

FailureOr<Value> mlx::buildScalarAdjoint(OpBuilder &b, Location loc,
                                         ArrayRef<Operation *> ops,
                                         Value output, Value seed, Value wrt) {
  ScalarSweep sweep(b, loc);
  sweep.add(output, seed);
  for (Operation *op : llvm::reverse(ops)) {
    if (op->getNumResults() != 1)
      continue;
    Value g = sweep.get(op->getResult(0));
    if (!g)
      continue;
    if (failed(sweep.apply(op, g)))
      return failure();
  }
  if (Value adjoint = sweep.get(wrt))
    return adjoint;
  return sweep.constant(wrt.getType(), 0);
}
