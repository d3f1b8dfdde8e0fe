//===- ReciprocalDivisors.cpp - divisions as products by reciprocals -----===//
//
// `mlx-cpu-reciprocal-divisors`, on loops before OpenMP. A division costs
// ten times a product (vdivps on 512-bit vectors: one every ~5 cycles
// against two products a cycle), and the divisor is often the same across a
// loop: softmax's and attention's row sums, a constant such as √2 in GELU.
// x / d becomes x · (1/d) with 1/d computed once, where 1/d is a normal
// float: then the product is within 1 ulp of the quotient (1/d is rounded
// once, by at most half an ulp) — as libraries compute softmax. Where 1/d
// would be subnormal or infinite (|d| < 2^−126 or > 2^126 for f32; d zero,
// infinite or NaN) the quotient could be far off or NaN (0 · ∞), so:
//   - a constant divisor is replaced only where its reciprocal is normal;
//   - a divisor invariant in an scf.for or a reduction-free scf.parallel
//     (defined outside it, loaded at invariant subscripts from a buffer no
//     store in the loop may alias, or computed from such by pure ops:
//     layer_norm's √(var + ε), AdamW's 1 − β^t; then computed once before
//     the loop) gives two versions of the loop, chosen by a test on d
//     before it: with products where every such d is in range, with the
//     divisions otherwise (both behind a test that the loop runs at all,
//     as the divisor is loaded before it).
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/LoopLikeInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Pass/Pass.h"

#include <functional>

using namespace mlir;

namespace {

/// The one block of an scf.for's or scf.parallel's body.
Block *bodyOf(LoopLikeOpInterface loop) {
  return &loop.getLoopRegions().front()->front();
}

/// Whether buffers with roots `a` and `b` may overlap: not when either is
/// allocated in the function and they differ (a fresh allocation overlaps
/// no other buffer); arguments and other roots may overlap each other.
bool mayAlias(Value a, Value b) {
  auto fresh = [](Value root) {
    return root.getDefiningOp<memref::AllocOp>() ||
           root.getDefiningOp<memref::AllocaOp>();
  };
  return a == b || (!fresh(a) && !fresh(b));
}

/// Whether any op in `loop` may write the buffer `root` (unknown effects
/// count as writes).
bool mayWrite(LoopLikeOpInterface loop, Value root) {
  WalkResult result = bodyOf(loop)->walk([&](Operation *op) {
    if (op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return WalkResult::advance();
    auto effects = dyn_cast<MemoryEffectOpInterface>(op);
    if (!effects)
      return WalkResult::interrupt();
    SmallVector<MemoryEffects::EffectInstance> instances;
    effects.getEffects(instances);
    for (auto &instance : instances)
      if (isa<MemoryEffects::Write, MemoryEffects::Free>(
              instance.getEffect()) &&
          (!instance.getValue() ||
           mayAlias(mlx::rootOf(instance.getValue()), root)))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return result.wasInterrupted();
}

/// Whether `v` has the same value in every iteration of `loop`: defined
/// outside it; computed in its body by a pure op from such values (as
/// √(var + ε) in layer_norm); or loaded at such subscripts from a buffer
/// the loop cannot write: no store in it may alias the buffer (an argument,
/// such as AdamW's β₁ or t, where the loop stores only into buffers the
/// function allocates).
bool isInvariant(LoopLikeOpInterface loop, Value v) {
  if (loop.isDefinedOutsideOfLoop(v))
    return true;
  Operation *def = v.getDefiningOp();
  if (!def || def->getBlock() != bodyOf(loop) || def->getNumRegions())
    return false;
  auto invariant = [&](Value operand) { return isInvariant(loop, operand); };
  if (isPure(def))
    return llvm::all_of(def->getOperands(), invariant);
  auto load = dyn_cast<memref::LoadOp>(def);
  if (!load || !llvm::all_of(load->getOperands(), invariant) ||
      !loop.isDefinedOutsideOfLoop(load.getMemRef()))
    return false;
  return !mayWrite(loop, mlx::rootOf(load.getMemRef()));
}

/// The reciprocal of `c` if it is a normal float.
std::optional<APFloat> normalReciprocal(const APFloat &c) {
  APFloat r(c.getSemantics(), 1);
  r.divide(c, APFloat::rmNearestTiesToEven);
  if (!r.isNormal())
    return std::nullopt;
  return r;
}

/// Replaces divisions by a constant whose reciprocal is normal.
void constantDivisors(Operation *root) {
  root->walk([&](arith::DivFOp div) {
    FloatAttr c;
    if (!matchPattern(div.getRhs(), m_Constant(&c)))
      return;
    std::optional<APFloat> r = normalReciprocal(c.getValue());
    if (!r)
      return;
    OpBuilder b(div);
    Value reciprocal = b.create<arith::ConstantOp>(
        div.getLoc(), b.getFloatAttr(c.getType(), *r));
    div.replaceAllUsesWith(b.create<arith::MulFOp>(div.getLoc(), div.getLhs(),
                                                   reciprocal,
                                                   div.getFastmathAttr())
                               .getResult());
    div.erase();
  });
}

/// Ends `block` (of an scf.if) with a yield of `values`, unless the if's
/// builder gave it one (where it has no results). Returns a builder before
/// that yield.
OpBuilder yieldAtEnd(Block *block, ValueRange values, Location loc) {
  if (block->empty() || !block->back().hasTrait<OpTrait::IsTerminator>())
    OpBuilder::atBlockEnd(block).create<scf::YieldOp>(loc, values);
  return OpBuilder::atBlockTerminator(block);
}

/// Versions `loop` on its invariant divisors (see the file comment).
void invariantDivisors(LoopLikeOpInterface loop) {
  SmallVector<arith::DivFOp> divisions;
  for (Operation &op : *bodyOf(loop))
    if (auto div = dyn_cast<arith::DivFOp>(op);
        div && isa<FloatType>(div.getType()) && isInvariant(loop, div.getRhs()))
      divisions.push_back(div);
  if (divisions.empty())
    return;

  // Zero trips: the loop's results are its initial values (and the
  // divisors' subscripts may be out of bounds).
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  Value runs;
  for (auto [lb, ub] :
       llvm::zip(*loop.getLoopLowerBounds(), *loop.getLoopUpperBounds())) {
    Value dim =
        b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt,
                                getValueOrCreateConstantIndexOp(b, loc, lb),
                                getValueOrCreateConstantIndexOp(b, loc, ub));
    runs = runs ? b.create<arith::AndIOp>(loc, runs, dim) : dim;
  }
  auto guard = b.create<scf::IfOp>(loc, loop->getResultTypes(), runs,
                                   /*withElseRegion=*/true);
  yieldAtEnd(guard.elseBlock(), loop.getInits(), loc);

  // Each divisor's value before the loop, its reciprocal and range test.
  b.setInsertionPointToStart(guard.thenBlock());
  IRMapping hoisted;
  std::function<Value(Value)> hoist = [&](Value v) {
    if (loop.isDefinedOutsideOfLoop(v) || hoisted.contains(v))
      return hoisted.lookupOrDefault(v);
    Operation *def = v.getDefiningOp();
    for (Value operand : def->getOperands())
      hoist(operand);
    b.clone(*def, hoisted);
    return hoisted.lookup(v);
  };
  DenseMap<Value, Value> reciprocals;
  Value inRange;
  for (arith::DivFOp div : divisions) {
    Value d = div.getRhs();
    if (reciprocals.count(d))
      continue;
    Value outside = hoist(d);
    auto type = cast<FloatType>(d.getType());
    const llvm::fltSemantics &semantics = type.getFloatSemantics();
    APFloat smallest = APFloat::getSmallestNormalized(semantics);
    APFloat largest(semantics, 1);
    largest.divide(smallest, APFloat::rmNearestTiesToEven);
    Value magnitude = b.create<math::AbsFOp>(loc, outside);
    auto compare = [&](arith::CmpFPredicate predicate, const APFloat &bound) {
      return b.create<arith::CmpFOp>(
          loc, predicate, magnitude,
          b.create<arith::ConstantOp>(loc, b.getFloatAttr(type, bound)));
    };
    Value notTiny = compare(arith::CmpFPredicate::OGE, smallest);
    Value notHuge = compare(arith::CmpFPredicate::OLE, largest);
    Value ok = b.create<arith::AndIOp>(loc, notTiny, notHuge);
    inRange = inRange ? b.create<arith::AndIOp>(loc, inRange, ok) : ok;
    reciprocals[d] = b.create<arith::DivFOp>(
        loc, b.create<arith::ConstantOp>(loc, b.getFloatAttr(type, 1.0)),
        outside);
  }
  auto version = b.create<scf::IfOp>(loc, loop->getResultTypes(), inRange,
                                     /*withElseRegion=*/true);
  yieldAtEnd(guard.thenBlock(), version.getResults(), loc);

  // Then: a copy of the loop with products.
  IRMapping copy;
  Operation *products = version.getThenBodyBuilder().clone(*loop, copy);
  yieldAtEnd(version.thenBlock(), products->getResults(), loc);
  for (arith::DivFOp div : divisions) {
    auto copied =
        cast<arith::DivFOp>(copy.lookup(div.getResult()).getDefiningOp());
    OpBuilder at(copied);
    copied.replaceAllUsesWith(
        at.create<arith::MulFOp>(copied.getLoc(), copied.getLhs(),
                                 reciprocals[div.getRhs()],
                                 copied.getFastmathAttr())
            .getResult());
    copied.erase();
  }
  // Else: the loop as it was.
  loop->replaceAllUsesWith(guard.getResults());
  OpBuilder before = yieldAtEnd(version.elseBlock(), {}, loc);
  loop->moveBefore(&*before.getInsertionPoint());
  before.getInsertionPoint()->setOperands(loop->getResults());
}

struct CpuReciprocalDivisorsPass
    : public PassWrapper<CpuReciprocalDivisorsPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuReciprocalDivisorsPass)
  StringRef getArgument() const final { return "mlx-cpu-reciprocal-divisors"; }
  StringRef getDescription() const final {
    return "divisions by constants and loop-invariant divisors as products "
           "by reciprocals, where those are normal floats";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<arith::ArithDialect, math::MathDialect, scf::SCFDialect>();
  }
  void runOnOperation() override {
    constantDivisors(getOperation());
    // Innermost loops first (post-order): a divisor invariant in an inner
    // loop is tested once per run of it.
    SmallVector<LoopLikeOpInterface> loops;
    getOperation()->walk([&](Operation *op) {
      // scf.parallel without reductions: an element-wise op's loop, as
      // AdamW's, whose divisors come from scalar arguments.
      if (auto parallel = dyn_cast<scf::ParallelOp>(op);
          isa<scf::ForOp>(op) || (parallel && parallel.getInitVals().empty()))
        loops.push_back(cast<LoopLikeOpInterface>(op));
    });
    for (LoopLikeOpInterface loop : loops)
      invariantDivisors(loop);
  }
};

} // namespace

std::unique_ptr<Pass> mlx::createCpuReciprocalDivisorsPass() {
  return std::make_unique<CpuReciprocalDivisorsPass>();
}

void mlx::registerCpuReciprocalDivisorsPass() {
  PassRegistration<CpuReciprocalDivisorsPass>();
}
