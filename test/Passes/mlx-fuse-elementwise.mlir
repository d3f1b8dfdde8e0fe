// mlx-fuse-elementwise: a single-use element-wise producer is fused into a
// consumer that reads each of its elements once, but not into one that
// reads them repeatedly (a contraction), which would recompute it.
// RUN: %mlx-opt %s --mlx-fuse-elementwise | FileCheck %s

#id = affine_map<(d0, d1) -> (d0, d1)>
#ij = affine_map<(i, e, j) -> (i, j)>
#je = affine_map<(i, e, j) -> (j, e)>
#ie = affine_map<(i, e, j) -> (i, e)>

// exp(s) feeds o[i, e] = Σ_j P[i, j] V[j, e]: P stays a tensor, exp is
// computed T×T times, not T×T×E.
// CHECK-LABEL: func.func @contraction
// CHECK: %[[P:.*]] = linalg.generic
// CHECK: math.exp
// CHECK: linalg.generic {{.*}} ins(%[[P]], %{{.*}} :
// CHECK-NOT: math.exp
// CHECK: return
func.func @contraction(%s: tensor<8x8xf32>, %v: tensor<8x4xf32>, %init: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %e = tensor.empty() : tensor<8x8xf32>
  %p = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%s : tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%a: f32, %out: f32):
    %x = math.exp %a : f32
    linalg.yield %x : f32
  } -> tensor<8x8xf32>
  %o = linalg.generic {indexing_maps = [#ij, #je, #ie], iterator_types = ["parallel", "parallel", "reduction"]} ins(%p, %v : tensor<8x8xf32>, tensor<8x4xf32>) outs(%init : tensor<8x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<8x4xf32>
  return %o : tensor<8x4xf32>
}

// exp(s) feeds an element-wise consumer: one loop nest.
// CHECK-LABEL: func.func @elementwise
// CHECK: linalg.generic
// CHECK: math.exp
// CHECK-NEXT: arith.addf
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @elementwise(%s: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %e = tensor.empty() : tensor<8x8xf32>
  %p = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%s : tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%a: f32, %out: f32):
    %x = math.exp %a : f32
    linalg.yield %x : f32
  } -> tensor<8x8xf32>
  %q = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%p, %s : tensor<8x8xf32>, tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %x = arith.addf %a, %b : f32
    linalg.yield %x : f32
  } -> tensor<8x8xf32>
  return %q : tensor<8x8xf32>
}
