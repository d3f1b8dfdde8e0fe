// mlx-cpu-fuse-gathers: a gather that only computes indices, checks them
// and reads (mlx.gather's lowering) is fused into the reduction that reads
// it, however many times that reads each element; the patches tensor goes.
// A gather that computes more than indices, or that has another reader,
// stays. Numbers: test/Integration/contractions.test (the conv_* cases)
// and bounds.test (shifted_product, its reports).
// RUN: %mlx-opt %s --mlx-cpu-fuse-gathers | FileCheck %s

#scalar = affine_map<(j, k) -> ()>
#each = affine_map<(j, k) -> (j, k)>
#a = affine_map<(i, k, j) -> (i, j)>
#b = affine_map<(i, k, j) -> (j, k)>
#c = affine_map<(i, k, j) -> (i, k)>

func.func private @mlx_report_out_of_bounds(i64, i64, i64)

// Y[i, k] = Σ_j A[i, j] · B[j + s, k]: one generic over (i, k, j) reading B
// itself, the range check and its report inside, the shift s an input.
// CHECK-LABEL: func.func @shifted_product
// CHECK: tensor.empty
// CHECK-NOT: tensor.empty
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0, %arg2 : tensor<?x?xf32>, tensor<i32>)
// CHECK: scf.if
// CHECK: tensor.extract %arg1
// CHECK: func.call @mlx_report_out_of_bounds
// CHECK: arith.mulf
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @shifted_product(%A: tensor<?x?xf32>, %B: tensor<?x?xf32>, %s: tensor<i32>) -> tensor<?x?xf32> {
  %zero = arith.constant 0.0 : f32
  %c0_i64 = arith.constant 0 : i64
  %true = arith.constant true
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %A, %c0 : tensor<?x?xf32>
  %n = tensor.dim %A, %c1 : tensor<?x?xf32>
  %k = tensor.dim %B, %c1 : tensor<?x?xf32>
  %empty = tensor.empty(%n, %k) : tensor<?x?xf32>
  %G = linalg.generic {indexing_maps = [#scalar, #each], iterator_types = ["parallel", "parallel"]}
      ins(%s : tensor<i32>) outs(%empty : tensor<?x?xf32>) {
  ^bb0(%shift: i32, %out: f32):
    %j = linalg.index 0 : index
    %j32 = arith.index_cast %j : index to i32
    %row32 = arith.addi %j32, %shift : i32
    %col = linalg.index 1 : index
    %row = arith.index_cast %row32 : i32 to index
    %r = tensor.dim %B, %c0 : tensor<?x?xf32>
    %below = arith.cmpi slt, %row, %r : index
    %above = arith.cmpi sge, %row, %c0 : index
    %ok = arith.andi %above, %below : i1
    %v = scf.if %ok -> (f32) {
      %e = tensor.extract %B[%row, %col] : tensor<?x?xf32>
      scf.yield %e : f32
    } else {
      %bad = arith.xori %ok, %true : i1
      scf.if %bad {
        %i64 = arith.index_cast %row : index to i64
        %r64 = arith.index_cast %r : index to i64
        func.call @mlx_report_out_of_bounds(%c0_i64, %i64, %r64) : (i64, i64, i64) -> ()
      }
      scf.yield %zero : f32
    }
    linalg.yield %v : f32
  } -> tensor<?x?xf32>
  %init = tensor.empty(%m, %k) : tensor<?x?xf32>
  %filled = linalg.fill ins(%zero : f32) outs(%init : tensor<?x?xf32>) -> tensor<?x?xf32>
  %Y = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %G : tensor<?x?xf32>, tensor<?x?xf32>) outs(%filled : tensor<?x?xf32>) {
  ^bb0(%x: f32, %g: f32, %acc: f32):
    %p = arith.mulf %x, %g : f32
    %sum = arith.addf %acc, %p : f32
    linalg.yield %sum : f32
  } -> tensor<?x?xf32>
  return %Y : tensor<?x?xf32>
}

// A gather that also computes a transcendental (exp of what it reads):
// recomputed per reader it would cost an exp per multiply-add; not fused.
// CHECK-LABEL: func.func @gather_and_exp
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]}
// CHECK: math.exp
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]}
func.func @gather_and_exp(%A: tensor<?x?xf32>, %B: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %zero = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %A, %c0 : tensor<?x?xf32>
  %n = tensor.dim %A, %c1 : tensor<?x?xf32>
  %k = tensor.dim %B, %c1 : tensor<?x?xf32>
  %empty = tensor.empty(%n, %k) : tensor<?x?xf32>
  %G = linalg.generic {indexing_maps = [#each], iterator_types = ["parallel", "parallel"]}
      outs(%empty : tensor<?x?xf32>) {
  ^bb0(%out: f32):
    %j = linalg.index 0 : index
    %col = linalg.index 1 : index
    %e = tensor.extract %B[%j, %col] : tensor<?x?xf32>
    %x = math.exp %e : f32
    linalg.yield %x : f32
  } -> tensor<?x?xf32>
  %init = tensor.empty(%m, %k) : tensor<?x?xf32>
  %filled = linalg.fill ins(%zero : f32) outs(%init : tensor<?x?xf32>) -> tensor<?x?xf32>
  %Y = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %G : tensor<?x?xf32>, tensor<?x?xf32>) outs(%filled : tensor<?x?xf32>) {
  ^bb0(%x: f32, %g: f32, %acc: f32):
    %p = arith.mulf %x, %g : f32
    %sum = arith.addf %acc, %p : f32
    linalg.yield %sum : f32
  } -> tensor<?x?xf32>
  return %Y : tensor<?x?xf32>
}

// The patches also returned: they must be computed anyway; not fused.
// CHECK-LABEL: func.func @gather_also_returned
// CHECK: %[[G:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]}
// CHECK: linalg.generic {{.*}} ins(%arg0, %[[G]] :
// CHECK: return %{{.*}}, %[[G]]
func.func @gather_also_returned(%A: tensor<?x?xf32>, %B: tensor<?x?xf32>) -> (tensor<?x?xf32>, tensor<?x?xf32>) {
  %zero = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %A, %c0 : tensor<?x?xf32>
  %n = tensor.dim %A, %c1 : tensor<?x?xf32>
  %k = tensor.dim %B, %c1 : tensor<?x?xf32>
  %empty = tensor.empty(%n, %k) : tensor<?x?xf32>
  %G = linalg.generic {indexing_maps = [#each], iterator_types = ["parallel", "parallel"]}
      outs(%empty : tensor<?x?xf32>) {
  ^bb0(%out: f32):
    %j = linalg.index 0 : index
    %col = linalg.index 1 : index
    %e = tensor.extract %B[%j, %col] : tensor<?x?xf32>
    linalg.yield %e : f32
  } -> tensor<?x?xf32>
  %init = tensor.empty(%m, %k) : tensor<?x?xf32>
  %filled = linalg.fill ins(%zero : f32) outs(%init : tensor<?x?xf32>) -> tensor<?x?xf32>
  %Y = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %G : tensor<?x?xf32>, tensor<?x?xf32>) outs(%filled : tensor<?x?xf32>) {
  ^bb0(%x: f32, %g: f32, %acc: f32):
    %p = arith.mulf %x, %g : f32
    %sum = arith.addf %acc, %p : f32
    linalg.yield %sum : f32
  } -> tensor<?x?xf32>
  return %Y, %G : tensor<?x?xf32>, tensor<?x?xf32>
}
