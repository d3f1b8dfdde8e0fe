//===- MaskedSums.cpp - a mask or divisor out of the sum it is free of ---===//
//
// `mlx-cpu-masked-sums`. The gradient of a guarded read (a convolution's
// padding: `inside ? I[c, y + u − 1, x + v − 1] : 0`) is a sum whose terms
// carry the guard: dP[c, u, v, y, x] = Σ_o (m(u, v, y, x) ? K[o, c, u, v] ·
// G[o, y, x] : 0). The mask depends on neither side of the product alone,
// so mlx-cpu-contractions cannot take it, and the sum ran as scalar loops
// (13 of conv2d's 30 ms forward+backward). Where the mask does not depend
// on the summed dims it can leave the sum: this pass splits such a
// generic into the plain sum T = Σ_o K·G (a contraction: rows (c, u, v),
// columns (y, x)) and an element-wise epilogue out = init + (m ? T : 0),
// the mask recomputed there from the output's indices.
//
// `mlx-cpu-divided-sums` (the same split, after fuse-rows, inside the
// blocks of rows): a divisor the summed dims do not change leaves the sum
// the same way: a mean `sum[d] x[d] / D` (layer_norm's mean and variance)
// divided every element (vdivps, ~10 cycles a vector: the two row sums of
// layer_norm were compute-bound); T = Σ_d x[d], out = init + T / D divides
// once per row (layer_norm 4096²: 10.0 → 7.2 ms). The sum of the quotients
// and the quotient of the sum differ in rounding only (the sum is
// reassociated already); an empty sum keeps the init (T / D would be
// 0 / 0). A product of two inputs divided (`Q·K / √D`) is left to
// mlx-cpu-contractions, which divides a factor as it packs it.
//
// Taken: a generic on tensors whose body yields `acc + select(m, p, 0)` or
// `acc + p / c`, m or c computed from linalg.index of parallel dims and
// values from outside only, p from the inputs by side-effect-free scalar
// ops only (no reads at computed subscripts, which could report an index
// the mask excludes). Each element is the same sum: Σ p over the summed
// dims where m holds (the order of the terms unchanged), 0 added where it
// does not.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace {

/// The body ops `root` is computed by, in body order; false where one of
/// them is not allowed by `allowed`.
bool sliceOf(Value root, Block &body,
             llvm::function_ref<bool(Operation *)> allowed,
             SmallVectorImpl<Operation *> &ops) {
  llvm::SmallPtrSet<Operation *, 8> seen;
  SmallVector<Value> work{root};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != &body) {
      if (auto arg = dyn_cast<BlockArgument>(v); arg && arg.getOwner() == &body)
        if (!allowed(nullptr))
          return false;
      continue;
    }
    if (!seen.insert(def).second)
      continue;
    if (!allowed(def))
      return false;
    llvm::append_range(work, def->getOperands());
  }
  for (Operation &op : body)
    if (seen.contains(&op))
      ops.push_back(&op);
  return true;
}

/// The block arguments of `body` that `root` is computed from.
llvm::SmallDenseSet<Value, 4> argumentsOf(Value root, Block &body) {
  llvm::SmallDenseSet<Value, 4> arguments;
  SmallVector<Operation *> ops;
  (void)sliceOf(root, body, [](Operation *) { return true; }, ops);
  auto note = [&](Value v) {
    if (auto arg = dyn_cast<BlockArgument>(v); arg && arg.getOwner() == &body)
      arguments.insert(v);
  };
  note(root);
  for (Operation *op : ops)
    for (Value operand : op->getOperands())
      note(operand);
  return arguments;
}

/// Whether `term` is a product of factors computed from different inputs
/// (`Q[i, d] · K[j, d]`): mlx-cpu-contractions takes `acc + x·y / c` and
/// applies the division to x as it packs it, once per element of x, where
/// dividing the sum would divide every element of the product.
bool isProductOfInputs(Value term, Block &body) {
  auto product = term.getDefiningOp<arith::MulFOp>();
  if (!product)
    return false;
  llvm::SmallDenseSet<Value, 4> x = argumentsOf(product.getLhs(), body),
                                y = argumentsOf(product.getRhs(), body);
  return !x.empty() && !y.empty() &&
         llvm::none_of(x, [&](Value v) { return y.contains(v); });
}

/// Splits `acc + select(m, p, 0)` (masks) or `acc + p / c` (divisors).
struct SplitMaskedSum : OpRewritePattern<linalg::GenericOp> {
  SplitMaskedSum(MLIRContext *context, bool divisors)
      : OpRewritePattern(context), divisors(divisors) {}
  bool divisors;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInits() != 1 ||
        op.getNumReductionLoops() == 0 ||
        !llvm::all_of(op.getIndexingMapsArray(), [](AffineMap map) {
          return map.isProjectedPermutation();
        }))
      return failure();
    Block &body = op.getRegion().front();
    Value acc = body.getArgument(op.getDpsInitOperand(0)->getOperandNumber());
    auto add =
        body.getTerminator()->getOperand(0).getDefiningOp<arith::AddFOp>();
    if (!add || !llvm::is_contained(add->getOperands(), acc))
      return failure();
    // The term: m ? p : 0, or p / c.
    Operation *term =
        (add.getLhs() == acc ? add.getRhs() : add.getLhs()).getDefiningOp();
    if (!term || !term->hasOneUse())
      return failure();
    Value factor, summed;
    FloatAttr zero;
    if (auto select = dyn_cast<arith::SelectOp>(term); select && !divisors) {
      if (!matchPattern(select.getFalseValue(), m_Constant(&zero)) ||
          !zero.getValue().isZero())
        return failure();
      factor = select.getCondition();
      summed = select.getTrueValue();
    } else if (auto divide = dyn_cast<arith::DivFOp>(term);
               divide && divisors &&
               !isProductOfInputs(divide.getLhs(), body)) {
      factor = divide.getRhs();
      summed = divide.getLhs();
    } else {
      return failure();
    }
    auto iterators = op.getIteratorTypesArray();
    // The mask or divisor: indices of parallel dims and values from
    // outside only.
    SmallVector<Operation *> factorOps;
    if (!sliceOf(
            factor, body,
            [&](Operation *inner) {
              if (!inner)
                return false; // (a block argument: an input or acc)
              if (auto index = dyn_cast<linalg::IndexOp>(inner))
                return iterators[index.getDim()] ==
                       utils::IteratorType::parallel;
              return inner->getNumRegions() == 0 && isMemoryEffectFree(inner);
            },
            factorOps))
      return failure();
    // The terms: scalar ops on the inputs, nothing read or reported.
    SmallVector<Operation *> termOps;
    if (!sliceOf(
            summed, body,
            [&](Operation *inner) {
              return !inner || (inner->getNumRegions() == 0 &&
                                isMemoryEffectFree(inner) &&
                                !isa<tensor::ExtractOp>(inner));
            },
            termOps))
      return failure();

    Location loc = op.getLoc();
    Value init = op.getDpsInitOperand(0)->get();
    auto type = cast<RankedTensorType>(init.getType());
    Value empty = rewriter.create<tensor::EmptyOp>(
        loc, tensor::getMixedSizes(rewriter, loc, init), type.getElementType());
    Value zeroValue = rewriter.create<arith::ConstantOp>(
        loc, rewriter.getZeroAttr(type.getElementType()));
    Value zeros =
        rewriter.create<linalg::FillOp>(loc, zeroValue, empty).getResult(0);
    // An empty sum adds nothing (T / c would add 0 / c, NaN where c is 0).
    Value nonEmpty;
    if (isa<arith::DivFOp>(term))
      for (auto [range, iterator] :
           llvm::zip(cast<linalg::LinalgOp>(op.getOperation())
                         .createLoopRanges(rewriter, loc),
                     iterators)) {
        if (iterator != utils::IteratorType::reduction)
          continue;
        Value some = rewriter.create<arith::CmpIOp>(
            loc, arith::CmpIPredicate::ne,
            getValueOrCreateConstantIndexOp(rewriter, loc, range.size),
            rewriter.create<arith::ConstantIndexOp>(loc, 0));
        nonEmpty = nonEmpty
                       ? rewriter.create<arith::AndIOp>(loc, nonEmpty, some)
                       : some;
      }
    // T = Σ p: the same generic from zeros, the select or division gone.
    IRMapping cloned;
    auto sum = cast<linalg::GenericOp>(rewriter.clone(*op, cloned));
    sum.getDpsInitsMutable()[0].set(zeros);
    Block &sumBody = sum.getRegion().front();
    Operation *sumTerm = cloned.lookup(term);
    rewriter.replaceOp(sumTerm, cloned.lookup(summed));
    for (Operation &inner :
         llvm::make_early_inc_range(llvm::reverse(sumBody.getOperations())))
      if (isOpTriviallyDead(&inner))
        rewriter.eraseOp(&inner);

    // out = init + (m ? T : 0) or init + T / c, m or c from the output's
    // indices.
    AffineMap outMap = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
    int64_t rank = type.getRank();
    AffineMap identity = rewriter.getMultiDimIdentityMap(rank);
    SmallVector<utils::IteratorType> parallel(rank,
                                              utils::IteratorType::parallel);
    auto epilogue = rewriter.create<linalg::GenericOp>(
        loc, TypeRange{type}, ValueRange{sum.getResult(0)}, ValueRange{init},
        ArrayRef<AffineMap>{identity, identity}, parallel,
        [&](OpBuilder &b, Location l, ValueRange args) {
          IRMapping mapping;
          for (Operation *inner : factorOps) {
            if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
              unsigned at =
                  *outMap.getResultPosition(b.getAffineDimExpr(index.getDim()));
              mapping.map(index.getResult(),
                          b.create<linalg::IndexOp>(l, at).getResult());
              continue;
            }
            b.clone(*inner, mapping);
          }
          mapping.map(summed, args[0]);
          Value kept = b.clone(*term, mapping)->getResult(0);
          Value out = b.create<arith::AddFOp>(l, args[1], kept);
          if (nonEmpty)
            out = b.create<arith::SelectOp>(l, nonEmpty, out, args[1]);
          b.create<linalg::YieldOp>(l, ValueRange{out});
        });
    rewriter.replaceOp(op, epilogue.getResults());
    return success();
  }
};

/// mlx-cpu-masked-sums, or with `Divisors` mlx-cpu-divided-sums.
template <bool Divisors>
struct CpuSplitSumsPass : public PassWrapper<CpuSplitSumsPass<Divisors>,
                                             OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuSplitSumsPass)
  StringRef getArgument() const final {
    return Divisors ? "mlx-cpu-divided-sums" : "mlx-cpu-masked-sums";
  }
  StringRef getDescription() const final {
    return Divisors ? "a divisor the summed dims do not change taken out of "
                      "the sum (a mean divides once per row)"
                    : "a mask the summed dims do not change taken out of the "
                      "sum (a guarded read's gradient becomes a contraction "
                      "and an epilogue)";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<tensor::TensorDialect, arith::ArithDialect>();
  }

  void runOnOperation() override {
    RewritePatternSet patterns(&this->getContext());
    patterns.add<SplitMaskedSum>(&this->getContext(), Divisors);
    GreedyRewriteConfig config;
    config.strictMode = GreedyRewriteStrictness::ExistingOps;
    if (failed(applyPatternsAndFoldGreedily(this->getOperation(),
                                            std::move(patterns), config)))
      this->signalPassFailure();
  }
};

} // namespace

std::unique_ptr<Pass> mlx::createCpuMaskedSumsPass() {
  return std::make_unique<CpuSplitSumsPass<false>>();
}

std::unique_ptr<Pass> mlx::createCpuDividedSumsPass() {
  return std::make_unique<CpuSplitSumsPass<true>>();
}

void mlx::registerCpuMaskedSumsPass() {
  PassRegistration<CpuSplitSumsPass<false>>();
  PassRegistration<CpuSplitSumsPass<true>>();
}
