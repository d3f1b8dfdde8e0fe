//===- Adjoints.cpp - derivative rules of tensor-level ops -------*- C++
//-*-===//
//
// The DifferentiableOpInterface of the mlx ops, and of func.call and
// tensor.cast as external models:
//   - mlx.generic: one new mlx.generic per differentiable input, whose
//     iteration space is permuted so that the input's dims come first (they
//     are the result) and every other index is summed over — the adjoint of
//     an index-notation op is again an index-notation op; its body is the
//     primal body followed by the scalar sweep (ScalarAdjoints.cpp);
//   - func.call: calls VJP(callee, its float operands) once;
//   - mlx.map_call: maps VJP(callee, {k}) over the same slices, then sums
//     over the mapped indices the argument does not depend on;
//   - mlx.check_index and tensor.cast: the identity.
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/Adjoints.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

#include <limits>

using namespace mlir;
using namespace mlir::mlx;

static bool isFloatTensor(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  return t && isa<FloatType>(t.getElementType());
}

SmallVector<Value> mlx::tensorSizes(OpBuilder &b, Location loc, Value tensor) {
  SmallVector<Value> sizes;
  auto type = cast<RankedTensorType>(tensor.getType());
  for (int64_t d = 0; d < type.getRank(); ++d)
    sizes.push_back(b.create<tensor::DimOp>(loc, tensor, d));
  return sizes;
}

static SmallVector<AffineMap> identityMaps(OpBuilder &b, unsigned rank,
                                           unsigned count) {
  return SmallVector<AffineMap>(
      count, AffineMap::getMultiDimIdentityMap(rank, b.getContext()));
}

Value mlx::buildFilled(OpBuilder &b, Location loc, Value like, double value) {
  auto type = cast<RankedTensorType>(like.getType());
  return b.create<GenericOp>(
      loc, type, ValueRange{}, tensorSizes(b, loc, like), ArrayRef<AffineMap>{},
      type.getRank(), Combiner::none,
      [&](OpBuilder &bb, Location l, ValueRange) -> Value {
        return bb.create<arith::ConstantOp>(
            l, bb.getFloatAttr(type.getElementType(), value));
      });
}

Value mlx::buildAdd(OpBuilder &b, Location loc, Value lhs, Value rhs) {
  auto type = cast<RankedTensorType>(lhs.getType());
  if (rhs.getType() != type)
    rhs = b.create<tensor::CastOp>(loc, type, rhs);
  return b.create<GenericOp>(
      loc, type, ValueRange{lhs, rhs}, tensorSizes(b, loc, lhs),
      identityMaps(b, type.getRank(), 2), type.getRank(), Combiner::none,
      [&](OpBuilder &bb, Location l, ValueRange args) -> Value {
        return bb.create<arith::AddFOp>(l, args[0], args[1]);
      });
}

//===----------------------------------------------------------------------===//
// mlx.generic
//===----------------------------------------------------------------------===//

/// Clones `op`'s body into `b`'s block with the given block arguments and
/// iteration dims renumbered by `dimOf`; returns the summand.
static Value cloneBody(OpBuilder &b, GenericOp op, ValueRange args,
                       ArrayRef<int64_t> dimOf,
                       SmallVectorImpl<Operation *> *cloned = nullptr) {
  IRMapping mapping;
  Block &body = op.getBody().front();
  mapping.map(body.getArguments(), args.take_front(body.getNumArguments()));
  for (Operation &inner : body.without_terminator()) {
    Operation *copy;
    if (auto index = dyn_cast<IndexOp>(inner))
      copy = b.create<IndexOp>(index.getLoc(), b.getIndexType(),
                               (uint64_t)dimOf[index.getDim()]);
    else
      copy = b.clone(inner, mapping);
    mapping.map(inner.getResults(), copy->getResults());
    if (cloned)
      cloned->push_back(copy);
  }
  return mapping.lookupOrDefault(op.getYield().getValue());
}

/// The row-major linear position of the reduction indices (dims
/// numParallel.. of the original op), as i64.
static Value linearReductionIndex(OpBuilder &b, Location loc, GenericOp op,
                                  ArrayRef<int64_t> dimOf) {
  Value lin = b.create<arith::ConstantIndexOp>(loc, 0);
  for (unsigned d = op.getNumParallelLoops(); d < op.getNumLoops(); ++d) {
    lin = b.create<arith::MulIOp>(loc, lin, op.getSizes()[d]);
    Value i = b.create<IndexOp>(loc, b.getIndexType(), (uint64_t)dimOf[d]);
    lin = b.create<arith::AddIOp>(loc, lin, i);
  }
  return b.create<arith::IndexCastOp>(loc, b.getI64Type(), lin);
}

/// The adjoint of input k of `op` given the adjoint `dy` of its result.
static FailureOr<Value> genericAdjoint(OpBuilder &b, GenericOp op, unsigned k,
                                       Value dy) {
  Location loc = op.getLoc();
  MLIRContext *ctx = b.getContext();
  unsigned numLoops = op.getNumLoops(), numParallel = op.getNumParallelLoops();
  Combiner combiner = op.getCombiner();
  SmallVector<AffineMap> maps;
  for (Attribute attr : op.getIndexingMaps())
    maps.push_back(cast<AffineMapAttr>(attr).getValue());
  AffineMap outputMap =
      AffineMap::getMultiDimIdentityMap(numLoops, ctx)
          .getSubMap(llvm::to_vector(llvm::seq<unsigned>(0, numParallel)));
  Value x = op.getInputs()[k];
  auto xType = cast<RankedTensorType>(x.getType());
  unsigned rank = xType.getRank();

  // Helper tensors for max/min (which index won) and mul (zeros).
  SmallVector<int64_t> same = llvm::to_vector(llvm::seq<int64_t>(0, numLoops));
  Value y = op.getResult(), argIndex, zeroCount, nonzeroProduct;
  auto resultType = op.getResult().getType();
  if (combiner == Combiner::max || combiner == Combiner::min) {
    // The first (row-major) reduction index where the summand equals the
    // result: ties send the whole gradient to the first arg-max.
    SmallVector<Value> inputs(op.getInputs());
    inputs.push_back(y);
    SmallVector<AffineMap> argMaps(maps);
    argMaps.push_back(outputMap);
    argIndex = b.create<GenericOp>(
        loc, RankedTensorType::get(resultType.getShape(), b.getI64Type()),
        inputs, op.getSizes(), argMaps, numParallel, Combiner::min,
        [&](OpBuilder &bb, Location l, ValueRange args) -> Value {
          Value s = cloneBody(bb, op, args, same);
          Value hit = bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OEQ, s,
                                               args.back());
          Value none = bb.create<arith::ConstantOp>(
              l, bb.getI64IntegerAttr(std::numeric_limits<int64_t>::max()));
          return bb.create<arith::SelectOp>(
              l, hit, linearReductionIndex(bb, l, op, same), none);
        });
  } else if (combiner == Combiner::mul) {
    // d Π_r s_r / d s_r = Π_{r'≠r} s_r', exact also when some s are 0.
    auto build = [&](Combiner c, bool count) {
      return b.create<GenericOp>(
          loc, resultType, op.getInputs(), op.getSizes(), maps, numParallel, c,
          [&](OpBuilder &bb, Location l, ValueRange args) -> Value {
            Value s = cloneBody(bb, op, args, same);
            Type t = s.getType();
            Value zero = bb.create<arith::ConstantOp>(l, bb.getFloatAttr(t, 0));
            Value one = bb.create<arith::ConstantOp>(l, bb.getFloatAttr(t, 1));
            Value isZero =
                bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OEQ, s, zero);
            return bb.create<arith::SelectOp>(l, isZero, one, count ? zero : s);
          });
    };
    zeroCount = build(Combiner::add, true);
    nonzeroProduct = build(Combiner::mul, false);
  }

  // New iteration space: x's dims first (the result), then every original
  // dim that is not one of them, summed over.
  SmallVector<int64_t> dimOf(numLoops, -1);
  SmallVector<std::pair<unsigned, AffineExpr>> masks;
  AffineMap xMap = maps[k];
  for (unsigned t = 0; t < rank; ++t) {
    AffineExpr e = xMap.getResult(t);
    if (auto d = dyn_cast<AffineDimExpr>(e); d && dimOf[d.getPosition()] < 0) {
      dimOf[d.getPosition()] = t;
      continue;
    }
    if (!isa<AffineDimExpr, AffineConstantExpr>(e))
      return op.emitError("cannot differentiate an index map whose results "
                          "are not indices or constants");
    masks.push_back({t, e});
  }
  unsigned next = rank;
  SmallVector<Value> sizes = tensorSizes(b, loc, x);
  for (unsigned d = 0; d < numLoops; ++d)
    if (dimOf[d] < 0) {
      dimOf[d] = next++;
      sizes.push_back(op.getSizes()[d]);
    }
  SmallVector<AffineExpr> replacement;
  for (unsigned d = 0; d < numLoops; ++d)
    replacement.push_back(getAffineDimExpr(dimOf[d], ctx));
  auto remap = [&](AffineMap m) {
    return m.replaceDimsAndSymbols(replacement, {}, next, 0);
  };

  SmallVector<Value> inputs(op.getInputs());
  SmallVector<AffineMap> newMaps;
  for (AffineMap m : maps)
    newMaps.push_back(remap(m));
  auto addInput = [&](Value v, AffineMap m) {
    inputs.push_back(v);
    newMaps.push_back(remap(m));
    return inputs.size() - 1;
  };
  size_t dyAt = addInput(dy, outputMap);
  size_t argIndexAt = argIndex ? addInput(argIndex, outputMap) : 0;
  size_t yAt = zeroCount ? addInput(y, outputMap) : 0;
  size_t zeroCountAt = zeroCount ? addInput(zeroCount, outputMap) : 0;
  size_t nonzeroAt = zeroCount ? addInput(nonzeroProduct, outputMap) : 0;

  LogicalResult status = success();
  auto adjoint = b.create<GenericOp>(
      loc, xType, inputs, sizes, newMaps, rank,
      next > rank ? Combiner::add : Combiner::none,
      [&](OpBuilder &bb, Location l, ValueRange args) -> Value {
        SmallVector<Operation *> forward;
        Value s = cloneBody(bb, op, args, dimOf, &forward);
        Type t = s.getType();
        Value zero = bb.create<arith::ConstantOp>(l, bb.getFloatAttr(t, 0));
        Value seed = args[dyAt];
        // Where `guard` is false (not the arg-max, or a subscript that does
        // not match) the seed is zero; the sweep keeps the rest out.
        Value guard;
        auto also = [&](Value c) {
          guard = guard ? bb.create<arith::AndIOp>(l, guard, c).getResult() : c;
        };
        if (argIndex) {
          also(bb.create<arith::CmpIOp>(l, arith::CmpIPredicate::eq,
                                        linearReductionIndex(bb, l, op, dimOf),
                                        args[argIndexAt]));
        } else if (zeroCount) {
          Value one = bb.create<arith::ConstantOp>(l, bb.getFloatAttr(t, 1));
          Value isZero =
              bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OEQ, s, zero);
          Value noZeros = bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OEQ,
                                                   args[zeroCountAt], zero);
          Value oneZero = bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OEQ,
                                                   args[zeroCountAt], one);
          Value others = bb.create<arith::SelectOp>(
              l, isZero,
              bb.create<arith::SelectOp>(l, oneZero, args[nonzeroAt], zero),
              bb.create<arith::SelectOp>(
                  l, noZeros, bb.create<arith::DivFOp>(l, args[yAt], s), zero));
          seed = bb.create<arith::MulFOp>(l, seed, others);
        }
        for (auto [t2, e] : masks) {
          Value at = bb.create<IndexOp>(l, bb.getIndexType(), (uint64_t)t2);
          Value want;
          if (auto c = dyn_cast<AffineConstantExpr>(e))
            want = bb.create<arith::ConstantIndexOp>(l, c.getValue());
          else
            want = bb.create<IndexOp>(
                l, bb.getIndexType(),
                (uint64_t)dimOf[cast<AffineDimExpr>(e).getPosition()]);
          also(bb.create<arith::CmpIOp>(l, arith::CmpIPredicate::eq, at, want));
        }
        FailureOr<Value> dx =
            buildScalarAdjoint(bb, l, forward, s, seed, args[k], guard);
        if (failed(dx)) {
          status = failure();
          return zero;
        }
        return *dx;
      });
  if (failed(status))
    return failure();
  return adjoint.getResult();
}

LogicalResult GenericOp::buildAdjoints(ReverseSweep &sweep) {
  Value dy = sweep.adjoint(getResult());
  if (!dy)
    return success();
  for (auto [k, input] : llvm::enumerate(getInputs())) {
    if (!isFloatTensor(input.getType()))
      continue;
    FailureOr<Value> dx = genericAdjoint(sweep.builder(), *this, k, dy);
    if (failed(dx))
      return failure();
    sweep.accumulate(input, *dx);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// mlx.map_call, mlx.check_index
//===----------------------------------------------------------------------===//

/// The adjoint of argument k of `op` given the adjoint `dy` of its result.
static FailureOr<Value> mapCallAdjoint(ReverseSweep &sweep, MapCallOp op,
                                       unsigned k, Value dy) {
  OpBuilder &b = sweep.builder();
  Location loc = op.getLoc();
  MLIRContext *ctx = b.getContext();
  FailureOr<func::FuncOp> vjp = sweep.vjp(op.getCallee(), {k});
  if (failed(vjp))
    return failure();
  int64_t numMapped = op.getNumMapped();
  Value x = op.getArgs()[k];
  auto xType = cast<RankedTensorType>(x.getType());
  ArrayRef<int64_t> spec =
      cast<DenseI64ArrayAttr>(op.getArgSlices()[k]).asArrayRef();

  // T[m..., slice...] = VJP_k(callee)(slices..., dy[m, :]) at every mapped
  // point.
  SmallVector<Value> args(op.getArgs());
  args.push_back(dy);
  SmallVector<Attribute> slices(op.getArgSlices().begin(),
                                op.getArgSlices().end());
  SmallVector<int64_t> dySpec;
  for (int64_t d = 0; d < cast<RankedTensorType>(dy.getType()).getRank(); ++d)
    dySpec.push_back(d < numMapped ? d : -1);
  slices.push_back(b.getDenseI64ArrayAttr(dySpec));
  SmallVector<Value> sizes(op.getSizes().take_front(numMapped));
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < numMapped; ++d)
    shape.push_back(op.getResult().getType().getDimSize(d));
  SmallVector<Value> xSizes = tensorSizes(b, loc, x);
  for (auto [d, s] : llvm::enumerate(spec))
    if (s < 0) {
      sizes.push_back(xSizes[d]);
      shape.push_back(xType.getDimSize(d));
    }
  auto perPoint = b.create<MapCallOp>(
      loc, RankedTensorType::get(shape, xType.getElementType()),
      FlatSymbolRefAttr::get(ctx, vjp->getName()), args, sizes,
      b.getArrayAttr(slices), b.getI64IntegerAttr(numMapped));

  // dx[x dims] = Σ over the mapped indices x does not depend on of T.
  unsigned rank = xType.getRank();
  SmallVector<AffineExpr> tExprs(numMapped);
  SmallVector<Value> loopSizes(xSizes);
  unsigned next = rank;
  for (int64_t m = 0; m < numMapped; ++m) {
    auto it = llvm::find(spec, m);
    if (it != spec.end()) {
      tExprs[m] = getAffineDimExpr(it - spec.begin(), ctx);
    } else {
      tExprs[m] = getAffineDimExpr(next++, ctx);
      loopSizes.push_back(op.getSizes()[m]);
    }
  }
  for (auto [d, s] : llvm::enumerate(spec))
    if (s < 0)
      tExprs.push_back(getAffineDimExpr(d, ctx));
  AffineMap tMap = AffineMap::get(next, 0, tExprs, ctx);
  return b
      .create<GenericOp>(loc, xType, ValueRange{perPoint.getResult()},
                         loopSizes, ArrayRef<AffineMap>{tMap}, rank,
                         next > rank ? Combiner::add : Combiner::none,
                         [](OpBuilder &, Location, ValueRange args) -> Value {
                           return args[0];
                         })
      .getResult();
}

LogicalResult MapCallOp::buildAdjoints(ReverseSweep &sweep) {
  Value dy = sweep.adjoint(getResult());
  if (!dy)
    return success();
  for (auto [k, arg] : llvm::enumerate(getArgs())) {
    if (!isFloatTensor(arg.getType()))
      continue;
    FailureOr<Value> dx = mapCallAdjoint(sweep, *this, k, dy);
    if (failed(dx))
      return failure();
    sweep.accumulate(arg, *dx);
  }
  return success();
}

// A bounds check is the identity to its derivative.
LogicalResult CheckIndexOp::buildAdjoints(ReverseSweep &sweep) {
  if (Value dy = sweep.adjoint(getResult()))
    sweep.accumulate(getInput(), dy);
  return success();
}

//===----------------------------------------------------------------------===//
// func.call, tensor.cast
//===----------------------------------------------------------------------===//

namespace {
/// A call's VJP: one call of VJP(callee, its float operands).
struct CallAdjoint
    : public DifferentiableOpInterface::ExternalModel<CallAdjoint,
                                                      func::CallOp> {
  LogicalResult buildAdjoints(Operation *op, ReverseSweep &sweep) const {
    auto call = cast<func::CallOp>(op);
    OpBuilder &b = sweep.builder();
    Location loc = call.getLoc();
    SmallVector<Value> args(call.getOperands());
    for (Value r : call.getResults()) {
      Value dr = sweep.adjoint(r);
      args.push_back(dr                           ? dr
                     : isFloatTensor(r.getType()) ? buildFilled(b, loc, r, 0.0)
                                                  : r);
    }
    SmallVector<unsigned> wrt;
    for (auto [k, operand] : llvm::enumerate(call.getOperands()))
      if (isFloatTensor(operand.getType()))
        wrt.push_back(k);
    if (wrt.empty())
      return success();
    FailureOr<func::FuncOp> vjp = sweep.vjp(call.getCallee(), wrt);
    if (failed(vjp))
      return failure();
    auto vjpCall = b.create<func::CallOp>(loc, *vjp, args);
    for (auto [k, dx] : llvm::zip(wrt, vjpCall.getResults()))
      sweep.accumulate(call.getOperand(k), dx);
    return success();
  }
};

/// A cast changes static shape information only: the adjoint casts back.
struct CastAdjoint
    : public DifferentiableOpInterface::ExternalModel<CastAdjoint,
                                                      tensor::CastOp> {
  LogicalResult buildAdjoints(Operation *op, ReverseSweep &sweep) const {
    auto cast = llvm::cast<tensor::CastOp>(op);
    if (Value dy = sweep.adjoint(cast.getResult()))
      sweep.accumulate(cast.getSource(),
                       sweep.builder().create<tensor::CastOp>(
                           cast.getLoc(), cast.getSource().getType(), dy));
    return success();
  }
};
} // namespace

void mlx::registerAdjointModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, func::FuncDialect *) {
    func::CallOp::attachInterface<CallAdjoint>(*ctx);
  });
  registry.addExtension(+[](MLIRContext *ctx, tensor::TensorDialect *) {
    tensor::CastOp::attachInterface<CastAdjoint>(*ctx);
  });
  registerScalarAdjointModels(registry);
}
