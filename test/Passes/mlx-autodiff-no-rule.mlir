// mlx-autodiff asks each op for its derivative (DifferentiableOpInterface,
// ScalarDifferentiableOpInterface); an op that states none is an error at
// that op, not a silent zero.
// RUN: %mlx-opt %s --mlx-autodiff --split-input-file --verify-diagnostics

// A scalar op of a generic body without a rule (math.atan has none yet).
func.func private @f(%x: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %y = mlx.generic ins(%x : tensor<?xf32>) sizes(%n) {combiner = #mlx.combiner<none>, indexing_maps = [affine_map<(d0) -> (d0)>], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
  ^bb0(%a: f32):
    // expected-error @+1 {{cannot differentiate 'math.atan' (no derivative rule)}}
    %t = math.atan %a : f32
    mlx.yield %t : f32
  }
  return %y : tensor<?xf32>
}

func.func @g(%x: tensor<?xf32>) -> tensor<?xf32> {
  %dx = mlx.grad @f(%x) wrt [0] : (tensor<?xf32>) -> tensor<?xf32>
  return %dx : tensor<?xf32>
}

// -----

// A tensor-level op without a rule.
func.func private @h(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{cannot differentiate through 'arith.addf'}}
  %y = arith.addf %x, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}

func.func @k(%x: tensor<4xf32>) -> tensor<4xf32> {
  %dx = mlx.grad @h(%x) wrt [0] : (tensor<4xf32>) -> tensor<4xf32>
  return %dx : tensor<4xf32>
}
