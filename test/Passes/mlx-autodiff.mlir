// mlx-autodiff: mlx.grad becomes calls of VJP functions; the adjoint of an
// index-notation op is index-notation ops with permuted maps.
// RUN: %mlx-opt %s --mlx-autodiff --split-input-file | FileCheck %s
// RUN: %mlx-opt %s --mlx-grad --split-input-file | FileCheck %s --check-prefix=SIMPLE

// y[i] = Σ_j A[i, j] x[j]. dA[i, j] = dy[i] x[j] (both indices are A's: no
// reduction); dx[j] = Σ_i dy[i] A[i, j] (i becomes the reduced index).
func.func private @matvec(%A: tensor<?x?xf32>, %x: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %A, %c0 : tensor<?x?xf32>
  %n = tensor.dim %A, %c1 : tensor<?x?xf32>
  %y = mlx.generic ins(%A, %x : tensor<?x?xf32>, tensor<?xf32>) sizes(%m, %n) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32> {
  ^bb0(%a: f32, %b: f32):
    %p = arith.mulf %a, %b : f32
    mlx.yield %p : f32
  }
  return %y : tensor<?xf32>
}

// CHECK-LABEL: func.func @grads
// CHECK: %[[Y:.*]] = call @matvec(%arg0, %arg1)
// CHECK: %[[ONES:.*]] = mlx.generic sizes(%{{.*}})
// One VJP per gradient request, returning every requested cotangent.
// CHECK: %[[D:.*]]:2 = call @matvec_vjp0_1(%arg0, %arg1, %[[ONES]])
// CHECK: return %[[D]]#0, %[[D]]#1
func.func @grads(%A: tensor<?x?xf32>, %x: tensor<?xf32>) -> (tensor<?x?xf32>, tensor<?xf32>) {
  %dA, %dx = mlx.grad @matvec(%A, %x) wrt [0, 1] : (tensor<?x?xf32>, tensor<?xf32>) -> (tensor<?x?xf32>, tensor<?xf32>)
  return %dA, %dx : tensor<?x?xf32>, tensor<?xf32>
}

// CHECK-LABEL: func.func private @matvec_vjp0_1(
// CHECK-SAME: %[[A:.*]]: tensor<?x?xf32>, %[[X:.*]]: tensor<?xf32>, %[[DY:.*]]: tensor<?xf32>) -> (tensor<?x?xf32>, tensor<?xf32>)
// CHECK: %[[DA:.*]] = mlx.generic ins(%[[A]], %[[X]], %[[DY]] : {{.*}}) sizes({{.*}}) {combiner = #mlx.combiner<none>, indexing_maps = [#[[ID2:.*]], #[[COL:.*]], #[[ROW:.*]]], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32>
// CHECK: ^bb0(%[[a:.*]]: f32, %[[b:.*]]: f32, %[[g:.*]]: f32):
// CHECK: arith.mulf %[[g]], %[[b]] : f32
// CHECK: %[[DX:.*]] = mlx.generic ins({{.*}}) sizes({{.*}}) {combiner = #mlx.combiner<add>, indexing_maps = [#[[T:.*]], #[[FIRST:.*]], #[[SECOND:.*]]], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32>
// CHECK: return %[[DA]], %[[DX]]

// After simplification only the two adjoint generics remain.
// SIMPLE-LABEL: func.func @grads
// SIMPLE-NOT: call
// SIMPLE: mlx.generic {{.*}}iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]
// SIMPLE: mlx.generic {{.*}}iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]
// SIMPLE-NOT: mlx.generic
// SIMPLE: return

// -----

// A callee is differentiated once, however often it is called.
func.func private @sq(%x: tensor<?xf32>) -> tensor<f32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %s = mlx.generic ins(%x : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<reduction>]} -> tensor<f32> {
  ^bb0(%a: f32):
    %p = arith.mulf %a, %a : f32
    mlx.yield %p : f32
  }
  return %s : tensor<f32>
}
func.func private @twice(%x: tensor<?xf32>) -> (tensor<f32>, tensor<f32>) {
  %a = func.call @sq(%x) : (tensor<?xf32>) -> tensor<f32>
  %b = func.call @sq(%x) : (tensor<?xf32>) -> tensor<f32>
  return %a, %b : tensor<f32>, tensor<f32>
}
// CHECK-LABEL: func.func @g
func.func @g(%x: tensor<?xf32>) -> tensor<?xf32> {
  %dx = mlx.grad @twice(%x) wrt [0] : (tensor<?xf32>) -> tensor<?xf32>
  return %dx : tensor<?xf32>
}
// CHECK-LABEL: func.func private @twice_vjp0
// CHECK: call @sq_vjp0
// CHECK: call @sq_vjp0
// CHECK-LABEL: func.func private @sq_vjp0
// CHECK-NOT: func.func private @sq_vjp0

// -----

// Calls on slices: the callee's VJP is mapped over the same slices.
func.func private @sumsq(%x: tensor<?xf32>) -> tensor<f32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %s = mlx.generic ins(%x : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<reduction>]} -> tensor<f32> {
  ^bb0(%a: f32):
    %p = arith.mulf %a, %a : f32
    mlx.yield %p : f32
  }
  return %s : tensor<f32>
}
func.func private @rows(%A: tensor<?x?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %m = tensor.dim %A, %c0 : tensor<?x?xf32>
  %r = mlx.map_call @sumsq(%A) sizes(%m) {arg_slices = [array<i64: 0, -1>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?xf32>
  return %r : tensor<?xf32>
}
// CHECK-LABEL: func.func @h
func.func @h(%A: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %dA = mlx.grad @rows(%A) wrt [0] : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %dA : tensor<?x?xf32>
}
// CHECK-LABEL: func.func private @rows_vjp0
// CHECK: mlx.map_call @sumsq_vjp0(%{{.*}}, %{{.*}}) sizes(%{{.*}}, %{{.*}}) {arg_slices = [array<i64: 0, -1>, array<i64: 0>], num_mapped = 1 : i64} : (tensor<?x?xf32>, tensor<?xf32>) -> tensor<?x?xf32>
