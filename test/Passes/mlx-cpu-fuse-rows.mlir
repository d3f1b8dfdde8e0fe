// mlx-cpu-fuse-rows: a chain of row ops (row reductions and the maps that
// read them) becomes one scf.forall over blocks of rows, every op of the
// chain computed per block (its producers fused), the block's rows
// max(1, 32768 / elements per row). Numbers: the softmax and layer_norm
// fixtures (test/Stdlib), bit-identical rows.
// RUN: %mlx-opt %s --mlx-cpu-fuse-rows --cse | FileCheck %s

#row = affine_map<(i, j) -> (i, j)>
#each = affine_map<(i, j) -> (i)>
#col = affine_map<(i, j) -> (j)>

// Softmax rows: the max, exp(x - max), the sum and the division in one
// forall; exp, read by the sum and the division, computed once per block.
// CHECK-LABEL: func.func @softmax_rows
// Blocks of 32768 elements' rows, at most an eighth of the rows.
// CHECK: %[[PERROW:.*]] = arith.maxui %dim{{.*}}, %c1 : index
// CHECK: %[[ROWS:.*]] = arith.divui %c32768, %[[PERROW]] : index
// CHECK: %[[FIT:.*]] = arith.maxui %[[ROWS]], %c1
// CHECK: %[[UP:.*]] = arith.addi %dim, %c7
// CHECK: %[[EIGHTH:.*]] = arith.divui %[[UP]], %c8
// CHECK: %[[FEWER:.*]] = arith.minui %[[FIT]], %[[EIGHTH]]
// CHECK: %[[STEP:.*]] = arith.maxui %[[FEWER]], %c1
// CHECK: scf.forall (%{{.*}}) = (0) to (%dim) step (%[[STEP]])
// CHECK: tensor.extract_slice %arg0
// CHECK: linalg.fill
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK-NOT: math.exp
// CHECK: linalg.fill
// CHECK: arith.addf
// CHECK: arith.divf
// CHECK: tensor.parallel_insert_slice
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @softmax_rows(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %ninf = arith.constant 0xFF800000 : f32
  %zero = arith.constant 0.0 : f32
  %n = tensor.dim %x, %c0 : tensor<?x?xf32>
  %d = tensor.dim %x, %c1 : tensor<?x?xf32>
  %e1 = tensor.empty(%n) : tensor<?xf32>
  %m0 = linalg.fill ins(%ninf : f32) outs(%e1 : tensor<?xf32>) -> tensor<?xf32>
  %m = linalg.generic {indexing_maps = [#row, #each], iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<?x?xf32>) outs(%m0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %e2 = tensor.empty(%n, %d) : tensor<?x?xf32>
  %p = linalg.generic {indexing_maps = [#row, #each, #row], iterator_types = ["parallel", "parallel"]}
      ins(%x, %m : tensor<?x?xf32>, tensor<?xf32>) outs(%e2 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.subf %a, %b : f32
    %e = math.exp %s : f32
    linalg.yield %e : f32
  } -> tensor<?x?xf32>
  %z0 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<?xf32>) -> tensor<?xf32>
  %z = linalg.generic {indexing_maps = [#row, #each], iterator_types = ["parallel", "reduction"]}
      ins(%p : tensor<?x?xf32>) outs(%z0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %y = linalg.generic {indexing_maps = [#row, #each, #row], iterator_types = ["parallel", "parallel"]}
      ins(%p, %z : tensor<?x?xf32>, tensor<?xf32>) outs(%e2 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.divf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}

// A bias added to a matrix product's rows is no row chain: the product
// (its weights not indexed by the row) would be computed per block.
// CHECK-LABEL: func.func @product_then_bias
// CHECK-NOT: scf.forall
// CHECK: return
func.func @product_then_bias(%x: tensor<?x?xf32>, %w: tensor<?x?xf32>, %b: tensor<?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %n = tensor.dim %x, %c0 : tensor<?x?xf32>
  %o = tensor.dim %w, %c1 : tensor<?x?xf32>
  %e = tensor.empty(%n, %o) : tensor<?x?xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<?x?xf32>) -> tensor<?x?xf32>
  %h = linalg.matmul ins(%x, %w : tensor<?x?xf32>, tensor<?x?xf32>) outs(%c : tensor<?x?xf32>) -> tensor<?x?xf32>
  %y = linalg.generic {indexing_maps = [#row, #col, #row], iterator_types = ["parallel", "parallel"]}
      ins(%h, %b : tensor<?x?xf32>, tensor<?xf32>) outs(%e : tensor<?x?xf32>) {
  ^bb0(%a: f32, %v: f32, %out: f32):
    %r = arith.addf %a, %v : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}

// A bias added to a convolution's rows (output channels): the product's
// only input is indexed by the row, but its body gathers the image at
// computed subscripts (mlx-cpu-fuse-gathers' implicit GEMM), which every
// block would read and pack whole; left whole.
// CHECK-LABEL: func.func @gathered_product_then_bias
// CHECK-NOT: scf.forall
// CHECK: return
#gk = affine_map<(o, n, r) -> (o, r)>
#gy = affine_map<(o, n, r) -> (o, n)>
func.func @gathered_product_then_bias(%k: tensor<?x?xf32>, %img: tensor<?xf32>, %b: tensor<?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %o = tensor.dim %k, %c0 : tensor<?x?xf32>
  %n = tensor.dim %img, %c0 : tensor<?xf32>
  %e = tensor.empty(%o, %n) : tensor<?x?xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<?x?xf32>) -> tensor<?x?xf32>
  %h = linalg.generic {indexing_maps = [#gk, #gy], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%k : tensor<?x?xf32>) outs(%c : tensor<?x?xf32>) {
  ^bb0(%w: f32, %acc: f32):
    %i = linalg.index 1 : index
    %r = linalg.index 2 : index
    %at = arith.addi %i, %r : index
    %last = arith.subi %n, %c0 : index
    %in = arith.minui %at, %last : index
    %x = tensor.extract %img[%in] : tensor<?xf32>
    %p = arith.mulf %w, %x : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x?xf32>
  %y = linalg.generic {indexing_maps = [#row, #each, #row], iterator_types = ["parallel", "parallel"]}
      ins(%h, %b : tensor<?x?xf32>, tensor<?xf32>) outs(%e : tensor<?x?xf32>) {
  ^bb0(%a: f32, %v: f32, %out: f32):
    %r = arith.addf %a, %v : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}

// Row sums of a matrix product: the product has a reduction, but its
// weights are not indexed by the row; left whole.
// CHECK-LABEL: func.func @scaled_by_product_sum
// CHECK-NOT: scf.forall
// CHECK: return
#mm_x = affine_map<(i, j, k) -> (i, k)>
#mm_w = affine_map<(i, j, k) -> (k, j)>
#mm_y = affine_map<(i, j, k) -> (i, j)>
func.func @scaled_by_product_sum(%x: tensor<?x?xf32>, %w: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %n = tensor.dim %x, %c0 : tensor<?x?xf32>
  %o = tensor.dim %w, %c1 : tensor<?x?xf32>
  %e = tensor.empty(%n, %o) : tensor<?x?xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<?x?xf32>) -> tensor<?x?xf32>
  %h = linalg.generic {indexing_maps = [#mm_x, #mm_w, #mm_y], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<?x?xf32>, tensor<?x?xf32>) outs(%c : tensor<?x?xf32>) {
  ^bb0(%a: f32, %v: f32, %acc: f32):
    %p = arith.mulf %a, %v : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %y = linalg.generic {indexing_maps = [#row, #row, #row], iterator_types = ["parallel", "parallel"]}
      ins(%h, %x : tensor<?x?xf32>, tensor<?x?xf32>) outs(%e : tensor<?x?xf32>) {
  ^bb0(%a: f32, %v: f32, %out: f32):
    %r = arith.mulf %a, %v : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}

// Column sums (the row dim of the sum is its input's second subscript) are
// not fused: a block of their rows is no block of the input's.
// CHECK-LABEL: func.func @column_sums
// CHECK-NOT: scf.forall
// CHECK: return
#t = affine_map<(j, i) -> (i, j)>
#first = affine_map<(j, i) -> (j)>
#cols = affine_map<(j, e) -> (j, e)>
#colv = affine_map<(j, e) -> (j)>
func.func @column_sums(%p: tensor<?x?xf32>, %w: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %n = tensor.dim %p, %c1 : tensor<?x?xf32>
  %e = tensor.dim %w, %c1 : tensor<?x?xf32>
  %e1 = tensor.empty(%n) : tensor<?xf32>
  %z0 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<?xf32>) -> tensor<?xf32>
  %s = linalg.generic {indexing_maps = [#t, #first], iterator_types = ["parallel", "reduction"]}
      ins(%p : tensor<?x?xf32>) outs(%z0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %e2 = tensor.empty(%n, %e) : tensor<?x?xf32>
  %y = linalg.generic {indexing_maps = [#cols, #colv, #cols], iterator_types = ["parallel", "parallel"]}
      ins(%w, %s : tensor<?x?xf32>, tensor<?xf32>) outs(%e2 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.mulf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}
