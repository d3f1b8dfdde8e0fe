// mlx-approximate-math: f32 exp/log/log1p/tanh/erf become polynomial
// arithmetic (vectorizable); exp and log are first scaled out of the
// subnormal range; sin/cos and f64 keep their math ops (libm).
// RUN: %mlx-opt %s --mlx-approximate-math | FileCheck %s

// The exp of x < -87 is exp(x + 40) * e^-40, and none of the five is left.
// CHECK-LABEL: func.func @f32_ops
// CHECK: arith.constant -8.700000e+01 : f32
// CHECK-NOT: math.exp
// CHECK-NOT: math.log
// CHECK-NOT: math.tanh
// CHECK-NOT: math.erf
// CHECK: math.sin
// CHECK: return
func.func @f32_ops(%x: f32) -> (f32, f32, f32, f32, f32, f32) {
  %e = math.exp %x : f32
  %l = math.log %x : f32
  %p = math.log1p %x : f32
  %t = math.tanh %x : f32
  %r = math.erf %x : f32
  %s = math.sin %x : f32
  return %e, %l, %p, %t, %r, %s : f32, f32, f32, f32, f32, f32
}

// CHECK-LABEL: func.func @f64_ops
// CHECK: math.exp %{{.*}} : f64
// CHECK: math.erf %{{.*}} : f64
func.func @f64_ops(%x: f64) -> (f64, f64) {
  %e = math.exp %x : f64
  %r = math.erf %x : f64
  return %e, %r : f64, f64
}
