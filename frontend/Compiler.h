//===- Compiler.h - loading .mlx files and generating MLIR ------*- C++ -*-===//
//
// The front end's driver: reads a file and its imports into one SourceMgr
// (so every diagnostic prints its source line and a caret), parses them,
// and generates the mlx module for the functions asked for. Used by the
// compile session (session/Session.h).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_COMPILER_H
#define MLX_FRONTEND_COMPILER_H

#include "frontend/AST.h"
#include "frontend/MLIRGen.h"
#include "frontend/Sema.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/SourceMgr.h"

#include <map>
#include <set>

namespace mlx {

class Compiler {
public:
  /// `importPaths` are searched (after the importing file's directory) for
  /// `import NAME`; then $MLX_PATH, then the stdlib.
  Compiler(mlir::MLIRContext &ctx, llvm::SourceMgr &sourceMgr,
           std::vector<std::string> importPaths);

  /// Loads the main file and its imports. False after reporting errors.
  bool loadFile(const std::string &path);
  /// Loads source text as the main file, named `name` in diagnostics.
  bool loadSource(const std::string &name, const std::string &source);

  /// The main file's parsed module (after a successful load).
  const ast::Module &mainModule() const { return *modules.front(); }
  /// A function of the main file, or null.
  const ast::Function *findFunction(const std::string &name) const;

  /// Generates the mlx module exporting `exports` (null after errors).
  mlir::OwningOpRef<mlir::ModuleOp>
  generate(const std::vector<ExportRequest> &exports);
  /// Export requests for every function of the main file (`[...]` ones at
  /// rank 1), as `check` and `build` use them.
  std::vector<ExportRequest> allExports() const;

  /// The signature of an export request: with `wrt`, the `<name>_grad`
  /// entry whose extra results are named `d<param>`.
  rt::Signature signature(const ExportRequest &request) const;

  mlir::Location location(const ast::Loc &loc) { return toLocation(ctx, loc); }
  /// The semantic checks over the loaded functions.
  Sema sema() { return Sema(ctx, functions); }
  mlir::MLIRContext &context() { return ctx; }

private:
  bool loadModule(const std::string &path, const std::string &source,
                  bool isMain);
  std::string findImport(const std::string &name, const std::string &from);

  mlir::MLIRContext &ctx;
  llvm::SourceMgr &sourceMgr;
  std::vector<std::string> importPaths;
  std::vector<std::unique_ptr<ast::Module>> modules;
  std::map<std::string, const ast::Function *> functions;
  std::set<std::string> loaded;
  /// The modules being loaded, outermost first (to report import cycles).
  std::vector<std::string> importStack;
  static constexpr size_t kMaxImportDepth = 64;
};

/// The stdlib directories searched after all others.
std::vector<std::string> stdlibDirectories();

} // namespace mlx

#endif // MLX_FRONTEND_COMPILER_H
