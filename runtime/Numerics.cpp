//===- Numerics.cpp - reports from --check-numerics code --------*- C++ -*-===//
#include "runtime/Numerics.h"

namespace {
thread_local std::optional<mlx::rt::NumericsReport> firstReport;
thread_local std::optional<mlx::rt::BoundsReport> firstBoundsReport;
thread_local std::optional<std::string> firstCallError;

template <typename T> std::optional<T> take(std::optional<T> &slot) {
  std::optional<T> report = slot;
  slot.reset();
  return report;
}
} // namespace

extern "C" void mlx_report_nonfinite(int64_t id, int32_t kind) {
  if (!firstReport)
    firstReport = mlx::rt::NumericsReport{id, kind == 2};
}

extern "C" void mlx_report_out_of_bounds(int64_t id, int64_t index,
                                         int64_t size) {
  if (!firstBoundsReport)
    firstBoundsReport = mlx::rt::BoundsReport{id, index, size};
}

std::optional<mlx::rt::NumericsReport> mlx::rt::takeNumericsReport() {
  return take(firstReport);
}

std::optional<mlx::rt::BoundsReport> mlx::rt::takeBoundsReport() {
  return take(firstBoundsReport);
}

void mlx::rt::reportCallError(std::string message) {
  if (!firstCallError)
    firstCallError = std::move(message);
}

std::optional<std::string> mlx::rt::takeCallError() {
  return take(firstCallError);
}
