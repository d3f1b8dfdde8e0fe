//===- AutodiffUtils.h - helpers shared by the autodiff pass ----*- C++ -*-===//
//
// Tensor-level helpers (filled tensors, element-wise add) and the scalar
// reverse sweep over an mlx.generic body.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_PASSES_AUTODIFFUTILS_H
#define MLX_PASSES_AUTODIFFUTILS_H

#include "dialects/mlx/MlxDialect.h"

#include "mlir/IR/Builders.h"

namespace mlir::mlx {

/// The sizes of every dimension of a ranked tensor value (tensor.dim).
SmallVector<Value> tensorSizes(OpBuilder &b, Location loc, Value tensor);

/// A tensor shaped like `like` filled with `value`.
Value buildFilled(OpBuilder &b, Location loc, Value like, double value);

/// Element-wise a + b of two tensors of the same type.
Value buildAdd(OpBuilder &b, Location loc, Value lhs, Value rhs);

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

} // namespace mlir::mlx

#endif // MLX_PASSES_AUTODIFFUTILS_H
