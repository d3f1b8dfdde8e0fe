// mlx-parallel-threshold: an OpenMP team only where the nest does at least
// 2^13 iterations of work. A loop's work is its trips times its body's; a
// body's is the sum of its loops' (siblings add: multiplying them, as the
// pass once did, overflowed int64 for softmax's versioned loops and ran it
// on one thread) and the larger of an scf.if's branches (versions of one
// loop, from mlx-cpu-reciprocal-divisors).
// RUN: %mlx-opt %s --convert-scf-to-openmp --mlx-parallel-threshold --canonicalize | FileCheck %s

// n * (k + max(k, k * k)) >= 8192.
// CHECK-LABEL: func.func @siblings
// CHECK-DAG: %[[MIN:.*]] = arith.constant 8192 : index
// CHECK: %[[K1:.*]] = arith.maxsi %arg2, %c0
// CHECK: %[[K2:.*]] = arith.maxsi %arg2, %c0
// CHECK: %[[KA:.*]] = arith.maxsi %arg2, %c0
// CHECK: %[[KB:.*]] = arith.maxsi %arg2, %c0
// CHECK: %[[KK:.*]] = arith.muli %[[KB]], %[[KA]]
// CHECK: %[[BRANCH:.*]] = arith.maxsi %[[K2]], %[[KK]]
// CHECK: %[[BODY:.*]] = arith.addi %[[K1]], %[[BRANCH]]
// CHECK: %[[N:.*]] = arith.maxsi %arg1, %c0
// CHECK: %[[WORK:.*]] = arith.muli %[[BODY]], %[[N]]
// CHECK: %[[ENOUGH:.*]] = arith.cmpi sge, %[[WORK]], %[[MIN]]
// CHECK: omp.parallel if(%[[ENOUGH]])
func.func @siblings(%buf: memref<?x?xf32>, %n: index, %k: index, %ok: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    scf.for %j = %c0 to %k step %c1 {
      memref.store %f, %buf[%i, %j] : memref<?x?xf32>
    }
    scf.if %ok {
      scf.for %j = %c0 to %k step %c1 {
        memref.store %f, %buf[%i, %j] : memref<?x?xf32>
      }
    } else {
      scf.for %j = %c0 to %k step %c1 {
        scf.for %l = %c0 to %k step %c1 {
          memref.store %f, %buf[%i, %j] : memref<?x?xf32>
        }
      }
    }
  }
  return
}
