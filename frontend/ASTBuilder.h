//===- ASTBuilder.h - .mlx text → AST ---------------------------*- C++ -*-===//
//
// The only place that sees ANTLR's types. Parses one file and builds its
// typed AST; syntax errors go to `onError` with their location.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_ASTBUILDER_H
#define MLX_FRONTEND_ASTBUILDER_H

#include "frontend/AST.h"

#include <functional>

namespace mlx::ast {

using ErrorFn = std::function<void(const Loc &, const std::string &)>;

/// Parses `source` (named `path` in diagnostics). Returns null after
/// reporting every syntax error.
std::unique_ptr<Module> parseModule(const std::string &path,
                                    const std::string &source,
                                    const ErrorFn &onError);

} // namespace mlx::ast

#endif // MLX_FRONTEND_ASTBUILDER_H
