//===- LoopAdjoints.cpp - derivatives of slices and loops -------*- C++ -*-===//
//
// The DifferentiableOpInterface rules of the ops that index by run-time
// values and iterate:
//   - mlx.take: the cotangent goes into its slice of zeros (scatter-add:
//     the sweep adds the contributions of several takes);
//   - mlx.put: the input's cotangent is the result's with the slice
//     zeroed, the value's is that slice;
//   - mlx.gather: a scatter-add of the cotangent at the same subscripts
//     (and mlx.scatter_add: the identity, and a gather);
//   - mlx.loop: back-propagation through time over stored state. The loop
//     is replaced by one that also records the carried values at the start
//     of every step (one row per step); the body is outlined into a
//     function whose VJP a reverse loop applies from the last step to the
//     first, carrying the cotangents of the carried values and summing
//     those of the values the body reads from outside.
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/Adjoints.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;
using namespace mlir::mlx;

static bool isFloatTensor(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  return t && isa<FloatType>(t.getElementType());
}

Value mlx::buildZeros(OpBuilder &b, Location loc, RankedTensorType type,
                      ValueRange sizes) {
  return b.create<GenericOp>(
      loc, type, ValueRange{}, sizes, ArrayRef<AffineMap>{}, type.getRank(),
      Combiner::none, [&](OpBuilder &bb, Location l, ValueRange) -> Value {
        return bb.create<arith::ConstantOp>(
            l, bb.getZeroAttr(type.getElementType()));
      });
}

LogicalResult TakeOp::buildAdjoints(ReverseSweep &sweep) {
  Value dy = sweep.adjoint(getResult());
  if (!dy)
    return success();
  OpBuilder &b = sweep.builder();
  Value zeros = buildFilled(b, getLoc(), getInput(), 0.0);
  sweep.accumulate(getInput(),
                   b.create<PutOp>(getLoc(), dy, zeros, getIndex(), getDim(),
                                   getTensor(), getSizeName()));
  return success();
}

LogicalResult PutOp::buildAdjoints(ReverseSweep &sweep) {
  Value dy = sweep.adjoint(getResult());
  if (!dy)
    return success();
  OpBuilder &b = sweep.builder();
  Location loc = getLoc();
  Value zeros = buildFilled(b, loc, getValue(), 0.0);
  sweep.accumulate(getInput(),
                   b.create<PutOp>(loc, zeros, dy, getIndex(), getDim(),
                                   getTensor(), getSizeName()));
  sweep.accumulate(getValue(),
                   b.create<TakeOp>(loc, getValue().getType(), dy, getIndex(),
                                    getDim(), getTensor(), getSizeName()));
  return success();
}

LogicalResult GatherOp::buildAdjoints(ReverseSweep &sweep) {
  Value dy = sweep.adjoint(getResult());
  if (!dy)
    return success();
  OpBuilder &b = sweep.builder();
  Value zeros = buildFilled(b, getLoc(), getInput(), 0.0);
  sweep.accumulate(getInput(), b.create<ScatterAddOp>(getLoc(), dy, zeros,
                                                      getIndices(), getDims()));
  return success();
}

LogicalResult ScatterAddOp::buildAdjoints(ReverseSweep &sweep) {
  Value dy = sweep.adjoint(getResult());
  if (!dy)
    return success();
  OpBuilder &b = sweep.builder();
  sweep.accumulate(getInput(), dy);
  SmallVector<Attribute> names(getIndices().size(), b.getStringAttr("?"));
  sweep.accumulate(getValue(),
                   b.create<GatherOp>(getLoc(), getValue().getType(), dy,
                                      getIndices(), getDims(), "cotangent",
                                      b.getArrayAttr(names)));
  return success();
}

/// `type` with a leading dynamic dimension (one row per step).
static RankedTensorType withRows(Type type) {
  auto t = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape{ShapedType::kDynamic};
  llvm::append_range(shape, t.getShape());
  return RankedTensorType::get(shape, t.getElementType());
}

/// The body of `loop` as a private function (step, carried..., captures...)
/// → carried values of the next step.
static func::FuncOp outlineBody(LoopOp loop, ArrayRef<Value> captures) {
  Location loc = loop.getLoc();
  Block &body = loop.getBody().front();
  SmallVector<Type> inputs(body.getArgumentTypes());
  for (Value v : captures)
    inputs.push_back(v.getType());
  OpBuilder b(loop.getContext());
  auto parent = loop->getParentOfType<func::FuncOp>();
  auto fn = func::FuncOp::create(
      loc, (parent.getName() + "_loop").str(),
      b.getFunctionType(inputs, loop.getInits().getTypes()));
  fn.setPrivate();
  Block *entry = fn.addEntryBlock();
  IRMapping mapping;
  mapping.map(body.getArguments(),
              entry->getArguments().take_front(body.getNumArguments()));
  mapping.map(captures,
              entry->getArguments().drop_front(body.getNumArguments()));
  b.setInsertionPointToStart(entry);
  for (Operation &op : body.without_terminator())
    b.clone(op, mapping);
  SmallVector<Value> next;
  for (Value v : loop.getYield().getValues())
    next.push_back(mapping.lookupOrDefault(v));
  b.create<func::ReturnOp>(loc, next);
  return fn;
}

/// A loop like `loop` at its place that also returns, per carried value, a
/// tensor of its value at the start of each of the `steps` steps.
static LoopOp buildRecordingLoop(LoopOp loop, Value steps) {
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  SmallVector<Value> inits(loop.getInits());
  for (Value init : loop.getInits()) {
    SmallVector<Value> sizes{steps};
    llvm::append_range(sizes, tensorSizes(b, loc, init));
    inits.push_back(buildZeros(b, loc, withRows(init.getType()), sizes));
  }
  auto recording = b.create<LoopOp>(loc, ValueRange(inits).getTypes(),
                                    loop.getLower(), loop.getUpper(), inits);
  Block *block = new Block();
  recording.getBody().push_back(block);
  block->addArgument(b.getIndexType(), loc);
  for (Value init : inits)
    block->addArgument(init.getType(), loc);
  b.setInsertionPointToStart(block);
  unsigned n = loop.getInits().size();
  IRMapping mapping;
  mapping.map(loop.getBody().front().getArguments(),
              block->getArguments().take_front(n + 1));
  Value row =
      b.create<arith::SubIOp>(loc, block->getArgument(0), loop.getLower());
  SmallVector<Value> next;
  for (Operation &op : loop.getBody().front().without_terminator())
    b.clone(op, mapping);
  for (Value v : loop.getYield().getValues())
    next.push_back(mapping.lookupOrDefault(v));
  for (unsigned k = 0; k < n; ++k)
    next.push_back(b.create<PutOp>(loc, block->getArgument(1 + k),
                                   block->getArgument(1 + n + k), row, 0,
                                   "loop state", "steps"));
  b.create<LoopYieldOp>(loc, next);
  return recording;
}

LogicalResult LoopOp::buildAdjoints(ReverseSweep &sweep) {
  unsigned n = getInits().size();
  SmallVector<Value> inits(getInits()), dresults;
  for (Value r : getResults())
    dresults.push_back(sweep.adjoint(r));
  if (llvm::none_of(dresults, [](Value v) { return v; }))
    return success();
  Location loc = getLoc();
  llvm::SetVector<Value> captureSet;
  getUsedValuesDefinedAbove(getBody(), captureSet);
  SmallVector<Value> captures(captureSet.begin(), captureSet.end());

  // The VJP of the body with respect to its float carried values and the
  // float values it reads from outside.
  func::FuncOp body = outlineBody(*this, captures);
  sweep.insert(body);
  SmallVector<unsigned> wrt, carriedFloat, capturedFloat;
  for (unsigned k = 0; k < n; ++k)
    if (isFloatTensor(inits[k].getType())) {
      wrt.push_back(1 + k);
      carriedFloat.push_back(k);
    }
  for (auto [j, v] : llvm::enumerate(captures))
    if (isFloatTensor(v.getType())) {
      wrt.push_back(1 + n + j);
      capturedFloat.push_back(j);
    }
  FailureOr<func::FuncOp> vjp = sweep.vjp(body.getName(), wrt);
  if (failed(vjp))
    return failure();

  // Forward: the same loop, recording each step's starting state.
  Value lower = getLower();
  OpBuilder fb(*this);
  Value zero = fb.create<arith::ConstantIndexOp>(loc, 0);
  Value steps = fb.create<arith::MaxSIOp>(
      loc, fb.create<arith::SubIOp>(loc, getUpper(), lower), zero);
  LoopOp recording = buildRecordingLoop(*this, steps);
  ValueRange tapes = recording.getResults().drop_front(n);

  // Reverse: steps − 1 down to 0, carrying the cotangents of the float
  // carried values and the sums of those of the float captures.
  OpBuilder &b = sweep.builder();
  SmallVector<Value> revInits;
  for (unsigned k : carriedFloat)
    revInits.push_back(dresults[k] ? dresults[k]
                                   : buildFilled(b, loc, inits[k], 0.0));
  for (unsigned j : capturedFloat)
    revInits.push_back(buildFilled(b, loc, captures[j], 0.0));
  Value revZero = b.create<arith::ConstantIndexOp>(loc, 0);
  auto reverse = b.create<LoopOp>(loc, ValueRange(revInits).getTypes(), revZero,
                                  steps, revInits);
  Block *block = new Block();
  reverse.getBody().push_back(block);
  block->addArgument(b.getIndexType(), loc);
  for (Value v : revInits)
    block->addArgument(v.getType(), loc);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(block);
    Value one = b.create<arith::ConstantIndexOp>(loc, 1);
    Value row = b.create<arith::SubIOp>(
        loc, b.create<arith::SubIOp>(loc, steps, block->getArgument(0)), one);
    Value t = b.create<arith::AddIOp>(loc, lower, row);
    SmallVector<Value> states;
    for (unsigned k = 0; k < n; ++k)
      states.push_back(b.create<TakeOp>(loc, inits[k].getType(), tapes[k], row,
                                        0, "loop state", "steps"));
    SmallVector<Value> args{t};
    llvm::append_range(args, states);
    llvm::append_range(args, captures);
    ValueRange dcarried = block->getArguments().slice(1, carriedFloat.size());
    for (unsigned k = 0, f = 0; k < n; ++k)
      args.push_back(f < carriedFloat.size() && carriedFloat[f] == k
                         ? dcarried[f++]
                         : states[k]);
    auto call = b.create<func::CallOp>(loc, *vjp, args);
    SmallVector<Value> next(call.getResults().take_front(carriedFloat.size()));
    for (auto [i, sum] : llvm::enumerate(
             block->getArguments().drop_front(1 + carriedFloat.size())))
      next.push_back(
          buildAdd(b, loc, sum, call.getResult(carriedFloat.size() + i)));
    b.create<LoopYieldOp>(loc, next);
  }
  for (auto [i, k] : llvm::enumerate(carriedFloat))
    sweep.accumulate(inits[k], reverse.getResult(i));
  for (auto [i, j] : llvm::enumerate(capturedFloat))
    sweep.accumulate(captures[j], reverse.getResult(carriedFloat.size() + i));
  sweep.replaceForward(*this, recording.getResults().take_front(n));
  return success();
}
