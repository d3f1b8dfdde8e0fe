//===- LoopOrder.cpp - pick the innermost loop of each linalg.generic ----===//
//
// The `mlx-loop-order` pass. linalg lowers to loops in iteration-dim order,
// and index notation puts the reduction indices last: y[n,o] = Σ_i x W
// would run i innermost and stride through W's columns. This pass moves
// innermost the index that is the fastest-varying (last) subscript of the
// most operands (weighted by rank), so the inner loop walks memory
// contiguously and LLVM can vectorize it (y[n,o] += x[n,i]·W[i,o] with o
// innermost).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::mlx {
#define GEN_PASS_DEF_LOOPORDERPASS
#include "passes/Passes.h.inc"
} // namespace mlir::mlx

using namespace mlir;

/// The loop order putting innermost the dim that is the last subscript of
/// the most operands, each weighted by its rank squared (a large operand
/// walked with a stride costs more than small ones: the variance of rows
/// of x[N, D] reads x[n, d] and writes v[n], and must walk d, not n);
/// empty when the current order is already that.
static SmallVector<unsigned> chooseOrder(linalg::GenericOp op) {
  unsigned numLoops = op.getNumLoops();
  if (numLoops < 2)
    return {};
  SmallVector<int> score(numLoops, 0);
  for (AffineMap map : op.getIndexingMapsArray()) {
    if (map.getNumResults() == 0)
      continue;
    if (auto d = dyn_cast<AffineDimExpr>(map.getResults().back()))
      score[d.getPosition()] += map.getNumResults() * map.getNumResults();
  }
  unsigned best = numLoops - 1;
  for (unsigned d = 0; d < numLoops; ++d)
    if (score[d] > score[best])
      best = d;
  if (best == numLoops - 1)
    return {};
  SmallVector<unsigned> order;
  for (unsigned d = 0; d < numLoops; ++d)
    if (d != best)
      order.push_back(d);
  order.push_back(best);
  return order;
}

namespace {
struct LoopOrderPass : public mlx::impl::LoopOrderPassBase<LoopOrderPass> {
  void runOnOperation() override {
    SmallVector<linalg::GenericOp> generics;
    getOperation()->walk([&](linalg::GenericOp op) { generics.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (linalg::GenericOp op : generics) {
      SmallVector<unsigned> order = chooseOrder(op);
      if (order.empty())
        continue;
      rewriter.setInsertionPoint(op);
      if (failed(linalg::interchangeGenericOp(rewriter, op, order)))
        return signalPassFailure();
    }
  }
};
} // namespace
