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

#include <functional>
#include <iosfwd>
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

/// Calls compiled code through its packed entry point `entry`
/// (`mlx_call_NAME(void **args)`: args[0] the results' descriptors, then
/// one strided-memref descriptor per argument) on arguments checked against
/// `sig`: `args[i].data()` is what the code sees. Results are views of the
/// allocations the code made, each freed with `freeFn` once no view holds
/// it. `invoke`, where given, makes the call (`invoke(entry, packed)`) and
/// says whether the code ran to its end; when it did not, there are no
/// results.
std::vector<Tensor>
callPacked(void (*entry)(void **), const Signature &sig,
           const std::vector<Tensor> &args, void (*freeFn)(void *),
           const std::function<bool(void (*)(void **), void **)> &invoke);

/// Writes `sig` as lines of text that readSignature reads back:
/// `function NAME`, then `param NAME DTYPE [=VALUE] DIM...` (a DIM: a
/// size, a symbol, or a formula in prefix form such as `(+ H M)`) and
/// `result NAME DTYPE RANK`, then `end`.
void writeSignature(std::ostream &os, const Signature &sig);

/// Reads what writeSignature wrote, from the line after `function NAME`
/// (`name` is NAME) to `end`; false with `error` set on malformed text.
bool readSignature(std::istream &is, const std::string &name, Signature &sig,
                   std::string &error);

} // namespace mlx::rt

#endif // MLX_RUNTIME_CALL_H
