//===- SourcePrinter.h - the AST as .mlx source -----------------*- C++ -*-===//
//
// Prints AST functions back as .mlx text that parses to the same tree:
// parentheses exactly where precedence and associativity need them (so
// a + (b + c) keeps its order of evaluation), floats with the digits that
// read back to the same value. `mlxc derive` prints the gradients it
// raises from the mlx dialect (frontend/RaiseToSource.h) with it.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_SOURCEPRINTER_H
#define MLX_FRONTEND_SOURCEPRINTER_H

#include "frontend/AST.h"
#include "llvm/Support/raw_ostream.h"

namespace mlx::ast {

/// Prints `fn` as a `def`, each statement after its comment lines.
void printSource(const Function &fn, llvm::raw_ostream &os);

/// `e` as source text, parenthesized to bind as tightly as `minPrecedence`
/// needs (0: a whole expression).
std::string sourceText(const Expr &e, int minPrecedence = 0);

} // namespace mlx::ast

#endif // MLX_FRONTEND_SOURCEPRINTER_H
