// The named pipelines: mlx-simplify inlines calls; mlx-to-linalg leaves no
// mlx op and fuses element-wise producers; mlx-to-cpu-pipeline reaches the
// LLVM dialect with a C interface for exported functions.
// RUN: %mlx-opt %s --mlx-simplify | FileCheck %s --check-prefix=SIMPLIFY
// RUN: %mlx-opt %s --mlx-to-linalg | FileCheck %s --check-prefix=LINALG
// RUN: %mlx-opt %s --mlx-to-cpu-pipeline | FileCheck %s --check-prefix=LLVM

func.func private @scale(%a: tensor<?xf32>, %n: index) -> tensor<?xf32> {
  %r = mlx.generic ins(%a : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%x: f32):
    %two = arith.constant 2.0 : f32
    %y = arith.mulf %x, %two : f32
    mlx.yield %y : f32
  }
  return %r : tensor<?xf32>
}

// SIMPLIFY-NOT: func.func private @scale
// SIMPLIFY-LABEL: func.func @f
// SIMPLIFY-NOT: call
// SIMPLIFY: mlx.generic
// SIMPLIFY: mlx.generic
// LINALG-LABEL: func.func @f
// LINALG-NOT: mlx.
// LINALG: linalg.generic
// LINALG-NOT: linalg.generic
// LINALG: return
// LLVM: llvm.func @f(
// LLVM: llvm.func @_mlir_ciface_f(
// LLVM-NOT: linalg.
func.func @f(%a: tensor<?xf32>) -> tensor<?xf32> attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %a, %c0 : tensor<?xf32>
  %s = func.call @scale(%a, %n) : (tensor<?xf32>, index) -> tensor<?xf32>
  %r = mlx.generic ins(%s : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%x: f32):
    %y = math.exp %x : f32
    mlx.yield %y : f32
  }
  return %r : tensor<?xf32>
}
