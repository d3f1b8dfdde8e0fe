// mlx-batch-map-calls: a map_call over rows becomes generics over (row,
// element): the mapped index is a leading parallel dim of every generic of
// the callee, read through each argument's own dimension order. A callee
// that cannot be lifted (here: no body) keeps its map_call.
// RUN: %mlx-opt %s --mlx-batch-map-calls --split-input-file | FileCheck %s

// r[k] = x[k] / Σ_j x[j], mapped over the rows of s (P[i, :] = f(s[i, :]))
// and over the columns of t (Q[j, :] = f(t[:, j]): a transposed layout).
func.func private @normalize(%x: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %s = mlx.generic ins(%x : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<reduction>]} -> tensor<f32> {
  ^bb0(%a: f32):
    mlx.yield %a : f32
  }
  %r = mlx.generic ins(%x, %s : tensor<?xf32>, tensor<f32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%a: f32, %b: f32):
    %q = arith.divf %a, %b : f32
    mlx.yield %q : f32
  }
  return %r : tensor<?xf32>
}

// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[ROW:.*]] = affine_map<(d0, d1) -> (d0)>
// CHECK-DAG: #[[T:.*]] = affine_map<(d0, d1) -> (d1, d0)>
// CHECK-LABEL: func.func @rows
// CHECK-NOT: mlx.map_call
// CHECK: %[[SUM:.*]] = mlx.generic ins(%arg0 : tensor<?x?xf32>) sizes(%arg1, %{{.*}}) {combiner = #mlx.combiner<add>, indexing_maps = [#[[ID]]], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32>
// CHECK: mlx.generic ins(%arg0, %[[SUM]] : tensor<?x?xf32>, tensor<?xf32>) sizes(%arg1, %{{.*}}) {combiner = #mlx.combiner<none>, indexing_maps = [#[[ID]], #[[ROW]]], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32>
func.func @rows(%s: tensor<?x?xf32>, %m: index, %k: index) -> tensor<?x?xf32> {
  %p = mlx.map_call @normalize(%s) sizes(%m, %k) {arg_slices = [array<i64: 0, -1>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}

// CHECK-LABEL: func.func @columns
// CHECK-NOT: mlx.map_call
// CHECK: mlx.generic ins(%arg0 : tensor<?x?xf32>) sizes(%arg1, %{{.*}}) {combiner = #mlx.combiner<add>, indexing_maps = [#[[T]]], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32>
func.func @columns(%t: tensor<?x?xf32>, %n: index, %k: index) -> tensor<?x?xf32> {
  %q = mlx.map_call @normalize(%t) sizes(%n, %k) {arg_slices = [array<i64: -1, 0>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %q : tensor<?x?xf32>
}

// -----

// No body to lift: the map_call stays (and becomes a loop later).
func.func private @opaque(tensor<?xf32>) -> tensor<?xf32>
// CHECK-LABEL: func.func @kept
// CHECK: mlx.map_call @opaque
func.func @kept(%s: tensor<?x?xf32>, %m: index, %k: index) -> tensor<?x?xf32> {
  %p = mlx.map_call @opaque(%s) sizes(%m, %k) {arg_slices = [array<i64: 0, -1>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}
