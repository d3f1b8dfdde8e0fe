// mlx.generic → linalg.generic on tensor.empty (filled with the combiner's
// identity when it reduces); mlx.index → linalg.index; mlx.map_call → a loop
// nest over slices that calls the callee.
// RUN: %mlx-opt %s --mlx-lower-to-linalg --split-input-file | FileCheck %s

// CHECK-LABEL: func.func @row_max
// CHECK: %[[EMPTY:.*]] = tensor.empty(%{{.*}}) : tensor<?xf32>
// CHECK: %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: %[[INIT:.*]] = linalg.fill ins(%[[NINF]] : f32) outs(%[[EMPTY]] : tensor<?xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[IN:.*]], #[[OUT:.*]]], iterator_types = ["parallel", "reduction"]} ins(%{{.*}} : tensor<?x?xf32>) outs(%[[INIT]] : tensor<?xf32>)
// CHECK: ^bb0(%[[X:.*]]: f32, %[[ACC:.*]]: f32):
// CHECK: %[[M:.*]] = arith.maximumf %[[ACC]], %[[X]] : f32
// CHECK: linalg.yield %[[M]] : f32
func.func @row_max(%a: tensor<?x?xf32>, %m: index, %n: index) -> tensor<?xf32> {
  %r = mlx.generic ins(%a : tensor<?x?xf32>) sizes(%m, %n) {combiner = #mlx.combiner<max>, indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32> {
  ^bb0(%x: f32):
    mlx.yield %x : f32
  }
  return %r : tensor<?xf32>
}

// -----

// CHECK-LABEL: func.func @mask
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]
// CHECK: %[[J:.*]] = linalg.index 1 : index
// CHECK: %[[I:.*]] = linalg.index 0 : index
// CHECK: arith.cmpi ule, %[[J]], %[[I]] : index
// CHECK-NOT: linalg.fill
func.func @mask(%s: tensor<?x?xf32>, %t: index) -> tensor<?x?xf32> {
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

// -----

func.func private @softmax(tensor<?xf32>) -> tensor<?xf32>

// CHECK-LABEL: func.func @rows
// CHECK: %[[INIT:.*]] = tensor.empty(%{{.*}}, %{{.*}}) : tensor<?x?xf32>
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[ACC:.*]] = %[[INIT]])
// CHECK:   %[[ROW:.*]] = tensor.extract_slice %{{.*}}[%[[I]], 0] [1, %{{.*}}] [1, 1] : tensor<?x?xf32> to tensor<?xf32>
// CHECK:   %[[P:.*]] = func.call @softmax(%[[ROW]])
// CHECK:   tensor.insert_slice %[[P]] into %[[ACC]][%[[I]], 0] [1, %{{.*}}] [1, 1]
func.func @rows(%s: tensor<?x?xf32>, %t: index, %k: index) -> tensor<?x?xf32> {
  %p = mlx.map_call @softmax(%s) sizes(%t, %k) {arg_slices = [array<i64: 0, -1>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}

// -----

// mlx.check_index → the input where dim 0 > 4, else a report call and zeros
// with dim 0 of size 5 (no read out of bounds).
// CHECK-LABEL: func.func @checked
// CHECK: %[[SIZE:.*]] = tensor.dim %[[X:.*]], %{{.*}} : tensor<?x3xf32>
// CHECK: %[[OK:.*]] = arith.cmpi ugt, %[[SIZE]], %{{.*}} : index
// CHECK: scf.if %[[OK]] -> (tensor<?x3xf32>) {
// CHECK:   scf.yield %[[X]]
// CHECK: } else {
// CHECK:   call @mlx_report_out_of_bounds(%{{.*}}, %{{.*}}, %{{.*}}) : (i64, i64, i64) -> ()
// CHECK:   %[[EMPTY:.*]] = tensor.empty(%{{.*}}) : tensor<?x3xf32>
// CHECK:   linalg.fill ins(%{{.*}} : f32) outs(%[[EMPTY]] : tensor<?x3xf32>)
func.func @checked(%x: tensor<?x3xf32>) -> tensor<?x3xf32> {
  %y = mlx.check_index %x[0] above 4 {size_name = "N", tensor = "x"} : tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}
