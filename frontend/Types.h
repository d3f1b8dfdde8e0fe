//===- Types.h - dtypes, symbolic shapes and instance names -----*- C++ -*-===//
//
// What the front end knows about a value before any IR exists: its element
// type (a dtype, or a literal or index whose dtype the context decides, as
// in JAX's weak types) and its symbolic shape (dimensions that are
// constants or symbols such as `N`, holding no IR values, so they can be
// compared, unified and printed ahead of generation). Also the naming of
// function instances and export requests. The float-type rule itself is
// rt::instanceDType (runtime/Tensor.h), shared with the runtime's literals.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_TYPES_H
#define MLX_FRONTEND_TYPES_H

#include "frontend/AST.h"
#include "runtime/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlx {

/// A dimension size: a constant, a symbol (`N`; `...0` for the dims a
/// `[...]` parameter stands for), or arithmetic of those (`H + M`,
/// `N / block`: `op` and its operands, with `symbol` its canonical text).
struct SDim {
  std::optional<int64_t> constant;
  std::string symbol;
  char op = 0; ///< '+', '-', '*' or '/' (floor) for arithmetic.
  std::shared_ptr<const SDim> lhs, rhs;

  static SDim of(int64_t size) { return {size, ""}; }
  static SDim named(std::string symbol) {
    return {std::nullopt, std::move(symbol)};
  }
  /// `a op b`, folded where it can be (constants, x + 0, x · 1, x / 1);
  /// nullopt for a division by zero.
  static std::optional<SDim> arith(char op, const SDim &a, const SDim &b);
  bool isArith() const { return op != 0; }
  std::string str() const {
    return constant ? std::to_string(*constant) : symbol;
  }
  /// Equal sizes for every value of their symbols, as far as sums,
  /// differences and constant factors show: `M + H` is `H + M`,
  /// `(H + 2) - 3 + 1` is `H`, `(2 * N) / 2` is `N`; a product of two
  /// sizes or an inexact division is compared as a term (its operands'
  /// forms, in either order for a product).
  bool sameAs(const SDim &other) const;
  /// `*this <= other` for every value of the symbols, each a size (≥ 0)
  /// and those in `atLeastOne` ≥ 1, as far as the sums show: `other −
  /// *this` as a linear form must have no negative coefficient and no
  /// term but plain symbols (`i + 2·H` ≤ `4·H − 1` when i ≤ H − 1).
  bool provablyAtMost(const SDim &other,
                      const std::vector<std::string> &atLeastOne = {}) const;
};
using Shape = std::vector<SDim>;

/// `[N, 3]`.
std::string shapeStr(const Shape &shape);
bool sameShape(const Shape &a, const Shape &b);

/// The element type of an expression: a concrete dtype, or a literal/index
/// whose dtype the context decides.
struct EType {
  enum Kind { Concrete, LitInt, LitFloat, Index, Error } kind = Error;
  rt::DType dtype = rt::DType::f32;

  static EType of(rt::DType d) { return {Concrete, d}; }
  static EType lit(Kind k) { return {k, rt::DType::f32}; }
  bool isFloatLike() const {
    return (kind == Concrete && rt::isFloat(dtype)) || kind == LitFloat;
  }
  bool isBool() const {
    return kind == Concrete && dtype == rt::DType::boolean;
  }
  /// The dtype used when nothing else decides: `preferred` for a literal
  /// or index that can take it, else `defaultFloat` for a float literal and
  /// i64 for an integer one.
  rt::DType resolve(std::optional<rt::DType> preferred = std::nullopt,
                    rt::DType defaultFloat = rt::DType::f32) const;
  std::string str() const;
};

/// The element type of a binary operation's result: concrete dtypes must
/// agree; a literal or index takes the other side's dtype (a float literal
/// only a float one; bool takes nothing). On a mismatch returns an Error
/// type and sets `mismatch` to "dtype mismatch in WHAT: A and B".
EType unifyTypes(EType a, EType b, llvm::StringRef what, std::string &mismatch);

/// The float-type rule of a call (with rt::instanceDType, what a declared
/// `f32` then stands for): a function runs in f64 as soon as an f64 value
/// is passed for a parameter declared f32, in f32 when an f32 value is, and
/// otherwise (no float parameter, or only literals passed to them) in the
/// caller's float type: `nf4_levels()` called from an f64 instance is f64.
/// `argumentDTypes` holds each argument's dtype where known (nullopt: a
/// literal, which converts). Sets `firstF64` to that parameter's index when
/// f64.
rt::DType callFloatType(const ast::Function &fn,
                        llvm::ArrayRef<std::optional<rt::DType>> argumentDTypes,
                        rt::DType callerFloatType = rt::DType::f32,
                        size_t *firstF64 = nullptr);

/// The values of a function instance's static parameters, by name.
using StaticValues = std::map<std::string, int64_t>;

/// The size a type's dimension expression stands for, its names given by
/// `symbol` (nullopt: not bound, after setting `error`): constants fold,
/// the rest is symbolic arithmetic. A negative constant or a division by
/// zero is an error too.
std::optional<SDim>
dimOf(const ast::DimExpr &dim,
      llvm::function_ref<std::optional<SDim>(const std::string &)> symbol,
      std::string &error);

/// The value of a dimension expression whose names all have constant
/// values (`symbol` gives them; nullopt: not a constant). Division is
/// floor division; by zero it sets `error` and gives nullopt.
std::optional<int64_t> evaluateDim(
    const ast::DimExpr &dim,
    llvm::function_ref<std::optional<int64_t>(const std::string &)> symbol,
    std::string &error);

/// The exported name of a function instance: NAME, plus `_r<rank>` for a
/// `[...]` function, `_f64` when `f32` stands for f64, and `_<param><value>`
/// per static parameter (`m` for a minus sign).
std::string instanceName(const ast::Function &fn, int64_t anyShapeRank,
                         rt::DType floatType = rt::DType::f32,
                         const StaticValues &statics = {});

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
  /// The values of the function's static parameters.
  StaticValues statics = {};
  /// Export `<instance>_trace` instead: the function's results followed by
  /// the value of each top-level statement (`mlxc trace`; no gradients).
  bool trace = false;
};

/// The exported name of a request: its instance name, and for a gradient
/// `_grad` and the differentiated parameters, `_`-separated in the order
/// asked (`bce_loss_grad_w_b`); a parameter whose name is not an ASCII
/// identifier is written `p<index>`.
std::string exportName(const ExportRequest &request);

} // namespace mlx

#endif // MLX_FRONTEND_TYPES_H
