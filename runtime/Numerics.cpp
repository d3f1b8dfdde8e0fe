//===- Numerics.cpp - reports from --check-numerics code --------*- C++ -*-===//
#include "runtime/Numerics.h"

namespace {
thread_local std::optional<mlx::rt::NumericsReport> firstReport;
} // namespace

extern "C" void mlx_report_nonfinite(int64_t id, int32_t kind) {
  if (!firstReport)
    firstReport = mlx::rt::NumericsReport{id, kind == 2};
}

std::optional<mlx::rt::NumericsReport> mlx::rt::takeNumericsReport() {
  std::optional<NumericsReport> report = firstReport;
  firstReport.reset();
  return report;
}
