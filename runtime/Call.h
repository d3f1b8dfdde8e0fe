//===- Call.h - calling compiled functions ----------------------*- C++ -*-===//
//
// The signature of an exported function (parameter names, dtypes and
// dimensions; result names, dtypes and ranks) and the check of arguments
// against it. Executables (runtime/Executable.h) are called with checked
// arguments.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_RUNTIME_CALL_H
#define MLX_RUNTIME_CALL_H

#include "runtime/Tensor.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlx::rt {

/// Arithmetic of dimension symbols (`H + M`, `4 * H`): `op` '+', '-', '*'
/// or '/' (floor) of two formulas, or a leaf (op 0): a symbol, or `value`.
struct DimFormula {
  char op = 0;
  int64_t value = 0;
  std::string symbol;
  std::shared_ptr<const DimFormula> lhs, rhs;
  /// Its value with `sizes` for the symbols; nullopt where one is missing.
  std::optional<int64_t>
  evaluate(const std::map<std::string, int64_t> &sizes) const;
};

/// One dimension of a parameter type: a literal size, a symbol (`N`), or
/// a formula of symbols bound by other dimensions (`symbol` is its text).
struct DimSpec {
  int64_t size = -1;  ///< >= 0 for a literal dimension.
  std::string symbol; ///< The symbol's name (or the formula's text).
  std::shared_ptr<const DimFormula> formula;
};

/// A parameter: its name, dtype and dimensions.
struct ParamSpec {
  std::string name;
  DType dtype = DType::f32;
  std::vector<DimSpec> dims;
  /// A static parameter: the value the function was compiled for (a call
  /// must pass the same).
  std::optional<int64_t> staticValue;
};

/// A result: a display name, dtype and rank.
struct ResultSpec {
  std::string name;
  DType dtype = DType::f32;
  int64_t rank = 0;
  /// For the traced values of a trace entry: the source line that made it.
  int64_t line = 0;
};

/// The signature of an exported function.
struct Signature {
  std::string name;
  std::vector<ParamSpec> params;
  std::vector<ResultSpec> results;
};

/// Checks `args` against `sig`: count, dtype, rank, literal sizes, and that
/// every use of a symbolic dimension agrees. Makes each argument contiguous.
/// On failure returns false with a message naming the argument and the dim.
bool checkArguments(const Signature &sig, std::vector<Tensor> &args,
                    std::string &error);

} // namespace mlx::rt

#endif // MLX_RUNTIME_CALL_H
