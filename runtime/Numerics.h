//===- Numerics.h - reports from --check-numerics code ----------*- C++ -*-===//
//
// Code compiled with the mlx-check-numerics pass calls
// mlx_report_nonfinite(id, kind) when an op's result holds a NaN (kind 2) or
// an infinity (kind 1). The first report of a thread is kept for the driver,
// which maps `id` back to the op's source location.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_RUNTIME_NUMERICS_H
#define MLX_RUNTIME_NUMERICS_H

#include <cstdint>
#include <optional>

extern "C" {
/// Called by checked code; keeps the first report of the calling thread.
void mlx_report_nonfinite(int64_t id, int32_t kind);
}

namespace mlx::rt {

/// The first non-finite value reported since the last call.
struct NumericsReport {
  int64_t id;
  bool nan; ///< NaN, else an infinity.
};

/// Returns and clears the calling thread's first report.
std::optional<NumericsReport> takeNumericsReport();

} // namespace mlx::rt

#endif // MLX_RUNTIME_NUMERICS_H
