//===- Adjoints.h - what the derivative rules are written with --*- C++ -*-===//
//
// The two sweeps the differentiable-op interfaces (MlxInterfaces.td) are
// called with, and the helpers their rules share:
//   - ReverseSweep: the tensor-level reverse sweep over a function body
//     (implemented by mlx-autodiff, which owns the VJP functions);
//   - ScalarSweep: the scalar reverse sweep over an mlx.generic body, with
//     guards (below).
// The rules themselves live with their ops: Adjoints.cpp for the mlx ops,
// func.call and tensor.cast; LoopAdjoints.cpp for mlx.take, mlx.put and
// mlx.loop; ScalarAdjoints.cpp for arith and math.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_DIALECTS_MLX_ADJOINTS_H
#define MLX_DIALECTS_MLX_ADJOINTS_H

#include "dialects/mlx/MlxDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

namespace mlir::mlx {

/// The name of the NameLoc that mlx-autodiff wraps around the location of
/// each reverse-sweep op (the location of the op whose rule made it).
inline constexpr llvm::StringLiteral kAdjointLocName = "adjoint";

/// The name of the NameLoc around the location of the op that computes, in
/// a reverse loop, the step of the forward loop it undoes (`lower + steps −
/// 1 − k` at its k-th step): what `mlxc derive` names after the forward
/// loop's variable.
inline constexpr llvm::StringLiteral kForwardStepLocName = "forward step";

/// The tensor-level reverse sweep over a function body, as an op's
/// DifferentiableOpInterface rule sees it.
class ReverseSweep {
public:
  virtual ~ReverseSweep() = default;
  /// Where adjoints are built (after the forward sweep).
  virtual OpBuilder &builder() = 0;
  /// The adjoint of `v` so far; null when nothing flows into it.
  virtual Value adjoint(Value v) = 0;
  /// Adds `contribution` to the adjoint of `v`.
  virtual void accumulate(Value v, Value contribution) = 0;
  /// The VJP function of `callee` with respect to its parameters `wrt`:
  /// (params..., one cotangent per result) → the cotangents of `wrt`,
  /// made once per (callee, wrt). Fails after a diagnostic.
  virtual FailureOr<func::FuncOp> vjp(StringRef callee,
                                      ArrayRef<unsigned> wrt) = 0;
  /// Adds `function`, made by a rule (an outlined loop body), to the
  /// module, renamed when its name is taken.
  virtual void insert(func::FuncOp function) = 0;
  /// Replaces the forward op whose rule runs now by `values`, the first
  /// results of an op that computes the same and more (a loop that also
  /// records its states), and erases it.
  virtual void replaceForward(Operation *op, ValueRange values) = 0;
  /// Back-propagation through a loop records every step's state (0) or
  /// one state every this many steps, recomputing the others (less memory,
  /// one more forward sweep).
  virtual unsigned loopCheckpointInterval() { return 0; }
};

/// The scalar reverse sweep over an mlx.generic body: adjoints accumulated
/// by addition, applied in reverse program order.
///
/// An adjoint may be *guarded*: it holds the right value only where its
/// guard (an i1) is true and is exactly zero elsewhere. The branches of
/// `c ? a : b` and of `max`/`min` get guarded adjoints, and every rule
/// applied to a guarded adjoint passes the guard on, so nothing computed for
/// an untaken branch (a NaN from sqrt(−1), an inf from log 0) can reach the
/// result: guards are applied, as `guard ? value : 0`, only where adjoints
/// of different guards meet and at the end. This is JAX's "double where"
/// done by the compiler.
class ScalarSweep {
public:
  ScalarSweep(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  /// For rules: adds `contribution` to the adjoint of `v`, valid where the
  /// rule's own adjoint is.
  void add(Value v, Value contribution) { addGuarded(v, contribution, guard); }
  /// For rules: as add, but valid only where `condition` (an i1) holds too.
  void addWhere(Value v, Value contribution, Value condition) {
    addGuarded(v, contribution, both(guard, condition));
  }

  /// Adds `contribution`, valid where `guard` holds (null: everywhere), to
  /// the adjoint of `v`.
  void addGuarded(Value v, Value contribution, Value guard);
  /// The adjoint of `v` with its guard applied (null when nothing flows).
  Value get(Value v);
  /// Runs the sweep over `ops` (program order): each op with an adjoint
  /// applies its rule. Fails, after a diagnostic, at an op without one.
  LogicalResult run(ArrayRef<Operation *> ops);

  /// Builders for rules.
  OpBuilder &builder() { return b; }
  Location location() const { return loc; }
  Value constant(Type type, double value);
  Value plus(Value x, Value y) { return b.create<arith::AddFOp>(loc, x, y); }
  Value mul(Value x, Value y) { return b.create<arith::MulFOp>(loc, x, y); }
  Value div(Value x, Value y) { return b.create<arith::DivFOp>(loc, x, y); }
  Value sub(Value x, Value y) { return b.create<arith::SubFOp>(loc, x, y); }
  Value neg(Value x) { return b.create<arith::NegFOp>(loc, x); }
  Value select(Value c, Value x, Value y) {
    return b.create<arith::SelectOp>(loc, c, x, y);
  }
  Value cmp(arith::CmpFPredicate p, Value x, Value y) {
    return b.create<arith::CmpFOp>(loc, p, x, y);
  }
  /// ¬c, built once per condition.
  Value negation(Value c);

private:
  struct Adjoint {
    Value value;
    Value guard; // null: valid everywhere
  };
  /// x ∧ y of two guards (null is true).
  Value both(Value x, Value y);
  /// x ∨ y of two guards (null is true; c ∨ ¬c is true).
  Value either(Value x, Value y);
  /// guard ? value : 0.
  Value applied(const Adjoint &a);

  OpBuilder &b;
  Location loc;
  /// The guard of the adjoint whose rule runs now.
  Value guard;
  DenseMap<Value, Adjoint> adjoints;
  DenseMap<Value, Value> negations;
};

/// Reverse-mode sweep over scalar ops already in `b`'s block: given the
/// adjoint `seed` of `output`, returns the adjoint of `wrt` (0 when it does
/// not contribute). `ops` are the forward ops in program order. Where
/// `seedGuard` (an i1, optional) is false the seed is zero and nothing of the
/// body's derivative is evaluated into the result (so an inf or NaN of a
/// masked-out element stays out). Fails, with a diagnostic, on an op that has
/// no derivative rule.
FailureOr<Value> buildScalarAdjoint(OpBuilder &b, Location loc,
                                    ArrayRef<Operation *> ops, Value output,
                                    Value seed, Value wrt,
                                    Value seedGuard = {});

/// The sizes of every dimension of a ranked tensor value (tensor.dim).
SmallVector<Value> tensorSizes(OpBuilder &b, Location loc, Value tensor);
/// A tensor shaped like `like` filled with `value`.
Value buildFilled(OpBuilder &b, Location loc, Value like, double value);
/// A tensor of `type` with the given sizes, filled with zeros.
Value buildZeros(OpBuilder &b, Location loc, RankedTensorType type,
                 ValueRange sizes);
/// A new mlx.loop at `b` from `lower` to `upper` over `inits`, its body
/// built by `body(b, step, carried)` returning the next carried values.
LoopOp buildLoop(
    OpBuilder &b, Location loc, Value lower, Value upper, ValueRange inits,
    function_ref<SmallVector<Value>(OpBuilder &, Value, ValueRange)> body);
/// Element-wise a + b of two tensors of the same type.
Value buildAdd(OpBuilder &b, Location loc, Value lhs, Value rhs);

/// Attaches the derivative rules of the upstream ops the mlx level uses:
/// arith and math (scalar), func.call and tensor.cast (tensor level).
void registerAdjointModels(DialectRegistry &registry);
/// The scalar half of registerAdjointModels (ScalarAdjoints.cpp).
void registerScalarAdjointModels(DialectRegistry &registry);

} // namespace mlir::mlx

#endif // MLX_DIALECTS_MLX_ADJOINTS_H
