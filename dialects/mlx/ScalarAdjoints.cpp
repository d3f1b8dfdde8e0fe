//===- ScalarAdjoints.cpp - derivative rules of scalar ops ------*- C++ -*-===//
//
// The calculus of the mlx.generic body: the scalar sweep (with guards, see
// Adjoints.h) and one rule per arith/math op, attached to the op as a
// ScalarDifferentiableOpInterface external model and written beside the
// derivative it implements.
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/Adjoints.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"

#include <cmath>

using namespace mlir;
using namespace mlir::mlx;

//===----------------------------------------------------------------------===//
// The sweep
//===----------------------------------------------------------------------===//

void ScalarSweep::addGuarded(Value v, Value contribution, Value where) {
  if (!isa<FloatType>(v.getType()))
    return;
  auto [it, inserted] = adjoints.try_emplace(v, Adjoint{contribution, where});
  if (inserted)
    return;
  Adjoint &slot = it->second;
  if (slot.guard == where) {
    slot.value = plus(slot.value, contribution);
    return;
  }
  slot.value = plus(applied(slot), applied({contribution, where}));
  slot.guard = either(slot.guard, where);
}

Value ScalarSweep::get(Value v) {
  auto it = adjoints.find(v);
  return it == adjoints.end() ? Value() : applied(it->second);
}

LogicalResult ScalarSweep::run(ArrayRef<Operation *> ops) {
  for (Operation *op : llvm::reverse(ops)) {
    if (op->getNumResults() != 1)
      continue;
    auto it = adjoints.find(op->getResult(0));
    if (it == adjoints.end())
      continue;
    auto rule = dyn_cast<ScalarDifferentiableOpInterface>(op);
    if (!rule)
      return op->emitError("cannot differentiate '")
             << op->getName() << "' (no derivative rule)";
    Adjoint adjoint = it->second;
    guard = adjoint.guard;
    rule.addAdjoints(*this, adjoint.value);
  }
  return success();
}

Value ScalarSweep::constant(Type type, double value) {
  return b.create<arith::ConstantOp>(loc, b.getFloatAttr(type, value));
}

Value ScalarSweep::negation(Value c) {
  if (Value known = negations.lookup(c))
    return known;
  Value yes = b.create<arith::ConstantOp>(loc, b.getBoolAttr(true));
  Value notC = b.create<arith::XOrIOp>(loc, c, yes);
  negations[c] = notC;
  negations[notC] = c;
  return notC;
}

Value ScalarSweep::both(Value x, Value y) {
  if (!x || !y)
    return x ? x : y;
  return b.create<arith::AndIOp>(loc, x, y);
}

Value ScalarSweep::either(Value x, Value y) {
  if (!x || !y || negations.lookup(x) == y)
    return Value();
  return b.create<arith::OrIOp>(loc, x, y);
}

Value ScalarSweep::applied(const Adjoint &a) {
  if (!a.guard)
    return a.value;
  return select(a.guard, a.value, constant(a.value.getType(), 0));
}

FailureOr<Value> mlx::buildScalarAdjoint(OpBuilder &b, Location loc,
                                         ArrayRef<Operation *> ops,
                                         Value output, Value seed, Value wrt,
                                         Value seedGuard) {
  ScalarSweep sweep(b, loc);
  sweep.addGuarded(output, seed, seedGuard);
  if (failed(sweep.run(ops)))
    return failure();
  if (Value adjoint = sweep.get(wrt))
    return adjoint;
  return sweep.constant(wrt.getType(), 0);
}

//===----------------------------------------------------------------------===//
// The rules: g is the adjoint of the op's result
//===----------------------------------------------------------------------===//

namespace {

// d(a + b) = da + db
void rule(arith::AddFOp o, ScalarSweep &s, Value g) {
  s.add(o.getLhs(), g);
  s.add(o.getRhs(), g);
}

// d(a − b) = da − db
void rule(arith::SubFOp o, ScalarSweep &s, Value g) {
  s.add(o.getLhs(), g);
  s.add(o.getRhs(), s.neg(g));
}

// d(a·b) = b·da + a·db
void rule(arith::MulFOp o, ScalarSweep &s, Value g) {
  s.add(o.getLhs(), s.mul(g, o.getRhs()));
  s.add(o.getRhs(), s.mul(g, o.getLhs()));
}

// d(a/b) = da/b − (a/b)·db/b
void rule(arith::DivFOp o, ScalarSweep &s, Value g) {
  s.add(o.getLhs(), s.div(g, o.getRhs()));
  s.add(o.getRhs(), s.neg(s.div(s.mul(g, o.getResult()), o.getRhs())));
}

// d(−a) = −da
void rule(arith::NegFOp o, ScalarSweep &s, Value g) {
  s.add(o.getOperand(), s.neg(g));
}

// max(a, b): all of the gradient to the larger operand, half to each on a
// tie (as torch.maximum and JAX); min likewise. So max(z, 0) and max(0, z)
// agree, and a kink's two one-sided slopes are averaged.
void extremumRule(Operation *op, bool isMax, ScalarSweep &s, Value g) {
  Value a = op->getOperand(0), c = op->getOperand(1);
  Value tie = s.cmp(arith::CmpFPredicate::OEQ, a, c);
  Value share = s.select(tie, s.mul(g, s.constant(g.getType(), 0.5)), g);
  Value aWins = s.cmp(
      isMax ? arith::CmpFPredicate::OGE : arith::CmpFPredicate::OLE, a, c);
  Value cWins = s.cmp(
      isMax ? arith::CmpFPredicate::OLE : arith::CmpFPredicate::OGE, a, c);
  s.addWhere(a, share, aWins);
  s.addWhere(c, share, cWins);
}
void rule(arith::MaximumFOp o, ScalarSweep &s, Value g) {
  extremumRule(o, /*isMax=*/true, s, g);
}
void rule(arith::MinimumFOp o, ScalarSweep &s, Value g) {
  extremumRule(o, /*isMax=*/false, s, g);
}

// c ? a : b sends the gradient to the chosen branch only, guarded.
void rule(arith::SelectOp o, ScalarSweep &s, Value g) {
  Value cond = o.getCondition();
  s.addWhere(o.getTrueValue(), g, cond);
  s.addWhere(o.getFalseValue(), g, s.negation(cond));
}

// A change of precision: the adjoint changes back.
void rule(arith::ExtFOp o, ScalarSweep &s, Value g) {
  s.add(o.getIn(), s.builder().create<arith::TruncFOp>(s.location(),
                                                       o.getIn().getType(), g));
}
void rule(arith::TruncFOp o, ScalarSweep &s, Value g) {
  s.add(o.getIn(), s.builder().create<arith::ExtFOp>(s.location(),
                                                     o.getIn().getType(), g));
}

// Integer or constant inputs: nothing to propagate.
void rule(arith::SIToFPOp, ScalarSweep &, Value) {}
void rule(arith::UIToFPOp, ScalarSweep &, Value) {}
void rule(arith::ConstantOp, ScalarSweep &, Value) {}

// d exp(a) = exp(a)·da
void rule(math::ExpOp o, ScalarSweep &s, Value g) {
  s.add(o.getOperand(), s.mul(g, o.getResult()));
}

// d log(a) = da/a
void rule(math::LogOp o, ScalarSweep &s, Value g) {
  s.add(o.getOperand(), s.div(g, o.getOperand()));
}

// d log(1 + a) = da/(1 + a)
void rule(math::Log1pOp o, ScalarSweep &s, Value g) {
  Value a = o.getOperand();
  s.add(a, s.div(g, s.plus(s.constant(g.getType(), 1), a)));
}

// d √a = da / (2√a)
void rule(math::SqrtOp o, ScalarSweep &s, Value g) {
  s.add(o.getOperand(),
        s.div(g, s.mul(s.constant(g.getType(), 2), o.getResult())));
}

// d tanh(a) = (1 − tanh²(a))·da
void rule(math::TanhOp o, ScalarSweep &s, Value g) {
  Value y = o.getResult();
  s.add(o.getOperand(),
        s.mul(g, s.sub(s.constant(g.getType(), 1), s.mul(y, y))));
}

// d erf(a) = (2/√π)·e^(−a²)·da
void rule(math::ErfOp o, ScalarSweep &s, Value g) {
  Value a = o.getOperand();
  Value e = s.builder().create<math::ExpOp>(s.location(), s.neg(s.mul(a, a)));
  s.add(a, s.mul(g, s.mul(s.constant(g.getType(), 2 / std::sqrt(M_PI)), e)));
}

// d|a| = sign(a)·da, with sign(0) = 0 (the mean of the one-sided slopes,
// as PyTorch)
void rule(math::AbsFOp o, ScalarSweep &s, Value g) {
  Value a = o.getOperand(), zero = s.constant(g.getType(), 0);
  Value pos = s.cmp(arith::CmpFPredicate::OGT, a, zero);
  Value negative = s.cmp(arith::CmpFPredicate::OLT, a, zero);
  s.add(a, s.select(pos, g, s.select(negative, s.neg(g), zero)));
}

// d sin(a) = cos(a)·da
void rule(math::SinOp o, ScalarSweep &s, Value g) {
  s.add(o.getOperand(), s.mul(g, s.builder().create<math::CosOp>(
                                     s.location(), o.getOperand())));
}

// d cos(a) = −sin(a)·da
void rule(math::CosOp o, ScalarSweep &s, Value g) {
  s.add(o.getOperand(), s.neg(s.mul(g, s.builder().create<math::SinOp>(
                                           s.location(), o.getOperand()))));
}

// d a^b = b·a^(b−1)·da + a^b·log(a)·db
void rule(math::PowFOp o, ScalarSweep &s, Value g) {
  Value a = o.getLhs(), e = o.getRhs();
  OpBuilder &b = s.builder();
  Value am1 = b.create<math::PowFOp>(s.location(), a,
                                     s.sub(e, s.constant(g.getType(), 1)));
  s.add(a, s.mul(g, s.mul(e, am1)));
  if (!matchPattern(e, m_Constant()))
    s.add(e, s.mul(g, s.mul(o.getResult(),
                            b.create<math::LogOp>(s.location(), a))));
}

/// The interface on an upstream op, by its rule above.
template <typename OpTy>
struct ScalarRule
    : public ScalarDifferentiableOpInterface::ExternalModel<ScalarRule<OpTy>,
                                                            OpTy> {
  void addAdjoints(Operation *op, ScalarSweep &sweep, Value g) const {
    rule(cast<OpTy>(op), sweep, g);
  }
};

template <typename... OpTys> void attachRules(MLIRContext *ctx) {
  (OpTys::template attachInterface<ScalarRule<OpTys>>(*ctx), ...);
}

} // namespace

// stop_gradient(a) is a constant to the derivative.
void StopGradientOp::addAdjoints(ScalarSweep &, Value) {}

// d σ(a) = σ(a)·σ(−a)·da, where σ(−a) = 1 − σ(a) without the cancellation
void SigmoidOp::addAdjoints(ScalarSweep &s, Value g) {
  Value flipped =
      s.builder().create<SigmoidOp>(s.location(), s.neg(getValue()));
  s.add(getValue(), s.mul(g, s.mul(getResult(), flipped)));
}

std::pair<Value, Value> SigmoidOp::buildExpNegAbs(OpBuilder &b, Location loc,
                                                  Value x) {
  Value zero = b.create<arith::ConstantOp>(loc, b.getFloatAttr(x.getType(), 0));
  Value nonNegative =
      b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OGE, x, zero);
  Value e = b.create<math::ExpOp>(
      loc, b.create<arith::SelectOp>(loc, nonNegative,
                                     b.create<arith::NegFOp>(loc, x), x));
  return {nonNegative, e};
}

Value SigmoidOp::expandStable(OpBuilder &b, Location loc, Value x) {
  Value one = b.create<arith::ConstantOp>(loc, b.getFloatAttr(x.getType(), 1));
  auto [nonNegative, e] = buildExpNegAbs(b, loc, x);
  Value denom = b.create<arith::AddFOp>(loc, one, e);
  return b.create<arith::SelectOp>(loc, nonNegative,
                                   b.create<arith::DivFOp>(loc, one, denom),
                                   b.create<arith::DivFOp>(loc, e, denom));
}

void mlx::registerScalarAdjointModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, arith::ArithDialect *) {
    attachRules<arith::AddFOp, arith::SubFOp, arith::MulFOp, arith::DivFOp,
                arith::NegFOp, arith::MaximumFOp, arith::MinimumFOp,
                arith::SelectOp, arith::ExtFOp, arith::TruncFOp,
                arith::SIToFPOp, arith::UIToFPOp, arith::ConstantOp>(ctx);
  });
  registry.addExtension(+[](MLIRContext *ctx, math::MathDialect *) {
    attachRules<math::ExpOp, math::LogOp, math::Log1pOp, math::SqrtOp,
                math::TanhOp, math::ErfOp, math::AbsFOp, math::SinOp,
                math::CosOp, math::PowFOp>(ctx);
  });
}
