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

/// Generates an MLIR module from parsed modules. `functions` maps every
/// visible function name (main file and imports) to its definition.
mlir::OwningOpRef<mlir::ModuleOp>
generateModule(mlir::MLIRContext &ctx,
               const std::map<std::string, const ast::Function *> &functions,
               const std::vector<ExportRequest> &exports);

/// An mlir location for an AST location.
mlir::Location toLocation(mlir::MLIRContext &ctx, const ast::Loc &loc);

} // namespace mlx

#endif // MLX_FRONTEND_MLIRGEN_H
