// mlx-lower-to-linalg: a float sum's (or product's) combining add may be
// reassociated, so that LLVM vectorizes it with partial accumulators; the
// summand's own arithmetic keeps its exact order.
// RUN: %mlx-opt %s --mlx-lower-to-linalg | FileCheck %s

// CHECK-LABEL: func.func @row_sums
// CHECK: linalg.generic
// CHECK: %[[P:.*]] = arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK: arith.addf %{{.*}}, %[[P]] fastmath<reassoc> : f32
func.func @row_sums(%A: tensor<?x?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %A, %c0 : tensor<?x?xf32>
  %n = tensor.dim %A, %c1 : tensor<?x?xf32>
  %y = mlx.generic ins(%A : tensor<?x?xf32>) sizes(%m, %n) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32> {
  ^bb0(%a: f32):
    %p = arith.mulf %a, %a : f32
    mlx.yield %p : f32
  }
  return %y : tensor<?xf32>
}
