//===- Sema.h - semantic checks on the AST ----------------------*- C++ -*-===//
//
// The checks that need only the AST and an instance key, ahead of (and
// apart from) MLIR generation: what a request may ask of a function
// (gradient parameters, the float type its arguments make it run in), the
// call graph (no recursion), and the builtin names. Diagnostics go to the
// context's handler at the user's source locations.
//
// Work in progress (issue "seams"): the expression-level checks (names,
// index ranges, dtypes, shapes) still run inside MLIRGen, statement by
// statement; they move here next, producing a checked form that MLIRGen
// only generates from.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_SEMA_H
#define MLX_FRONTEND_SEMA_H

#include "frontend/AST.h"
#include "frontend/Types.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/ArrayRef.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mlx {

/// Builtins that take one float and return one: exp, log, tanh, sigmoid, …
const std::set<std::string> &unaryFloatBuiltins();
/// The dtype casts f32(x), f64(x), i32(x), i64(x).
const std::set<std::string> &castBuiltins();
/// Whether a call of `name` is a builtin (these shadow user functions).
bool isBuiltin(llvm::StringRef name);

class Sema {
public:
  /// `functions`: every visible function (main file and imports) by name.
  Sema(mlir::MLIRContext &ctx,
       const std::map<std::string, const ast::Function *> &functions)
      : ctx(ctx), functions(functions) {}

  /// The parameter indices of `names` for a gradient of `fn`: each must be
  /// a float parameter, given once, and `fn` must have a float result.
  /// Null after a diagnostic.
  std::optional<std::vector<int64_t>>
  gradientParameters(const ast::Function &fn,
                     llvm::ArrayRef<std::string> names);

  /// The float type a call of `fn` runs in, given the dtypes of the
  /// arguments known so far (nullopt: not known, such as a literal): a
  /// declared f32 stands for f64 when an f64 array is passed for it, and
  /// all f32 parameters must then agree. Null after a diagnostic.
  std::optional<rt::DType>
  floatType(const ast::Function &fn,
            llvm::ArrayRef<std::optional<rt::DType>> argumentDTypes);

  /// Reports a cycle among the functions `roots` call, directly or not
  /// (through calls and grad(f, …)): the language has no conditional
  /// control flow, so such a call could never return. False after the
  /// diagnostic, at the call that closes the cycle.
  bool checkNoRecursion(llvm::ArrayRef<const ast::Function *> roots);

private:
  void error(const ast::Loc &loc, const llvm::Twine &message);

  mlir::MLIRContext &ctx;
  const std::map<std::string, const ast::Function *> &functions;
};

} // namespace mlx

#endif // MLX_FRONTEND_SEMA_H
