//===- Explain.h - what an explain page shows, gathered --------*- C++ -*-===//
//
// A traced call (shared by `mlxc trace` and `mlxc explain`) and the runs of
// its training loop for the page (tools/mlxc/ExplainPage.h).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_TOOLS_MLXC_EXPLAIN_H
#define MLX_TOOLS_MLXC_EXPLAIN_H

#include "session/Session.h"
#include "tools/mlxc/ExplainPage.h"

namespace mlx {

/// A value `mlxc trace` shows: the source line that made it (0: none).
struct TracedValue {
  int64_t line;
  std::string name;
  rt::Tensor value;
};

/// A traced call: every top-level statement's value, the results and the
/// --grad gradients, with the function's source lines.
struct Trace {
  const ast::Function *function = nullptr;
  ExportRequest request{nullptr};
  std::vector<rt::Tensor> args;
  std::string source;
  llvm::SmallVector<llvm::StringRef> lines;
  std::vector<TracedValue> statements, results, gradients;
};

/// Adds the runs of `trace.function`'s training loop to `data`: `for s in
/// 0..P` over an integer parameter stepping along grad(F, x)(…) times a
/// float parameter (the rate), F a function of the same file called on the
/// returned value and parameters. One run per rate (`rates`, by default the
/// given one halved, as given, doubled and quadrupled), each step count
/// 0..P (at most 200) a call; the loss surface for one or two parameters.
/// Nothing for a function without one, unless `rates` asks for it (an
/// error then).
llvm::Error addTraining(Session &session, const Trace &trace,
                        llvm::ArrayRef<double> rates,
                        const CompileOptions &options, ExplainData &data);

} // namespace mlx

#endif // MLX_TOOLS_MLXC_EXPLAIN_H
