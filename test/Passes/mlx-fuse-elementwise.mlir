// mlx-fuse-elementwise: a single-use element-wise producer is fused into a
// consumer that reads each of its elements once, but not into one that
// reads them repeatedly (a contraction), which would recompute it. A
// producer others read too is fused into an element-wise consumer as a
// further output, where those others come after the consumer (AdamW's m
// and v, returned and read by w's update: one pass instead of three).
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

#i = affine_map<(i) -> (i)>
#scalar = affine_map<(i) -> ()>

// m' = b m + g is returned and read by w' = w - m': one op computes both
// (the multiplication once), and the function returns its two results.
// CHECK-LABEL: func.func @further_output
// CHECK: %[[BOTH:.*]]:2 = linalg.generic
// CHECK-COUNT-1: arith.mulf
// CHECK: arith.subf
// CHECK: linalg.yield
// CHECK-NOT: linalg.generic
// CHECK: return %[[BOTH]]#1, %[[BOTH]]#0
func.func @further_output(%w: tensor<?xf32>, %m: tensor<?xf32>, %g: tensor<?xf32>, %b: tensor<f32>) -> (tensor<?xf32>, tensor<?xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %w, %c0 : tensor<?xf32>
  %e = tensor.empty(%n) : tensor<?xf32>
  %m1 = linalg.generic {indexing_maps = [#scalar, #i, #i, #i], iterator_types = ["parallel"]} ins(%b, %m, %g : tensor<f32>, tensor<?xf32>, tensor<?xf32>) outs(%e : tensor<?xf32>) {
  ^bb0(%bb: f32, %mm: f32, %gg: f32, %out: f32):
    %x = arith.mulf %bb, %mm : f32
    %y = arith.addf %x, %gg : f32
    linalg.yield %y : f32
  } -> tensor<?xf32>
  %w1 = linalg.generic {indexing_maps = [#i, #i, #i], iterator_types = ["parallel"]} ins(%w, %m1 : tensor<?xf32>, tensor<?xf32>) outs(%e : tensor<?xf32>) {
  ^bb0(%ww: f32, %mm: f32, %out: f32):
    %z = arith.subf %ww, %mm : f32
    linalg.yield %z : f32
  } -> tensor<?xf32>
  return %w1, %m1 : tensor<?xf32>, tensor<?xf32>
}

// Softmax's shape: exp is read by the row sum, then by the division by that
// sum. Fused into the division, the sum (before it) could not read it:
// three ops stay.
// CHECK-LABEL: func.func @reader_before
// CHECK: math.exp
// CHECK: linalg.generic
// CHECK: arith.addf
// CHECK: linalg.generic
// CHECK-NOT: math.exp
// CHECK: arith.divf
func.func @reader_before(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %e = tensor.empty() : tensor<4x8xf32>
  %z = arith.constant 0.0 : f32
  %s0 = tensor.empty() : tensor<4xf32>
  %sinit = linalg.fill ins(%z : f32) outs(%s0 : tensor<4xf32>) -> tensor<4xf32>
  %p = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%a: f32, %out: f32):
    %v = math.exp %a : f32
    linalg.yield %v : f32
  } -> tensor<4x8xf32>
  %s = linalg.generic {indexing_maps = [#id, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]} ins(%p : tensor<4x8xf32>) outs(%sinit : tensor<4xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<4xf32>
  %q = linalg.generic {indexing_maps = [#id, affine_map<(d0, d1) -> (d0)>, #id], iterator_types = ["parallel", "parallel"]} ins(%p, %s : tensor<4x8xf32>, tensor<4xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %r = arith.divf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<4x8xf32>
  return %q : tensor<4x8xf32>
}
