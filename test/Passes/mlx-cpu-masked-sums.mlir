// mlx-cpu-masked-sums: Σ_r (m ? p : 0) with m free of the summed dims
// becomes Σ_r p (a plain generic mlx-cpu-contractions can take) and an
// element-wise epilogue init + (m ? T : 0), m recomputed from the output's
// indices. Numbers: conv2d's gradient fixtures (test/Stdlib/gradients.test,
// against PyTorch) and GradCheck.
// RUN: %mlx-opt %s --mlx-cpu-masked-sums | FileCheck %s

#k = affine_map<(c, u, x, o) -> (o, c, u)>
#g = affine_map<(c, u, x, o) -> (o, x)>
#out = affine_map<(c, u, x, o) -> (c, u, x)>

// A padded conv1d's input gradient before the scatter: dP[c, u, x] =
// Σ_o (0 <= x + u - 1 < W ? K[o, c, u] · G[o, x] : 0).
// CHECK-LABEL: func.func @conv1d_patch_gradient
// CHECK: %[[ZEROS:.*]] = linalg.fill
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%arg0, %arg1 : {{.*}}) outs(%[[ZEROS]] : {{.*}})
// CHECK-NOT: arith.select
// CHECK-NOT: linalg.index
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[SUM]] : {{.*}}) outs(%arg2 : {{.*}})
// CHECK: ^bb0(%[[T:.*]]: f32, %[[INIT:.*]]: f32):
// CHECK-DAG: linalg.index 1 : index
// CHECK-DAG: linalg.index 2 : index
// CHECK: %[[KEPT:.*]] = arith.select %{{.*}}, %[[T]], %{{.*}} : f32
// CHECK: arith.addf %[[INIT]], %[[KEPT]] : f32
func.func @conv1d_patch_gradient(%K: tensor<?x?x3xf32>, %G: tensor<?x?xf32>, %init: tensor<?x3x?xf32>) -> tensor<?x3x?xf32> {
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %w = tensor.dim %G, %c1 : tensor<?x?xf32>
  %r = linalg.generic {indexing_maps = [#k, #g, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%K, %G : tensor<?x?x3xf32>, tensor<?x?xf32>) outs(%init : tensor<?x3x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %u = linalg.index 1 : index
    %x = linalg.index 2 : index
    %s = arith.addi %x, %u : index
    %at = arith.subi %s, %c1 : index
    %inside = arith.cmpi ult, %at, %w : index
    %p = arith.mulf %a, %b : f32
    %t = arith.select %inside, %p, %zero : f32
    %n = arith.addf %acc, %t : f32
    linalg.yield %n : f32
  } -> tensor<?x3x?xf32>
  return %r : tensor<?x3x?xf32>
}

// The mask reads the summed index o: it cannot leave the sum.
// CHECK-LABEL: func.func @mask_on_summed_dim
// CHECK: linalg.generic
// CHECK: arith.select
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @mask_on_summed_dim(%K: tensor<?x?x3xf32>, %G: tensor<?x?xf32>, %init: tensor<?x3x?xf32>) -> tensor<?x3x?xf32> {
  %zero = arith.constant 0.0 : f32
  %c4 = arith.constant 4 : index
  %r = linalg.generic {indexing_maps = [#k, #g, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%K, %G : tensor<?x?x3xf32>, tensor<?x?xf32>) outs(%init : tensor<?x3x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %o = linalg.index 3 : index
    %early = arith.cmpi ult, %o, %c4 : index
    %p = arith.mulf %a, %b : f32
    %t = arith.select %early, %p, %zero : f32
    %n = arith.addf %acc, %t : f32
    linalg.yield %n : f32
  } -> tensor<?x3x?xf32>
  return %r : tensor<?x3x?xf32>
}

// The term reads a tensor at a computed subscript: evaluated where the mask
// excludes it, it could read out of range; left as it is.
// CHECK-LABEL: func.func @term_reads_at_computed_subscript
// CHECK: linalg.generic
// CHECK: tensor.extract
// CHECK: arith.select
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @term_reads_at_computed_subscript(%K: tensor<?x?x3xf32>, %v: tensor<?xf32>, %G: tensor<?x?xf32>, %init: tensor<?x3x?xf32>) -> tensor<?x3x?xf32> {
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  %w = tensor.dim %v, %c0 : tensor<?xf32>
  %r = linalg.generic {indexing_maps = [#k, #g, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%K, %G : tensor<?x?x3xf32>, tensor<?x?xf32>) outs(%init : tensor<?x3x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %u = linalg.index 1 : index
    %x = linalg.index 2 : index
    %at = arith.addi %x, %u : index
    %inside = arith.cmpi ult, %at, %w : index
    %e = tensor.extract %v[%at] : tensor<?xf32>
    %p = arith.mulf %a, %e : f32
    %t = arith.select %inside, %p, %zero : f32
    %n = arith.addf %acc, %t : f32
    linalg.yield %n : f32
  } -> tensor<?x3x?xf32>
  return %r : tensor<?x3x?xf32>
}

