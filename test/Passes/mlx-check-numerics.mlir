// mlx-check-numerics: after each float mlx.generic, a max-reduction of
// (NaN ? 2 : inf ? 1 : 0) and a call of mlx_report_nonfinite when non-zero.
// An op that writes ±inf from a literal may hold infinities (kind 0).
// RUN: %mlx-opt %s --mlx-check-numerics | FileCheck %s

// CHECK: func.func private @mlx_report_nonfinite(i64, i32)
// CHECK-LABEL: func.func @f
func.func @f(%x: tensor<?xf32>, %n: index) -> tensor<?xf32> {
  // CHECK: %[[Y:.*]] = mlx.generic ins(%arg0
  // CHECK: math.log
  // CHECK: %[[K:.*]] = mlx.generic ins(%[[Y]] : tensor<?xf32>) {{.*}}combiner = #mlx.combiner<max>{{.*}} -> tensor<i32>
  // CHECK: arith.cmpf uno
  // CHECK: %[[C:.*]] = tensor.extract %[[K]][] : tensor<i32>
  // CHECK: scf.if
  // CHECK-NEXT: %[[ID:.*]] = arith.constant 0 : i64
  // CHECK-NEXT: func.call @mlx_report_nonfinite(%[[ID]], %[[C]])
  %y = mlx.generic ins(%x : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%a: f32):
    %l = math.log %a : f32
    mlx.yield %l : f32
  }
  // A mask: its infinity kind is 0.
  // CHECK: mlx.generic ins(%[[Y]] : tensor<?xf32>)
  // CHECK: arith.select
  // CHECK: mlx.generic {{.*}} -> tensor<i32>
  // CHECK: %[[ZERO:.*]] = arith.constant 0 : i32
  // CHECK: arith.select %{{.*}}, %[[ZERO]], %[[ZERO]] : i32
  %m = mlx.generic ins(%y : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%a: f32):
    %i = mlx.index 0 : index
    %c0 = arith.constant 0 : index
    %z = arith.cmpi eq, %i, %c0 : index
    %inf = arith.constant 0xFF800000 : f32
    %r = arith.select %z, %inf, %a : f32
    mlx.yield %r : f32
  }
  return %m : tensor<?xf32>
}
