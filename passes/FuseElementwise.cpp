//===- FuseElementwise.cpp - element-wise fusion without recomputation ---===//
//
// The `mlx-fuse-elementwise` pass: linalg's element-wise fusion patterns
// under a control that refuses fusions which would recompute the producer
// (see Passes.td). Measured on the causal-attention gradient with respect
// to Q alone: upstream's default fused exp(s − m) into a T×T×D reduction
// and took 390 ms; see docs/Architecture.md.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::mlx {
#define GEN_PASS_DEF_FUSEELEMENTWISEPASS
#include "passes/Passes.h.inc"
} // namespace mlir::mlx

using namespace mlir;

/// Fuse a single-use producer only where the consumer reads each of its
/// elements once.
static bool fusesWithoutRecomputing(OpOperand *fused) {
  Operation *producer = fused->get().getDefiningOp();
  if (!producer || !producer->hasOneUse())
    return false;
  auto consumer = dyn_cast<linalg::GenericOp>(fused->getOwner());
  return consumer && consumer.getMatchingIndexingMap(fused).isPermutation();
}

/// An operand of an element-wise consumer that a producer others read too
/// makes, fusable as a further output of the fused op: computed once, and
/// those others (all after the consumer, so that they can read the fused
/// op's output; one before it — softmax's row sum, before the division by
/// it — could not) read it from there.
static bool fusesAsFurtherOutput(OpOperand *fused) {
  auto producer = fused->get().getDefiningOp<linalg::GenericOp>();
  auto consumer = dyn_cast<linalg::GenericOp>(fused->getOwner());
  if (!producer || !consumer || producer->hasOneUse() ||
      producer->getBlock() != consumer->getBlock() ||
      consumer.getNumLoops() != consumer.getNumParallelLoops() ||
      !consumer.getMatchingIndexingMap(fused).isPermutation() ||
      !linalg::areElementwiseOpsFusable(fused))
    return false;
  return llvm::all_of(producer->getUsers(), [&](Operation *user) {
    return user == consumer || (user->getBlock() == consumer->getBlock() &&
                                consumer->isBeforeInBlock(user));
  });
}

/// Fuses one producer as a further output (fusesAsFurtherOutput); false
/// where there is none. Upstream's pattern leaves the producer's other
/// readers on the producer, which then stays and is computed twice.
static bool fuseOneAsFurtherOutput(Operation *root) {
  OpOperand *found = nullptr;
  root->walk([&](linalg::GenericOp consumer) {
    for (OpOperand *input : consumer.getDpsInputOperands())
      if (fusesAsFurtherOutput(input)) {
        found = input;
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  if (!found)
    return false;
  Operation *consumer = found->getOwner();
  Operation *producer = found->get().getDefiningOp();
  IRRewriter rewriter(root->getContext());
  rewriter.setInsertionPoint(consumer);
  FailureOr<linalg::ElementwiseOpFusionResult> fused =
      linalg::fuseElementwiseOps(rewriter, found);
  if (failed(fused))
    return false;
  for (auto [old, replacement] : fused->replacements)
    rewriter.replaceAllUsesExcept(old, replacement, fused->fusedOp);
  rewriter.eraseOp(consumer);
  if (producer->use_empty())
    rewriter.eraseOp(producer);
  return true;
}

namespace {
struct FuseElementwisePass
    : public mlx::impl::FuseElementwisePassBase<FuseElementwisePass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    linalg::populateElementwiseOpsFusionPatterns(patterns,
                                                 fusesWithoutRecomputing);
    linalg::GenericOp::getCanonicalizationPatterns(patterns, ctx);
    ctx->getLoadedDialect<linalg::LinalgDialect>()->getCanonicalizationPatterns(
        patterns);
    FrozenRewritePatternSet frozen(std::move(patterns));
    if (failed(applyPatternsAndFoldGreedily(getOperation(), frozen)))
      return signalPassFailure();
    bool changed = false;
    while (fuseOneAsFurtherOutput(getOperation()))
      changed = true;
    if (changed && failed(applyPatternsAndFoldGreedily(getOperation(), frozen)))
      signalPassFailure();
  }
};
} // namespace
