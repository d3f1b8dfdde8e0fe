//===- Autodiff.cpp - reverse-mode autodiff on the mlx dialect --*- C++ -*-===//
//
// The `mlx-autodiff` pass: every mlx.grad becomes a call of a
// vector-Jacobian product (VJP) function. VJP(f, K) takes f's arguments and
// one cotangent per result of f and returns the cotangents of the arguments
// in K (one VJP per gradient request, one reverse sweep for all of K); its
// body is f's body (the forward sweep) followed by the reverse sweep:
//   - mlx.generic: one new mlx.generic per differentiable input, whose
//     iteration space is permuted so that the input's dims come first (they
//     are the result) and every other index is summed over — the adjoint of
//     an index-notation op is again an index-notation op;
//   - func.call: calls VJP(callee, its float operands) once (each callee is
//     differentiated once);
//   - mlx.map_call: maps VJP(callee, {k}) over the same slices, then sums
//     over the mapped indices the argument does not depend on.
// The forward parts of the VJPs are duplicates of the primal: once inlined,
// CSE merges them and DCE drops what the gradient does not need.
//
//===----------------------------------------------------------------------===//
#include "passes/AutodiffUtils.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"

#include <limits>

namespace mlir::mlx {
#define GEN_PASS_DEF_AUTODIFFPASS
#include "passes/Passes.h.inc"
} // namespace mlir::mlx

using namespace mlir;
using namespace mlir::mlx;

/// True for a tensor known to be all zeros: an mlx.generic yielding 0.
static bool isZeroTensor(Value v) {
  auto generic = v.getDefiningOp<GenericOp>();
  return generic && generic.getCombiner() != Combiner::mul &&
         matchPattern(generic.getYield().getValue(), m_AnyZeroFloat());
}

static bool isFloatTensor(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  return t && isa<FloatType>(t.getElementType());
}

namespace {

class Differentiator {
public:
  Differentiator(ModuleOp module) : module(module), symbols(module) {}

  /// Replaces every mlx.grad in the module. Fails after a diagnostic.
  LogicalResult expandAll() {
    // Per function: expanding one grad may expand the grads of the functions
    // it differentiates (and erase them), so no list of grads outlives it.
    auto funcs = llvm::to_vector(module.getOps<func::FuncOp>());
    for (func::FuncOp f : funcs)
      if (failed(expandGradsIn(f)))
        return failure();
    return success();
  }

private:
  LogicalResult expand(GradOp op);
  FailureOr<func::FuncOp> getOrCreateVJP(func::FuncOp f,
                                         ArrayRef<unsigned> wrt);
  LogicalResult expandGradsIn(func::FuncOp f);
  LogicalResult adjointOf(OpBuilder &b, Operation *op,
                          DenseMap<Value, Value> &adjoints);
  FailureOr<Value> genericAdjoint(OpBuilder &b, GenericOp op, unsigned k,
                                  Value dy);
  FailureOr<Value> mapCallAdjoint(OpBuilder &b, MapCallOp op, unsigned k,
                                  Value dy);

  void accumulate(OpBuilder &b, Location loc, DenseMap<Value, Value> &adjoints,
                  Value primal, Value contribution) {
    if (isZeroTensor(contribution))
      return; // e.g. through stop_gradient: nothing flows
    Value &slot = adjoints[primal];
    slot = slot ? buildAdd(b, loc, slot, contribution) : contribution;
  }

  ModuleOp module;
  SymbolTable symbols;
  std::map<std::pair<std::string, std::vector<unsigned>>, func::FuncOp> vjps;
  llvm::DenseSet<Operation *> expanded;
};

LogicalResult Differentiator::expandGradsIn(func::FuncOp f) {
  if (!expanded.insert(f).second)
    return success();
  SmallVector<GradOp> grads;
  f.walk([&](GradOp op) { grads.push_back(op); });
  for (GradOp op : grads)
    if (failed(expand(op)))
      return failure();
  return success();
}

LogicalResult Differentiator::expand(GradOp op) {
  auto f = symbols.lookup<func::FuncOp>(op.getCallee());
  if (!f)
    return op.emitError("differentiates unknown function ") << op.getCallee();
  OpBuilder b(op);
  Location loc = op.getLoc();
  // The primal call gives the value and the shapes of the cotangent seeds.
  auto primal = b.create<func::CallOp>(loc, f, op.getArgs());
  SmallVector<Value> results;
  if (op.getWithValue())
    llvm::append_range(results, primal.getResults());
  // Seeds: ones for every float result (d/dx of the sum of its elements).
  SmallVector<Value> seeds;
  for (Value r : primal.getResults())
    seeds.push_back(isFloatTensor(r.getType()) ? buildFilled(b, loc, r, 1.0)
                                               : r);
  // One VJP for the whole request: one reverse sweep for all of `wrt`.
  SmallVector<unsigned> wrt(op.getWrt().begin(), op.getWrt().end());
  FailureOr<func::FuncOp> vjp = getOrCreateVJP(f, wrt);
  if (failed(vjp))
    return failure();
  SmallVector<Value> args(op.getArgs());
  llvm::append_range(args, seeds);
  llvm::append_range(results,
                     b.create<func::CallOp>(loc, *vjp, args).getResults());
  op.replaceAllUsesWith(results);
  op.erase();
  return success();
}

FailureOr<func::FuncOp> Differentiator::getOrCreateVJP(func::FuncOp f,
                                                       ArrayRef<unsigned> wrt) {
  auto key = std::make_pair(f.getName().str(),
                            std::vector<unsigned>(wrt.begin(), wrt.end()));
  if (auto it = vjps.find(key); it != vjps.end())
    return it->second;
  if (f.isExternal())
    return f.emitError("cannot differentiate '")
           << f.getName() << "': it has no body";
  if (failed(expandGradsIn(f)))
    return failure();

  FunctionType type = f.getFunctionType();
  SmallVector<Type> inputs(type.getInputs()), results;
  llvm::append_range(inputs, type.getResults());
  std::string name = (f.getName() + "_vjp").str();
  for (auto [i, k] : llvm::enumerate(wrt)) {
    results.push_back(type.getInput(k));
    name += (i ? "_" : "") + std::to_string(k);
  }
  OpBuilder b(module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  auto vjp = b.create<func::FuncOp>(f.getLoc(), name,
                                    b.getFunctionType(inputs, results));
  vjp.setPrivate();
  symbols.insert(vjp);
  vjps[key] = vjp;

  Block *entry = vjp.addEntryBlock();
  b.setInsertionPointToStart(entry);
  IRMapping mapping;
  mapping.map(f.getArguments(),
              entry->getArguments().take_front(type.getNumInputs()));
  // Forward sweep: f's body.
  SmallVector<Operation *> forward;
  auto ret = cast<func::ReturnOp>(f.getBody().front().getTerminator());
  for (Operation &op : f.getBody().front().without_terminator())
    forward.push_back(b.clone(op, mapping));
  // Reverse sweep.
  DenseMap<Value, Value> adjoints;
  for (auto [r, cotangent] :
       llvm::zip(ret.getOperands(),
                 entry->getArguments().drop_front(type.getNumInputs())))
    if (isFloatTensor(r.getType()))
      accumulate(b, f.getLoc(), adjoints, mapping.lookupOrDefault(r),
                 cotangent);
  for (Operation *op : llvm::reverse(forward)) {
    if (llvm::none_of(op->getResults(),
                      [&](Value v) { return adjoints.count(v); }))
      continue;
    if (failed(adjointOf(b, op, adjoints)))
      return failure();
  }
  SmallVector<Value> cotangents;
  for (unsigned k : wrt) {
    Value arg = entry->getArgument(k);
    Value result = adjoints.lookup(arg);
    cotangents.push_back(result ? result
                                : buildFilled(b, f.getLoc(), arg, 0.0));
  }
  b.create<func::ReturnOp>(f.getLoc(), cotangents);
  return vjp;
}

LogicalResult Differentiator::adjointOf(OpBuilder &b, Operation *op,
                                        DenseMap<Value, Value> &adjoints) {
  Location loc = op->getLoc();
  if (auto generic = dyn_cast<GenericOp>(op)) {
    Value dy = adjoints.lookup(generic.getResult());
    for (auto [k, input] : llvm::enumerate(generic.getInputs())) {
      if (!isFloatTensor(input.getType()))
        continue;
      FailureOr<Value> dx = genericAdjoint(b, generic, k, dy);
      if (failed(dx))
        return failure();
      accumulate(b, loc, adjoints, input, *dx);
    }
    return success();
  }
  if (auto map = dyn_cast<MapCallOp>(op)) {
    Value dy = adjoints.lookup(map.getResult());
    for (auto [k, arg] : llvm::enumerate(map.getArgs())) {
      if (!isFloatTensor(arg.getType()))
        continue;
      FailureOr<Value> dx = mapCallAdjoint(b, map, k, dy);
      if (failed(dx))
        return failure();
      accumulate(b, loc, adjoints, arg, *dx);
    }
    return success();
  }
  if (auto call = dyn_cast<func::CallOp>(op)) {
    auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
    SmallVector<Value> args(call.getOperands());
    for (Value r : call.getResults()) {
      Value dr = adjoints.lookup(r);
      args.push_back(dr                           ? dr
                     : isFloatTensor(r.getType()) ? buildFilled(b, loc, r, 0.0)
                                                  : r);
    }
    // One VJP call for all float operands.
    SmallVector<unsigned> wrt;
    for (auto [k, operand] : llvm::enumerate(call.getOperands()))
      if (isFloatTensor(operand.getType()))
        wrt.push_back(k);
    if (wrt.empty())
      return success();
    FailureOr<func::FuncOp> vjp = getOrCreateVJP(callee, wrt);
    if (failed(vjp))
      return failure();
    auto vjpCall = b.create<func::CallOp>(loc, *vjp, args);
    for (auto [k, dx] : llvm::zip(wrt, vjpCall.getResults()))
      accumulate(b, loc, adjoints, call.getOperand(k), dx);
    return success();
  }
  if (auto check = dyn_cast<CheckIndexOp>(op)) {
    // A bounds check is the identity to its derivative.
    accumulate(b, loc, adjoints, check.getInput(),
               adjoints.lookup(check.getResult()));
    return success();
  }
  if (auto cast = dyn_cast<tensor::CastOp>(op)) {
    Value dy = adjoints.lookup(cast.getResult());
    accumulate(b, loc, adjoints, cast.getSource(),
               b.create<tensor::CastOp>(loc, cast.getSource().getType(), dy));
    return success();
  }
  return op->emitError("cannot differentiate through '")
         << op->getName() << "'";
}

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

FailureOr<Value> Differentiator::genericAdjoint(OpBuilder &b, GenericOp op,
                                                unsigned k, Value dy) {
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

FailureOr<Value> Differentiator::mapCallAdjoint(OpBuilder &b, MapCallOp op,
                                                unsigned k, Value dy) {
  Location loc = op.getLoc();
  MLIRContext *ctx = b.getContext();
  auto callee = symbols.lookup<func::FuncOp>(op.getCallee());
  FailureOr<func::FuncOp> vjp = getOrCreateVJP(callee, {k});
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

struct AutodiffPass : public mlx::impl::AutodiffPassBase<AutodiffPass> {
  void runOnOperation() override {
    if (failed(Differentiator(getOperation()).expandAll()))
      signalPassFailure();
  }
};
} // namespace
