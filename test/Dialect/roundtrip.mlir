// Every mlx op prints and parses back to the same IR.
// RUN: %mlx-opt %s | %mlx-opt | FileCheck %s
// RUN: %mlx-opt %s --mlir-print-op-generic | %mlx-opt | FileCheck %s

// CHECK-LABEL: func.func @softmax_denominator
func.func @softmax_denominator(%e: tensor<?xf32>, %n: index) -> tensor<f32> {
  // CHECK: mlx.generic ins(%{{.*}} : tensor<?xf32>) sizes(%{{.*}}) {combiner = #mlx.combiner<add>, indexing_maps = [#{{.*}}], iterator_kinds = [#mlx.iterator<reduction>]} -> tensor<f32>
  // CHECK: ^bb0(%{{.*}}: f32):
  // CHECK: mlx.yield %{{.*}} : f32
  %s = mlx.generic ins(%e : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<reduction>]} -> tensor<f32> {
  ^bb0(%x: f32):
    %y = math.exp %x : f32
    mlx.yield %y : f32
  }
  return %s : tensor<f32>
}

// CHECK-LABEL: func.func @causal_mask
func.func @causal_mask(%s: tensor<?x?xf32>, %t: index) -> tensor<?x?xf32> {
  // CHECK: mlx.index 1 : index
  // CHECK: mlx.index 0 : index
  %m = mlx.generic ins(%s : tensor<?x?xf32>) sizes(%t, %t) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32> {
  ^bb0(%x: f32):
    %j = mlx.index 1 : index
    %i = mlx.index 0 : index
    %le = arith.cmpi ule, %j, %i : index
    %ninf = arith.constant 0xFF800000 : f32
    %r = arith.select %le, %x, %ninf : f32
    mlx.yield %r : f32
  }
  return %m : tensor<?x?xf32>
}

// CHECK-LABEL: func.func @no_inputs
func.func @no_inputs(%n: index) -> tensor<?xf32> {
  // CHECK: mlx.generic sizes(%{{.*}})
  %z = mlx.generic sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
    %c = arith.constant 0.0 : f32
    mlx.yield %c : f32
  }
  return %z : tensor<?xf32>
}

func.func private @row_fn(tensor<?xf32>) -> tensor<?xf32>

// CHECK-LABEL: func.func @rows
func.func @rows(%s: tensor<?x?xf32>, %t: index, %k: index) -> tensor<?x?xf32> {
  // CHECK: mlx.map_call @row_fn(%{{.*}}) sizes(%{{.*}}, %{{.*}}) {arg_slices = [array<i64: 0, -1>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  %p = mlx.map_call @row_fn(%s) sizes(%t, %k) {arg_slices = [array<i64: 0, -1>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}

// CHECK-LABEL: func.func @checked
func.func @checked(%x: tensor<?x3xf32>) -> tensor<?x3xf32> {
  // CHECK: mlx.check_index %{{.*}}[0] above 4 {size_name = "N", tensor = "x"} : tensor<?x3xf32>
  %y = mlx.check_index %x[0] above 4 {size_name = "N", tensor = "x"} : tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

// CHECK-LABEL: func.func @loop_take_put
// CHECK: mlx.loop %{{.*}} to %{{.*}}(%{{.*}}, %{{.*}}) : (tensor<?xf32>, tensor<?x?xf32>) -> (tensor<?xf32>, tensor<?x?xf32>)
// CHECK: ^bb0(%{{.*}}: index, %{{.*}}: tensor<?xf32>, %{{.*}}: tensor<?x?xf32>):
// CHECK: mlx.take %{{.*}}[%{{.*}}] dim 0 {size_name = "T", tensor = "xs"} : tensor<?x?xf32> -> tensor<?xf32>
// CHECK: mlx.put %{{.*}} into %{{.*}}[%{{.*}}] dim 0 {size_name = "T", tensor = "hs"} : tensor<?xf32> into tensor<?x?xf32>
// CHECK: mlx.loop_yield %{{.*}}, %{{.*}} : tensor<?xf32>, tensor<?x?xf32>
func.func @loop_take_put(%xs: tensor<?x?xf32>, %h0: tensor<?xf32>, %hs0: tensor<?x?xf32>, %n: index) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %h, %hs = mlx.loop %c0 to %n (%h0, %hs0) : (tensor<?xf32>, tensor<?x?xf32>) -> (tensor<?xf32>, tensor<?x?xf32>) {
  ^bb0(%t: index, %hp: tensor<?xf32>, %hsp: tensor<?x?xf32>):
    %x = mlx.take %xs[%t] dim 0 {size_name = "T", tensor = "xs"} : tensor<?x?xf32> -> tensor<?xf32>
    %hsn = mlx.put %x into %hsp[%t] dim 0 {size_name = "T", tensor = "hs"} : tensor<?xf32> into tensor<?x?xf32>
    mlx.loop_yield %x, %hsn : tensor<?xf32>, tensor<?x?xf32>
  }
  return %hs : tensor<?x?xf32>
}

// CHECK-LABEL: func.func @gather_scatter
// CHECK: mlx.gather %{{.*}}[%{{.*}}] dims [0, -1] {size_names = ["K"], tensor = "z"} : tensor<?x?xf32>[tensor<?xi32>] -> tensor<?xf32>
// CHECK: mlx.scatter_add %{{.*}} into %{{.*}}[%{{.*}}] dims [0, -1] : tensor<?xf32> into tensor<?x?xf32>[tensor<?xi32>]
func.func @gather_scatter(%z: tensor<?x?xf32>, %c: tensor<?xi32>) -> tensor<?x?xf32> {
  %g = mlx.gather %z[%c] dims [0, -1] {size_names = ["K"], tensor = "z"} : tensor<?x?xf32>[tensor<?xi32>] -> tensor<?xf32>
  %s = mlx.scatter_add %g into %z[%c] dims [0, -1] : tensor<?xf32> into tensor<?x?xf32>[tensor<?xi32>]
  return %s : tensor<?x?xf32>
}

// CHECK-LABEL: func.func @gather_in_range
// CHECK: mlx.gather %{{.*}}[%{{.*}}] dims [0, -1] {in_range = array<i1: true>, size_names = ["4 * H"], tensor = "z"}
func.func @gather_in_range(%z: tensor<?x?xf32>, %c: tensor<?x?xi64>) -> tensor<?x?xf32> {
  %g = mlx.gather %z[%c] dims [0, -1] {in_range = array<i1: true>, size_names = ["4 * H"], tensor = "z"} : tensor<?x?xf32>[tensor<?x?xi64>] -> tensor<?x?xf32>
  return %g : tensor<?x?xf32>
}
