//===- Passes.td - mlx passes ------------------------------*- tablegen -*-===//
#ifndef MLX_PASSES_TD
#define MLX_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerMlxToLinalgPass : Pass<"mlx-lower-to-linalg", "ModuleOp"> {
  let summary = "lower mlx ops to linalg, tensor, scf and func";
  let description = [{
    `mlx.generic` becomes `linalg.generic` on a `tensor.empty` destination
    (filled with the combiner's identity when it reduces); `mlx.index`
    becomes `linalg.index`. `mlx.map_call` becomes a loop nest over the
    mapped indices that extracts the argument slices, calls the callee and
    inserts its result. Run the inliner afterwards to inline those calls.
  }];
  let dependentDialects = ["linalg::LinalgDialect", "tensor::TensorDialect",
                           "scf::SCFDialect", "func::FuncDialect",
                           "arith::ArithDialect"];
}

#endif // MLX_PASSES_TD
