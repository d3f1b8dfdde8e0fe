//===- mlx-opt.cpp - the mlx dialect's opt tool -----------------*- C++ -*-===//
//
// mlir-opt with the mlx dialect, its passes and pipelines: what the lit
// tests of dialects/ and passes/ run.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"
#include "passes/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::mlx::registerMlxLevelDialects(registry);
  mlir::mlx::registerCpuTargetDialects(registry);
  mlir::mlx::registerMlxPasses();
  mlir::mlx::registerMlxPipelines();
  mlir::mlx::registerCpuPipelines();
  // Only the upstream passes our pipelines use.
  mlir::registerTransformsPasses();
  mlir::registerLinalgPasses();
  mlir::bufferization::registerBufferizationPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "mlx optimizer driver\n", registry));
}
