//===- MLIRGen.h - checked AST → mlx dialect --------------------*- C++ -*-===//
//
// MLIR generation, one function instance at a time (a function whose
// parameters are `[...]` is instantiated per rank at its call sites): each
// instance is checked by Sema (frontend/Sema.h) and, if it passed, generated
// from its CheckedFunction; generation itself reports nothing. Sema's
// errors are MLIR diagnostics at the user's source locations; all of them
// are reported, and no module is returned if there was one.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_MLIRGEN_H
#define MLX_FRONTEND_MLIRGEN_H

#include "frontend/AST.h"
#include "frontend/Types.h"
#include "runtime/Call.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <map>
#include <optional>

namespace mlx {

/// What to generate: the functions to export, each at the ranks of its
/// `[...]` parameters (empty for ordinary functions).
struct ExportRequest {
  const ast::Function *function;
  int64_t anyShapeRank = 0;
  /// What a declared `f32` stands for: f32, or f64 to run in double.
  rt::DType floatType = rt::DType::f32;
  /// When not empty, export `<instance>_grad_<params>` instead (see
  /// exportName): the function's results followed by the gradients with
  /// respect to these parameters.
  std::vector<int64_t> wrt = {};
};

/// Generates an MLIR module from parsed modules. `functions` maps every
/// visible function name (main file and imports) to its definition.
mlir::OwningOpRef<mlir::ModuleOp>
generateModule(mlir::MLIRContext &ctx,
               const std::map<std::string, const ast::Function *> &functions,
               const std::vector<ExportRequest> &exports);

/// The runtime signature of an exported function (names, dtypes, dims).
rt::Signature signatureOf(const ast::Function &fn, int64_t anyShapeRank,
                          rt::DType floatType = rt::DType::f32);

/// The exported name of a request: its instance name, and for a gradient
/// `_grad` and the differentiated parameters, `_`-separated in the order
/// asked (`bce_loss_grad_w_b`); a parameter whose name is not an ASCII
/// identifier is written `p<index>`.
std::string exportName(const ExportRequest &request);

/// An mlir location for an AST location.
mlir::Location toLocation(mlir::MLIRContext &ctx, const ast::Loc &loc);

} // namespace mlx

#endif // MLX_FRONTEND_MLIRGEN_H
