// The verifiers of the mlx ops.
// RUN: %mlx-opt %s -split-input-file -verify-diagnostics

func.func @sizes_count(%a: tensor<?xf32>, %n: index) -> tensor<?xf32> {
  // expected-error @+1 {{has 1 iterators but 2 sizes}}
  %r = mlx.generic ins(%a : tensor<?xf32>) sizes(%n, %n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%x: f32):
    mlx.yield %x : f32
  }
  return %r : tensor<?xf32>
}

// -----

func.func @map_rank(%a: tensor<?x?xf32>, %n: index) -> tensor<?xf32> {
  // expected-error @+1 {{indexing map #0 has 1 results for an input of rank 2}}
  %r = mlx.generic ins(%a : tensor<?x?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%x: f32):
    mlx.yield %x : f32
  }
  return %r : tensor<?xf32>
}

// -----

func.func @reduction_first(%a: tensor<?x?xf32>, %n: index) -> tensor<?xf32> {
  // expected-error @+1 {{iterator #0 must be parallel (result indices come first, reductions last)}}
  %r = mlx.generic ins(%a : tensor<?x?xf32>) sizes(%n, %n) {combiner = #mlx.combiner<add>, indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_kinds = [#mlx.iterator<reduction>, #mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%x: f32):
    mlx.yield %x : f32
  }
  return %r : tensor<?xf32>
}

// -----

func.func @missing_combiner(%a: tensor<?xf32>, %n: index) -> tensor<f32> {
  // expected-error @+1 {{reduces but has no combiner}}
  %r = mlx.generic ins(%a : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<reduction>]} -> tensor<f32> {
  ^bb0(%x: f32):
    mlx.yield %x : f32
  }
  return %r : tensor<f32>
}

// -----

func.func @body_type(%a: tensor<?xf32>, %n: index) -> tensor<?xf32> {
  // expected-error @+1 {{body argument type 'f64' does not match input element type 'f32'}}
  %r = mlx.generic ins(%a : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%x: f64):
    %y = arith.truncf %x : f64 to f32
    mlx.yield %y : f32
  }
  return %r : tensor<?xf32>
}

// -----

func.func @yield_type(%a: tensor<?xf32>, %n: index) -> tensor<?xf64> {
  // expected-error @+1 {{yields 'f32' for a result of 'f64'}}
  %r = mlx.generic ins(%a : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf64> {
  ^bb0(%x: f32):
    mlx.yield %x : f32
  }
  return %r : tensor<?xf64>
}

// -----

func.func @index_range(%a: tensor<?xf32>, %n: index) -> tensor<?xf32> {
  %r = mlx.generic ins(%a : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%x: f32):
    // expected-error @+1 {{dim 3 out of range for 1 iterators}}
    %i = mlx.index 3 : index
    mlx.yield %x : f32
  }
  return %r : tensor<?xf32>
}

// -----

func.func @index_outside(%n: index) -> index {
  // expected-error @+1 {{must be inside an mlx.generic body}}
  %i = mlx.index 0 : index
  return %i : index
}

// -----

func.func private @vec(tensor<?xf32>) -> tensor<?xf32>

func.func @map_slices(%s: tensor<?x?xf32>, %t: index) -> tensor<?x?xf32> {
  // expected-error @+1 {{slice spec #0 does not match its rank}}
  %p = mlx.map_call @vec(%s) sizes(%t, %t) {arg_slices = [array<i64: 0>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}

// -----

func.func @map_unknown(%s: tensor<?x?xf32>, %t: index) -> tensor<?x?xf32> {
  // expected-error @+1 {{calls unknown function @nope}}
  %p = mlx.map_call @nope(%s) sizes(%t, %t) {arg_slices = [array<i64: 0, -1>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}

// -----

func.func private @mat(tensor<?x?xf32>) -> tensor<?xf32>

func.func @map_callee_rank(%s: tensor<?x?xf32>, %t: index) -> tensor<?x?xf32> {
  // expected-error @+1 {{argument #0 slice has rank 1 but the callee expects 'tensor<?x?xf32>'}}
  %p = mlx.map_call @mat(%s) sizes(%t, %t) {arg_slices = [array<i64: 0, -1>], num_mapped = 1 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}

// -----

func.func @check_rank(%x: tensor<?xf32>) -> tensor<?xf32> {
  // expected-error @+1 {{dimension 1 is out of range for rank 1}}
  %y = mlx.check_index %x[1] above 0 {size_name = "N", tensor = "x"} : tensor<?xf32>
  return %y : tensor<?xf32>
}

// -----

func.func @take_type(%x: tensor<?x3xf32>, %i: index) -> tensor<4xf32> {
  // expected-error @+1 {{result type 'tensor<4xf32>' is not 'tensor<?x3xf32>' without dimension 0}}
  %r = mlx.take %x[%i] dim 0 {size_name = "N", tensor = "x"} : tensor<?x3xf32> -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

func.func @put_dim(%x: tensor<?xf32>, %v: tensor<f32>, %i: index) -> tensor<?xf32> {
  // expected-error @+1 {{dimension 1 is out of range for rank 1}}
  %r = mlx.put %v into %x[%i] dim 1 {size_name = "N", tensor = "x"} : tensor<f32> into tensor<?xf32>
  return %r : tensor<?xf32>
}

// -----

func.func @loop_types(%x: tensor<f32>, %n: index) -> tensor<f32> {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{body yields 1 values of other types than the carried ones}}
  %r = mlx.loop %c0 to %n (%x) : (tensor<f32>) -> tensor<f32> {
  ^bb0(%t: index, %a: tensor<f32>):
    %b = tensor.cast %a : tensor<f32> to tensor<f32>
    %c = tensor.from_elements %t : tensor<index>
    mlx.loop_yield %c : tensor<index>
  }
  return %r : tensor<f32>
}

// -----

func.func @loop_args(%x: tensor<f32>, %n: index) -> tensor<f32> {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{body must take the step's index and one argument per carried value}}
  %r = mlx.loop %c0 to %n (%x) : (tensor<f32>) -> tensor<f32> {
  ^bb0(%a: tensor<f32>):
    mlx.loop_yield %a : tensor<f32>
  }
  return %r : tensor<f32>
}

// -----

func.func @gather_dims(%z: tensor<?x?xf32>, %c: tensor<?xi32>) -> tensor<?xf32> {
  // expected-error @+1 {{has 1 indices for 2 computed dims}}
  %g = mlx.gather %z[%c] dims [-1, -1] {size_names = ["K"], tensor = "z"} : tensor<?x?xf32>[tensor<?xi32>] -> tensor<?xf32>
  return %g : tensor<?xf32>
}

// -----

func.func @gather_in_range_count(%z: tensor<?xf32>, %c: tensor<?xi32>) -> tensor<?xf32> {
  // expected-error @+1 {{needs one in_range entry per computed index}}
  %g = mlx.gather %z[%c] dims [-1] {in_range = array<i1: true, false>, size_names = ["K"], tensor = "z"} : tensor<?xf32>[tensor<?xi32>] -> tensor<?xf32>
  return %g : tensor<?xf32>
}

// -----

func.func @gather_float_index(%z: tensor<?xf32>, %c: tensor<?xf32>) -> tensor<?xf32> {
  // expected-error @+1 {{indices must be integer tensors of one shape}}
  %g = mlx.gather %z[%c] dims [-1] {size_names = ["K"], tensor = "z"} : tensor<?xf32>[tensor<?xf32>] -> tensor<?xf32>
  return %g : tensor<?xf32>
}
