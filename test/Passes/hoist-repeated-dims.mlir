// Canonicalization of mlx.generic: a reduction whose result repeats along a
// parallel dim (no input reads it, no mlx.index asks for it) is computed
// once over the other dims, then broadcast. y[i, j] = Σ_k x[j, k] does
// N·M·K work; Σ_k x[j, k] once is M·K.
// RUN: %mlx-opt %s --canonicalize | FileCheck %s

// CHECK-LABEL: func.func @repeated
// CHECK: %[[ONCE:.*]] = mlx.generic ins(%arg0 : tensor<?x?xf32>) sizes(%{{.*}}, %{{.*}}) {combiner = #mlx.combiner<add>, indexing_maps = [#[[ID:.*]]], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32>
// CHECK: mlx.generic ins(%[[ONCE]] : tensor<?xf32>) sizes(%{{.*}}, %{{.*}}) {combiner = #mlx.combiner<none>, {{.*}}iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32>
func.func @repeated(%x: tensor<?x?xf32>, %n: index) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %x, %c0 : tensor<?x?xf32>
  %k = tensor.dim %x, %c1 : tensor<?x?xf32>
  %y = mlx.generic ins(%x : tensor<?x?xf32>) sizes(%n, %m, %k) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?x?xf32> {
  ^bb0(%a: f32):
    mlx.yield %a : f32
  }
  return %y : tensor<?x?xf32>
}

// A dim the body asks for (mlx.index) is not repeated: unchanged.
// CHECK-LABEL: func.func @indexed
// CHECK: mlx.generic ins(%arg0 : tensor<?x?xf32>) sizes(%arg1, %{{.*}}, %{{.*}}) {combiner = #mlx.combiner<add>
// CHECK-NOT: mlx.generic
// CHECK: return
func.func @indexed(%x: tensor<?x?xf32>, %n: index) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %x, %c0 : tensor<?x?xf32>
  %k = tensor.dim %x, %c1 : tensor<?x?xf32>
  %y = mlx.generic ins(%x : tensor<?x?xf32>) sizes(%n, %m, %k) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?x?xf32> {
  ^bb0(%a: f32):
    %i = mlx.index 0 : index
    %ii = arith.index_cast %i : index to i64
    %f = arith.sitofp %ii : i64 to f32
    %p = arith.mulf %a, %f : f32
    mlx.yield %p : f32
  }
  return %y : tensor<?x?xf32>
}

// The body's indices are renumbered into the smaller space (d1 → d0).
// CHECK-LABEL: func.func @renumbered
// CHECK: mlx.generic ins(%arg0 : tensor<?x?xf32>) sizes(%{{.*}}, %{{.*}}) {combiner = #mlx.combiner<add>
// CHECK: mlx.index 0 : index
// CHECK: iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]
func.func @renumbered(%x: tensor<?x?xf32>, %n: index) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %x, %c0 : tensor<?x?xf32>
  %k = tensor.dim %x, %c1 : tensor<?x?xf32>
  %y = mlx.generic ins(%x : tensor<?x?xf32>) sizes(%n, %m, %k) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?x?xf32> {
  ^bb0(%a: f32):
    %j = mlx.index 1 : index
    %jj = arith.index_cast %j : index to i64
    %f = arith.sitofp %jj : i64 to f32
    %p = arith.mulf %a, %f : f32
    mlx.yield %p : f32
  }
  return %y : tensor<?x?xf32>
}
