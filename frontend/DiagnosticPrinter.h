//===- DiagnosticPrinter.h - clang-style diagnostics ------------*- C++ -*-===//
//
// Prints every MLIR diagnostic as `file:line:col: error: message`, then the
// source line and a caret under the column (also on lines with non-ASCII
// text, such as Greek identifiers, where llvm::SourceMgr prints no caret).
// Notes follow their error. Identical diagnostics are printed once (a
// function instantiated at several ranks reports a body error once).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_DIAGNOSTICPRINTER_H
#define MLX_FRONTEND_DIAGNOSTICPRINTER_H

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <set>
#include <string>
#include <vector>

namespace mlx {

/// "; did you mean 'X'?" for the candidate closest to a misspelled `name`
/// (a few edits away), else "".
std::string didYouMean(llvm::StringRef name,
                       const std::vector<std::string> &candidates);

class DiagnosticPrinter {
public:
  /// Installs itself as `ctx`'s handler for as long as it lives.
  DiagnosticPrinter(mlir::MLIRContext &ctx, llvm::SourceMgr &sourceMgr,
                    llvm::raw_ostream &os);
  ~DiagnosticPrinter();

  /// Number of errors printed.
  unsigned errorCount() const { return errors; }

private:
  void print(mlir::Diagnostic &diag);
  void printOne(mlir::Location loc, llvm::StringRef severity,
                const std::string &message);
  std::string sourceLine(llvm::StringRef file, unsigned line);

  mlir::MLIRContext &ctx;
  llvm::SourceMgr &sourceMgr;
  llvm::raw_ostream &os;
  mlir::DiagnosticEngine::HandlerID id;
  std::set<std::string> seen;
  unsigned errors = 0;
};

} // namespace mlx

#endif // MLX_FRONTEND_DIAGNOSTICPRINTER_H
