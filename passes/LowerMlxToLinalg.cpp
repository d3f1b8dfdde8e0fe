//===- LowerMlxToLinalg.cpp - mlx → linalg/tensor/scf -----------*- C++ -*-===//
//
// The `mlx-lower-to-linalg` pass: the last step at the mlx level, as
// conversion patterns (one per op) under a target on which the mlx dialect
// is illegal. Keeps the structure of each equation (one linalg.generic per
// mlx.generic) so that upstream fusion and tiling apply.
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/Adjoints.h"
#include "dialects/mlx/MlxDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"
#include "llvm/ADT/SmallBitVector.h"

namespace mlir::mlx {
#define GEN_PASS_DEF_LOWERMLXTOLINALGPASS
#include "passes/Passes.h.inc"
} // namespace mlir::mlx

using namespace mlir;
using namespace mlir::mlx;

/// The identity element of `combiner` for `type` (0, 1, -inf, +inf).
static Value buildIdentity(OpBuilder &b, Location loc, Combiner combiner,
                           Type type) {
  if (auto floatType = dyn_cast<FloatType>(type)) {
    const llvm::fltSemantics &sem = floatType.getFloatSemantics();
    APFloat value = APFloat::getZero(sem);
    if (combiner == Combiner::mul)
      value = APFloat::getOne(sem);
    else if (combiner == Combiner::max)
      value = APFloat::getInf(sem, /*Negative=*/true);
    else if (combiner == Combiner::min)
      value = APFloat::getInf(sem, /*Negative=*/false);
    return b.create<arith::ConstantOp>(loc, b.getFloatAttr(floatType, value));
  }
  unsigned width = type.getIntOrFloatBitWidth();
  APInt value = APInt::getZero(width);
  if (combiner == Combiner::mul)
    value = APInt(width, 1);
  else if (combiner == Combiner::max)
    value = width == 1 ? APInt::getZero(1) : APInt::getSignedMinValue(width);
  else if (combiner == Combiner::min)
    value = width == 1 ? APInt::getAllOnes(1) : APInt::getSignedMaxValue(width);
  return b.create<arith::ConstantOp>(loc, b.getIntegerAttr(type, value));
}

/// acc ⊕ value for `combiner`. max/min propagate NaN (arith.maximumf).
static Value buildCombine(OpBuilder &b, Location loc, Combiner combiner,
                          Value acc, Value value) {
  bool isFloat = isa<FloatType>(acc.getType());
  // A sum or product may be reassociated (only the combining op, not the
  // summands' arithmetic): LLVM then vectorizes it with several partial
  // accumulators. The order is fixed at compile time, so results do not
  // depend on the run or the thread count.
  auto reassoc = arith::FastMathFlagsAttr::get(b.getContext(),
                                               arith::FastMathFlags::reassoc);
  switch (combiner) {
  case Combiner::add:
    return isFloat
               ? b.create<arith::AddFOp>(loc, acc, value, reassoc).getResult()
               : b.create<arith::AddIOp>(loc, acc, value).getResult();
  case Combiner::mul:
    return isFloat
               ? b.create<arith::MulFOp>(loc, acc, value, reassoc).getResult()
               : b.create<arith::MulIOp>(loc, acc, value).getResult();
  case Combiner::max:
    return isFloat ? b.create<arith::MaximumFOp>(loc, acc, value).getResult()
                   : b.create<arith::MaxSIOp>(loc, acc, value).getResult();
  case Combiner::min:
    return isFloat ? b.create<arith::MinimumFOp>(loc, acc, value).getResult()
                   : b.create<arith::MinSIOp>(loc, acc, value).getResult();
  case Combiner::none:
    break;
  }
  llvm_unreachable("combine called without a combiner");
}

/// tensor.empty of `type` whose dynamic dims take their sizes from `sizes`
/// (one per dimension of `type`).
static Value buildEmpty(OpBuilder &b, Location loc, RankedTensorType type,
                        ValueRange sizes) {
  SmallVector<Value> dynamic;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dynamic.push_back(sizes[d]);
  return b.create<tensor::EmptyOp>(loc, type.getShape(), type.getElementType(),
                                   dynamic);
}

namespace {

/// mlx.generic → linalg.generic on a tensor.empty (filled with the
/// combiner's identity when it reduces); the body is cloned, mlx.index
/// becoming linalg.index and mlx.stop_gradient its operand.
struct LowerGeneric : public OpConversionPattern<GenericOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(GenericOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;
};

/// mlx.map_call → an scf.for nest over the mapped indices that calls the
/// callee on extracted slices and inserts each result (the fallback of
/// mlx-batch-map-calls).
struct LowerMapCall : public OpConversionPattern<MapCallOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(MapCallOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;
};

/// Each checking op's entry in the module's bounds table
/// (tabulateBoundsChecks).
using CheckIds = llvm::DenseMap<Operation *, int64_t>;

/// The lowering of an op that reports through the bounds table.
template <typename Op> struct CheckedLowering : public OpConversionPattern<Op> {
  CheckedLowering(MLIRContext *ctx, const CheckIds &ids)
      : OpConversionPattern<Op>(ctx), ids(ids) {}
  const CheckIds &ids;
};

/// mlx.check_index → `size > index ? input : (report(), zeros with size
/// index + 1)`.
struct LowerCheckIndex : public CheckedLowering<CheckIndexOp> {
  using CheckedLowering::CheckedLowering;
  LogicalResult
  matchAndRewrite(CheckIndexOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;
};

/// mlx.take / mlx.put → `0 <= index < size ? extract_slice / insert_slice
/// : (report(), zeros / the input unchanged)`.
template <typename SliceOp>
struct LowerSliceOp : public CheckedLowering<SliceOp> {
  using CheckedLowering<SliceOp>::CheckedLowering;
  LogicalResult
  matchAndRewrite(SliceOp op, typename SliceOp::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;
};

/// mlx.gather → linalg.generic over the result reading the input with
/// tensor.extract where every computed index is in range (a report and 0
/// elsewhere); the computed indices come in as operands.
struct LowerGather : public CheckedLowering<GatherOp> {
  using CheckedLowering::CheckedLowering;
  LogicalResult
  matchAndRewrite(GatherOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;
};

/// mlx.scatter_add → an scf.for nest over the value's elements adding each
/// in place into the (copied) input, in order: repeated subscripts add up.
struct LowerScatterAdd : public OpConversionPattern<ScatterAddOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ScatterAddOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;
};

/// mlx.assert → the AND of the condition's elements (an scf.for nest), and
/// a report where it is false.
struct LowerAssert : public CheckedLowering<AssertOp> {
  using CheckedLowering::CheckedLowering;
  LogicalResult
  matchAndRewrite(AssertOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;
};

/// mlx.loop → scf.for with the same body; mlx.loop_yield → scf.yield.
struct LowerLoop : public OpConversionPattern<LoopOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LoopOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value one = rewriter.create<arith::ConstantIndexOp>(loc, 1);
    auto loop = rewriter.create<scf::ForOp>(
        loc, adaptor.getLower(), adaptor.getUpper(), one, adaptor.getInits());
    rewriter.eraseBlock(loop.getBody());
    rewriter.inlineRegionBefore(op.getBody(), loop.getRegion(),
                                loop.getRegion().end());
    rewriter.replaceOp(op, loop.getResults());
    return success();
  }
};
struct LowerLoopYield : public OpConversionPattern<LoopYieldOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LoopYieldOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOpWithNewOp<scf::YieldOp>(op, adaptor.getValues());
    return success();
  }
};

} // namespace

LogicalResult
LowerGeneric::matchAndRewrite(GenericOp op, OpAdaptor adaptor,
                              ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  RankedTensorType resultType = op.getResult().getType();
  unsigned numParallel = op.getNumParallelLoops();
  Value init = buildEmpty(rewriter, loc, resultType,
                          op.getSizes().take_front(numParallel));
  Combiner combiner = op.getCombiner();
  if (combiner != Combiner::none) {
    Value identity =
        buildIdentity(rewriter, loc, combiner, resultType.getElementType());
    init = rewriter.create<linalg::FillOp>(loc, identity, init).getResult(0);
  }
  SmallVector<AffineMap> maps;
  for (Attribute attr : op.getIndexingMaps())
    maps.push_back(cast<AffineMapAttr>(attr).getValue());
  // The result holds the leading (parallel) indices in order.
  SmallVector<AffineExpr> resultDims;
  for (unsigned d = 0; d < numParallel; ++d)
    resultDims.push_back(rewriter.getAffineDimExpr(d));
  maps.push_back(
      AffineMap::get(op.getNumLoops(), 0, resultDims, rewriter.getContext()));
  SmallVector<utils::IteratorType> iterators;
  for (Attribute attr : op.getIteratorKinds())
    iterators.push_back(cast<IteratorKindAttr>(attr).getValue() ==
                                IteratorKind::parallel
                            ? utils::IteratorType::parallel
                            : utils::IteratorType::reduction);

  // linalg infers loop ranges from its operands: a reduction index that no
  // input reads (e.g. after a constant input was folded into the body) gets
  // an unread tensor.empty input carrying its size.
  SmallVector<Value> inputs(adaptor.getInputs());
  llvm::SmallBitVector covered(op.getNumLoops());
  for (AffineMap m : maps)
    for (AffineExpr e : m.getResults())
      if (auto d = dyn_cast<AffineDimExpr>(e))
        covered.set(d.getPosition());
  SmallVector<AffineExpr> missingDims;
  SmallVector<Value> missingSizes;
  for (unsigned d = 0; d < op.getNumLoops(); ++d)
    if (!covered.test(d)) {
      missingDims.push_back(rewriter.getAffineDimExpr(d));
      missingSizes.push_back(op.getSizes()[d]);
    }
  if (!missingDims.empty()) {
    SmallVector<int64_t> shape(missingDims.size(), ShapedType::kDynamic);
    inputs.push_back(rewriter.create<tensor::EmptyOp>(
        loc, shape, resultType.getElementType(), missingSizes));
    maps.insert(maps.end() - 1, AffineMap::get(op.getNumLoops(), 0, missingDims,
                                               rewriter.getContext()));
  }
  unsigned numInputs = op.getInputs().size();

  Block &body = op.getBody().front();
  auto generic = rewriter.create<linalg::GenericOp>(
      loc, TypeRange{resultType}, inputs, ValueRange{init}, maps, iterators,
      [&](OpBuilder &b, Location nestedLoc, ValueRange args) {
        IRMapping mapping;
        mapping.map(body.getArguments(), args.take_front(numInputs));
        for (Operation &inner : body.without_terminator()) {
          if (auto stop = dyn_cast<StopGradientOp>(inner)) {
            mapping.map(stop.getResult(),
                        mapping.lookupOrDefault(stop.getValue()));
            continue;
          }
          if (auto sigmoid = dyn_cast<SigmoidOp>(inner)) {
            mapping.map(sigmoid.getResult(),
                        SigmoidOp::expandStable(
                            b, sigmoid.getLoc(),
                            mapping.lookupOrDefault(sigmoid.getValue())));
            continue;
          }
          if (auto index = dyn_cast<IndexOp>(inner)) {
            mapping.map(index.getResult(), b.create<linalg::IndexOp>(
                                               index.getLoc(), index.getDim()));
            continue;
          }
          b.clone(inner, mapping);
        }
        Value value = mapping.lookupOrDefault(op.getYield().getValue());
        if (combiner != Combiner::none)
          value = buildCombine(b, nestedLoc, combiner, args.back(), value);
        b.create<linalg::YieldOp>(nestedLoc, value);
      });
  rewriter.replaceOp(op, generic.getResults());
  return success();
}

/// Casts `value` to `type` when the two differ only in static information.
static Value castIfNeeded(OpBuilder &b, Location loc, Value value, Type type) {
  if (value.getType() == type)
    return value;
  return b.create<tensor::CastOp>(loc, type, value);
}

LogicalResult
LowerMapCall::matchAndRewrite(MapCallOp op, OpAdaptor adaptor,
                              ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
      op, op.getCalleeAttr());
  FunctionType fnType = callee.getFunctionType();
  RankedTensorType resultType = op.getResult().getType();
  int64_t numMapped = op.getNumMapped();
  Value init = buildEmpty(rewriter, loc, resultType, op.getSizes());
  Value zero = rewriter.create<arith::ConstantIndexOp>(loc, 0);
  Value one = rewriter.create<arith::ConstantIndexOp>(loc, 1);
  SmallVector<Value> lbs(numMapped, zero), steps(numMapped, one);
  SmallVector<Value> ubs(op.getSizes().take_front(numMapped));

  auto bodyBuilder = [&](OpBuilder &b, Location l, ValueRange ivs,
                         ValueRange iterArgs) -> scf::ValueVector {
    SmallVector<Value> callArgs;
    for (auto [k, attr, arg] :
         llvm::enumerate(op.getArgSlices(), adaptor.getArgs())) {
      auto slices = cast<DenseI64ArrayAttr>(attr).asArrayRef();
      auto argType = cast<RankedTensorType>(arg.getType());
      if (llvm::all_of(slices, [](int64_t s) { return s < 0; })) {
        callArgs.push_back(castIfNeeded(b, l, arg, fnType.getInput(k)));
        continue;
      }
      SmallVector<OpFoldResult> offsets, sizes, strides;
      for (auto [d, s] : llvm::enumerate(slices)) {
        offsets.push_back(s >= 0 ? OpFoldResult(ivs[s])
                                 : OpFoldResult(b.getIndexAttr(0)));
        sizes.push_back(s >= 0 ? OpFoldResult(b.getIndexAttr(1))
                               : tensor::getMixedSize(b, l, arg, d));
        strides.push_back(b.getIndexAttr(1));
      }
      auto sliceType =
          tensor::ExtractSliceOp::inferCanonicalRankReducedResultType(
              llvm::count(slices, -1), argType, offsets, sizes, strides);
      Value slice = b.create<tensor::ExtractSliceOp>(
          l, cast<RankedTensorType>(sliceType), arg, offsets, sizes, strides);
      callArgs.push_back(castIfNeeded(b, l, slice, fnType.getInput(k)));
    }
    Value result = b.create<func::CallOp>(l, callee, callArgs).getResult(0);
    Value acc = iterArgs.empty() ? init : iterArgs.front();
    SmallVector<OpFoldResult> offsets, sizes, strides;
    for (int64_t d = 0; d < resultType.getRank(); ++d) {
      offsets.push_back(d < numMapped ? OpFoldResult(ivs[d])
                                      : OpFoldResult(b.getIndexAttr(0)));
      sizes.push_back(d < numMapped ? OpFoldResult(b.getIndexAttr(1))
                                    : OpFoldResult(op.getSizes()[d]));
      strides.push_back(b.getIndexAttr(1));
    }
    auto pieceType =
        tensor::ExtractSliceOp::inferCanonicalRankReducedResultType(
            resultType.getRank() - numMapped, resultType, offsets, sizes,
            strides);
    result = castIfNeeded(b, l, result, pieceType);
    return {
        b.create<tensor::InsertSliceOp>(l, result, acc, offsets, sizes, strides)
            .getResult()};
  };
  scf::LoopNest nest = scf::buildLoopNest(rewriter, loc, lbs, ubs, steps,
                                          ValueRange{init}, bodyBuilder);
  rewriter.replaceOp(op, nest.results);
  return success();
}

std::vector<mlx::BoundsCheck> mlx::boundsChecks(ModuleOp module) {
  std::vector<BoundsCheck> checks;
  if (auto table = module->getAttrOfType<ArrayAttr>(kBoundsChecksAttr))
    for (auto entry : table.getAsRange<DictionaryAttr>())
      checks.push_back({cast<LocationAttr>(entry.get("loc")),
                        cast<IntegerAttr>(entry.get("dim")).getInt(),
                        cast<StringAttr>(entry.get("tensor")).str(),
                        cast<StringAttr>(entry.get("size_name")).str()});
  return checks;
}

/// Calls the out-of-bounds report of check `id` with `index` and `size`.
static void buildReport(OpBuilder &b, Location loc, ModuleOp module, int64_t id,
                        Value index, Value size) {
  auto report = module.lookupSymbol<func::FuncOp>(kOutOfBoundsReport);
  auto asI64 = [&](Value v) {
    return b.create<arith::IndexCastOp>(loc, b.getI64Type(), v).getResult();
  };
  b.create<func::CallOp>(loc, report,
                         ValueRange{b.create<arith::ConstantIntOp>(loc, id, 64),
                                    asI64(index), asI64(size)});
}

LogicalResult
LowerCheckIndex::matchAndRewrite(CheckIndexOp op, OpAdaptor adaptor,
                                 ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  auto module = op->getParentOfType<ModuleOp>();
  int64_t id = ids.lookup(op);
  Value input = adaptor.getInput();
  auto type = op.getResult().getType();
  Value size = rewriter.create<tensor::DimOp>(loc, input, op.getDim());
  Value index = rewriter.create<arith::ConstantIndexOp>(loc, op.getIndex());
  Value inBounds = rewriter.create<arith::CmpIOp>(
      loc, arith::CmpIPredicate::ugt, size, index);
  auto ifOp = rewriter.create<scf::IfOp>(
      loc, inBounds,
      [&](OpBuilder &b, Location l) { b.create<scf::YieldOp>(l, input); },
      [&](OpBuilder &b, Location l) {
        buildReport(b, l, module, id, index, size);
        SmallVector<Value> sizes;
        for (int64_t d = 0; d < type.getRank(); ++d)
          sizes.push_back(
              d == (int64_t)op.getDim()
                  ? b.create<arith::ConstantIndexOp>(l, op.getIndex() + 1)
                        .getResult()
                  : b.create<tensor::DimOp>(l, input, d).getResult());
        Value zero = buildIdentity(b, l, Combiner::add, type.getElementType());
        Value safe =
            b.create<linalg::FillOp>(l, zero, buildEmpty(b, l, type, sizes))
                .getResult(0);
        b.create<scf::YieldOp>(l, safe);
      });
  rewriter.replaceOp(op, ifOp.getResults());
  return success();
}

template <typename SliceOp>
LogicalResult LowerSliceOp<SliceOp>::matchAndRewrite(
    SliceOp op, typename SliceOp::Adaptor adaptor,
    ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  auto module = op->template getParentOfType<ModuleOp>();
  Value input = adaptor.getInput(), index = adaptor.getIndex();
  auto inputType = cast<RankedTensorType>(input.getType());
  int64_t dim = op.getDim();
  Value size = rewriter.create<tensor::DimOp>(loc, input, dim);
  Value zero = rewriter.create<arith::ConstantIndexOp>(loc, 0);
  Value inBounds = rewriter.create<arith::AndIOp>(
      loc,
      rewriter.create<arith::CmpIOp>(loc, arith::CmpIPredicate::sge, index,
                                     zero),
      rewriter.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt, index,
                                     size));
  // The slice: `index` in `dim`, everything of the other dims.
  SmallVector<OpFoldResult> offsets, sizes,
      strides(inputType.getRank(), rewriter.getIndexAttr(1));
  for (int64_t d = 0; d < inputType.getRank(); ++d) {
    offsets.push_back(d == dim ? OpFoldResult(index)
                               : OpFoldResult(rewriter.getIndexAttr(0)));
    sizes.push_back(d == dim ? OpFoldResult(rewriter.getIndexAttr(1))
                             : tensor::getMixedSize(rewriter, loc, input, d));
  }
  auto resultType = cast<RankedTensorType>(op.getResult().getType());
  auto ifOp = rewriter.create<scf::IfOp>(
      loc, inBounds,
      [&](OpBuilder &b, Location l) {
        Value r;
        if constexpr (std::is_same_v<SliceOp, TakeOp>)
          r = b.create<tensor::ExtractSliceOp>(l, resultType, input, offsets,
                                               sizes, strides);
        else
          r = b.create<tensor::InsertSliceOp>(l, adaptor.getValue(), input,
                                              offsets, sizes, strides);
        b.create<scf::YieldOp>(l, r);
      },
      [&](OpBuilder &b, Location l) {
        buildReport(b, l, module, this->ids.lookup(op), index, size);
        Value r = input;
        if constexpr (std::is_same_v<SliceOp, TakeOp>) {
          SmallVector<Value> dims;
          for (int64_t d = 0; d < inputType.getRank(); ++d)
            if (d != dim)
              dims.push_back(b.create<tensor::DimOp>(l, input, d));
          Value zeroElement =
              buildIdentity(b, l, Combiner::add, resultType.getElementType());
          r = b.create<linalg::FillOp>(l, zeroElement,
                                       buildEmpty(b, l, resultType, dims))
                  .getResult(0);
        }
        b.create<scf::YieldOp>(l, r);
      });
  rewriter.replaceOp(op, ifOp.getResults());
  return success();
}

/// The coordinates in `input` that a gather reads for the point
/// (`gatherPoint`, `keptPoint`) given the computed indices (`computed`, as
/// index values), per `dims` (see mlx.gather).
static SmallVector<Value> gatherCoordinates(ArrayRef<int64_t> dims,
                                            ValueRange gatherPoint,
                                            ValueRange keptPoint,
                                            ValueRange computed) {
  SmallVector<Value> coords;
  size_t nextComputed = 0, nextKept = 0;
  for (int64_t entry : dims)
    coords.push_back(entry >= 0    ? gatherPoint[entry]
                     : entry == -1 ? computed[nextComputed++]
                                   : keptPoint[nextKept++]);
  return coords;
}

/// The input dims that computed indices address, in order.
static SmallVector<int64_t> computedDims(ArrayRef<int64_t> dims) {
  SmallVector<int64_t> out;
  for (auto [d, entry] : llvm::enumerate(dims))
    if (entry == -1)
      out.push_back(d);
  return out;
}

/// Whether every computed index (index values) lies in [0, size) of its
/// input dim.
static Value allInBounds(OpBuilder &b, Location loc, Value input,
                         ArrayRef<int64_t> inputDims, ValueRange computed) {
  Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
  Value ok = b.create<arith::ConstantIntOp>(loc, 1, 1);
  for (auto [d, index] : llvm::zip(inputDims, computed)) {
    Value size = b.create<tensor::DimOp>(loc, input, d);
    ok = b.create<arith::AndIOp>(
        loc, ok,
        b.create<arith::AndIOp>(
            loc,
            b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::sge, index,
                                    zero),
            b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt, index,
                                    size)));
  }
  return ok;
}

LogicalResult
LowerGather::matchAndRewrite(GatherOp op, OpAdaptor adaptor,
                             ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  auto module = op->getParentOfType<ModuleOp>();
  Value input = adaptor.getInput();
  ValueRange indices = adaptor.getIndices();
  RankedTensorType type = op.getResult().getType();
  int64_t gatherRank = op.getGatherRank();
  ArrayRef<int64_t> dims = op.getDims();
  SmallVector<int64_t> addressed = computedDims(dims);
  SmallVector<Value> sizes = tensorSizes(rewriter, loc, indices[0]);
  for (auto [d, entry] : llvm::enumerate(dims))
    if (entry == -2)
      sizes.push_back(rewriter.create<tensor::DimOp>(loc, input, d));
  Value init = buildEmpty(rewriter, loc, type, sizes);
  MLIRContext *ctx = rewriter.getContext();
  SmallVector<AffineExpr> leading;
  for (int64_t d = 0; d < gatherRank; ++d)
    leading.push_back(rewriter.getAffineDimExpr(d));
  SmallVector<AffineMap> maps(indices.size(),
                              AffineMap::get(type.getRank(), 0, leading, ctx));
  maps.push_back(AffineMap::getMultiDimIdentityMap(type.getRank(), ctx));
  SmallVector<utils::IteratorType> iterators(type.getRank(),
                                             utils::IteratorType::parallel);
  int64_t firstId = ids.lookup(op);
  std::optional<ArrayRef<bool>> inRange = op.getInRange();
  auto generic = rewriter.create<linalg::GenericOp>(
      loc, TypeRange{type}, indices, ValueRange{init}, maps, iterators,
      [&](OpBuilder &b, Location l, ValueRange args) {
        SmallVector<Value> point, computed;
        for (int64_t d = 0; d < type.getRank(); ++d)
          point.push_back(b.create<linalg::IndexOp>(l, d));
        for (Value index : args.drop_back())
          computed.push_back(
              b.create<arith::IndexCastOp>(l, b.getIndexType(), index));
        SmallVector<Value> coords = gatherCoordinates(
            dims, ArrayRef<Value>(point).take_front(gatherRank),
            ArrayRef<Value>(point).drop_front(gatherRank), computed);
        // The indices the front end did not prove in range are checked.
        SmallVector<int64_t> checkedDims, checkedIds;
        SmallVector<Value> checkedIndices;
        for (auto [k, d] : llvm::enumerate(addressed))
          if (!inRange || !(*inRange)[k]) {
            checkedDims.push_back(d);
            checkedIds.push_back(firstId + k);
            checkedIndices.push_back(computed[k]);
          }
        if (checkedDims.empty()) {
          b.create<linalg::YieldOp>(
              l, b.create<tensor::ExtractOp>(l, input, coords).getResult());
          return;
        }
        Value ok = allInBounds(b, l, input, checkedDims, checkedIndices);
        auto read = b.create<scf::IfOp>(
            l, ok,
            [&](OpBuilder &bb, Location ll) {
              bb.create<scf::YieldOp>(
                  ll,
                  bb.create<tensor::ExtractOp>(ll, input, coords).getResult());
            },
            [&](OpBuilder &bb, Location ll) {
              // Report each index that is out of range.
              for (auto [k, d] : llvm::enumerate(checkedDims)) {
                Value one =
                    allInBounds(bb, ll, input, {d}, {checkedIndices[k]});
                bb.create<scf::IfOp>(
                    ll,
                    bb.create<arith::XOrIOp>(
                        ll, one, bb.create<arith::ConstantIntOp>(ll, 1, 1)),
                    [&](OpBuilder &bbb, Location lll) {
                      buildReport(bbb, lll, module, checkedIds[k],
                                  checkedIndices[k],
                                  bbb.create<tensor::DimOp>(lll, input, d));
                      bbb.create<scf::YieldOp>(lll);
                    });
              }
              bb.create<scf::YieldOp>(ll, buildIdentity(bb, ll, Combiner::add,
                                                        type.getElementType()));
            });
        b.create<linalg::YieldOp>(l, read.getResult(0));
      });
  rewriter.replaceOp(op, generic.getResults());
  return success();
}

LogicalResult
LowerScatterAdd::matchAndRewrite(ScatterAddOp op, OpAdaptor adaptor,
                                 ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  Value value = adaptor.getValue(), input = adaptor.getInput();
  ValueRange indices = adaptor.getIndices();
  ArrayRef<int64_t> dims = op.getDims();
  SmallVector<int64_t> addressed = computedDims(dims);
  int64_t gatherRank = cast<RankedTensorType>(indices[0].getType()).getRank();
  auto valueType = cast<RankedTensorType>(value.getType());
  Value zero = rewriter.create<arith::ConstantIndexOp>(loc, 0);
  Value one = rewriter.create<arith::ConstantIndexOp>(loc, 1);
  SmallVector<Value> lbs(valueType.getRank(), zero),
      steps(valueType.getRank(), one);
  SmallVector<Value> ubs = tensorSizes(rewriter, loc, value);
  bool isFloat = isa<FloatType>(valueType.getElementType());
  scf::LoopNest nest = scf::buildLoopNest(
      rewriter, loc, lbs, ubs, steps, ValueRange{input},
      [&](OpBuilder &b, Location l, ValueRange ivs,
          ValueRange acc) -> scf::ValueVector {
        SmallVector<Value> computed;
        ValueRange gatherPoint = ivs.take_front(gatherRank);
        for (Value index : indices)
          computed.push_back(b.create<arith::IndexCastOp>(
              l, b.getIndexType(),
              b.create<tensor::ExtractOp>(l, index, gatherPoint)));
        SmallVector<Value> coords = gatherCoordinates(
            dims, gatherPoint, ivs.drop_front(gatherRank), computed);
        Value ok = allInBounds(b, l, acc[0], addressed, computed);
        auto add = b.create<scf::IfOp>(
            l, ok,
            [&](OpBuilder &bb, Location ll) {
              Value old = bb.create<tensor::ExtractOp>(ll, acc[0], coords);
              Value v = bb.create<tensor::ExtractOp>(ll, value, ivs);
              Value sum =
                  isFloat ? bb.create<arith::AddFOp>(ll, old, v).getResult()
                          : bb.create<arith::AddIOp>(ll, old, v).getResult();
              bb.create<scf::YieldOp>(
                  ll, bb.create<tensor::InsertOp>(ll, sum, acc[0], coords)
                          .getResult());
            },
            [&](OpBuilder &bb, Location ll) {
              bb.create<scf::YieldOp>(ll, acc[0]);
            });
        return {add.getResult(0)};
      });
  rewriter.replaceOp(op, nest.results);
  return success();
}

LogicalResult
LowerAssert::matchAndRewrite(AssertOp op, OpAdaptor adaptor,
                             ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  Value condition = adaptor.getCondition();
  auto type = cast<RankedTensorType>(condition.getType());
  Value zero = rewriter.create<arith::ConstantIndexOp>(loc, 0);
  Value one = rewriter.create<arith::ConstantIndexOp>(loc, 1);
  Value yes = rewriter.create<arith::ConstantIntOp>(loc, 1, 1);
  SmallVector<Value> lbs(type.getRank(), zero), steps(type.getRank(), one);
  scf::LoopNest nest = scf::buildLoopNest(
      rewriter, loc, lbs, tensorSizes(rewriter, loc, condition), steps,
      ValueRange{yes},
      [&](OpBuilder &b, Location l, ValueRange ivs,
          ValueRange all) -> scf::ValueVector {
        Value element = b.create<tensor::ExtractOp>(l, condition, ivs);
        return {b.create<arith::AndIOp>(l, all[0], element)};
      });
  Value holds =
      type.getRank()
          ? nest.results[0]
          : rewriter.create<tensor::ExtractOp>(loc, condition, ValueRange{});
  auto module = op->getParentOfType<ModuleOp>();
  rewriter.create<scf::IfOp>(
      loc, rewriter.create<arith::XOrIOp>(loc, holds, yes),
      [&](OpBuilder &b, Location l) {
        Value none = b.create<arith::ConstantIndexOp>(l, -1);
        buildReport(b, l, module, ids.lookup(op), none, none);
        b.create<scf::YieldOp>(l);
      });
  rewriter.eraseOp(op);
  return success();
}

/// Gives each bounds check its id and its entry in the module's
/// `mlx.bounds_checks` table (what the driver says when it fails: the
/// location now carries the call sites it was inlined through), and
/// declares the report function the checks call.
static CheckIds tabulateBoundsChecks(ModuleOp module) {
  CheckIds ids;
  SmallVector<Attribute> checks;
  if (auto table = module->getAttrOfType<ArrayAttr>(kBoundsChecksAttr))
    llvm::append_range(checks, table);
  OpBuilder b(module.getContext());
  auto entry = [&](Operation *op, Attribute dim, Attribute sizeName,
                   Attribute tensor) {
    checks.push_back(DictionaryAttr::get(
        module.getContext(), {b.getNamedAttr("dim", dim),
                              b.getNamedAttr("loc", LocationAttr(op->getLoc())),
                              b.getNamedAttr("size_name", sizeName),
                              b.getNamedAttr("tensor", tensor)}));
  };
  module.walk([&](Operation *op) {
    if (auto check = dyn_cast<AssertOp>(op)) {
      // A check: dim -1, the condition's text as the "tensor".
      ids[op] = checks.size();
      entry(op, b.getI64IntegerAttr(-1), b.getStringAttr(""),
            check.getMessageAttr());
      return;
    }
    if (auto gather = dyn_cast<GatherOp>(op)) {
      // One entry per computed index, from the op's id on.
      ids[op] = checks.size();
      for (auto [d, name] :
           llvm::zip(computedDims(gather.getDims()), gather.getSizeNames()))
        entry(op, b.getI64IntegerAttr(d), name, op->getAttr("tensor"));
      return;
    }
    if (!isa<CheckIndexOp, TakeOp, PutOp>(op))
      return;
    ids[op] = checks.size();
    entry(op, op->getAttr("dim"), op->getAttr("size_name"),
          op->getAttr("tensor"));
  });
  if (ids.empty())
    return ids;
  module->setAttr(kBoundsChecksAttr, b.getArrayAttr(checks));
  if (!module.lookupSymbol<func::FuncOp>(kOutOfBoundsReport)) {
    b.setInsertionPointToStart(module.getBody());
    auto i64 = b.getI64Type();
    auto report =
        b.create<func::FuncOp>(module.getLoc(), kOutOfBoundsReport,
                               b.getFunctionType({i64, i64, i64}, {}));
    report.setPrivate();
  }
  return ids;
}

namespace {
/// The mlx dialect is illegal after this pass: whatever is left of it (an
/// unexpanded mlx.grad) is an error.
struct LowerMlxToLinalgPass
    : public mlx::impl::LowerMlxToLinalgPassBase<LowerMlxToLinalgPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    CheckIds ids = tabulateBoundsChecks(module);
    ConversionTarget target(*ctx);
    target.addIllegalDialect<MlxDialect>();
    target.addLegalDialect<linalg::LinalgDialect, tensor::TensorDialect,
                           arith::ArithDialect, math::MathDialect,
                           scf::SCFDialect, func::FuncDialect>();
    RewritePatternSet patterns(ctx);
    patterns.add<LowerGeneric, LowerMapCall, LowerLoop, LowerLoopYield,
                 LowerScatterAdd>(ctx);
    patterns.add<LowerCheckIndex, LowerSliceOp<TakeOp>, LowerSliceOp<PutOp>,
                 LowerGather, LowerAssert>(ctx, ids);
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
