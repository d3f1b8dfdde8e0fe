//===- ASTPrinter.h - text dump of the AST ----------------------*- C++ -*-===//
//
// `mlxc emit --stage=ast`: the parsed structure as S-expressions, with each
// node's line:col, so precedence and locations can be checked in lit tests.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_ASTPRINTER_H
#define MLX_FRONTEND_ASTPRINTER_H

#include "frontend/AST.h"
#include "llvm/Support/raw_ostream.h"

namespace mlx::ast {

/// Prints every import and function of `module`.
void printModule(const Module &module, llvm::raw_ostream &os);

} // namespace mlx::ast

#endif // MLX_FRONTEND_ASTPRINTER_H
