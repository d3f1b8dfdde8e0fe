// mlx-cpu-column-blocks: a sum over rows for each column (its reduction
// loop outermost, so the columns are walked contiguously) becomes one
// parallel loop over blocks of columns, each running every row, instead
// of a parallel loop per row. Numbers: the bias gradients in
// test/Integration/gradients.test and GradCheck; threads.test checks the
// column sum is bit-identical at 1, 2 and 3 threads.
// RUN: %mlx-opt %s --mlx-cpu-column-blocks | FileCheck %s
// RUN: %mlx-opt %s --mlx-cpu-column-blocks --convert-linalg-to-parallel-loops | FileCheck %s --check-prefix=LOOPS

#rows = affine_map<(n, k) -> (n, k)>
#col = affine_map<(n, k) -> (k)>

// Blocks of ⌈K / 8⌉ columns rounded up to 16 (16·⌈K / 128⌉), at least 64;
// in a block, the rows in order, each a row of the block's columns: each
// column sums the same rows in the same order.
// CHECK-LABEL: func.func @bias_gradient
// CHECK: arith.divui %{{.*}}, %c128
// CHECK: arith.muli %{{.*}}, %c16
// CHECK: %[[BLOCK:.*]] = arith.maxui %{{.*}}, %c64
// CHECK: scf.parallel (%[[K0:.*]]) = (%c0{{.*}}) to (%{{.*}}) step (%[[BLOCK]])
// CHECK: scf.for %[[N:.*]] = %c0{{.*}} to %{{.*}} step %c1
// CHECK: affine.min
// CHECK: memref.subview %{{.*}}[%[[N]], %[[K0]]] [1, %{{.*}}]
// CHECK: memref.subview %{{.*}}[%[[K0]]]
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]
// A row of a block stands for at least 64 columns' work, for
// mlx-parallel-threshold (the block's extent is only known inside).
// CHECK: } {mlx.work = 64 : i64}
// CHECK: scf.reduce
// CHECK-NOT: linalg.generic
// CHECK: return
// The rows then run inside each block, its columns innermost.
// LOOPS-LABEL: func.func @bias_gradient
// LOOPS: scf.parallel
// LOOPS: scf.for
// LOOPS: scf.for
// LOOPS: scf.parallel
// LOOPS: memref.load
// LOOPS: arith.addf
func.func @bias_gradient(%dy: memref<?x?xf32>, %db: memref<?xf32>) {
  linalg.generic {indexing_maps = [#rows, #col],
                  iterator_types = ["reduction", "parallel"]}
      ins(%dy : memref<?x?xf32>) outs(%db : memref<?xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %s = arith.addf %acc, %x : f32
    linalg.yield %s : f32
  }
  return
}

// Left alone: a row sum (its parallel loop outermost), an op already in a
// parallel loop, tensors, and a body reading linalg.index (a scan's mask,
// test/Integration/scans.mlx).
#row = affine_map<(n, k) -> (n)>
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: scf.parallel
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK: scf.parallel
// CHECK-NOT: scf.parallel
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]
// CHECK-NOT: scf.parallel
// CHECK: linalg.index 0
// CHECK-NOT: scf.parallel
// CHECK: return
func.func @left_alone(%x: memref<?x?xf32>, %y: memref<?xf32>,
                      %t: tensor<?x?xf32>, %u: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  linalg.generic {indexing_maps = [affine_map<(n, k) -> (n, k)>, #row],
                  iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<?x?xf32>) outs(%y : memref<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %s = arith.addf %acc, %a : f32
    linalg.yield %s : f32
  }
  scf.parallel (%i) = (%c0) to (%c2) step (%c1) {
    linalg.generic {indexing_maps = [#rows, #col],
                    iterator_types = ["reduction", "parallel"]}
        ins(%x : memref<?x?xf32>) outs(%y : memref<?xf32>) {
    ^bb0(%a: f32, %acc: f32):
      %s = arith.addf %acc, %a : f32
      linalg.yield %s : f32
    }
    scf.reduce
  }
  %r = linalg.generic {indexing_maps = [#rows, #col],
                       iterator_types = ["reduction", "parallel"]}
      ins(%t : tensor<?x?xf32>) outs(%u : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %s = arith.addf %acc, %a : f32
    linalg.yield %s : f32
  } -> tensor<?xf32>
  linalg.generic {indexing_maps = [#rows, #col],
                  iterator_types = ["reduction", "parallel"]}
      ins(%x : memref<?x?xf32>) outs(%y : memref<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %n = linalg.index 0 : index
    %k = linalg.index 1 : index
    %upto = arith.cmpi ule, %k, %n : index
    %s = arith.addf %acc, %a : f32
    %m = arith.select %upto, %s, %acc : f32
    linalg.yield %m : f32
  }
  return %r : tensor<?xf32>
}
