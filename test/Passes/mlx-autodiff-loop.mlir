// mlx-autodiff through mlx.loop (back-propagation through time): the loop
// in the VJP records each step's starting state (one row per step), the
// body becomes a function, and a reverse loop from the last step to the
// first applies that function's VJP to the recorded states, carrying the
// state's cotangent and summing the cotangent of what the body reads from
// outside (here %x).
// RUN: %mlx-opt %s --mlx-autodiff | FileCheck %s
// RUN: %mlx-opt %s --mlx-to-linalg | FileCheck %s --check-prefix=LOWERED

// y = x^4 by three steps of y ← y·x.
func.func private @f(%x: tensor<f32>) -> tensor<f32> {
  %c0 = arith.constant 0 : index
  %n = arith.constant 3 : index
  %r = mlx.loop %c0 to %n (%x) : (tensor<f32>) -> tensor<f32> {
  ^bb0(%t: index, %a: tensor<f32>):
    %b = mlx.generic ins(%a, %x : tensor<f32>, tensor<f32>) sizes() {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<() -> ()>, affine_map<() -> ()>], iterator_kinds = []} -> tensor<f32> {
    ^bb0(%u: f32, %v: f32):
      %m = arith.mulf %u, %v : f32
      mlx.yield %m : f32
    }
    mlx.loop_yield %b : tensor<f32>
  }
  return %r : tensor<f32>
}

func.func @g(%x: tensor<f32>) -> tensor<f32> {
  %d = mlx.grad @f(%x) wrt [0] : (tensor<f32>) -> tensor<f32>
  return %d : tensor<f32>
}

// CHECK-LABEL: func.func private @f_vjp0(
// CHECK-SAME: %[[X:.*]]: tensor<f32>, %[[DY:.*]]: tensor<f32>)
// The number of steps, max(hi − lo, 0), and the record: one row per step.
// CHECK: %[[STEPS:.*]] = arith.maxsi
// CHECK: %[[EMPTY:.*]] = mlx.generic sizes(%[[STEPS]])
// CHECK-SAME: -> tensor<?xf32>
// CHECK: %[[FWD:.*]]:2 = mlx.loop %{{.*}} to %{{.*}}(%[[X]], %[[EMPTY]]) : (tensor<f32>, tensor<?xf32>) -> (tensor<f32>, tensor<?xf32>)
// CHECK: ^bb0(%[[T:.*]]: index, %[[Y:.*]]: tensor<f32>, %[[REC:.*]]: tensor<?xf32>):
// CHECK: mlx.put %[[Y]] into %[[REC]][%{{.*}}] dim 0 {size_name = "steps", tensor = "loop state"}
// The reverse loop: the state's cotangent starts as the result's, the
// cotangent of %x as zeros.
// CHECK: %[[ZERO:.*]] = mlx.generic sizes() {{.*}} -> tensor<f32>
// CHECK: %[[REV:.*]]:2 = mlx.loop %{{.*}} to %[[STEPS]](%[[DY]], %[[ZERO]])
// CHECK: ^bb0(%[[K:.*]]: index, %[[DS:.*]]: tensor<f32>, %[[DXSUM:.*]]: tensor<f32>):
// Step steps − 1 − k: its recorded state, then the body's VJP.
// CHECK: %[[LAST:.*]] = arith.subi %[[STEPS]], %[[K]] : index
// CHECK: %[[ROW:.*]] = arith.subi %[[LAST]], %{{.*}} : index
// CHECK: %[[STATE:.*]] = mlx.take %[[FWD]]#1[%[[ROW]]] dim 0
// CHECK: %[[D:.*]]:2 = func.call @f_vjp0_loop_vjp1_2(%{{.*}}, %[[STATE]], %[[X]], %[[DS]])
// CHECK: %[[SUM:.*]] = mlx.generic ins(%[[DXSUM]], %[[D]]#1
// CHECK: mlx.loop_yield %[[D]]#0, %[[SUM]]
// dx = (what flows into the initial state) + (what flows into %x).
// CHECK: %[[DX:.*]] = mlx.generic ins(%[[REV]]#0, %[[REV]]#1
// CHECK: return %[[DX]]
// The outlined body: (step, carried, captured) → carried.
// CHECK: func.func private @f_vjp0_loop(%{{.*}}: index, %{{.*}}: tensor<f32>, %{{.*}}: tensor<f32>) -> tensor<f32>

// Lowered: two scf.for loops in @g (the primal call is gone: only its
// shape was used), bounds-checked slices of the record, the VJP inlined.
// LOWERED-LABEL: func.func @g
// LOWERED: scf.for
// LOWERED: scf.if
// LOWERED: tensor.insert_slice
// LOWERED: call @mlx_report_out_of_bounds
// LOWERED: scf.for
// LOWERED: tensor.extract_slice
// LOWERED-NOT: call @f
// LOWERED: return
