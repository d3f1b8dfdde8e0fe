//===- RaiseToSource.h - mlx dialect back to .mlx statements ----*- C++ -*-===//
//
// The inverse of MLIRGen for what `mlxc derive` prints: a function of
// mlx.generic, mlx.gather and mlx.scatter_add ops (gradients expanded,
// mapped calls batched, everything inlined) becomes AST statements in index
// notation, which frontend/SourcePrinter.h prints as source.
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
/// ops carry kAdjointLocName). Fails, naming the op, on one the language
/// cannot write (loops and slices of them, for now).
llvm::Error raiseToSource(mlir::func::FuncOp func, ast::Function &fn,
                          llvm::ArrayRef<std::string> resultNames);

} // namespace mlx

#endif // MLX_FRONTEND_RAISETOSOURCE_H
