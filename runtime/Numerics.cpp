//===- Numerics.cpp - reports from --check-numerics code --------*- C++ -*-===//
#include "runtime/Numerics.h"

#include <mutex>

namespace {
/// The first reports: a calling thread's own (inside a CallReports scope),
/// and one slot for every other thread (the OpenMP workers of a parallel
/// loop, which do not know the call they work for).
struct Reports {
  std::optional<mlx::rt::NumericsReport> numerics;
  std::optional<mlx::rt::BoundsReport> bounds;
};
thread_local Reports ownReports;
thread_local int callScopes = 0;
std::mutex sharedMutex;
Reports sharedReports;
thread_local std::optional<std::string> firstCallError;

template <typename T>
void keep(std::optional<T> Reports::*slot, const T &report) {
  if (callScopes > 0) {
    if (!(ownReports.*slot))
      ownReports.*slot = report;
    return;
  }
  std::lock_guard<std::mutex> lock(sharedMutex);
  if (!(sharedReports.*slot))
    sharedReports.*slot = report;
}

template <typename T> std::optional<T> take(std::optional<T> Reports::*slot) {
  std::optional<T> report;
  std::swap(report, ownReports.*slot);
  std::lock_guard<std::mutex> lock(sharedMutex);
  if (!report)
    std::swap(report, sharedReports.*slot);
  return report;
}
} // namespace

mlx::rt::CallReports::CallReports() { ++callScopes; }
mlx::rt::CallReports::~CallReports() { --callScopes; }

extern "C" void mlx_report_nonfinite(int64_t id, int32_t kind) {
  keep(&Reports::numerics, mlx::rt::NumericsReport{id, kind == 2});
}

extern "C" void mlx_report_out_of_bounds(int64_t id, int64_t index,
                                         int64_t size) {
  keep(&Reports::bounds, mlx::rt::BoundsReport{id, index, size});
}

std::optional<mlx::rt::NumericsReport> mlx::rt::takeNumericsReport() {
  return take(&Reports::numerics);
}

std::optional<mlx::rt::BoundsReport> mlx::rt::takeBoundsReport() {
  return take(&Reports::bounds);
}

std::string mlx::rt::outOfRangeMessage(const BoundsReport &report,
                                       int64_t dim, const std::string &tensor,
                                       const std::string &sizeName) {
  std::string size = std::to_string(report.size);
  return "index " + std::to_string(report.index) +
         " is out of range for dimension " + std::to_string(dim) + " of '" +
         tensor + "' (size " +
         (sizeName == size ? size : sizeName + " = " + size) + ")";
}

void mlx::rt::reportCallError(std::string message) {
  if (!firstCallError)
    firstCallError = std::move(message);
}

std::optional<std::string> mlx::rt::takeCallError() {
  std::optional<std::string> error;
  std::swap(error, firstCallError);
  return error;
}
