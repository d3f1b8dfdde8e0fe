//===- Passes.h - mlx passes and pipelines ----------------------*- C++ -*-===//
//
// Declares the passes of passes/ (generated from Passes.td) and the named
// pipeline builders shared by mlxc and mlx-opt.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_PASSES_PASSES_H
#define MLX_PASSES_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class OpPassManager;
namespace mlx {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// The buffer a view is of (through subviews, casts, reshapes).
inline Value rootOf(Value buffer) {
  while (auto view = buffer.getDefiningOp<ViewLikeOpInterface>())
    buffer = view.getViewSource();
  return buffer;
}

/// The source locations of the ops mlx-check-numerics instrumented in
/// `module` (kept in its `mlx.numerics_checks` attribute), indexed by the id
/// passed to mlx_report_nonfinite.
std::vector<Location> numericsCheckLocations(ModuleOp module);

/// The function checked code calls on an out-of-range constant subscript
/// (mlx.check_index): `void mlx_report_out_of_bounds(i64 id, i64 index,
/// i64 size)`.
inline constexpr llvm::StringLiteral kOutOfBoundsReport =
    "mlx_report_out_of_bounds";

/// Registers the dialects from the front end down to linalg on tensors, the
/// input of every target: mlx, func (and its inliner), arith, math, tensor,
/// linalg, scf, and the derivative rules of the upstream ops among them.
void registerMlxLevelDialects(DialectRegistry &registry);

/// A run-time bounds check of the lowered module (mlx.check_index): the id
/// passed to mlx_report_out_of_bounds indexes boundsChecks(module), kept in
/// the module's `mlx.bounds_checks` attribute by mlx-lower-to-linalg.
struct BoundsCheck {
  Location loc; ///< the subscript, with the call sites it was inlined from
  int64_t dim;
  std::string tensor, sizeName;
};
inline constexpr llvm::StringLiteral kBoundsChecksAttr = "mlx.bounds_checks";
std::vector<BoundsCheck> boundsChecks(ModuleOp module);

/// mlx level clean-up: inline calls, fold, CSE, drop unused private functions.
void buildMlxSimplifyPipeline(OpPassManager &pm);

/// Expands mlx.grad (mlx-autodiff), then mlx-simplify: what `--stage=grad`
/// shows. `loopCheckpointInterval`: see mlx-autodiff's loop-checkpoint.
void buildMlxGradPipeline(OpPassManager &pm,
                          unsigned loopCheckpointInterval = 0);

/// mlx → linalg on tensors (the input of every backend), with elementwise
/// producer/consumer fusion; `checkNumerics` adds mlx-check-numerics,
/// `onlineSoftmax` mlx-online-softmax (attention a key tile at a time).
void buildMlxToLinalgPipeline(OpPassManager &pm, bool checkNumerics = false,
                              unsigned loopCheckpointInterval = 0,
                              bool onlineSoftmax = false);

/// Registers the pipelines above as `mlx-simplify` and `mlx-to-linalg`.
void registerMlxPipelines();

} // namespace mlx
} // namespace mlir

#endif // MLX_PASSES_PASSES_H
