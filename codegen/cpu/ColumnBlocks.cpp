//===- ColumnBlocks.cpp - column sums shared out by blocks of columns ----===//
//
// `mlx-cpu-column-blocks`. A sum over rows for each column (a bias's
// gradient Σ_n dy[n, k], a transposed matrix-vector product) has its
// reduction loop outermost after mlx-loop-order, so that the innermost
// loop walks the columns contiguously. Lowered as it is, the nest is
// `for n { parallel k }`: one parallel loop per row, a team forked (or
// serialized under mlx-parallel-threshold) 256 times for a batch of 256,
// and each row's slice of columns too small to be worth a thread. This
// pass, on buffers after mlx-cpu-contractions, tiles such an op's first
// parallel dim and its rows (upstream's tileLinalgOp with parallel loops,
// interchanged): one parallel loop over blocks of columns, each running
// every row over its block in order. Each column's sum runs in the order
// of the rows as before, for every thread count: results are
// bit-identical.
//
// Taken: a linalg op on buffers whose outermost loop is a reduction and
// which has a parallel loop, not inside another parallel loop (where the
// threads are shared out already), whose body reads no linalg.index.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"

using namespace mlir;

namespace {

/// The fewest columns a block holds (four 512-bit vectors of f32).
constexpr int64_t kMinBlockColumns = 64;
/// Columns per block: 16 (a vector) for every kBlockSpan columns, so about
/// eight blocks, enough to share out over the threads evenly.
constexpr int64_t kBlockSpan = 128;

/// The first parallel loop of `op` where a reduction loop comes first.
std::optional<unsigned> columnDim(linalg::LinalgOp op) {
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  if (iterators.empty() || iterators.front() != utils::IteratorType::reduction)
    return std::nullopt;
  for (auto [d, iterator] : llvm::enumerate(iterators))
    if (iterator == utils::IteratorType::parallel)
      return d;
  return std::nullopt;
}

struct CpuColumnBlocksPass
    : public PassWrapper<CpuColumnBlocksPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuColumnBlocksPass)
  StringRef getArgument() const final { return "mlx-cpu-column-blocks"; }
  StringRef getDescription() const final {
    return "share out sums over rows (column sums) by blocks of columns";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<arith::ArithDialect, scf::SCFDialect>();
  }
  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> taken;
    getOperation()->walk([&](linalg::LinalgOp op) {
      // (Not with linalg.index: tiled so, a running maximum's gradient
      // read wrong indices, test/Integration/scans.mlx; not investigated.)
      if (!op.hasPureBufferSemantics() || !columnDim(op) ||
          op->getParentOfType<scf::ParallelOp>())
        return;
      if (!op->walk([](linalg::IndexOp) {
               return WalkResult::interrupt();
             }).wasInterrupted())
        taken.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::LinalgOp op : taken) {
      unsigned column = *columnDim(op);
      // Blocks of 16·⌈columns / kBlockSpan⌉ columns (⌈columns / 8⌉ rounded
      // up to 16), at least kMinBlockColumns.
      auto sizes = [column](OpBuilder &b, Operation *target) {
        auto linalgOp = cast<linalg::LinalgOp>(target);
        Location loc = target->getLoc();
        auto constant = [&](int64_t v) -> Value {
          return b.create<arith::ConstantIndexOp>(loc, v);
        };
        SmallVector<Value, 4> tiles(linalgOp.getNumLoops(), constant(0));
        // Each reduction loop before the columns a step at a time (an
        // scf.for around the block's op, inside the loop over blocks).
        for (unsigned d = 0; d < column; ++d)
          tiles[d] = constant(1);
        Value columns = getValueOrCreateConstantIndexOp(
            b, loc, linalgOp.createLoopRanges(b, loc)[column].size);
        Value spans = b.create<arith::DivUIOp>(
            loc,
            b.create<arith::AddIOp>(loc, columns, constant(kBlockSpan - 1)),
            constant(kBlockSpan));
        tiles[column] = b.create<arith::MaxUIOp>(
            loc, b.create<arith::MulIOp>(loc, spans, constant(16)),
            constant(kMinBlockColumns));
        return tiles;
      };
      // The loop over blocks outermost, then the rows.
      SmallVector<unsigned> order = {column};
      for (unsigned d = 0; d < column; ++d)
        order.push_back(d);
      linalg::LinalgTilingOptions options;
      options.setTileSizeComputationFunction(sizes)
          .setInterchange(order)
          .setLoopType(linalg::LinalgTilingLoopType::ParallelLoops);
      rewriter.setInsertionPoint(op);
      FailureOr<linalg::TiledLinalgOp> tiled =
          linalg::tileLinalgOp(rewriter, op, options);
      if (failed(tiled))
        continue;
      // For mlx-parallel-threshold, which counts the row loops (their
      // bounds are known before the loop over blocks) but not the block's
      // columns (known inside): a row of a block holds kMinBlockColumns
      // columns or more (fewer only where the op has fewer).
      if (auto rows = dyn_cast<scf::ForOp>(tiled->loops.back()))
        rows->setAttr(mlx::kLoopWorkAttr,
                      rewriter.getI64IntegerAttr(kMinBlockColumns));
      rewriter.eraseOp(op);
    }
  }
};

} // namespace

std::unique_ptr<Pass> mlx::createCpuColumnBlocksPass() {
  return std::make_unique<CpuColumnBlocksPass>();
}

void mlx::registerCpuColumnBlocksPass() {
  PassRegistration<CpuColumnBlocksPass>();
}
