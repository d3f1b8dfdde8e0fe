// mlx-cpu-divided-sums: Σ_r p / c with c free of the summed dims becomes
// Σ_r p and an element-wise epilogue init + T / c (kept: init where the sum
// is empty). It runs after mlx-cpu-fuse-rows, inside the blocks of rows.
// Numbers: test/Integration/row-means.test and the layer_norm fixtures.
// RUN: %mlx-opt %s --mlx-cpu-divided-sums | FileCheck %s
// A mask is mlx-cpu-masked-sums' (before the contractions are formed):
// RUN: %mlx-opt %s --mlx-cpu-masked-sums | FileCheck %s --check-prefix=MASKS
// MASKS-LABEL: func.func @row_mean
// MASKS: arith.divf
// MASKS: arith.addf
// MASKS-NOT: linalg.generic
// MASKS: return
#rows = affine_map<(i, d) -> (i, d)>
#row = affine_map<(i, d) -> (i)>

// A divisor the summed dims do not change leaves the sum too: a row mean
// Σ_d x[i, d] / D becomes (Σ_d x[i, d]) / D, one division per row, not per
// element; where the sum is empty (D = 0) the epilogue keeps the init (0,
// as the sum of no terms is) rather than 0 / 0.
// CHECK-LABEL: func.func @row_mean
// CHECK: %[[NONEMPTY:.*]] = arith.cmpi ne, %{{.*}}, %{{.*}} : index
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]}
// CHECK-NOT: arith.divf
// CHECK: arith.addf
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel"]} ins(%[[SUM]] : {{.*}}) outs(%arg1 : {{.*}})
// CHECK: ^bb0(%[[T:.*]]: f32, %[[INIT:.*]]: f32):
// CHECK: %[[Q:.*]] = arith.divf %[[T]], %{{.*}} : f32
// CHECK: %[[OUT:.*]] = arith.addf %[[INIT]], %[[Q]] : f32
// CHECK: arith.select %[[NONEMPTY]], %[[OUT]], %[[INIT]] : f32
func.func @row_mean(%x: tensor<?x?xf32>, %init: tensor<?xf32>) -> tensor<?xf32> {
  %c1 = arith.constant 1 : index
  %d = tensor.dim %x, %c1 : tensor<?x?xf32>
  %r = linalg.generic {indexing_maps = [#rows, #row], iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<?x?xf32>) outs(%init : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %di = arith.index_cast %d : index to i64
    %df = arith.sitofp %di : i64 to f32
    %q = arith.divf %a, %df : f32
    %n = arith.addf %acc, %q fastmath<reassoc> : f32
    linalg.yield %n : f32
  } -> tensor<?xf32>
  return %r : tensor<?xf32>
}

// A divisor that varies with the summed index stays inside.
// CHECK-LABEL: func.func @divisor_on_summed_dim
// CHECK: linalg.generic
// CHECK: arith.divf
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @divisor_on_summed_dim(%x: tensor<?x?xf32>, %init: tensor<?xf32>) -> tensor<?xf32> {
  %r = linalg.generic {indexing_maps = [#rows, #row], iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<?x?xf32>) outs(%init : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %d = linalg.index 1 : index
    %di = arith.index_cast %d : index to i64
    %df = arith.sitofp %di : i64 to f32
    %q = arith.divf %a, %df : f32
    %n = arith.addf %acc, %q : f32
    linalg.yield %n : f32
  } -> tensor<?xf32>
  return %r : tensor<?xf32>
}

// A scaled product of two inputs (attention's Σ_d Q[i, d]·K[j, d] / √D)
// stays: mlx-cpu-contractions divides Q as it packs it, once per element
// of Q, where dividing the sum would divide each of the T² scores.
#q = affine_map<(i, j, d) -> (i, d)>
#kt = affine_map<(i, j, d) -> (j, d)>
#s = affine_map<(i, j, d) -> (i, j)>
// CHECK-LABEL: func.func @scaled_product
// CHECK: linalg.generic
// CHECK: arith.mulf
// CHECK: arith.divf
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @scaled_product(%Q: tensor<?x?xf32>, %K: tensor<?x?xf32>, %init: tensor<?x?xf32>, %scale: f32) -> tensor<?x?xf32> {
  %r = linalg.generic {indexing_maps = [#q, #kt, #s], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%Q, %K : tensor<?x?xf32>, tensor<?x?xf32>) outs(%init : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %q = arith.divf %p, %scale : f32
    %n = arith.addf %acc, %q : f32
    linalg.yield %n : f32
  } -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

// A masked sum is not this pass's.
// CHECK-LABEL: func.func @masked
// CHECK: linalg.generic
// CHECK: arith.select
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @masked(%x: tensor<?x?xf32>, %init: tensor<?xf32>, %n: index) -> tensor<?xf32> {
  %zero = arith.constant 0.0 : f32
  %r = linalg.generic {indexing_maps = [#rows, #row], iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<?x?xf32>) outs(%init : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %i = linalg.index 0 : index
    %keep = arith.cmpi ult, %i, %n : index
    %t = arith.select %keep, %a, %zero : f32
    %s = arith.addf %acc, %t : f32
    linalg.yield %s : f32
  } -> tensor<?xf32>
  return %r : tensor<?xf32>
}
