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
///
/// An adjoint may be *guarded*: it holds the right value only where its
/// guard (an i1) is true and is exactly zero elsewhere. The branches of
/// `c ? a : b` and of `max`/`min` get guarded adjoints, and every rule applied
/// to a guarded adjoint passes the guard on, so nothing computed for an
/// untaken branch (a NaN from sqrt(−1), an inf from log 0) can reach the
/// result: guards are applied, as `guard ? value : 0`, only where adjoints
/// of different guards meet and at the end. This is JAX's "double where"
/// done by the compiler.
class ScalarSweep {
public:
  ScalarSweep(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  /// Adds `contribution`, valid where `guard` holds (null: everywhere), to
  /// the adjoint of `v`.
  void add(Value v, Value contribution, Value guard) {
    if (!isa<FloatType>(v.getType()))
      return;
    auto [it, inserted] = adjoints.try_emplace(v, Adjoint{contribution, guard});
    if (inserted)
      return;
    Adjoint &slot = it->second;
    if (slot.guard == guard) {
      slot.value = b.create<arith::AddFOp>(loc, slot.value, contribution);
      return;
    }
    slot.value = b.create<arith::AddFOp>(loc, applied(slot),
                                         applied({contribution, guard}));
    slot.guard = either(slot.guard, guard);
  }

  /// The adjoint of `v` with its guard applied (null when nothing flows).
  Value get(Value v) {
    auto it = adjoints.find(v);
    return it == adjoints.end() ? Value() : applied(it->second);
  }

  Value constant(Type type, double value) {
    return b.create<arith::ConstantOp>(loc, b.getFloatAttr(type, value));
  }

  /// Applies the rule of `op`, whose result has adjoint `g` (valid where
  /// `guard` holds).
  LogicalResult apply(Operation *op, Value g, Value guard) {
    Type t = g.getType();
    auto add = [&](Value v, Value contribution) {
      this->add(v, contribution, guard);
    };
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
    } else if (isa<arith::MaximumFOp, arith::MinimumFOp>(op)) {
      // max(a, b): all of the gradient to the larger operand, half to each
      // on a tie (as torch.maximum and JAX); min likewise. So max(z, 0) and
      // max(0, z) agree, and a kink's two one-sided slopes are averaged.
      Value a = op->getOperand(0), c = op->getOperand(1);
      bool isMax = isa<arith::MaximumFOp>(op);
      Value tie = cmp(arith::CmpFPredicate::OEQ, a, c);
      Value share = select(tie, mul(g, constant(t, 0.5)), g);
      Value aWins = cmp(
          isMax ? arith::CmpFPredicate::OGE : arith::CmpFPredicate::OLE, a, c);
      Value cWins = cmp(
          isMax ? arith::CmpFPredicate::OLE : arith::CmpFPredicate::OGE, a, c);
      this->add(a, share, both(guard, aWins));
      this->add(c, share, both(guard, cWins));
    } else if (auto o = dyn_cast<arith::SelectOp>(op)) {
      // c ? a : b sends the gradient to the chosen branch only, guarded.
      Value cond = o.getCondition();
      this->add(o.getTrueValue(), g, both(guard, cond));
      this->add(o.getFalseValue(), g, both(guard, negation(cond)));
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
    } else if (auto o = dyn_cast<math::Log1pOp>(op)) {
      // d log(1 + a) = da/(1 + a)
      add(o.getOperand(),
          div(g, b.create<arith::AddFOp>(loc, constant(t, 1), o.getOperand())));
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
      // d|a| = sign(a)·da, with sign(0) = 0 (the mean of the one-sided
      // slopes, as PyTorch)
      Value a = o.getOperand(), zero = constant(t, 0);
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

  /// Runs the sweep over `ops` (program order) from the adjoint of `output`.
  LogicalResult run(ArrayRef<Operation *> ops) {
    for (Operation *op : llvm::reverse(ops)) {
      if (op->getNumResults() != 1)
        continue;
      auto it = adjoints.find(op->getResult(0));
      if (it == adjoints.end())
        continue;
      Adjoint adjoint = it->second;
      if (failed(apply(op, adjoint.value, adjoint.guard)))
        return failure();
    }
    return success();
  }

private:
  struct Adjoint {
    Value value;
    Value guard; // null: valid everywhere
  };

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

  /// ¬c, built once per condition.
  Value negation(Value c) {
    if (Value known = negations.lookup(c))
      return known;
    Value yes = b.create<arith::ConstantOp>(loc, b.getBoolAttr(true));
    Value notC = b.create<arith::XOrIOp>(loc, c, yes);
    negations[c] = notC;
    negations[notC] = c;
    return notC;
  }
  /// x ∧ y of two guards (null is true).
  Value both(Value x, Value y) {
    if (!x || !y)
      return x ? x : y;
    return b.create<arith::AndIOp>(loc, x, y);
  }
  /// x ∨ y of two guards (null is true; c ∨ ¬c is true).
  Value either(Value x, Value y) {
    if (!x || !y || negations.lookup(x) == y)
      return Value();
    return b.create<arith::OrIOp>(loc, x, y);
  }
  /// guard ? value : 0.
  Value applied(const Adjoint &a) {
    if (!a.guard)
      return a.value;
    return select(a.guard, a.value, constant(a.value.getType(), 0));
  }

  OpBuilder &b;
  Location loc;
  DenseMap<Value, Adjoint> adjoints;
  DenseMap<Value, Value> negations;
};
} // namespace

FailureOr<Value> mlx::buildScalarAdjoint(OpBuilder &b, Location loc,
                                         ArrayRef<Operation *> ops,
                                         Value output, Value seed, Value wrt,
                                         Value seedGuard) {
  ScalarSweep sweep(b, loc);
  sweep.add(output, seed, seedGuard);
  if (failed(sweep.run(ops)))
    return failure();
  if (Value adjoint = sweep.get(wrt))
    return adjoint;
  return sweep.constant(wrt.getType(), 0);
}
