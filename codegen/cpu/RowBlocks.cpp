//===- RowBlocks.cpp - the ops over a score matrix, a block of rows at a time
//=//
//
// `mlx-cpu-row-blocks`. Attention's gradient reads the T×T probabilities P
// again, so mlx-online-softmax leaves it in the two-pass form: the scores,
// P, their gradient dS and the masks around them are each a T×T tensor
// (64 MiB apiece at T = 4096), written once and read back by the products
// that make o = P V, dQ = dS K, dK = dSᵀ Q and dV = Pᵀ 1. This pass runs
// all the ops over such a matrix a block of its rows at a time, in one
// sequential scf.for: per block the scores of those rows are recomputed
// from Q and K, the row reductions (softmax's max and sum) complete inside
// the block, outputs indexed by the row (o, dQ) are written into their
// rows, and outputs that sum over the rows (dK, dV's column sums) are
// carried across the blocks as accumulators (a linalg reduction adds to
// its init). The extra memory is a few blocks of rows (about 1 MiB
// each), O(T), not O(T²); the blocks stay in the cache between the ops.
//
// Found from a seed: a rank-2 result that a row reduction reads (the
// scores feeding softmax's max), with its first subscript as the row
// loop. The group grows along that loop to the producers that make the
// seed's rows (the QKᵀ product, the fills of its inits) and to every
// reader of a member's rows; a reader whose row loop is a reduction
// accumulates and ends the growth there. Taken only where such an
// accumulating product exists (else mlx-cpu-fuse-rows' parallel blocks
// are the better plan) and every member reads its producers' rows at the
// same subscript. Rows per block: max(32, 2¹⁸ / row length), so a
// product with few columns (a classifier's logits) runs as one block.
//
// The sums over rows are added block by block: results differ from the
// unblocked form in rounding only, and are the same for any thread count.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Utils/Utils.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/MapVector.h"

using namespace mlir;

namespace {

/// Elements of a block of rows of the matrix (1 MiB of f32, in L2 on the
/// hosts measured; attention T = 4096 fwd+bwd: 163 ms with 128 KiB
/// blocks, 141 with 1 MiB, 161 unblocked; T = 1024 (4 blocks): 7.2 ms,
/// as unblocked).
constexpr int64_t kBlockElements = 1 << 18;
/// The fewest rows in a block (a product over the block's rows keeps some
/// depth).
constexpr int64_t kMinRows = 32;

/// The result of `map` that is loop `loop` itself, if any.
std::optional<unsigned> positionOf(AffineMap map, unsigned loop) {
  for (auto [k, expr] : llvm::enumerate(map.getResults()))
    if (auto dim = dyn_cast<AffineDimExpr>(expr);
        dim && dim.getPosition() == loop)
      return k;
  return std::nullopt;
}

AffineMap outputMap(linalg::LinalgOp op) {
  return op.getMatchingIndexingMap(op.getDpsInitOperand(0));
}

/// Follows fills to the tensor they fill.
Value destinationRoot(Value v) {
  while (auto fill = v.getDefiningOp<linalg::FillOp>())
    v = fill.getOutputs()[0];
  return v;
}

/// One op of the group: its loop over the matrix's rows, and whether that
/// loop is a reduction (the op sums over the rows and accumulates).
struct Member {
  unsigned loop = 0;
  bool accumulates = false;
};

/// The ops run per block, in block order, found from a seed.
class Group {
public:
  /// Grows the group from `seed`'s row loop; false where its members
  /// cannot run per block.
  bool grow(linalg::GenericOp seed) {
    block = seed->getBlock();
    if (join(seed, *positionLoop(seed, 0)) != Joined)
      return false;
    for (unsigned next = 0; next < members.size(); ++next) {
      auto op = cast<linalg::LinalgOp>(members.begin()[next].first);
      Member member = members.begin()[next].second;
      // Producers of the rows it reads.
      for (OpOperand &operand : op->getOpOperands()) {
        auto producer = operand.get().getDefiningOp<linalg::LinalgOp>();
        std::optional<unsigned> pos =
            positionOf(op.getMatchingIndexingMap(&operand), member.loop);
        if (!producer || !pos || producer->getBlock() != block ||
            producer.getNumDpsInits() != 1)
          continue;
        auto dim = dyn_cast<AffineDimExpr>(outputMap(producer).getResult(*pos));
        if (!dim || join(producer, dim.getPosition()) == Conflict)
          return false;
      }
      // Readers of its rows (a sum over the rows is complete only after
      // the last block: its readers wait; a fill's readers share its
      // value, not its rows).
      if (member.accumulates || isa<linalg::FillOp>(op))
        continue;
      unsigned pos = *positionOf(outputMap(op), member.loop);
      for (OpOperand &use : op->getResult(0).getUses()) {
        auto reader = dyn_cast<linalg::LinalgOp>(use.getOwner());
        if (!reader || reader->getBlock() != block)
          continue;
        auto dim = dyn_cast<AffineDimExpr>(
            reader.getMatchingIndexingMap(&use).getResult(pos));
        if (dim && join(reader, dim.getPosition()) == Conflict)
          return false;
      }
    }
    return valid();
  }

  llvm::MapVector<Operation *, Member> members;
  Block *block = nullptr;

private:
  enum Outcome { Joined, Refused, Conflict };

  /// The loop that result `k` of `op`'s output map is.
  static std::optional<unsigned> positionLoop(linalg::LinalgOp op, unsigned k) {
    AffineMap map = outputMap(op);
    if (k >= map.getNumResults())
      return std::nullopt;
    if (auto dim = dyn_cast<AffineDimExpr>(map.getResult(k)))
      return dim.getPosition();
    return std::nullopt;
  }

  /// Adds `op` with row loop `loop` where it can run per block.
  Outcome join(linalg::LinalgOp op, unsigned loop) {
    if (auto it = members.find(op); it != members.end())
      return it->second.loop == loop ? Joined : Conflict;
    if (!isa<linalg::GenericOp, linalg::FillOp>(op) ||
        !op.hasPureTensorSemantics() || op->getNumResults() != 1 ||
        op.getNumDpsInits() != 1 || loop >= op.getNumLoops() ||
        !llvm::all_of(op.getIndexingMapsArray(), [](AffineMap map) {
          return map.isProjectedPermutation();
        }))
      return Refused;
    bool reduction =
        op.getIteratorTypesArray()[loop] == utils::IteratorType::reduction;
    if (!reduction && !positionOf(outputMap(op), loop))
      return Refused;
    members.insert({op, Member{loop, reduction}});
    return Joined;
  }

  /// Whether every member reads its member producers' rows at its own row
  /// loop, no member reads a sum over the rows, and one member is a
  /// product summing over the rows (the plan's reason).
  bool valid() {
    bool accumulatingProduct = false;
    for (auto [op, member] : members) {
      auto linalgOp = cast<linalg::LinalgOp>(op);
      for (OpOperand &operand : op->getOpOperands()) {
        auto it = members.find(operand.get().getDefiningOp());
        if (it == members.end())
          continue;
        std::optional<unsigned> pos =
            positionOf(linalgOp.getMatchingIndexingMap(&operand), member.loop);
        if (isa<linalg::FillOp>(it->first) && !pos)
          continue; // (reads the fill whole: the original is kept)
        if (it->second.accumulates || !pos ||
            *pos != *positionOf(outputMap(cast<linalg::LinalgOp>(it->first)),
                                it->second.loop))
          return false;
      }
      if (member.accumulates &&
          llvm::count_if(linalgOp.getDpsInputOperands(), [](OpOperand *in) {
            auto type = dyn_cast<RankedTensorType>(in->get().getType());
            return type && type.getRank() >= 2;
          }) >= 2)
        accumulatingProduct = true;
    }
    return accumulatingProduct;
  }
};

/// A rank-2 generic result read by a reduction over its second subscript
/// (a row reduction), in the function's body.
bool isSeed(linalg::GenericOp op) {
  if (op.getNumDpsInits() != 1 || !op.hasPureTensorSemantics())
    return false;
  AffineMap map = outputMap(op);
  if (map.getNumResults() != 2 || !isa<AffineDimExpr>(map.getResult(0)) ||
      !isa<AffineDimExpr>(map.getResult(1)))
    return false;
  return llvm::any_of(op->getResult(0).getUses(), [](OpOperand &use) {
    auto reader = dyn_cast<linalg::GenericOp>(use.getOwner());
    if (!reader || reader.getNumDpsInits() != 1)
      return false;
    AffineMap in = reader.getMatchingIndexingMap(&use);
    auto row = dyn_cast<AffineDimExpr>(in.getResult(0));
    auto col = dyn_cast<AffineDimExpr>(in.getResult(1));
    auto iterators = reader.getIteratorTypesArray();
    return row && col &&
           iterators[row.getPosition()] == utils::IteratorType::parallel &&
           iterators[col.getPosition()] == utils::IteratorType::reduction;
  });
}

/// Rewrites `group` as one scf.for over blocks of rows; false (nothing
/// changed) where the ops around it do not allow it.
bool blockRows(RewriterBase &rewriter, Group &group, linalg::GenericOp seed) {
  auto &members = group.members;
  auto isMember = [&](Operation *op) { return members.contains(op); };
  // Members in block order; the ops between them that read a member's
  // result move after the loop (they must not feed a member). A fill
  // stays for its readers outside.
  SmallVector<Operation *> order;
  for (Operation &op : *group.block)
    if (isMember(&op))
      order.push_back(&op);
  llvm::SetVector<Operation *> after;
  for (Operation *op = order.front(); op != order.back();
       op = op->getNextNode()) {
    if (isMember(op))
      continue;
    bool reads = false;
    op->walk([&](Operation *nested) {
      for (Value v : nested->getOperands())
        if (Operation *def = v.getDefiningOp();
            def && ((isMember(def) && !isa<linalg::FillOp>(def)) ||
                    after.contains(def)))
          reads = true;
    });
    if (reads)
      after.insert(op);
  }
  for (Operation *op : order)
    for (Value v : op->getOperands())
      if (after.contains(v.getDefiningOp()))
        return false;

  // The loop's carried values: members read from outside (rows written
  // into a whole tensor) and sums over the rows.
  auto readOutside = [&](Operation *op) {
    return llvm::any_of(op->getUsers(),
                        [&](Operation *user) { return !isMember(user); });
  };
  SmallVector<Operation *> outputs;
  SmallVector<Value> inits;
  for (Operation *op : order) {
    if (isa<linalg::FillOp>(op) || !readOutside(op))
      continue;
    Value init = cast<linalg::LinalgOp>(op).getDpsInitOperand(0)->get();
    if (!members[op].accumulates)
      init = destinationRoot(init);
    if (Operation *def = init.getDefiningOp();
        def && isMember(def) && !isa<linalg::FillOp>(def))
      return false;
    outputs.push_back(op);
    inits.push_back(init);
  }

  Location loc = seed.getLoc();
  rewriter.setInsertionPointAfter(order.back());
  unsigned seedPos = *positionOf(outputMap(seed), members[seed].loop);
  Value seedDest = destinationRoot(seed.getDpsInitOperand(0)->get());
  Value rows = rewriter.create<tensor::DimOp>(loc, seedDest, seedPos);
  Value cols = rewriter.create<tensor::DimOp>(loc, seedDest, 1 - seedPos);
  auto constant = [&](int64_t v) {
    return rewriter.create<arith::ConstantIndexOp>(loc, v);
  };
  Value rowsPerBlock = rewriter.create<arith::MaxUIOp>(
      loc, constant(kMinRows),
      rewriter.create<arith::DivUIOp>(
          loc, constant(kBlockElements),
          rewriter.create<arith::MaxUIOp>(loc, cols, constant(1))));
  auto loop =
      rewriter.create<scf::ForOp>(loc, constant(0), rows, rowsPerBlock, inits);
  rewriter.setInsertionPointToStart(loop.getBody());
  Value start = loop.getInductionVar();
  Value size = rewriter.create<arith::MinUIOp>(
      loc, rowsPerBlock, rewriter.create<arith::SubIOp>(loc, rows, start));

  // The rows [start, start + size) along subscript `pos` of `source`.
  auto slice = [&](Value source, unsigned pos) {
    auto type = cast<RankedTensorType>(source.getType());
    SmallVector<OpFoldResult> offsets(type.getRank(), rewriter.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes,
        strides(type.getRank(), rewriter.getIndexAttr(1));
    for (int64_t k = 0; k < type.getRank(); ++k)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, source, k));
    offsets[pos] = start;
    sizes[pos] = size;
    return rewriter.create<tensor::ExtractSliceOp>(loc, source, offsets, sizes,
                                                   strides);
  };

  IRMapping tiled; // member result → its block
  SmallVector<Value> yields(outputs.size());
  for (Operation *op : order) {
    auto linalgOp = cast<linalg::LinalgOp>(op);
    Member member = members[op];
    auto outputIt = llvm::find(outputs, op);
    std::optional<unsigned> output;
    if (outputIt != outputs.end())
      output = outputIt - outputs.begin();
    SmallVector<Value> operands;
    tensor::ExtractSliceOp outputSlice;
    for (OpOperand &operand : op->getOpOperands()) {
      Value v = operand.get();
      std::optional<unsigned> pos =
          positionOf(linalgOp.getMatchingIndexingMap(&operand), member.loop);
      bool isInit = linalgOp.isDpsInit(&operand);
      if (isInit && output) {
        Value carried = loop.getRegionIterArg(*output);
        if (member.accumulates) {
          operands.push_back(carried);
          continue;
        }
        outputSlice = slice(carried, *pos);
        Value dest = outputSlice;
        // A fill of the output's rows: filled per block.
        if (auto fill = v.getDefiningOp<linalg::FillOp>())
          dest = rewriter
                     .create<linalg::FillOp>(fill.getLoc(), fill.getInputs()[0],
                                             dest)
                     .getResult(0);
        operands.push_back(dest);
        continue;
      }
      if (Value block = tiled.lookupOrNull(v); block && pos) {
        operands.push_back(block);
        continue;
      }
      if (!pos || !isa<RankedTensorType>(v.getType())) {
        operands.push_back(v); // read whole
        continue;
      }
      operands.push_back(slice(v, *pos));
    }
    SmallVector<Type> resultTypes{
        operands[linalgOp.getDpsInitOperand(0)->getOperandNumber()].getType()};
    Operation *blockOp = clone(rewriter, op, resultTypes, operands);
    SmallVector<OpFoldResult> offsets(linalgOp.getNumLoops(),
                                      rewriter.getIndexAttr(0));
    offsets[member.loop] = start;
    if (isa<linalg::GenericOp>(blockOp))
      linalg::offsetIndices(rewriter, cast<linalg::LinalgOp>(blockOp), offsets);
    tiled.map(op->getResult(0), blockOp->getResult(0));
    if (!output)
      continue;
    if (member.accumulates) {
      yields[*output] = blockOp->getResult(0);
      continue;
    }
    yields[*output] = rewriter.create<tensor::InsertSliceOp>(
        loc, blockOp->getResult(0), loop.getRegionIterArg(*output),
        outputSlice.getMixedOffsets(), outputSlice.getMixedSizes(),
        outputSlice.getMixedStrides());
  }
  rewriter.create<scf::YieldOp>(loc, yields);

  // Readers outside see the loop's results; the members go.
  for (auto [k, op] : llvm::enumerate(outputs))
    rewriter.replaceUsesWithIf(
        op->getResult(0), loop.getResult(k), [&](OpOperand &use) {
          return !isMember(use.getOwner()) && !loop->isAncestor(use.getOwner());
        });
  Operation *last = loop;
  for (Operation *op : after) {
    op->moveAfter(last);
    last = op;
  }
  for (Operation *op : llvm::reverse(order))
    if (op->use_empty())
      rewriter.eraseOp(op);
  return true;
}

struct CpuRowBlocksPass
    : public PassWrapper<CpuRowBlocksPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuRowBlocksPass)
  StringRef getArgument() const final { return "mlx-cpu-row-blocks"; }
  StringRef getDescription() const final {
    return "the ops over a score matrix (attention's gradient) a block of its "
           "rows at a time, sums over the rows accumulated";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry
        .insert<scf::SCFDialect, tensor::TensorDialect, arith::ArithDialect>();
  }

  void runOnOperation() override {
    // Sizes read from the inits, not from the results about to go; a
    // block of an empty tensor an empty block (not a slice of a T×T
    // allocation).
    RewritePatternSet patterns(&getContext());
    memref::populateResolveRankedShapedTypeResultDimsPatterns(patterns);
    tensor::populateFoldTensorEmptyPatterns(patterns);
    FrozenRewritePatternSet frozen(std::move(patterns));
    (void)applyPatternsAndFoldGreedily(getOperation(), frozen);

    IRRewriter rewriter(&getContext());
    llvm::SmallPtrSet<Operation *, 8> tried;
    while (true) {
      linalg::GenericOp seed;
      for (Block &block : getOperation().getBody())
        for (auto op : block.getOps<linalg::GenericOp>())
          if (!seed && !tried.contains(op) && isSeed(op))
            seed = op;
      if (!seed)
        break;
      tried.insert(seed);
      Group group;
      if (group.grow(seed) && blockRows(rewriter, group, seed))
        (void)applyPatternsAndFoldGreedily(getOperation(), frozen);
    }
  }
};

} // namespace

std::unique_ptr<Pass> mlx::createCpuRowBlocksPass() {
  return std::make_unique<CpuRowBlocksPass>();
}

void mlx::registerCpuRowBlocksPass() { PassRegistration<CpuRowBlocksPass>(); }
