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
#include "mlir/Dialect/Utils/StaticValueUtils.h"
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
                                      b.getArrayAttr(names),
                                      /*in_range=*/nullptr));
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

LoopOp mlir::mlx::buildLoop(
    OpBuilder &b, Location loc, Value lower, Value upper, ValueRange inits,
    function_ref<SmallVector<Value>(OpBuilder &, Value, ValueRange)> body) {
  auto loop = b.create<LoopOp>(loc, inits.getTypes(), lower, upper, inits);
  Block *block = new Block();
  loop.getBody().push_back(block);
  Value step = block->addArgument(b.getIndexType(), loc);
  for (Value init : inits)
    block->addArgument(init.getType(), loc);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(block);
  b.create<LoopYieldOp>(loc, body(b, step, block->getArguments().drop_front()));
  return loop;
}

/// Clones `loop`'s body at `b` for `step` and the carried `state`; returns
/// the next state.
static SmallVector<Value> cloneStep(OpBuilder &b, LoopOp loop, Value step,
                                    ValueRange state) {
  IRMapping mapping;
  Block &body = loop.getBody().front();
  mapping.map(body.getArgument(0), step);
  mapping.map(body.getArguments().drop_front(), state);
  for (Operation &op : body.without_terminator())
    b.clone(op, mapping);
  SmallVector<Value> next;
  for (Value v : loop.getYield().getValues())
    next.push_back(mapping.lookupOrDefault(v));
  return next;
}

/// `loop`'s steps `lower` … `upper` − 1 (`steps` of them) from `state`,
/// also recording each step's starting state: the loop's results are the
/// final state, then one tensor per carried value with a row per step.
static LoopOp buildRecordingLoop(OpBuilder &b, LoopOp loop, Value lower,
                                 Value upper, Value steps, ValueRange state) {
  Location loc = loop.getLoc();
  SmallVector<Value> inits(state);
  for (Value v : state) {
    SmallVector<Value> sizes{steps};
    llvm::append_range(sizes, tensorSizes(b, loc, v));
    inits.push_back(buildZeros(b, loc, withRows(v.getType()), sizes));
  }
  size_t n = state.size();
  return buildLoop(
      b, loc, lower, upper, inits,
      [&](OpBuilder &bb, Value t, ValueRange carried) {
        Value row = bb.create<arith::SubIOp>(loc, t, lower);
        SmallVector<Value> next = cloneStep(bb, loop, t, carried.take_front(n));
        for (size_t k = 0; k < n; ++k)
          next.push_back(bb.create<PutOp>(loc, carried[k], carried[n + k], row,
                                          0, "loop state", "steps"));
        return next;
      });
}

namespace {
/// What the reverse loops of one mlx.loop's derivative share.
struct Backward {
  LoopOp loop;
  func::FuncOp vjp;
  SmallVector<Value> captures;
  SmallVector<unsigned> carriedFloat, capturedFloat;

  /// The reverse loop over the `steps` steps from `lower` recorded in
  /// `tapes`: from the last step to the first it applies the body's VJP,
  /// carrying the float carried values' cotangents and the sums of the
  /// float captures' (`cotangents`: their values after the last step).
  LoopOp build(OpBuilder &b, Value lower, Value steps, ValueRange tapes,
               ValueRange cotangents) {
    Location loc = loop.getLoc();
    Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
    size_t n = loop.getInits().size(), nf = carriedFloat.size();
    return buildLoop(
        b, loc, zero, steps, cotangents,
        [&](OpBuilder &bb, Value k, ValueRange carried) {
          Value one = bb.create<arith::ConstantIndexOp>(loc, 1);
          Value row = bb.create<arith::SubIOp>(
              loc, bb.create<arith::SubIOp>(loc, steps, k), one);
          Value t = isConstantIntValue(lower, 0)
                        ? row
                        : bb.create<arith::AddIOp>(loc, lower, row);
          t.getDefiningOp()->setLoc(
              NameLoc::get(bb.getStringAttr(kForwardStepLocName), loc));
          SmallVector<Value> states;
          for (size_t j = 0; j < n; ++j)
            states.push_back(
                bb.create<TakeOp>(loc, loop.getInits()[j].getType(), tapes[j],
                                  row, 0, "loop state", "steps"));
          SmallVector<Value> args{t};
          llvm::append_range(args, states);
          llvm::append_range(args, captures);
          for (size_t j = 0, f = 0; j < n; ++j)
            args.push_back(f < nf && carriedFloat[f] == j ? carried[f++]
                                                          : states[j]);
          auto call = bb.create<func::CallOp>(loc, vjp, args);
          SmallVector<Value> next(call.getResults().take_front(nf));
          for (auto [i, sum] : llvm::enumerate(carried.drop_front(nf)))
            next.push_back(buildAdd(bb, loc, sum, call.getResult(nf + i)));
          return next;
        });
  }
};
} // namespace

LogicalResult LoopOp::buildAdjoints(ReverseSweep &sweep) {
  unsigned n = getInits().size();
  SmallVector<Value> inits(getInits()), dresults;
  for (Value r : getResults())
    dresults.push_back(sweep.adjoint(r));
  if (llvm::none_of(dresults, [](Value v) { return v; }))
    return success();
  Location loc = getLoc();
  Backward backward;
  backward.loop = *this;
  llvm::SetVector<Value> captureSet;
  getUsedValuesDefinedAbove(getBody(), captureSet);
  backward.captures.assign(captureSet.begin(), captureSet.end());
  ArrayRef<Value> captures = backward.captures;

  // The VJP of the body with respect to its float carried values and the
  // float values it reads from outside.
  func::FuncOp body = outlineBody(*this, captures);
  sweep.insert(body);
  SmallVector<unsigned> wrt;
  for (unsigned k = 0; k < n; ++k)
    if (isFloatTensor(inits[k].getType())) {
      wrt.push_back(1 + k);
      backward.carriedFloat.push_back(k);
    }
  for (auto [j, v] : llvm::enumerate(captures))
    if (isFloatTensor(v.getType())) {
      wrt.push_back(1 + n + j);
      backward.capturedFloat.push_back(j);
    }
  FailureOr<func::FuncOp> vjp = sweep.vjp(body.getName(), wrt);
  if (failed(vjp))
    return failure();
  backward.vjp = *vjp;

  // The cotangents after the last step: the results', zeros for captures.
  OpBuilder &b = sweep.builder();
  SmallVector<Value> cotangents;
  for (unsigned k : backward.carriedFloat)
    cotangents.push_back(dresults[k] ? dresults[k]
                                     : buildFilled(b, loc, inits[k], 0.0));
  for (unsigned j : backward.capturedFloat)
    cotangents.push_back(buildFilled(b, loc, captures[j], 0.0));

  Value lower = getLower(), upper = getUpper();
  OpBuilder fb(*this);
  Value zero = fb.create<arith::ConstantIndexOp>(loc, 0);
  Value steps = fb.create<arith::MaxSIOp>(
      loc, fb.create<arith::SubIOp>(loc, upper, lower), zero);
  unsigned interval = sweep.loopCheckpointInterval();
  SmallVector<Value> forward;
  LoopOp reverse;
  if (interval == 0) {
    // Every step's state recorded, one reverse loop over them.
    LoopOp recording =
        buildRecordingLoop(fb, *this, lower, upper, steps, inits);
    llvm::append_range(forward, recording.getResults().take_front(n));
    reverse = backward.build(b, lower, steps,
                             recording.getResults().drop_front(n), cotangents);
  } else {
    // Checkpoints: the state at the start of every `interval`-th step;
    // backwards, each segment is recomputed from its checkpoint, recording,
    // then reversed. Memory: (steps / interval + interval) states.
    Value k = fb.create<arith::ConstantIndexOp>(loc, interval);
    // ⌈steps / k⌉ (steps ≥ 0; arith.ceildivsi would need arith-expand).
    Value segments = fb.create<arith::DivSIOp>(
        loc,
        fb.create<arith::AddIOp>(
            loc, steps, fb.create<arith::ConstantIndexOp>(loc, interval - 1)),
        k);
    auto segment = [&](OpBuilder &bb, Value c) {
      Value lo = bb.create<arith::AddIOp>(loc, lower,
                                          bb.create<arith::MulIOp>(loc, c, k));
      Value hi = bb.create<arith::MinSIOp>(
          loc, bb.create<arith::AddIOp>(loc, lo, k), upper);
      return std::make_pair(lo, hi);
    };
    SmallVector<Value> fwdInits(inits);
    for (Value v : inits) {
      SmallVector<Value> sizes{segments};
      llvm::append_range(sizes, tensorSizes(fb, loc, v));
      fwdInits.push_back(buildZeros(fb, loc, withRows(v.getType()), sizes));
    }
    LoopOp checkpointed = buildLoop(
        fb, loc, zero, segments, fwdInits,
        [&](OpBuilder &bb, Value c, ValueRange carried) {
          auto [lo, hi] = segment(bb, c);
          ValueRange state = carried.take_front(n);
          SmallVector<Value> next(
              buildLoop(bb, loc, lo, hi, state,
                        [&](OpBuilder &bbb, Value t, ValueRange s) {
                          return cloneStep(bbb, *this, t, s);
                        })
                  .getResults());
          for (unsigned j = 0; j < n; ++j)
            next.push_back(bb.create<PutOp>(loc, state[j], carried[n + j], c, 0,
                                            "loop checkpoint", "segments"));
          return next;
        });
    llvm::append_range(forward, checkpointed.getResults().take_front(n));
    ValueRange checkpoints = checkpointed.getResults().drop_front(n);
    reverse = buildLoop(
        b, loc, zero, segments, cotangents,
        [&](OpBuilder &bb, Value r, ValueRange carried) {
          Value one = bb.create<arith::ConstantIndexOp>(loc, 1);
          Value c = bb.create<arith::SubIOp>(
              loc, bb.create<arith::SubIOp>(loc, segments, r), one);
          auto [lo, hi] = segment(bb, c);
          Value length = bb.create<arith::SubIOp>(loc, hi, lo);
          SmallVector<Value> state;
          for (unsigned j = 0; j < n; ++j)
            state.push_back(bb.create<TakeOp>(loc, inits[j].getType(),
                                              checkpoints[j], c, 0,
                                              "loop checkpoint", "segments"));
          LoopOp recording =
              buildRecordingLoop(bb, *this, lo, hi, length, state);
          return SmallVector<Value>(
              backward
                  .build(bb, lo, length, recording.getResults().drop_front(n),
                         carried)
                  .getResults());
        });
  }
  size_t nf = backward.carriedFloat.size();
  for (auto [i, k] : llvm::enumerate(backward.carriedFloat))
    sweep.accumulate(inits[k], reverse.getResult(i));
  for (auto [i, j] : llvm::enumerate(backward.capturedFloat))
    sweep.accumulate(captures[j], reverse.getResult(nf + i));
  sweep.replaceForward(*this, forward);
  return success();
}
