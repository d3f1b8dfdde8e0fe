//===- AST.h - the typed syntax tree of .mlx files --------------*- C++ -*-===//
//
// Built by ASTBuilder from the ANTLR parse tree; read by MLIRGen. Every node
// carries its source location (file, 1-based line and column).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_AST_H
#define MLX_FRONTEND_AST_H

#include "runtime/Tensor.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlx::ast {

using rt::DType;

/// A position in a source file (line and column are 1-based).
struct Loc {
  std::shared_ptr<std::string> file;
  unsigned line = 0, col = 0;
};

/// A dimension in a type: literal, symbol, `...`, or arithmetic of those.
struct DimExpr {
  enum class Kind { Int, Sym, Ellipsis, Add, Sub, Mul, Div };
  Kind kind = Kind::Int;
  Loc loc;
  int64_t value = 0;
  std::string name;
  std::unique_ptr<DimExpr> lhs, rhs;
};

/// `f32`, `f32[N, 3]`, `f32[...]`.
struct TypeSpec {
  Loc loc;
  DType dtype = DType::f32;
  std::vector<std::unique_ptr<DimExpr>> dims;
  /// True when the dims are `[...]` (any shape, element-wise).
  bool isAnyShape() const {
    return dims.size() == 1 && dims[0]->kind == DimExpr::Kind::Ellipsis;
  }
};

struct Param {
  Loc loc;
  std::string name;
  TypeSpec type;
  /// `k: static i32`: an integer known when the function is compiled (each
  /// value is an instance of its own); usable in types and loop ranges.
  bool isStatic = false;
};

/// An expression. One struct for all kinds; `kind` says which fields hold.
struct Expr {
  enum class Kind {
    Float,  ///< `number`
    Int,    ///< `intValue`
    Inf,    ///< +inf
    Bool,   ///< `boolValue`
    Name,   ///< `name`
    Unary,  ///< `op` ("-" or "!") of operands[0]
    Binary, ///< operands[0] `op` operands[1]: + - * / ^ < <= > >= == != && ||
    Select, ///< operands[0] ? operands[1] : operands[2]
    Reduce, ///< `op` ("sum", "prod", "max", "min", "argmax", "argmin")
            ///< over `indices` of operands[0]
    Subscript, ///< operands[0][subscripts...]; a null subscript is `:`
    Call,      ///< `name`(operands...)
  };
  Kind kind;
  Loc loc;
  double number = 0;
  int64_t intValue = 0;
  bool boolValue = false;
  std::string name, op;
  std::vector<std::unique_ptr<Expr>> operands;
  std::vector<std::string> indices; ///< Reduce: the reduced index names.
  /// Reduce: written with a bound (`sum[j <= i] e`, a scan): operands[0] is
  /// then `(j <= i) ? e : identity`.
  bool bounded = false;
  std::vector<Loc> indexLocs;
  std::vector<std::unique_ptr<Expr>> subscripts;

  Expr(Kind kind, Loc loc) : kind(kind), loc(std::move(loc)) {}
};

/// `x = e`, `x[i, :] = e`, `a, b = f(..)`, `return e, ...`,
/// `for t in lo..hi { ... }`, `check cond`.
struct Stmt {
  enum class Kind { Def, TupleDef, Return, For, Check };
  Kind kind;
  Loc loc;
  std::vector<std::string> targets;
  std::vector<Loc> targetLocs;
  bool hasIndices = false;
  /// Left-hand-side indices; std::nullopt is `:`.
  std::vector<std::optional<std::string>> lhsIndices;
  std::vector<Loc> lhsIndexLocs;
  /// Left-hand-side indices' size bounds (`ones[k < K] = 1`, for an index
  /// no subscript on the right gives a range); null where none is written.
  std::vector<std::unique_ptr<Expr>> lhsBounds;
  /// The right-hand side(s); For: the bounds lo, hi (targets[0] is the
  /// loop variable).
  std::vector<std::unique_ptr<Expr>> values;
  /// For: the loop body.
  std::vector<Stmt> body;
  /// Check: the condition as written.
  std::string text;
  /// Lines printed as `#` comments before the statement by printSource
  /// (what `mlxc derive` says a line comes from); the parser leaves it
  /// empty.
  std::string comment;
};

/// Calls `f` on each statement of `stmts`, loop bodies included (a loop
/// before its body).
template <typename F> void forEachStmt(const std::vector<Stmt> &stmts, F &&f) {
  for (const Stmt &s : stmts) {
    f(s);
    forEachStmt(s.body, f);
  }
}

struct Function {
  Loc loc;
  std::string name;
  std::vector<Param> params;
  std::vector<TypeSpec> results;
  std::vector<Stmt> body;
  /// True when some parameter has type `[...]`.
  bool isShapePolymorphic() const {
    for (const Param &p : params)
      if (p.type.isAnyShape())
        return true;
    return false;
  }
};

struct Import {
  Loc loc;
  std::string name;
};

/// One .mlx file.
struct Module {
  std::string path;
  std::vector<Import> imports;
  std::vector<std::unique_ptr<Function>> functions;
};

} // namespace mlx::ast

#endif // MLX_FRONTEND_AST_H
