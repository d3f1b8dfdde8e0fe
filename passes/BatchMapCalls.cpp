//===- BatchMapCalls.cpp - mlx.map_call → batched mlx.generic ---*- C++ -*-===//
//
// The `mlx-batch-map-calls` pass: `P[i, :] = softmax(s[i, :])` becomes
// generics over (i, k) instead of a loop over rows of 1-D generics, so that
// fusion, tiling and threads act on the rows together. Each op of the
// callee is lifted: the mapped indices are prepended to every value's
// dimensions, as leading parallel dims of every generic. A callee value is
// represented in the caller by a tensor and a layout, the affine map from
// (mapped indices, the value's own indices) to that tensor's indices — the
// caller's arguments keep their own dimension order, and a mapped index an
// argument does not depend on is a broadcast. Callees with ops that cannot
// be lifted keep the map_call (lowered to a loop by mlx-lower-to-linalg).
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/MlxDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::mlx {
#define GEN_PASS_DEF_BATCHMAPCALLSPASS
#include "passes/Passes.h.inc"
} // namespace mlir::mlx

using namespace mlir;
using namespace mlir::mlx;

namespace {

/// A callee tensor in the caller: `tensor` read at `layout`(mapped, own).
struct Batched {
  Value tensor;
  AffineMap layout;
};

/// True when every op of `f` can be lifted over mapped indices.
bool isLiftable(func::FuncOp f) {
  if (f.isExternal() || !f.getBody().hasOneBlock() ||
      f.getFunctionType().getNumResults() != 1)
    return false;
  for (Operation &op : f.getBody().front()) {
    if (isa<GenericOp, CheckIndexOp, tensor::DimOp, tensor::CastOp,
            func::ReturnOp>(op))
      continue;
    // Scalar arithmetic and constants (sizes, hoisted body constants).
    if (isa_and_nonnull<arith::ArithDialect>(op.getDialect()) &&
        llvm::none_of(op.getResultTypes(),
                      [](Type t) { return isa<TensorType>(t); }))
      continue;
    return false;
  }
  return true;
}

class Lifter {
public:
  Lifter(OpBuilder &b, MapCallOp call)
      : b(b), call(call), numMapped(call.getNumMapped()),
        ctx(call.getContext()) {}

  /// Replaces the map_call by the lifted callee body.
  void lift(func::FuncOp callee) {
    Location loc = call.getLoc();
    for (auto [k, attr] : llvm::enumerate(call.getArgSlices())) {
      auto spec = cast<DenseI64ArrayAttr>(attr).asArrayRef();
      SmallVector<AffineExpr> exprs;
      unsigned own = 0;
      for (int64_t s : spec)
        exprs.push_back(getAffineDimExpr(s >= 0 ? s : numMapped + own++, ctx));
      env[callee.getArgument(k)] = {
          call.getArgs()[k], AffineMap::get(numMapped + own, 0, exprs, ctx)};
    }
    Value result;
    for (Operation &op : callee.getBody().front()) {
      if (auto generic = dyn_cast<GenericOp>(op)) {
        liftGeneric(generic);
      } else if (auto dim = dyn_cast<tensor::DimOp>(op)) {
        const Batched &v = env.at(dim.getSource());
        auto index = dim.getConstantIndex();
        assert(index && "tensor.dim with a constant index");
        scalars.map(dim.getResult(),
                    b.create<tensor::DimOp>(dim.getLoc(), v.tensor,
                                            tensorDim(v, *index)));
      } else if (auto cast = dyn_cast<tensor::CastOp>(op)) {
        env[cast.getResult()] = env.at(cast.getSource());
      } else if (auto check = dyn_cast<CheckIndexOp>(op)) {
        const Batched &v = env.at(check.getInput());
        auto lifted = b.create<CheckIndexOp>(
            check.getLoc(), v.tensor, tensorDim(v, check.getDim()),
            check.getIndex(), check.getTensor(), check.getSizeName());
        env[check.getResult()] = {lifted.getResult(), v.layout};
      } else if (auto ret = dyn_cast<func::ReturnOp>(op)) {
        result = materialize(env.at(ret.getOperand(0)), loc);
      } else {
        b.clone(op, scalars);
      }
    }
    if (result.getType() != call.getResult().getType())
      result =
          b.create<tensor::CastOp>(loc, call.getResult().getType(), result);
    call.getResult().replaceAllUsesWith(result);
    call.erase();
  }

private:
  /// The dim of `v.tensor` that holds the value's own dim `own`.
  int64_t tensorDim(const Batched &v, int64_t own) {
    AffineExpr want = getAffineDimExpr(numMapped + own, ctx);
    for (auto [t, e] : llvm::enumerate(v.layout.getResults()))
      if (e == want)
        return t;
    llvm_unreachable("every own dim of a value is one of its tensor's dims");
  }

  /// The mapped dims' sizes, then `own` sizes.
  SmallVector<Value> sizesWith(ValueRange own) {
    SmallVector<Value> sizes(call.getSizes().take_front(numMapped));
    llvm::append_range(sizes, own);
    return sizes;
  }

  /// The type of a batched value whose own shape is `own`'s.
  RankedTensorType batchedType(RankedTensorType own) {
    SmallVector<int64_t> shape(
        call.getResult().getType().getShape().take_front(numMapped));
    llvm::append_range(shape, own.getShape());
    return RankedTensorType::get(shape, own.getElementType());
  }

  void liftGeneric(GenericOp op) {
    unsigned numLoops = op.getNumLoops();
    SmallVector<Value> inputs;
    SmallVector<AffineMap> maps;
    for (auto [input, attr] : llvm::zip(op.getInputs(), op.getIndexingMaps())) {
      const Batched &v = env.at(input);
      AffineMap own = cast<AffineMapAttr>(attr).getValue().shiftDims(numMapped);
      SmallVector<AffineExpr> replacement;
      for (unsigned m = 0; m < numMapped; ++m)
        replacement.push_back(getAffineDimExpr(m, ctx));
      llvm::append_range(replacement, own.getResults());
      inputs.push_back(v.tensor);
      maps.push_back(v.layout.replaceDimsAndSymbols(replacement, {},
                                                    numMapped + numLoops, 0));
    }
    SmallVector<Value> ownSizes;
    for (Value s : op.getSizes())
      ownSizes.push_back(scalars.lookupOrDefault(s));
    auto type = cast<RankedTensorType>(op.getResult().getType());
    Block &body = op.getBody().front();
    auto lifted = b.create<GenericOp>(
        op.getLoc(), batchedType(type), inputs, sizesWith(ownSizes), maps,
        numMapped + op.getNumParallelLoops(), op.getCombiner(),
        [&](OpBuilder &bb, Location, ValueRange args) -> Value {
          IRMapping mapping = scalars;
          mapping.map(body.getArguments(), args);
          for (Operation &inner : body.without_terminator()) {
            if (auto index = dyn_cast<IndexOp>(inner))
              mapping.map(index.getResult(),
                          bb.create<IndexOp>(index.getLoc(), bb.getIndexType(),
                                             index.getDim() + numMapped));
            else
              bb.clone(inner, mapping);
          }
          return mapping.lookupOrDefault(op.getYield().getValue());
        });
    env[op.getResult()] = {
        lifted.getResult(),
        AffineMap::getMultiDimIdentityMap(numMapped + type.getRank(), ctx)};
  }

  /// `v` laid out as (mapped dims, own dims): a copy unless it already is.
  Value materialize(const Batched &v, Location loc) {
    auto type = cast<RankedTensorType>(v.tensor.getType());
    unsigned rank = v.layout.getNumDims();
    if (v.layout.isIdentity() && (unsigned)type.getRank() == rank)
      return v.tensor;
    SmallVector<Value> own;
    for (unsigned d = numMapped; d < rank; ++d)
      own.push_back(
          b.create<tensor::DimOp>(loc, v.tensor, tensorDim(v, d - numMapped)));
    SmallVector<int64_t> ownShape(rank - numMapped, ShapedType::kDynamic);
    auto ownType = RankedTensorType::get(ownShape, type.getElementType());
    return b
        .create<GenericOp>(loc, batchedType(ownType), ValueRange{v.tensor},
                           sizesWith(own), ArrayRef<AffineMap>{v.layout}, rank,
                           Combiner::none,
                           [](OpBuilder &, Location, ValueRange args) -> Value {
                             return args[0];
                           })
        .getResult();
  }

  OpBuilder &b;
  MapCallOp call;
  unsigned numMapped;
  MLIRContext *ctx;
  DenseMap<Value, Batched> env;
  IRMapping scalars;
};

struct BatchMapCallsPass
    : public mlx::impl::BatchMapCallsPassBase<BatchMapCallsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    // A callee becomes liftable once its own map_calls are lifted.
    for (bool changed = true; changed;) {
      changed = false;
      SmallVector<MapCallOp> calls;
      module.walk([&](MapCallOp op) { calls.push_back(op); });
      for (MapCallOp call : calls) {
        auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
        if (!callee || !isLiftable(callee))
          continue;
        OpBuilder b(call);
        Lifter(b, call).lift(callee);
        changed = true;
      }
    }
  }
};
} // namespace
