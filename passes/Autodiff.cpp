//===- Autodiff.cpp - reverse-mode autodiff on the mlx dialect --*- C++ -*-===//
//
// The `mlx-autodiff` pass: every mlx.grad becomes a call of a
// vector-Jacobian product (VJP) function. VJP(f, K) takes f's arguments and
// one cotangent per result of f and returns the cotangents of the arguments
// in K (one VJP per gradient request, one reverse sweep for all of K); its
// body is f's body (the forward sweep) followed by the reverse sweep, in
// which each op states its own adjoint (DifferentiableOpInterface; the
// rules are in dialects/mlx/Adjoints.cpp and ScalarAdjoints.cpp); this pass
// owns the VJP functions, one per (function, wrt), so each callee is
// differentiated once per request.
// The forward parts of the VJPs are duplicates of the primal: once inlined,
// CSE merges them and DCE drops what the gradient does not need.
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/Adjoints.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"

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

class Differentiator;

/// The reverse sweep over one VJP function's body: adjoints by value,
/// accumulated by addition; callees' VJPs from the Differentiator.
class FunctionSweep : public ReverseSweep {
public:
  FunctionSweep(OpBuilder &b, Location loc, Differentiator &differentiator)
      : b(b), loc(loc), differentiator(differentiator) {}
  OpBuilder &builder() override { return b; }
  Value adjoint(Value v) override { return adjoints.lookup(v); }
  void accumulate(Value v, Value contribution) override {
    if (isZeroTensor(contribution))
      return; // e.g. through stop_gradient: nothing flows
    Value &slot = adjoints[v];
    slot = slot ? buildAdd(b, loc, slot, contribution) : contribution;
  }
  FailureOr<func::FuncOp> vjp(StringRef callee,
                              ArrayRef<unsigned> wrt) override;
  void insert(func::FuncOp function) override;
  unsigned loopCheckpointInterval() override;
  void replaceForward(Operation *op, ValueRange values) override {
    // No stale adjoint may outlive the op (its results' storage is reused).
    for (Value r : op->getResults())
      adjoints.erase(r);
    op->replaceAllUsesWith(values);
    op->erase();
    if (Operation *replacement =
            values.empty() ? nullptr : values[0].getDefiningOp())
      replacements.insert(replacement);
  }
  /// The ops that replaced forward ops (they are forward ops too).
  llvm::SmallPtrSet<Operation *, 4> replacements;

private:
  OpBuilder &b;
  Location loc;
  Differentiator &differentiator;
  DenseMap<Value, Value> adjoints;
};

class Differentiator {
public:
  Differentiator(ModuleOp module, unsigned loopCheckpointInterval)
      : module(module), symbols(module),
        loopCheckpointInterval(loopCheckpointInterval) {}

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
  friend class FunctionSweep;

  ModuleOp module;
  SymbolTable symbols;
  std::map<std::pair<std::string, std::vector<unsigned>>, func::FuncOp> vjps;
  unsigned loopCheckpointInterval;
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
  // Reverse sweep: each op with an adjoint applies its rule.
  FunctionSweep sweep(b, f.getLoc(), *this);
  for (auto [r, cotangent] :
       llvm::zip(ret.getOperands(),
                 entry->getArguments().drop_front(type.getNumInputs())))
    if (isFloatTensor(r.getType()))
      sweep.accumulate(mapping.lookupOrDefault(r), cotangent);
  for (Operation *op : llvm::reverse(forward)) {
    if (llvm::none_of(op->getResults(),
                      [&](Value v) { return sweep.adjoint(v); }))
      continue;
    auto rule = dyn_cast<DifferentiableOpInterface>(op);
    if (!rule)
      return op->emitError("cannot differentiate through '")
             << op->getName() << "'";
    if (failed(rule.buildAdjoints(sweep)))
      return failure();
  }
  SmallVector<Value> cotangents;
  for (unsigned k : wrt) {
    Value arg = entry->getArgument(k);
    Value result = sweep.adjoint(arg);
    cotangents.push_back(result ? result
                                : buildFilled(b, f.getLoc(), arg, 0.0));
  }
  b.create<func::ReturnOp>(f.getLoc(), cotangents);
  // The reverse sweep's ops are marked (kAdjointLocName around the location
  // of the op whose rule made them): `mlxc derive` says which line each
  // gradient equation comes from through the chain rule.
  llvm::SmallPtrSet<Operation *, 32> forwardOps(forward.begin(), forward.end());
  forwardOps.insert(sweep.replacements.begin(), sweep.replacements.end());
  for (Operation &op : entry->without_terminator())
    if (!forwardOps.contains(&op))
      op.setLoc(NameLoc::get(b.getStringAttr(kAdjointLocName), op.getLoc()));
  return vjp;
}

FailureOr<func::FuncOp> FunctionSweep::vjp(StringRef callee,
                                           ArrayRef<unsigned> wrt) {
  auto f = differentiator.symbols.lookup<func::FuncOp>(callee);
  if (!f)
    return failure();
  return differentiator.getOrCreateVJP(f, wrt);
}

void FunctionSweep::insert(func::FuncOp function) {
  differentiator.symbols.insert(function);
}

unsigned FunctionSweep::loopCheckpointInterval() {
  return differentiator.loopCheckpointInterval;
}

struct AutodiffPass : public mlx::impl::AutodiffPassBase<AutodiffPass> {
  using AutodiffPassBase::AutodiffPassBase;
  void runOnOperation() override {
    if (failed(
            Differentiator(getOperation(), loopCheckpointInterval).expandAll()))
      signalPassFailure();
  }
};
} // namespace
