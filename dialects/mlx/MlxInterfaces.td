//===- MlxInterfaces.td - what an op says about itself ------*- tablegen -*-===//
//
// Differentiation as an op's own property: an op in a function body states
// its vector-Jacobian product (DifferentiableOpInterface), an op in an
// mlx.generic body its scalar derivative (ScalarDifferentiableOpInterface).
// mlx-autodiff only walks the ops in reverse and asks each one; a new op
// brings its rule with it. Upstream ops (arith, math, func.call,
// tensor.cast) get theirs as external models (dialects/mlx/Adjoints.h).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_INTERFACES_TD
#define MLX_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Mlx_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::mlir::mlx";
  let description = [{
    A tensor-level op that can be differentiated in reverse mode. Given the
    adjoints of its results (`sweep.adjoint(result)`, null where nothing
    flows), the op builds its operands' contributions at the builder's
    insertion point and adds them with `sweep.accumulate`. Callees are
    differentiated through `sweep.vjp`.
  }];
  let methods = [
    InterfaceMethod<[{
        Adds the adjoints of the operands; fails after a diagnostic.
      }], "::llvm::LogicalResult", "buildAdjoints",
      (ins "::mlir::mlx::ReverseSweep &":$sweep)>,
  ];
}

def Mlx_ScalarDifferentiableOpInterface
    : OpInterface<"ScalarDifferentiableOpInterface"> {
  let cppNamespace = "::mlir::mlx";
  let description = [{
    A scalar op of an mlx.generic body with a derivative rule: given the
    adjoint of its (single) result, it adds each operand's contribution
    with `sweep.add` (or `sweep.addWhere` for a contribution that holds
    only under a condition, like a branch of a select). The rule is written
    next to the calculus it implements.
  }];
  let methods = [
    InterfaceMethod<[{
        Adds the contributions of `resultAdjoint` to the operands' adjoints.
      }], "void", "addAdjoints",
      (ins "::mlir::mlx::ScalarSweep &":$sweep,
           "::mlir::Value":$resultAdjoint)>,
  ];
}

#endif // MLX_INTERFACES_TD
