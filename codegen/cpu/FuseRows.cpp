//===- FuseRows.cpp - row-wise ops run a block of rows at a time ---------===//
//
// `mlx-cpu-fuse-rows`. A row-wise map (softmax or layer_norm of each row)
// becomes one linalg.generic per equation over all the rows: the row
// means, the variances and the normalized rows each sweep the whole
// tensor, so a 64 MiB input is read from memory three times. This pass
// tiles the last op of such a chain along its rows (an scf.forall over
// blocks of about 128 KiB of rows) and fuses its producers into the block
// (upstream's tileConsumerAndFuseProducersUsingSCF), so each block comes
// from memory once and the later passes over it hit the cache. After
// bufferization the forall becomes the parallel loop the threads share
// (scf-forall-to-parallel); the ops inside run sequentially in its
// iterations. Each row is computed as before, in the same order: results
// are bit-identical.
//
// Taken: a generic with only parallel loops whose output's first
// subscript is a loop (the row dim) and at least one operand made by a
// generic with a reduction over each row. Fused into it: fills and
// generics whose inputs of rank ≥ 2 all have their row dim as first
// subscript (a matrix product's weights have none: fusing it would compute
// the product per block and pack the weights for each; see fusable) and
// whose body reads no tensor at computed subscripts (a convolution's image).
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace {

/// Elements of a block of rows: 128 KiB of f32, well inside an L2 (rows of
/// 4096: blocks of 8 rows; 4096 to 65536 tried on a noisy host, 32768 the
/// best for both softmax and layer_norm).
constexpr int64_t kBlockElements = 32768;
/// Blocks at least (where there are as many rows).
constexpr int64_t kMinBlocks = 8;

/// The loop of `op` that its output's first subscript is, when parallel.
std::optional<unsigned> rowDim(linalg::GenericOp op) {
  if (op.getNumDpsInits() != 1)
    return std::nullopt;
  AffineMap map = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  if (map.getNumResults() < 1)
    return std::nullopt;
  auto dim = dyn_cast<AffineDimExpr>(map.getResult(0));
  if (!dim || op.getIteratorTypesArray()[dim.getPosition()] !=
                  utils::IteratorType::parallel)
    return std::nullopt;
  return dim.getPosition();
}

/// Whether `op` may run per block of rows: a fill, or a generic on
/// tensors whose inputs of rank ≥ 2 all have its row dim as their first
/// subscript (a block of rows is a block of theirs; a column sum, whose
/// row dim is the inputs' second, would walk them by columns per block
/// and recompute what it reads: attention's backward ran 1.8× slower).
bool fusable(Operation *op) {
  if (isa<linalg::FillOp>(op))
    return true;
  auto generic = dyn_cast<linalg::GenericOp>(op);
  if (!generic || !generic.hasPureTensorSemantics())
    return false;
  std::optional<unsigned> row = rowDim(generic);
  if (!row)
    return false;
  // A tensor its body reads at computed subscripts (a convolution's input,
  // gathered by the contraction's packer) is read whole by every block:
  // conv2d per block of 10 output channels packed its patches 13 times.
  bool readsWhole = false;
  generic.getRegion().walk([&](tensor::ExtractOp extract) {
    if (!generic.getRegion().isAncestor(extract.getTensor().getParentRegion()))
      readsWhole = true;
  });
  if (readsWhole)
    return false;
  return llvm::all_of(generic.getDpsInputOperands(), [&](OpOperand *in) {
    auto type = dyn_cast<RankedTensorType>(in->get().getType());
    AffineMap map = generic.getMatchingIndexingMap(in);
    return !type || type.getRank() < 2 ||
           (map.getNumResults() &&
            map.getResult(0) == getAffineDimExpr(*row, op->getContext()));
  });
}

/// Whether `op` ends a chain of row ops: all its loops parallel, fusable,
/// of rank ≥ 2, reading a row reduction.
bool endsRowChain(linalg::GenericOp op) {
  if (op.getNumReductionLoops() != 0 || op.getNumLoops() < 2 || !fusable(op))
    return false;
  return llvm::any_of(op.getDpsInputOperands(), [](OpOperand *in) {
    auto producer = in->get().getDefiningOp<linalg::GenericOp>();
    return producer && producer.getNumReductionLoops() > 0 && fusable(producer);
  });
}

struct CpuFuseRowsPass
    : public PassWrapper<CpuFuseRowsPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuFuseRowsPass)
  StringRef getArgument() const final { return "mlx-cpu-fuse-rows"; }
  StringRef getDescription() const final {
    return "row-wise ops (softmax, layer_norm rows) a block of rows at a time";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry
        .insert<scf::SCFDialect, tensor::TensorDialect, arith::ArithDialect>();
  }

  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    llvm::SmallPtrSet<Operation *, 8> failed;
    // Chain ends, last first (a chain's end may feed a later chain, never
    // an earlier one): one tiled, what it made dead erased, the next
    // found again (an earlier end, such as softmax's exp, is fused into a
    // later one's blocks and gone).
    while (true) {
      linalg::GenericOp last;
      getOperation().walk([&](linalg::GenericOp op) {
        if (!op->getParentOfType<scf::ForallOp>() && !failed.contains(op) &&
            endsRowChain(op))
          last = op;
      });
      if (!last)
        break;
      if (!fuse(rewriter, last))
        failed.insert(last);
      eraseDead();
    }
  }

  /// Erases the ops nothing reads (the slices and producers a fusion left
  /// behind), the sizes of a fused producer's result read from its init
  /// instead.
  void eraseDead() {
    RewritePatternSet patterns(&getContext());
    memref::populateResolveRankedShapedTypeResultDimsPatterns(patterns);
    (void)applyPatternsAndFoldGreedily(getOperation(), std::move(patterns));
  }

  /// Tiles `consumer` along its rows in blocks of about kBlockElements (at
  /// most an eighth of the rows) and fuses its fusable producers into the
  /// blocks; false where it cannot.
  static bool fuse(RewriterBase &rewriter, linalg::GenericOp consumer) {
    unsigned row = *rowDim(consumer);
    scf::SCFTilingOptions tiling;
    tiling.setLoopType(scf::SCFTilingOptions::LoopType::ForallOp);
    tiling.setTileSizeComputationFunction([row](OpBuilder &b, Operation *op) {
      // Rows per block: max(1, kBlockElements / elements per row).
      auto generic = cast<linalg::GenericOp>(op);
      Location loc = op->getLoc();
      SmallVector<Range> ranges =
          cast<linalg::LinalgOp>(op).createLoopRanges(b, loc);
      Value perRow = b.create<arith::ConstantIndexOp>(loc, 1);
      for (auto [dim, range] : llvm::enumerate(ranges))
        if (dim != row)
          perRow = b.create<arith::MulIOp>(
              loc, perRow, getValueOrCreateConstantIndexOp(b, loc, range.size));
      Value one = b.create<arith::ConstantIndexOp>(loc, 1);
      Value rows = b.create<arith::MaxUIOp>(
          loc,
          b.create<arith::DivUIOp>(
              loc, b.create<arith::ConstantIndexOp>(loc, kBlockElements),
              b.create<arith::MaxUIOp>(loc, perRow, one)),
          one);
      // At most an eighth of the rows, so that the threads share short
      // rows out too: the first blocks of attention's gradient after the
      // causal cut (128 rows of 128 keys) were one block, on one thread
      // (T = 1024 forward+backward 3.62 → 3.38 ms, Zen 4).
      Value all = getValueOrCreateConstantIndexOp(b, loc, ranges[row].size);
      Value eighth = b.create<arith::DivUIOp>(
          loc,
          b.create<arith::AddIOp>(
              loc, all, b.create<arith::ConstantIndexOp>(loc, kMinBlocks - 1)),
          b.create<arith::ConstantIndexOp>(loc, kMinBlocks));
      rows = b.create<arith::MaxUIOp>(
          loc, b.create<arith::MinUIOp>(loc, rows, eighth), one);
      SmallVector<OpFoldResult> sizes(generic.getNumLoops(), b.getIndexAttr(0));
      sizes[row] = rows;
      return sizes;
    });
    scf::SCFTileAndFuseOptions options;
    options.setTilingOptions(tiling);
    options.setFusionControlFn(
        [](tensor::ExtractSliceOp, OpResult producer, bool) {
          return std::make_tuple(fusable(producer.getOwner()), false);
        });
    rewriter.setInsertionPoint(consumer);
    FailureOr<scf::SCFTileAndFuseResult> tiled =
        scf::tileConsumerAndFuseProducersUsingSCF(
            rewriter, cast<TilingInterface>(consumer.getOperation()), options);
    if (failed(tiled))
      return false; // (left whole: still correct)
    for (OpResult result : consumer->getResults())
      rewriter.replaceAllUsesWith(result, tiled->replacements.lookup(result));
    rewriter.eraseOp(consumer);
    return true;
  }
};

} // namespace

std::unique_ptr<Pass> mlx::createCpuFuseRowsPass() {
  return std::make_unique<CpuFuseRowsPass>();
}

void mlx::registerCpuFuseRowsPass() { PassRegistration<CpuFuseRowsPass>(); }
