//===- MlxOps.cpp - verifiers of the mlx ops --------------------*- C++ -*-===//
//
// Structural checks of mlx ops: index maps against the iteration space,
// body signature against the operands, mapped calls against the callee.
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/MlxDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/SmallBitVector.h"

using namespace mlir;
using namespace mlir::mlx;

#define GET_OP_CLASSES
#include "dialects/mlx/MlxOps.cpp.inc"

void GenericOp::build(
    OpBuilder &b, OperationState &state, Type resultType, ValueRange inputs,
    ValueRange sizes, ArrayRef<AffineMap> maps, unsigned numParallel,
    Combiner combiner,
    function_ref<Value(OpBuilder &, Location, ValueRange)> bodyBuilder) {
  SmallVector<Attribute> kinds;
  for (unsigned d = 0; d < sizes.size(); ++d)
    kinds.push_back(IteratorKindAttr::get(
        b.getContext(),
        d < numParallel ? IteratorKind::parallel : IteratorKind::reduction));
  SmallVector<Attribute> mapAttrs;
  for (AffineMap m : maps)
    mapAttrs.push_back(AffineMapAttr::get(m));
  build(b, state, resultType, inputs, sizes, b.getArrayAttr(mapAttrs),
        b.getArrayAttr(kinds), CombinerAttr::get(b.getContext(), combiner));
  Region *region = state.regions.front().get();
  Block *block = new Block();
  region->push_back(block);
  SmallVector<Location> locs(inputs.size(), state.location);
  SmallVector<Type> types;
  for (Value v : inputs)
    types.push_back(cast<RankedTensorType>(v.getType()).getElementType());
  block->addArguments(types, locs);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(block);
  Value result = bodyBuilder(b, state.location, block->getArguments());
  b.create<YieldOp>(state.location, result);
}

namespace {
/// tensor.dim of an mlx.generic result is one of its `sizes`.
struct FoldDimOfGeneric : public OpRewritePattern<tensor::DimOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::DimOp dim,
                                PatternRewriter &rewriter) const override {
    auto generic = dim.getSource().getDefiningOp<GenericOp>();
    std::optional<int64_t> index = dim.getConstantIndex();
    if (!generic || !index || *index >= generic.getResult().getType().getRank())
      return failure();
    rewriter.replaceOp(dim, generic.getSizes()[*index]);
    return success();
  }
};

/// The constant an all-constant tensor holds: an mlx.generic without inputs
/// or reductions whose body yields a constant.
static Attribute splatConstant(Value tensor) {
  auto generic = tensor.getDefiningOp<GenericOp>();
  if (!generic || !generic.getInputs().empty() ||
      generic.getCombiner() != Combiner::none)
    return nullptr;
  Attribute value;
  if (matchPattern(generic.getYield().getValue(), m_Constant(&value)))
    return value;
  return nullptr;
}

/// Inputs that are splat constants become constants in the body; inputs the
/// body does not read are dropped.
struct SimplifyGenericInputs : public OpRewritePattern<GenericOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GenericOp op,
                                PatternRewriter &rewriter) const override {
    Block &body = op.getBody().front();
    bool changed = false;
    for (auto [arg, input] : llvm::zip(body.getArguments(), op.getInputs())) {
      if (arg.use_empty())
        continue;
      Attribute value = splatConstant(input);
      if (!value)
        continue;
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(&body);
      Value c = rewriter.create<arith::ConstantOp>(op.getLoc(), arg.getType(),
                                                   cast<TypedAttr>(value));
      rewriter.replaceAllUsesWith(arg, c);
      changed = true;
    }
    SmallVector<unsigned> unused;
    for (BlockArgument arg : body.getArguments())
      if (arg.use_empty())
        unused.push_back(arg.getArgNumber());
    if (unused.empty())
      return success(changed);
    SmallVector<Value> inputs;
    SmallVector<Attribute> maps;
    for (auto [k, input] : llvm::enumerate(op.getInputs()))
      if (!llvm::is_contained(unused, k)) {
        inputs.push_back(input);
        maps.push_back(op.getIndexingMaps()[k]);
      }
    auto replacement = rewriter.create<GenericOp>(
        op.getLoc(), op.getResult().getType(), inputs, op.getSizes(),
        rewriter.getArrayAttr(maps), op.getIteratorKinds(),
        op.getCombinerAttr());
    rewriter.inlineRegionBefore(op.getBody(), replacement.getBody(),
                                replacement.getBody().end());
    Block &moved = replacement.getBody().front();
    for (unsigned k : llvm::reverse(unused))
      moved.eraseArgument(k);
    rewriter.replaceOp(op, replacement.getResult());
    return success();
  }
};

/// A copy (y[i..] = x[i..], nothing reduced) is x itself.
struct FoldCopyGeneric : public OpRewritePattern<GenericOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getCombiner() != Combiner::none)
      return failure();
    auto arg = dyn_cast<BlockArgument>(op.getYield().getValue());
    if (!arg || arg.getOwner() != &op.getBody().front())
      return failure();
    Value input = op.getInputs()[arg.getArgNumber()];
    AffineMap map =
        cast<AffineMapAttr>(op.getIndexingMaps()[arg.getArgNumber()])
            .getValue();
    if (!map.isIdentity() || input.getType() != op.getResult().getType())
      return failure();
    rewriter.replaceOp(op, input);
    return success();
  }
};
/// A reduction whose result repeats along a parallel dim (no input reads
/// the dim and the body does not ask for its index) is computed once over
/// the other dims and then broadcast: y[i, j] = Σ_k x[j, k] is Σ_k x[j, k]
/// for every i. (The gradient of a sum seeds ones, which leaves such ops.)
struct HoistRepeatedDims : public OpRewritePattern<GenericOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getCombiner() == Combiner::none)
      return failure();
    unsigned numLoops = op.getNumLoops(),
             numParallel = op.getNumParallelLoops();
    llvm::SmallBitVector used(numLoops);
    for (Attribute attr : op.getIndexingMaps())
      for (AffineExpr e : cast<AffineMapAttr>(attr).getValue().getResults())
        e.walk([&](AffineExpr sub) {
          if (auto d = dyn_cast<AffineDimExpr>(sub))
            used.set(d.getPosition());
        });
    op.getBody().walk([&](IndexOp index) { used.set(index.getDim()); });
    SmallVector<int64_t> newPosition(numLoops, -1);
    SmallVector<unsigned> keptParallel;
    SmallVector<Value> sizes;
    SmallVector<Attribute> kinds;
    SmallVector<int64_t> shape;
    auto resultType = op.getResult().getType();
    unsigned next = 0;
    for (unsigned d = 0; d < numLoops; ++d) {
      if (d < numParallel && !used.test(d))
        continue;
      newPosition[d] = next++;
      sizes.push_back(op.getSizes()[d]);
      kinds.push_back(op.getIteratorKinds()[d]);
      if (d < numParallel) {
        keptParallel.push_back(d);
        shape.push_back(resultType.getDimSize(d));
      }
    }
    if (keptParallel.size() == numParallel)
      return failure();
    MLIRContext *ctx = rewriter.getContext();
    SmallVector<AffineExpr> replacement;
    for (unsigned d = 0; d < numLoops; ++d)
      replacement.push_back(newPosition[d] < 0
                                ? getAffineConstantExpr(0, ctx)
                                : getAffineDimExpr(newPosition[d], ctx));
    SmallVector<Attribute> maps;
    for (Attribute attr : op.getIndexingMaps())
      maps.push_back(AffineMapAttr::get(
          cast<AffineMapAttr>(attr).getValue().replaceDimsAndSymbols(
              replacement, {}, next, 0)));
    auto once = rewriter.create<GenericOp>(
        op.getLoc(), RankedTensorType::get(shape, resultType.getElementType()),
        op.getInputs(), sizes, rewriter.getArrayAttr(maps),
        rewriter.getArrayAttr(kinds), op.getCombinerAttr());
    rewriter.inlineRegionBefore(op.getBody(), once.getBody(),
                                once.getBody().end());
    once.getBody().walk([&](IndexOp index) {
      index.setDim((uint64_t)newPosition[index.getDim()]);
    });
    SmallVector<AffineExpr> kept;
    for (unsigned d : keptParallel)
      kept.push_back(getAffineDimExpr(d, ctx));
    auto broadcast = rewriter.create<GenericOp>(
        op.getLoc(), resultType, ValueRange{once.getResult()},
        op.getSizes().take_front(numParallel),
        ArrayRef<AffineMap>{AffineMap::get(numParallel, 0, kept, ctx)},
        numParallel, Combiner::none,
        [](OpBuilder &, Location, ValueRange args) -> Value {
          return args[0];
        });
    rewriter.replaceOp(op, broadcast.getResult());
    return success();
  }
};
} // namespace

void GenericOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                            MLIRContext *context) {
  patterns.add<FoldDimOfGeneric, SimplifyGenericInputs, FoldCopyGeneric,
               HoistRepeatedDims>(context);
}

YieldOp GenericOp::getYield() {
  return cast<YieldOp>(getBody().front().getTerminator());
}

LogicalResult GenericOp::verify() {
  unsigned numLoops = getNumLoops();
  if (getSizes().size() != numLoops)
    return emitOpError("has ")
           << numLoops << " iterators but " << getSizes().size() << " sizes";
  if (getIndexingMaps().size() != getInputs().size())
    return emitOpError("has ") << getInputs().size() << " inputs but "
                               << getIndexingMaps().size() << " indexing maps";
  for (auto [k, attr, input] :
       llvm::enumerate(getIndexingMaps(), getInputs())) {
    AffineMap map = cast<AffineMapAttr>(attr).getValue();
    auto type = cast<RankedTensorType>(input.getType());
    if (map.getNumDims() != numLoops || map.getNumSymbols() != 0)
      return emitOpError("indexing map #")
             << k << " must have " << numLoops << " dims and no symbols";
    if (map.getNumResults() != type.getRank())
      return emitOpError("indexing map #")
             << k << " has " << map.getNumResults()
             << " results for an input of rank " << type.getRank();
  }
  unsigned numParallel = getNumParallelLoops();
  if (numParallel > numLoops)
    return emitOpError("result rank ")
           << numParallel << " exceeds the " << numLoops << " iterators";
  for (auto [k, attr] : llvm::enumerate(getIteratorKinds())) {
    auto kind = cast<IteratorKindAttr>(attr).getValue();
    IteratorKind expected =
        k < numParallel ? IteratorKind::parallel : IteratorKind::reduction;
    if (kind != expected)
      return emitOpError("iterator #")
             << k << " must be " << stringifyIteratorKind(expected)
             << " (result indices come first, reductions last)";
  }
  bool reduces = numParallel < numLoops;
  if (reduces != (getCombiner() != Combiner::none))
    return emitOpError(reduces ? "reduces but has no combiner"
                               : "has a combiner but reduces nothing");
  Block &body = getBody().front();
  if (body.getNumArguments() != getInputs().size())
    return emitOpError("body has ")
           << body.getNumArguments() << " arguments for " << getInputs().size()
           << " inputs";
  for (auto [arg, input] : llvm::zip(body.getArguments(), getInputs())) {
    Type elem = cast<RankedTensorType>(input.getType()).getElementType();
    if (arg.getType() != elem)
      return emitOpError("body argument type ")
             << arg.getType() << " does not match input element type " << elem;
  }
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield)
    return emitOpError("body must end in mlx.yield");
  Type resultElem = getResult().getType().getElementType();
  if (yield.getValue().getType() != resultElem)
    return emitOpError("yields ")
           << yield.getValue().getType() << " for a result of " << resultElem;
  return success();
}

LogicalResult IndexOp::verify() {
  auto generic = (*this)->getParentOfType<GenericOp>();
  if (!generic)
    return emitOpError("must be inside an mlx.generic body");
  if (getDim() >= generic.getNumLoops())
    return emitOpError("dim ") << getDim() << " out of range for "
                               << generic.getNumLoops() << " iterators";
  return success();
}

LogicalResult CheckIndexOp::verify() {
  if (getDim() >= getInput().getType().getRank())
    return emitOpError("dimension ") << getDim() << " is out of range for rank "
                                     << getInput().getType().getRank();
  return success();
}

LogicalResult MapCallOp::verify() {
  auto resultType = getResult().getType();
  int64_t numMapped = getNumMapped();
  if (numMapped > resultType.getRank())
    return emitOpError("maps ")
           << numMapped << " indices but the result has rank "
           << resultType.getRank();
  if ((int64_t)getSizes().size() != resultType.getRank())
    return emitOpError("needs one size per result dimension");
  if (getArgSlices().size() != getArgs().size())
    return emitOpError("needs one slice spec per argument");
  for (auto [k, attr, arg] : llvm::enumerate(getArgSlices(), getArgs())) {
    auto slices = cast<DenseI64ArrayAttr>(attr).asArrayRef();
    if ((int64_t)slices.size() !=
        cast<RankedTensorType>(arg.getType()).getRank())
      return emitOpError("slice spec #") << k << " does not match its rank";
    for (int64_t s : slices)
      if (s < -1 || s >= numMapped)
        return emitOpError("slice spec #")
               << k << " names index " << s << " out of range";
  }
  return success();
}

LogicalResult MapCallOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto callee = symbolTable.lookupNearestSymbolFrom<FunctionOpInterface>(
      *this, getCalleeAttr());
  if (!callee)
    return emitOpError("calls unknown function ") << getCalleeAttr();
  auto fnType = cast<FunctionType>(callee.getFunctionType());
  if (fnType.getNumInputs() != getArgs().size() || fnType.getNumResults() != 1)
    return emitOpError("callee ")
           << getCalleeAttr() << " must take " << getArgs().size()
           << " arguments and return one result";
  for (auto [k, attr, input] :
       llvm::enumerate(getArgSlices(), fnType.getInputs())) {
    auto slices = cast<DenseI64ArrayAttr>(attr).asArrayRef();
    int64_t kept = llvm::count(slices, -1);
    auto inType = dyn_cast<RankedTensorType>(input);
    if (!inType || inType.getRank() != kept)
      return emitOpError("argument #") << k << " slice has rank " << kept
                                       << " but the callee expects " << input;
  }
  auto calleeResult = dyn_cast<RankedTensorType>(fnType.getResult(0));
  auto resultType = getResult().getType();
  if (!calleeResult ||
      calleeResult.getRank() != resultType.getRank() - getNumMapped() ||
      calleeResult.getElementType() != resultType.getElementType())
    return emitOpError("result type ")
           << resultType << " does not extend the callee's result "
           << fnType.getResult(0);
  return success();
}

LogicalResult GradOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto callee = symbolTable.lookupNearestSymbolFrom<FunctionOpInterface>(
      *this, getCalleeAttr());
  if (!callee)
    return emitOpError("differentiates unknown function ") << getCalleeAttr();
  auto fnType = cast<FunctionType>(callee.getFunctionType());
  if (fnType.getNumInputs() != getArgs().size())
    return emitOpError("callee ") << getCalleeAttr() << " takes "
                                  << fnType.getNumInputs() << " arguments";
  size_t numValues = getWithValue() ? fnType.getNumResults() : 0;
  if (getResults().size() != numValues + getWrt().size())
    return emitOpError("must have ")
           << numValues + getWrt().size() << " results";
  for (auto [k, index] : llvm::enumerate(getWrt())) {
    if (index < 0 || index >= (int64_t)getArgs().size())
      return emitOpError("wrt index ") << index << " out of range";
    Type argType = getArgs()[index].getType();
    if (!isa<FloatType>(cast<RankedTensorType>(argType).getElementType()))
      return emitOpError("cannot differentiate with respect to argument #")
             << index << " of type " << argType;
    if (getResults()[numValues + k].getType() != argType)
      return emitOpError("gradient #") << k << " must have type " << argType;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// mlx.take, mlx.put, mlx.loop
//===----------------------------------------------------------------------===//

/// Checks that `slice` is `tensor` without dimension `dim`.
static LogicalResult verifySlice(Operation *op, RankedTensorType tensor,
                                 int64_t dim, RankedTensorType slice,
                                 StringRef what) {
  if (dim >= tensor.getRank())
    return op->emitOpError("dimension ")
           << dim << " is out of range for rank " << tensor.getRank();
  SmallVector<int64_t> shape(tensor.getShape());
  shape.erase(shape.begin() + dim);
  if (slice.getElementType() != tensor.getElementType() ||
      failed(verifyCompatibleShape(shape, slice.getShape())))
    return op->emitOpError(what) << " type " << slice << " is not " << tensor
                                 << " without dimension " << dim;
  return success();
}

LogicalResult TakeOp::verify() {
  return verifySlice(*this, getInput().getType(), getDim(),
                     getResult().getType(), "result");
}

LogicalResult PutOp::verify() {
  return verifySlice(*this, getInput().getType(), getDim(),
                     getValue().getType(), "value");
}

Speculation::Speculatability TakeOp::getSpeculatability() {
  return Speculation::NotSpeculatable;
}

Speculation::Speculatability PutOp::getSpeculatability() {
  return Speculation::NotSpeculatable;
}

LoopYieldOp LoopOp::getYield() {
  return cast<LoopYieldOp>(getBody().front().getTerminator());
}

LogicalResult LoopOp::verify() {
  Block &body = getBody().front();
  if (body.getNumArguments() != getInits().size() + 1 ||
      !body.getArgument(0).getType().isIndex())
    return emitOpError("body must take the step's index and one argument "
                       "per carried value");
  for (auto [k, init, arg, result] : llvm::enumerate(
           getInits(), body.getArguments().drop_front(), getResults()))
    if (arg.getType() != init.getType() || result.getType() != init.getType())
      return emitOpError("carried value #")
             << k << " has type " << init.getType()
             << " but its body argument or result differs";
  TypeRange yielded = getYield().getValues().getTypes();
  if (yielded != getInits().getTypes())
    return emitOpError("body yields ")
           << yielded.size() << " values of other types than the carried ones";
  return success();
}

namespace {
/// tensor.dim of a loop's result is that of its init: each step yields
/// values of the sizes it was given.
struct FoldDimOfLoop : public OpRewritePattern<tensor::DimOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::DimOp dim,
                                PatternRewriter &rewriter) const override {
    auto result = dyn_cast<OpResult>(dim.getSource());
    auto loop = result ? dyn_cast<LoopOp>(result.getOwner()) : LoopOp();
    if (!loop)
      return failure();
    rewriter.modifyOpInPlace(dim, [&] {
      dim.getSourceMutable().assign(loop.getInits()[result.getResultNumber()]);
    });
    return success();
  }
};
} // namespace

void LoopOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                         MLIRContext *context) {
  patterns.add<FoldDimOfLoop>(context);
}

//===----------------------------------------------------------------------===//
// mlx.gather, mlx.scatter_add
//===----------------------------------------------------------------------===//

/// Checks a gather's `dims` against its input, indices and result types.
static LogicalResult verifyGather(Operation *op, RankedTensorType input,
                                  ValueRange indices, ArrayRef<int64_t> dims,
                                  RankedTensorType gathered) {
  if ((int64_t)dims.size() != input.getRank())
    return op->emitOpError("needs one dims entry per input dimension");
  if (indices.empty())
    return op->emitOpError("needs at least one computed index");
  auto first = cast<RankedTensorType>(indices[0].getType());
  for (Value index : indices) {
    auto type = cast<RankedTensorType>(index.getType());
    if (!type.getElementType().isSignlessInteger() ||
        failed(verifyCompatibleShape(type.getShape(), first.getShape())))
      return op->emitOpError("indices must be integer tensors of one shape");
  }
  int64_t rank = first.getRank();
  SmallVector<int64_t> shape(first.getShape());
  int64_t computed = 0;
  for (auto [d, entry] : llvm::enumerate(dims)) {
    if (entry == -1)
      ++computed;
    else if (entry == -2)
      shape.push_back(input.getDimSize(d));
    else if (entry < 0 || entry >= rank)
      return op->emitOpError("dims entry ") << entry << " is out of range";
  }
  if (computed != (int64_t)indices.size())
    return op->emitOpError("has ")
           << indices.size() << " indices for " << computed << " computed dims";
  if (gathered.getElementType() != input.getElementType() ||
      failed(verifyCompatibleShape(shape, gathered.getShape())))
    return op->emitOpError("gathered type ") << gathered << " does not match";
  return success();
}

int64_t GatherOp::getGatherRank() {
  return cast<RankedTensorType>(getIndices()[0].getType()).getRank();
}

LogicalResult GatherOp::verify() {
  if (failed(verifyGather(*this, getInput().getType(), getIndices(), getDims(),
                          getResult().getType())))
    return failure();
  if (getSizeNames().size() != getIndices().size())
    return emitOpError("needs one size name per computed index");
  if (auto inRange = getInRange();
      inRange && inRange->size() != getIndices().size())
    return emitOpError("needs one in_range entry per computed index");
  return success();
}

Speculation::Speculatability GatherOp::getSpeculatability() {
  // Reads proven in range cannot fault; any other may report.
  if (auto inRange = getInRange();
      inRange && !llvm::is_contained(*inRange, false))
    return Speculation::Speculatable;
  return Speculation::NotSpeculatable;
}

LogicalResult ScatterAddOp::verify() {
  return verifyGather(*this, getInput().getType(), getIndices(), getDims(),
                      getValue().getType());
}
