//===- RaiseToSource.h - mlx dialect back to .mlx statements ----*- C++ -*-===//
//
// The inverse of MLIRGen for what `mlxc derive` prints: a function of
// mlx.generic, gather, scatter_add, take, put and loop ops (gradients
// expanded, mapped calls batched, everything inlined) becomes AST
// statements in index notation, which frontend/SourcePrinter.h prints as
// source.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_RAISETOSOURCE_H
#define MLX_FRONTEND_RAISETOSOURCE_H

#include "frontend/AST.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/Error.h"

namespace mlx {

/// Fills `fn.body` with statements computing the results of `func`. `fn`
/// comes with its name, its parameters (one per argument of `func`, in
/// order; their types' dims name the sizes) and its result types;
/// `resultNames[k]` names result k. Element-wise values and values used
/// once are written inline, with the algebra of signs tidied (x·(−1) is
/// −x, a + (−b) is a − b, Σ −x is −Σ x: exact in floating point). Each
/// statement's comment names the source lines it comes from: the forward
/// equations, or those whose chain-rule step made it (the reverse sweep's
/// ops carry kAdjointLocName). A loop is a `for` whose carried values are
/// names of their own. Fails, naming the op, on what the language cannot
/// write (a tensor sized by a run-time value: the states a loop over a
/// run-time number of steps records).
llvm::Error raiseToSource(mlir::func::FuncOp func, ast::Function &fn,
                          llvm::ArrayRef<std::string> resultNames);

} // namespace mlx

#endif // MLX_FRONTEND_RAISETOSOURCE_H
