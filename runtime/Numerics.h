//===- Numerics.h - reports from --check-numerics code ----------*- C++ -*-===//
//
// Code compiled with the mlx-check-numerics pass calls
// mlx_report_nonfinite(id, kind) when an op's result holds a NaN (kind 2) or
// an infinity (kind 1); any code calls mlx_report_out_of_bounds on a
// constant subscript out of range of a symbolic dimension. The first report
// is kept for the driver, which maps `id` back to the source: the calling
// thread's own inside a CallReports scope, else (an OpenMP worker's) in a
// slot every thread shares.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_RUNTIME_NUMERICS_H
#define MLX_RUNTIME_NUMERICS_H

#include <cstdint>
#include <optional>
#include <string>

extern "C" {
/// Called by checked code; keeps the first report of the calling thread.
void mlx_report_nonfinite(int64_t id, int32_t kind);
/// Called by code with a constant subscript `index` of a dimension of size
/// `size` <= index (mlx.check_index `id`); keeps the first report.
void mlx_report_out_of_bounds(int64_t id, int64_t index, int64_t size);
}

namespace mlx::rt {

/// The first non-finite value reported since the last call.
struct NumericsReport {
  int64_t id;
  bool nan; ///< NaN, else an infinity.
};

/// While one lives, the calling thread's reports are its own; reports of
/// other threads (the workers of the call's parallel loops) go to the
/// shared slot, which a take reads when the thread has none of its own.
/// Concurrent calls share that slot: a worker's report reaches one of them.
struct CallReports {
  CallReports();
  ~CallReports();
  CallReports(const CallReports &) = delete;
  CallReports &operator=(const CallReports &) = delete;
};

/// Returns and clears the calling thread's first report, else the shared
/// slot's.
std::optional<NumericsReport> takeNumericsReport();

/// An out-of-range constant subscript met at run time.
struct BoundsReport {
  int64_t id; ///< of the mlx.check_index
  int64_t index, size;
};

/// Returns and clears the calling thread's first bounds report, else the
/// shared slot's.
std::optional<BoundsReport> takeBoundsReport();

/// The message of a bounds report on dimension `dim` of `tensor`, whose
/// size is named `sizeName` in the source (a symbol, or the number itself
/// for a static size): "index 7 is out of range for dimension 0 of 'x'
/// (size N = 5)", "(size 5)" where the name is that number.
std::string outOfRangeMessage(const BoundsReport &report, int64_t dim,
                              const std::string &tensor,
                              const std::string &sizeName);

/// Keeps the calling thread's first error of a call that cannot finish (a
/// device that fails, memory it cannot allocate); the driver reports it.
void reportCallError(std::string message);

/// Returns and clears the calling thread's first call error.
std::optional<std::string> takeCallError();

} // namespace mlx::rt

#endif // MLX_RUNTIME_NUMERICS_H
