// mlx-lower-to-linalg of gathers and scatter-adds: a gather is one
// linalg.generic over the gather space that reads the input with
// tensor.extract where its computed index is in range (else reports it and
// reads 0); a scatter-add is an scf.for nest that adds element by element,
// so repeated subscripts add up.
// RUN: %mlx-opt %s --mlx-lower-to-linalg | FileCheck %s

// CHECK-LABEL: func.func @nll_terms
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : tensor<?xi32>) outs(%{{.*}} : tensor<?xf32>)
// CHECK: %[[T:.*]] = linalg.index 0 : index
// CHECK: %[[C:.*]] = arith.index_cast %{{.*}} : i32 to index
// CHECK-DAG: arith.cmpi sge, %[[C]]
// CHECK-DAG: arith.cmpi slt, %[[C]]
// CHECK: scf.if
// CHECK: tensor.extract %{{.*}}[%[[T]], %[[C]]] : tensor<?x?xf32>
// CHECK: } else {
// CHECK: call @mlx_report_out_of_bounds
func.func @nll_terms(%z: tensor<?x?xf32>, %c: tensor<?xi32>) -> tensor<?xf32> {
  %g = mlx.gather %z[%c] dims [0, -1] {size_names = ["K"], tensor = "z"} : tensor<?x?xf32>[tensor<?xi32>] -> tensor<?xf32>
  return %g : tensor<?xf32>
}

// CHECK-LABEL: func.func @scatter
// CHECK: scf.for %[[I:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (tensor<?x?xf32>)
// CHECK: %[[K:.*]] = tensor.extract %{{.*}}[%[[I]]] : tensor<?xi32>
// CHECK: scf.if
// CHECK: %[[OLD:.*]] = tensor.extract %[[ACC]]
// CHECK: %[[NEW:.*]] = arith.addf %[[OLD]]
// CHECK: tensor.insert %[[NEW]] into %[[ACC]]
func.func @scatter(%d: tensor<?xf32>, %z: tensor<?x?xf32>, %c: tensor<?xi32>) -> tensor<?x?xf32> {
  %s = mlx.scatter_add %d into %z[%c] dims [0, -1] : tensor<?xf32> into tensor<?x?xf32>[tensor<?xi32>]
  return %s : tensor<?x?xf32>
}
