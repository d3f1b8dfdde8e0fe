// After mlx-lower-to-linalg the mlx dialect is illegal (a conversion
// target): an op nothing lowers, such as an mlx.grad that mlx-autodiff did
// not expand, is an error, not a leftover.
// RUN: %mlx-opt %s --mlx-lower-to-linalg --verify-diagnostics

func.func private @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

func.func @g(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{failed to legalize operation 'mlx.grad' that was explicitly marked illegal}}
  %dx = mlx.grad @f(%x) wrt [0] : (tensor<4xf32>) -> tensor<4xf32>
  return %dx : tensor<4xf32>
}
