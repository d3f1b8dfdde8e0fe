//===- Sema.h - semantic checks on the AST ----------------------*- C++ -*-===//
//
// Semantic analysis, ahead of and apart from MLIR generation: an AST
// function plus an instance key (the rank of its `[...]` parameters and
// the float type `f32` stands for) → a CheckedFunction: the dtype and
// symbolic shape of every expression, index bindings and ranges, reduction
// variables, resolved callees and the type of every named value. MLIRGen
// generates from that and reports nothing. Also what a request may ask of a
// function (gradient parameters, the float type its arguments make it run
// in), the call graph (no recursion) and the builtin names. Diagnostics go
// to the context's handler at the user's source locations.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_SEMA_H
#define MLX_FRONTEND_SEMA_H

#include "frontend/AST.h"
#include "frontend/Types.h"
#include "runtime/Call.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/ArrayRef.h"

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mlx {

/// An index bound by a left-hand side or a reduction.
struct IndexVar {
  std::string name;
  ast::Loc loc;
  std::optional<SDim> range;
  ast::Loc rangeLoc; ///< Where the range was inferred.
};

/// What checking found out about a call of a user function.
struct CallInfo {
  const ast::Function *callee = nullptr;
  std::map<std::string, SDim> binding;
  std::optional<Shape> anyShape; ///< The shape `[...]` stands for.
  std::vector<Shape> resultShapes;
  std::vector<rt::DType> resultTypes;
  /// What `f32` means in the callee: f64 when called with f64 arguments.
  rt::DType floatType = rt::DType::f32;
  /// `grad(f, ...)(args)` / `value_and_grad`: the differentiated parameters.
  bool isGrad = false, withValue = false;
  std::vector<int64_t> wrt;
  /// The values passed for the callee's static parameters.
  StaticValues statics;
  /// A static argument is a size of unknown value (a function checked with
  /// symbolic statics): the callee instance is not known, nor checked here.
  bool unknownStatics = false;
};

/// The argument expressions of a call; `grad(f, x)(args)` keeps its callee
/// expression first.
llvm::ArrayRef<std::unique_ptr<ast::Expr>> callArgs(const ast::Expr &e);

/// What checking found out about an expression.
struct ExprInfo {
  EType type;
  Shape shape;
  bool ok = true;
  std::shared_ptr<CallInfo> call;
};

/// The type of a named value: a value computed from literals and indices
/// only is weakly typed (as in JAX) and converts to the dtype its use asks
/// for.
struct LocalType {
  rt::DType dtype = rt::DType::f32;
  Shape shape;
  EType::Kind weak = EType::Concrete;
};

/// One result dimension of an indexed definition: an index of the left-hand
/// side, or an implicit `:` dimension (the right side's element shape).
struct Slot {
  IndexVar *var = nullptr;
  unsigned implicit = 0;
};

/// The result dimensions of an op over `vars`, then `implicitRank`
/// implicit dimensions.
std::vector<Slot> slotsOver(const std::vector<IndexVar *> &vars,
                            size_t implicitRank);

/// What checking found out about a statement.
struct StmtInfo {
  /// Indexed definitions: the result's dimensions and the left-hand side's
  /// indices.
  std::vector<Slot> slots;
  std::vector<IndexVar *> lhsVars;
  /// An indexed definition that is a call mapped over the left-hand side's
  /// indices, in their order (no copy needed).
  bool mappedCall = false;
  /// An update at computed positions (`hs[t, :] = h`, `Q[s, a] = q`): per
  /// left-hand side entry, whether it names a value (the position) rather
  /// than an index; `slots` and `lhsVars` are those of the other entries.
  /// Empty for an ordinary definition.
  std::vector<bool> computed;
  /// Left-hand bounds by a run-time integer value (`rec[k < steps, d] =
  /// 0.0` with `steps: i32`), each with the size it stands for: the value,
  /// or 0 when it is negative. Such a size is one of its own, equal only to
  /// itself (its symbol names the bound's text and place).
  std::vector<std::pair<const ast::Expr *, SDim>> valueBounds;
};

/// What checking found out about a loop `for t in lo..hi { ... }`.
struct LoopInfo {
  /// The values carried from step to step, in order, with their types:
  /// the names defined before the loop and assigned in its body, and those
  /// it creates.
  std::vector<std::pair<std::string, LocalType>> carried;
  /// Carried values the loop creates, zero-filled: rows written in the
  /// body (`hs[t, :] = h`) of a name not defined before, for a loop
  /// variable whose range `0..N` gives the new dimension.
  std::set<std::string> created;
};

/// A user function instance a function calls.
struct CalleeInstance {
  const ast::Function *function;
  int64_t anyShapeRank;
  rt::DType floatType;
  StaticValues statics;
};

/// One function instance, checked: what MLIRGen generates from.
struct CheckedFunction {
  const ast::Function *fn = nullptr;
  int64_t anyShapeRank = 0;
  rt::DType floatType = rt::DType::f32;
  /// The values of the static parameters (dims of constant size here).
  StaticValues statics;
  /// Static parameters without a value are sizes of unknown value (what
  /// `mlxc check` checks a function with static parameters as); nothing is
  /// generated from such a check.
  bool symbolicStatics = false;
  /// False after diagnostics: nothing is to be generated.
  bool ok = false;
  /// The dimension symbols the parameters bind, and the shapes of the
  /// parameters and results in them.
  std::map<std::string, SDim> dims;
  std::vector<Shape> paramShapes, resultShapes;
  std::map<const ast::Expr *, ExprInfo> infos;
  std::map<const ast::Expr *, IndexVar *> indexUses;
  std::map<const ast::Expr *, std::vector<IndexVar *>> reduceVars;
  std::map<const ast::Stmt *, StmtInfo> stmts;
  std::map<const ast::Stmt *, LoopInfo> loops;
  /// `check` statements proved true when compiling (nothing to run).
  std::set<const ast::Stmt *> provenChecks;
  /// Every named value's type (the last definition of each name).
  std::map<std::string, LocalType> locals;
  std::deque<IndexVar> indexVars;
  /// The instances it calls, in the order of their calls (also when the
  /// checks failed further on, so that their bodies are checked too).
  std::vector<CalleeInstance> callees;

  /// The dtype a declared `f32` stands for in this instance.
  rt::DType declared(rt::DType d) const {
    return rt::instanceDType(d, floatType);
  }
  /// An element type's dtype, literals defaulting to this instance's float.
  rt::DType resolve(EType t,
                    std::optional<rt::DType> preferred = std::nullopt) const {
    return t.resolve(preferred, floatType);
  }
  /// Appends the index variables `e` depends on and does not bind itself
  /// (in order of first use).
  void freeVars(const ast::Expr &e, std::vector<IndexVar *> &out) const;
};

/// Builtins that take one float and return one: exp, log, tanh, sigmoid, …
const std::set<std::string> &unaryFloatBuiltins();
/// The dtype casts f32(x), f64(x), i32(x), i64(x).
const std::set<std::string> &castBuiltins();
/// uniform(seed, dims...) and normal(seed, dims...) (frontend/Random.h).
bool isRandomBuiltin(llvm::StringRef name);
/// Whether a call of `name` is a builtin (these shadow user functions).
bool isBuiltin(llvm::StringRef name);

/// The runtime signature of a request's entry point: parameter names,
/// dtypes and dims; results named after what the function returns
/// (`result`, `result<k>` where unnamed), then `d<param>` per gradient.
rt::Signature signatureOf(const ExportRequest &request);

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

  /// Checks one instance of `fn`; see CheckedFunction::ok.
  std::unique_ptr<CheckedFunction>
  check(const ast::Function &fn, int64_t anyShapeRank, rt::DType floatType,
        const StaticValues &statics = {}, bool symbolicStatics = false);

private:
  void error(const ast::Loc &loc, const llvm::Twine &message);

  mlir::MLIRContext &ctx;
  const std::map<std::string, const ast::Function *> &functions;
};

} // namespace mlx

#endif // MLX_FRONTEND_SEMA_H
