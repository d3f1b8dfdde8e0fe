// mlx-approximate-math: f32 exp/log/log1p/tanh/erf become polynomial
// arithmetic (vectorizable); log is first scaled out of the subnormal
// range; sin/cos and f64 keep their math ops (libm).
// RUN: %mlx-opt %s --mlx-approximate-math | FileCheck %s

// exp: x clamped to [-104, 88.8] (NaN passes: the selects take the bound
// only where an ordered comparison holds), k = round(x log2 e) by adding
// and subtracting 1.5 * 2^23 (0x4B400000, no fastmath on the subtraction),
// x - k ln 2 in two parts, the polynomial, and 2^k as two factors
// 2^(k >> 1) and 2^(k - (k >> 1)). None of the five ops is left.
// CHECK-LABEL: func.func @f32_ops
// CHECK: %[[HI:.*]] = arith.constant 8.880000e+01 : f32
// CHECK: %[[OVER:.*]] = arith.cmpf ogt, %arg0, %[[HI]]
// CHECK: %[[X1:.*]] = arith.select %[[OVER]], %[[HI]], %arg0
// CHECK: %[[LO:.*]] = arith.constant -1.040000e+02 : f32
// CHECK: %[[UNDER:.*]] = arith.cmpf olt, %[[X1]], %[[LO]]
// CHECK: %[[X:.*]] = arith.select %[[UNDER]], %[[LO]], %[[X1]]
// CHECK: %[[T:.*]] = arith.addf %{{.*}}, %{{.*}} fastmath<contract>
// CHECK: %[[K:.*]] = arith.subf %[[T]], %{{[^ ]*}} : f32
// CHECK: arith.constant -0.693145751 : f32
// CHECK: arith.mulf %[[K]]
// CHECK: %[[KI:.*]] = arith.subi %{{.*}}, %c1262485504_i32
// CHECK: %[[HALF:.*]] = arith.shrsi %[[KI]], %c1_i32
// CHECK: arith.subi %[[KI]], %[[HALF]]
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
