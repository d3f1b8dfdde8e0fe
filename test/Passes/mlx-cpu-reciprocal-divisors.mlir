// mlx-cpu-reciprocal-divisors: x / d as x * (1/d) where 1/d is a normal
// float — a constant d directly, a d the same across an scf.for (defined
// before it, loaded at invariant subscripts from a buffer that the loop
// does not write, or computed from such) by two versions of the loop,
// chosen by |d| in [2^-126, 2^126]. Numbers: softmax and attention in the
// numeric suite; test/Unit/ReciprocalDivisorsTest.cpp checks the edges
// (a zero, a subnormal, an infinite and a huge divisor take the division).
// RUN: %mlx-opt %s --mlx-cpu-reciprocal-divisors | FileCheck %s

// (A buffer "the loop does not write": no store in the loop may alias it —
// a different allocation of the function, or any buffer where the loop
// stores only into allocations of the function.)

// A constant: 1/√2 replaces the division; 1/1e-39 (not a normal float)
// and 1/0 do not.
// CHECK-LABEL: func.func @constants
// CHECK: %[[R:.*]] = arith.constant 0.707106769 : f32
// CHECK: arith.mulf %arg0, %[[R]] : f32
// CHECK: arith.divf %arg0, %{{.*}} : f32
// CHECK: arith.divf %arg0, %{{.*}} : f32
func.func @constants(%x: f32) -> (f32, f32, f32) {
  %sqrt2 = arith.constant 1.41421354 : f32
  %tiny = arith.constant 1.0e-39 : f32
  %zero = arith.constant 0.0 : f32
  %a = arith.divf %x, %sqrt2 : f32
  %b = arith.divf %x, %tiny : f32
  %c = arith.divf %x, %zero : f32
  return %a, %b, %c : f32, f32, f32
}

// Softmax's last pass: each row divided by its sum, loaded from a buffer
// the loop does not write. The loop runs at all (else its buffers are not
// read), the sum is loaded once, tested, and the copy of the loop in the
// then branch multiplies by its reciprocal; the else branch is the loop as
// it was.
// CHECK-LABEL: func.func @row_sums
// CHECK: scf.for %[[I:.*]] = %c0 to %[[N:.*]] step %c1 {
// CHECK: %[[RUNS:.*]] = arith.cmpi slt, %c0, %[[K:[^ ]*]]
// CHECK: scf.if %[[RUNS]] {
// CHECK: %[[S:.*]] = memref.load %[[SUMS:.*]][%[[I]]]
// CHECK: %[[ABS:.*]] = math.absf %[[S]]
// CHECK: arith.cmpf oge, %[[ABS]], %{{.*}} : f32
// CHECK: arith.cmpf ole, %[[ABS]], %{{.*}} : f32
// CHECK: %[[OK:.*]] = arith.andi
// CHECK: %[[R:.*]] = arith.divf %cst{{.*}}, %[[S]] : f32
// CHECK: scf.if %[[OK]] {
// CHECK: scf.for
// CHECK-NOT: arith.divf
// CHECK: arith.mulf %{{.*}}, %[[R]] : f32
// CHECK: } else {
// CHECK: scf.for
// CHECK: memref.load %[[SUMS]][%[[I]]]
// CHECK: arith.divf
func.func @row_sums(%e: memref<?x?xf32>, %out: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %e, %c0 : memref<?x?xf32>
  %k = memref.dim %e, %c1 : memref<?x?xf32>
  %sums = memref.alloc(%n) : memref<?xf32>
  scf.for %i = %c0 to %n step %c1 {
    scf.for %j = %c0 to %k step %c1 {
      %v = memref.load %e[%i, %j] : memref<?x?xf32>
      %s = memref.load %sums[%i] : memref<?xf32>
      %q = arith.divf %v, %s : f32
      memref.store %q, %out[%i, %j] : memref<?x?xf32>
    }
  }
  memref.dealloc %sums : memref<?xf32>
  return
}

// Not taken: the divisor read from an argument while the loop stores into
// another argument (which may alias it), from a buffer the loop writes, or
// at a subscript that varies.
// CHECK-LABEL: func.func @not_invariant
// CHECK-NOT: scf.if
// CHECK-NOT: arith.mulf
func.func @not_invariant(%e: memref<?xf32>, %d: memref<?xf32>,
                         %out: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %k = memref.dim %e, %c0 : memref<?xf32>
  %buffer = memref.alloc(%k) : memref<?xf32>
  scf.for %j = %c0 to %k step %c1 {
    %v = memref.load %e[%j] : memref<?xf32>
    %a = memref.load %d[%c0] : memref<?xf32>
    %q = arith.divf %v, %a : f32
    %b = memref.load %buffer[%c0] : memref<?xf32>
    %p = arith.divf %q, %b : f32
    memref.store %p, %buffer[%j] : memref<?xf32>
    %c = memref.load %e[%j] : memref<?xf32>
    %r = arith.divf %p, %c : f32
    memref.store %r, %out[%j] : memref<?xf32>
  }
  memref.dealloc %buffer : memref<?xf32>
  return
}

// A loop that carries a value: the versions yield its results.
// CHECK-LABEL: func.func @carried
// CHECK: %[[RESULT:.*]] = scf.if %{{.*}} -> (f32) {
// CHECK: %[[V:.*]] = scf.if %{{.*}} -> (f32) {
// CHECK: %[[P:.*]] = scf.for {{.*}} iter_args
// CHECK: arith.mulf
// CHECK: scf.yield %[[P]] : f32
// CHECK: } else {
// CHECK: %[[D:.*]] = scf.for {{.*}} iter_args
// CHECK: arith.divf
// CHECK: scf.yield %[[D]] : f32
// CHECK: scf.yield %[[V]] : f32
// CHECK: } else {
// CHECK: scf.yield %cst : f32
// CHECK: return %[[RESULT]]
func.func @carried(%e: memref<?xf32>, %d: f32) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %k = memref.dim %e, %c0 : memref<?xf32>
  %sum = scf.for %j = %c0 to %k step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %e[%j] : memref<?xf32>
    %q = arith.divf %v, %d : f32
    %next = arith.addf %acc, %q : f32
    scf.yield %next : f32
  }
  return %sum : f32
}

// AdamW's shape: 1 - b^t from scalar arguments, the loop storing only into
// a buffer of the function: the divisor is computed once, before the loop.
// CHECK-LABEL: func.func @argument_divisor
// CHECK: scf.if
// CHECK: %[[B:.*]] = memref.load %arg1[]
// CHECK: %[[D:.*]] = arith.subf %{{.*}}, %[[B]]
// CHECK: math.absf %[[D]]
// CHECK: %[[R:.*]] = arith.divf %{{.*}}, %[[D]]
// CHECK: scf.if
// CHECK: scf.for
// CHECK: arith.mulf %{{.*}}, %[[R]]
// CHECK: } else {
// CHECK: arith.divf
func.func @argument_divisor(%m: memref<?xf32>, %b: memref<f32>) -> memref<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  %k = memref.dim %m, %c0 : memref<?xf32>
  %out = memref.alloc(%k) : memref<?xf32>
  scf.for %j = %c0 to %k step %c1 {
    %v = memref.load %m[%j] : memref<?xf32>
    %bb = memref.load %b[] : memref<f32>
    %d = arith.subf %one, %bb : f32
    %q = arith.divf %v, %d : f32
    memref.store %q, %out[%j] : memref<?xf32>
  }
  return %out : memref<?xf32>
}
