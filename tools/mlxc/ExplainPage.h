//===- ExplainPage.h - the HTML page of `mlxc explain` ----------*- C++ -*-===//
//
// One self-contained HTML page (no network, no external scripts) that
// animates a traced call: each equation's tensor as a grid filling cell by
// cell, and for a training loop the loss curve and the parameters' path
// over the loss surface, for a few learning rates computed beforehand. The
// numbers come from compiled code (the trace and re-runs of the function),
// the page only shows them.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_TOOLS_MLXC_EXPLAINPAGE_H
#define MLX_TOOLS_MLXC_EXPLAINPAGE_H

#include "runtime/Tensor.h"

#include <string>
#include <vector>

namespace mlx {

/// What an explain page shows.
struct ExplainData {
  /// A tensor with the equation that made it.
  struct Value {
    std::string name;
    /// The source line (empty for results and gradients) and its number.
    std::string equation;
    int64_t line = 0;
    rt::Tensor value;
  };
  /// One learning rate's run of a training loop: the parameters after each
  /// number of steps 0..S and the loss there.
  struct Run {
    double rate = 0;
    std::vector<std::vector<double>> path;
    std::vector<double> loss;
  };
  std::string function, location;
  std::vector<Value> statements, results, gradients;

  /// A training loop (empty `runs`: none): `loss` (a function of the
  /// parameters `parameter`) descended with steps of `rate` times its
  /// gradient, `steps` of them.
  std::string parameter, rate, loss, steps;
  std::vector<Run> runs;
  /// The loss over the parameters' range: for one parameter the loss at
  /// each of `surfaceX`; for two, on the grid `surfaceX` × `surfaceY`
  /// (row-major, y outer).
  std::vector<double> surfaceX, surfaceY, surface;
};

/// The page's HTML.
std::string renderExplainPage(const ExplainData &data);

} // namespace mlx

#endif // MLX_TOOLS_MLXC_EXPLAINPAGE_H
