//===- Pipelines.cpp - named pass pipelines ---------------------*- C++ -*-===//
//
// The mlx-level pipelines, shared by mlxc (--stage ladder) and mlx-opt.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "dialects/mlx/Adjoints.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void mlx::registerMlxLevelDialects(DialectRegistry &registry) {
  registry.insert<mlx::MlxDialect, func::FuncDialect, arith::ArithDialect,
                  math::MathDialect, tensor::TensorDialect,
                  linalg::LinalgDialect, scf::SCFDialect>();
  func::registerInlinerExtension(registry);
  mlx::registerAdjointModels(registry);
}

void mlx::buildMlxSimplifyPipeline(OpPassManager &pm) {
  // Calls survive the front end so that later passes can see them; inline
  // them here (a callee is kept only while something still calls it).
  pm.addPass(createInlinerPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Imported and instantiated helpers are private: drop the unused ones.
  pm.addPass(createSymbolDCEPass());
}

void mlx::buildMlxGradPipeline(OpPassManager &pm,
                               unsigned loopCheckpointInterval) {
  // Gradients first, on functions that still have their calls: each callee
  // is differentiated once.
  pm.addPass(createAutodiffPass({loopCheckpointInterval}));
  buildMlxSimplifyPipeline(pm);
}

void mlx::buildMlxToLinalgPipeline(OpPassManager &pm, bool checkNumerics,
                                   unsigned loopCheckpointInterval,
                                   bool onlineSoftmax) {
  buildMlxGradPipeline(pm, loopCheckpointInterval);
  // Rows mapped over indices become generics over all of them; the lifted
  // callees go, and CSE merges what lifting repeated.
  pm.addPass(createBatchMapCallsPass());
  buildMlxSimplifyPipeline(pm);
  if (onlineSoftmax)
    pm.addPass(createOnlineSoftmaxPass());
  // Checks go on the inlined ops, so each reports the user's equation.
  if (checkNumerics)
    pm.addPass(createCheckNumericsPass());
  pm.addPass(createLowerMlxToLinalgPass());
  // map_call lowering leaves calls inside loops: inline those too.
  pm.addPass(createInlinerPass());
  pm.addPass(createSymbolDCEPass());
  // Merge producer/consumer elementwise generics into one loop nest.
  pm.addNestedPass<func::FuncOp>(createFuseElementwisePass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void mlx::registerMlxPipelines() {
  PassPipelineRegistration<>("mlx-simplify",
                             "inline, fold and CSE at the mlx level",
                             buildMlxSimplifyPipeline);
  PassPipelineRegistration<>(
      "mlx-grad", "expand gradients, then mlx-simplify",
      [](OpPassManager &pm) { buildMlxGradPipeline(pm); });
  PassPipelineRegistration<>(
      "mlx-to-linalg", "lower mlx to linalg on tensors, fused",
      [](OpPassManager &pm) { buildMlxToLinalgPipeline(pm); });
}
