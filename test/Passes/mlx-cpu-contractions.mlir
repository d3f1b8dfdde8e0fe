// mlx-cpu-contractions: a contraction on buffers becomes packing loops
// (one vector per step of r), tasks over an scf.parallel and calls of a
// register-tile kernel of vector FMAs, one per element type and tile shape
// in the module (MR x NR = 12 x 32 with 512-bit vectors, 6 x 16 with
// 256-bit ones). Numbers: test/Integration/contractions.test.
// RUN: %mlx-opt %s --mlx-cpu-contractions=vector-bits=512 | FileCheck %s --check-prefixes=CHECK,AVX512
// RUN: %mlx-opt %s --mlx-cpu-contractions=vector-bits=256 | FileCheck %s --check-prefixes=CHECK,AVX2

// The kernels come first, not inlined, internal: per step of r, 24 FMAs
// (12 with AVX2); C loaded and stored whole or, at edges, masked; the tile
// under it (the next call's) prefetched, a line per row and vector, its
// rows clamped to C's last.
// AVX512-LABEL: func.func private @mlx_tile_f64_12x16(%{{.*}}: memref<?x?x12xf64, strided<[?, 12, 1], offset: ?>>, %{{.*}}: memref<?x?x16xf64, strided<[?, 16, 1], offset: ?>>, %{{.*}}: memref<?x?xf64, strided<[?, 1], offset: ?>>
// AVX512-SAME: llvm.linkage = #llvm.linkage<internal>
// AVX512-SAME: passthrough = ["noinline"]
// AVX512-COUNT-24: vector.fma {{.*}} : vector<8xf64>
// The last strip of rows, where it holds at most 2·MR/3 or MR/3 rows, has
// kernels of that many rows (the same packing), masked (their full-tile
// branch is `scf.if false`).
// AVX512-LABEL: func.func private @mlx_tile_f32_4of12x32
// AVX512-COUNT-8: vector.maskedload {{.*}} : memref<?x?xf32, strided<[?, 1], offset: ?>>
// AVX512-COUNT-8: vector.fma {{.*}} : vector<16xf32>
// AVX512-NOT: vector.fma
// AVX512-LABEL: func.func private @mlx_tile_f32_8of12x32
// AVX512-COUNT-16: vector.fma {{.*}} : vector<16xf32>
// AVX512-NOT: vector.fma
// AVX512-LABEL: func.func private @mlx_tile_f32_12x32
// AVX2-LABEL: func.func private @mlx_tile_f64_6x8
// AVX2-COUNT-12: vector.fma {{.*}} : vector<4xf64>
// AVX2-LABEL: func.func private @mlx_tile_f32_6x16
// CHECK: vector.load
// CHECK: vector.maskedload
// CHECK: arith.minui
// AVX512-COUNT-24: memref.prefetch {{.*}}, read, locality<3>, data
// AVX2-COUNT-12: memref.prefetch {{.*}}, read, locality<3>, data
// CHECK-NOT: memref.prefetch
// AVX512-COUNT-24: vector.fma {{.*}} : vector<16xf32>
// AVX2-COUNT-12: vector.fma {{.*}} : vector<8xf32>
// CHECK-NOT: vector.fma
// CHECK: vector.store
// CHECK: vector.maskedstore
// CHECK: return

#a = affine_map<(i, k, r) -> (i, r)>
#b = affine_map<(i, k, r) -> (r, k)>
#bt = affine_map<(i, k, r) -> (k, r)>
#c = affine_map<(i, k, r) -> (i, k)>
#row = affine_map<(i, k, r) -> (i)>

// A plain matrix product: A's rows are read with a stride across lanes (a
// gather), B's row contiguously (a masked load), each step of a packing
// loop counted as its MR or NR elements by mlx-parallel-threshold; then
// the tasks, panels of 512 steps of r and a kernel call per tile, counted
// as 512 * MR * NR multiply-adds.
// CHECK-LABEL: func.func @matmul
// AVX512: memref.alloc({{.*}}) {alignment = 64 : i64} : memref<?x?x?x12xf32>
// AVX512: scf.parallel
// AVX512: vector.step : vector<12xindex>
// AVX512: vector.gather {{.*}} : memref<?x?xf32>, vector<12xindex>, vector<12xi1>, vector<12xf32> into vector<12xf32>
// AVX512: vector.store {{.*}} : memref<?x?x?x12xf32>, vector<12xf32>
// AVX512-NEXT: } {mlx.work = 12 : i64}
// AVX512: memref.alloc({{.*}}) {alignment = 64 : i64} : memref<?x?x?x32xf32>
// AVX512: vector.maskedload {{.*}} : memref<?x?xf32>, vector<32xi1>, vector<32xf32> into vector<32xf32>
// AVX512: vector.store {{.*}} : memref<?x?x?x32xf32>, vector<32xf32>
// AVX512-NEXT: } {mlx.work = 32 : i64}
// AVX2: memref<?x?x?x6xf32>
// AVX2: vector.gather {{.*}} into vector<6xf32>
// AVX2: memref<?x?x?x16xf32>
// AVX2: vector.maskedload {{.*}} into vector<16xf32>
// Rows that fit one task (at most 16 strips) with a strip of columns per
// thread are not split (every row task would read all of Bp): the tasks
// split the columns.
// CHECK: arith.cmpi ule, %{{.*}}, %c16{{.*}} : index
// CHECK: arith.cmpi uge
// CHECK: %[[FEW:.*]] = arith.andi
// CHECK: arith.select %[[FEW]], %c1{{.*}}, %{{.*}} : index
// CHECK: arith.select %[[FEW]]
// CHECK: scf.parallel
// Panels of at most 512 steps, of equal length: ⌈K / ⌈K / 512⌉⌉.
// CHECK: arith.divui %{{.*}}, %c512 : index
// CHECK: scf.for {{.*}} step %{{.*}} {
// AVX512: arith.cmpi sgt, %{{.*}}, %c8
// AVX512: func.call @mlx_tile_f32_12x32
// AVX2: func.call @mlx_tile_f32_6x16
// AVX512: arith.cmpi sgt, %{{.*}}, %c4
// AVX512: func.call @mlx_tile_f32_8of12x32
// AVX512: } else {
// AVX512: func.call @mlx_tile_f32_4of12x32
// AVX2: func.call @mlx_tile_f32_4of6x16
// AVX2: func.call @mlx_tile_f32_2of6x16
// AVX512: {mlx.work = 196608 : i64}
// AVX2: {mlx.work = 49152 : i64}
// CHECK: memref.dealloc
// CHECK: memref.dealloc
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @matmul(%A: memref<?x?xf32>, %B: memref<?x?xf32>, %C: memref<?x?xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<?x?xf32>, memref<?x?xf32>) outs(%C : memref<?x?xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// QK^T with a per-row scale: the factors compute (the scale, loaded along
// the lanes, multiplies Q's side as it is packed); K^T's rows are gathered;
// f64 halves the lanes.
// CHECK-LABEL: func.func @scaled_transposed
// AVX512-DAG: vector.gather {{.*}} into vector<12xf64>
// AVX512-DAG: vector.maskedload {{.*}} into vector<12xf64>
// AVX512: arith.mulf {{.*}} : vector<12xf64>
// AVX512: vector.gather {{.*}} into vector<16xf64>
// AVX512: func.call @mlx_tile_f64_12x16
// AVX2: func.call @mlx_tile_f64_6x8
// CHECK-NOT: linalg.generic
func.func @scaled_transposed(%Q: memref<?x?xf64>, %K: memref<?x?xf64>, %s: memref<?xf64>, %S: memref<?x?xf64>) {
  linalg.generic {indexing_maps = [#a, #bt, #row, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%Q, %K, %s : memref<?x?xf64>, memref<?x?xf64>, memref<?xf64>) outs(%S : memref<?x?xf64>) {
  ^bb0(%q: f64, %k: f64, %scale: f64, %acc: f64):
    %qs = arith.mulf %q, %scale : f64
    %p = arith.mulf %qs, %k : f64
    %sum = arith.addf %p, %acc : f64
    linalg.yield %sum : f64
  }
  return
}

// The product scaled by a value of no input (attention's 1/sqrt(D)): the
// division moves to A's side, applied to each packed vector.
// CHECK-LABEL: func.func @scaled_product
// CHECK: math.sqrt {{.*}} : f32
// CHECK: vector.broadcast {{.*}} : f32 to vector<{{12|6}}xf32>
// CHECK: arith.divf {{.*}} : vector<{{12|6}}xf32>
// CHECK-NOT: linalg.generic
func.func @scaled_product(%Q: memref<?x?xf32>, %K: memref<?x?xf32>, %S: memref<?x?xf32>, %d: f32) {
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%Q, %K : memref<?x?xf32>, memref<?x?xf32>) outs(%S : memref<?x?xf32>) {
  ^bb0(%q: f32, %k: f32, %acc: f32):
    %p = arith.mulf %q, %k : f32
    %root = math.sqrt %d : f32
    %scaled = arith.divf %p, %root : f32
    %sum = arith.addf %acc, %scaled : f32
    linalg.yield %sum : f32
  }
  return
}

// A batch dim (attention's heads), used by B's side only (a weight per
// head): A is packed once, B per batch; the tasks cover every batch, each
// with its own C.
// CHECK-LABEL: func.func @batched
// CHECK: memref.alloc(%c1{{.*}}) {{.*}} : memref<?x?x?x{{12|6}}xf32>
// CHECK: memref.alloc(%dim{{.*}}) {{.*}} : memref<?x?x?x{{32|16}}xf32>
// CHECK: scf.parallel
// CHECK: memref.subview %arg2[%{{.*}}, 0, 0] [1, %{{.*}}, %{{.*}}] [1, 1, 1] : memref<?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK: func.call @mlx_tile_f32
// CHECK-NOT: linalg.generic
func.func @batched(%X: memref<?x?xf32>, %W: memref<?x?x?xf32>, %Y: memref<?x?x?xf32>) {
  linalg.generic {indexing_maps = [affine_map<(h, i, k, r) -> (i, r)>,
                                   affine_map<(h, i, k, r) -> (h, r, k)>,
                                   affine_map<(h, i, k, r) -> (h, i, k)>],
                  iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%X, %W : memref<?x?xf32>, memref<?x?x?xf32>) outs(%Y : memref<?x?x?xf32>) {
  ^bb0(%x: f32, %w: f32, %acc: f32):
    %p = arith.mulf %x, %w : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Not contractions of two sides: a factor reading both i and k, and a max
// instead of a sum, stay linalg.generic.
// CHECK-LABEL: func.func @not_contractions
// CHECK-NOT: func.call
// CHECK: linalg.generic
// CHECK: linalg.generic
func.func @not_contractions(%A: memref<?x?xf32>, %B: memref<?x?xf32>, %W: memref<?x?xf32>, %C: memref<?x?xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B, %W : memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) outs(%C : memref<?x?xf32>) {
  ^bb0(%x: f32, %y: f32, %w: f32, %acc: f32):
    %xw = arith.mulf %x, %w : f32
    %p = arith.mulf %xw, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<?x?xf32>, memref<?x?xf32>) outs(%C : memref<?x?xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.maximumf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A recurrence's step (an LSTM's z = W [h, x]): the i side picks h or x by
// linalg.index of r (the lanes get the step's index); W, read the same at
// every step, is packed once before the steps' loop (gathered across its
// rows: Wᵀ's side) and freed after it, the i side packed per step; the
// test on the step (j < H) is a scalar, the same in every lane.
#w = affine_map<(n, r, j) -> (r, j)>
#hx = affine_map<(n, r, j) -> (n, j)>
#z = affine_map<(n, r, j) -> (n, r)>
// CHECK-LABEL: func.func @recurrence
// AVX512: memref.alloc({{.*}}) {alignment = 64 : i64} : memref<?x?x?x32xf32>
// AVX512: vector.gather {{.*}} into vector<32xf32>
// AVX512: scf.for %[[STEP:.*]] = %{{.*}} to %{{.*}} step
// AVX512: memref.alloc({{.*}}) {alignment = 64 : i64} : memref<?x?x?x12xf32>
// AVX512-NOT: vector<12xi64>
// AVX512: arith.cmpi slt, {{.*}} : i64
// AVX512: arith.select {{.*}} : vector<12xi1>, vector<12xf32>
// AVX512: func.call @mlx_tile_f32_12x32
// AVX512: memref.dealloc
// AVX512-NOT: memref.dealloc
// AVX512: }
// AVX512: memref.dealloc
// CHECK: return
func.func @recurrence(%W: memref<?x?xf32>, %h: memref<?x?xf32>, %x: memref<?x?xf32>, %z: memref<?x?xf32>, %steps: index, %H: i64) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %t = %c0 to %steps step %c1 {
    linalg.generic {indexing_maps = [#w, #hx, #hx, #z],
                    iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%W, %h, %x : memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) outs(%z : memref<?x?xf32>) {
    ^bb0(%w: f32, %hv: f32, %xv: f32, %acc: f32):
      %j = linalg.index 2 : index
      %j64 = arith.index_cast %j : index to i64
      %first = arith.cmpi slt, %j64, %H : i64
      %v = arith.select %first, %hv, %xv : f32
      %p = arith.mulf %w, %v : f32
      %s = arith.addf %acc, %p : f32
      linalg.yield %s : f32
    }
    memref.copy %z, %h : memref<?x?xf32> to memref<?x?xf32>
  }
  return
}

// The same step with h and x read at computed subscripts (the fused
// gathers of `j < H ? h[n, min(j, H - 1)] : x[n, max(j - H, 0)]`): the
// condition is the same in every lane, so only the read it picks is
// loaded, in an scf.if (each read a masked load or a gather by rows).
// CHECK-LABEL: func.func @recurrence_gathered
// AVX512: %[[PICKED:.*]] = scf.if %{{.*}} -> (vector<12xf32>) {
// AVX512: vector.gather {{.*}} into vector<12xf32>
// AVX512: } else {
// AVX512: vector.gather {{.*}} into vector<12xf32>
// AVX512: arith.select %{{.*}}, %[[PICKED]], %{{.*}} : vector<12xi1>, vector<12xf32>
// AVX512: func.call @mlx_tile_f32_12x32
// CHECK: return
func.func @recurrence_gathered(%W: memref<?x?xf32>, %h: memref<?x?xf32>, %x: memref<?x?xf32>, %z: memref<?x?xf32>, %H: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  linalg.generic {indexing_maps = [#w, #z], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%W : memref<?x?xf32>) outs(%z : memref<?x?xf32>) {
  ^bb0(%w: f32, %acc: f32):
    %n = linalg.index 0 : index
    %j = linalg.index 2 : index
    %first = arith.cmpi ult, %j, %H : index
    %last = arith.subi %H, %c1 : index
    %jh = arith.minui %j, %last : index
    %hv = memref.load %h[%n, %jh] : memref<?x?xf32>
    %jx0 = arith.subi %j, %H : index
    %jx = arith.select %first, %c0, %jx0 : index
    %xv = memref.load %x[%n, %jx] : memref<?x?xf32>
    %v = arith.select %first, %hv, %xv : f32
    %p = arith.mulf %w, %v : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Weights written inside the loop (here through a view) are packed at
// every step, h (written nowhere) once; a factor reading the index of the
// other side's dim is no contraction of two sides.
// CHECK-LABEL: func.func @not_invariant
// AVX512: memref.alloc({{.*}}) {alignment = 64 : i64} : memref<?x?x?x12xf32>
// CHECK: scf.for
// AVX512: memref.alloc({{.*}}) {alignment = 64 : i64} : memref<?x?x?x32xf32>
// CHECK: func.call
// CHECK: linalg.generic
// CHECK: return
func.func @not_invariant(%W: memref<?x?xf32>, %h: memref<?x?xf32>, %z: memref<?x?xf32>, %steps: index, %v: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %t = %c0 to %steps step %c1 {
    linalg.generic {indexing_maps = [#w, #hx, #z],
                    iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%W, %h : memref<?x?xf32>, memref<?x?xf32>) outs(%z : memref<?x?xf32>) {
    ^bb0(%w: f32, %hv: f32, %acc: f32):
      %p = arith.mulf %w, %hv : f32
      %s = arith.addf %acc, %p : f32
      linalg.yield %s : f32
    }
    %row = memref.subview %W[0, 0] [1, 4] [1, 1] : memref<?x?xf32> to memref<4xf32, strided<[1]>>
    linalg.fill ins(%v : f32) outs(%row : memref<4xf32, strided<[1]>>)
  }
  linalg.generic {indexing_maps = [#w, #hx, #z],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%W, %h : memref<?x?xf32>, memref<?x?xf32>) outs(%z : memref<?x?xf32>) {
  ^bb0(%w: f32, %hv: f32, %acc: f32):
    %r = linalg.index 1 : index
    %r64 = arith.index_cast %r : index to i64
    %rf = arith.sitofp %r64 : i64 to f32
    %hr = arith.mulf %hv, %rf : f32
    %p = arith.mulf %w, %hr : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A convolution as a product: C[o, y, x] = Σ_{c,u,v} K[o, c, u, v] ·
// P[c, y, u, x, v] (the patches of conv2d): C's columns are (y, x), held
// contiguously and taken as one dim of extent Y·X (lanes split into y and
// x, the patches gathered by Σ lane·stride), the sum's three dims one of
// extent C·3·3 (packed by loops over c, u and v); C collapsed to [O, Y·X].
#ck = affine_map<(o, y, x, c, u, v) -> (o, c, u, v)>
#cp = affine_map<(o, y, x, c, u, v) -> (c, y, u, x, v)>
#cc = affine_map<(o, y, x, c, u, v) -> (o, y, x)>
// CHECK-LABEL: func.func @convolution
// AVX512: arith.muli %{{.*}}, %{{.*}} : index
// AVX512: scf.for %[[C:.*]] = %{{.*}} to %{{.*}}
// AVX512: scf.for %[[U:.*]] = %{{.*}} to %c3
// AVX512: scf.for %[[V:.*]] = %{{.*}} to %c3
// AVX512: vector.gather %arg0[%{{.*}}, %[[C]], %[[U]], %[[V]]] {{.*}} into vector<12xf32>
// AVX512: arith.remui {{.*}} : vector<32xindex>
// AVX512: arith.divui {{.*}} : vector<32xindex>
// AVX512: scf.for %[[C2:.*]] = %{{.*}} to %{{.*}}
// AVX512: scf.for %[[U2:.*]] = %{{.*}} to %c3
// AVX512: scf.for %[[V2:.*]] = %{{.*}} to %c3
// AVX512: vector.gather %arg1[%[[C2]], %{{.*}}, %[[U2]], %{{.*}}, %[[V2]]] {{.*}} into vector<32xf32>
// AVX512: memref.collapse_shape {{.*}} {{\[}}[0], [1, 2]] : memref<?x?x?xf32> into memref<?x?xf32>
// AVX512: func.call @mlx_tile_f32_12x32
// CHECK: return
func.func @convolution(%K: memref<?x?x3x3xf32>, %P: memref<?x?x3x?x3xf32>, %C: memref<?x?x?xf32>) {
  linalg.generic {indexing_maps = [#ck, #cp, #cc],
                  iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]}
      ins(%K, %P : memref<?x?x3x3xf32>, memref<?x?x3x?x3xf32>) outs(%C : memref<?x?x?xf32>) {
  ^bb0(%k: f32, %p: f32, %acc: f32):
    %m = arith.mulf %k, %p : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  }
  return
}

// A padded convolution whose input is read at computed subscripts (a
// gather fused in by mlx-cpu-fuse-gathers): C[o, x] = Σ_{c,v} K[o, c, v] ·
// (0 ≤ x + v − 1 < W ? I[c, clamp(x + v − 1)] : 0). Packing I's side, the
// reduction dims the subscript arithmetic combines with the lanes (v) loop
// outside those it does not (c), and the steps are flattened in that order
// (v, c) on both sides; the read is masked by the select's condition and
// is one masked load where the lanes it reads are consecutive, else a
// gather, both from I as one dim of elements, c in the base. I's side is
// packed per task, a strip at a time into [1][1][K][NR] (the kernel sees it
// as every strip: stride 0), each strip for all steps before its panels.
#k1 = affine_map<(o, x, c, v) -> (o, c, v)>
#o1 = affine_map<(o, x, c, v) -> (o, x)>
// CHECK-LABEL: func.func @padded_conv1d
// CHECK: scf.for %[[V:[^ ]*]] = %{{.*}} to %c3
// CHECK: scf.for %[[C:[^ ]*]] = %{{.*}} to %dim
// CHECK: vector.gather %arg0[%{{.*}}, %[[C]], %[[V]]]
// CHECK: scf.parallel
// AVX512: %[[LOCAL:.*]] = memref.alloc(%{{.*}}) {alignment = 64 : i64} : memref<1x1x?x32xf32>
// AVX2: %[[LOCAL:.*]] = memref.alloc(%{{.*}}) {alignment = 64 : i64} : memref<1x1x?x16xf32>
// CHECK: memref.reinterpret_cast {{.*}} strides: [0, {{16|32}}, 1]
// CHECK: scf.for %[[V2:[^ ]*]] = %{{.*}} to %c3
// CHECK: scf.for %[[C2:[^ ]*]] = %{{.*}} to %dim
// CHECK: arith.muli %[[C2]], %{{.*}} : index
// CHECK: memref.reinterpret_cast
// CHECK: vector.reduction <maxsi>
// CHECK: scf.if
// AVX512: vector.maskedload {{.*}} : memref<?xf32, strided<[1], offset: ?>>, vector<32xi1>, vector<32xf32> into vector<32xf32>
// AVX2: vector.maskedload {{.*}} : memref<?xf32, strided<[1], offset: ?>>, vector<16xi1>, vector<16xf32> into vector<16xf32>
// CHECK: } else {
// CHECK: vector.gather
// CHECK: vector.store {{.*}}, %[[LOCAL]]
// CHECK: scf.for
// CHECK: func.call @mlx_tile_f32
// CHECK: memref.dealloc %[[LOCAL]]
func.func @padded_conv1d(%K: memref<?x?x3xf32>, %I: memref<?x?xf32>, %C: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %w = memref.dim %I, %c1 : memref<?x?xf32>
  %last = arith.subi %w, %c1 : index
  linalg.generic {indexing_maps = [#k1, #o1],
                  iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
      ins(%K : memref<?x?x3xf32>) outs(%C : memref<?x?xf32>) {
  ^bb0(%k: f32, %acc: f32):
    %x = linalg.index 1 : index
    %c = linalg.index 2 : index
    %v = linalg.index 3 : index
    %xv = arith.addi %x, %v : index
    %at = arith.subi %xv, %c1 : index
    %lo = arith.cmpi sge, %at, %c0 : index
    %hi = arith.cmpi slt, %at, %w : index
    %inside = arith.andi %lo, %hi : i1
    %up = arith.maxsi %at, %c0 : index
    %clamped = arith.minsi %up, %last : index
    %e = memref.load %I[%c, %clamped] : memref<?x?xf32>
    %p = arith.select %inside, %e, %zero : f32
    %m = arith.mulf %k, %p : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  }
  return
}

// The same read guarded by a range check that reports (mlx.gather's
// lowering of Y[i, k] = Σ_j A[i, j] · B[j + s, k]): the lanes in range are
// read; where any lane is out of range, the report runs for each such lane
// on its scalars.
#sa = affine_map<(i, k, j) -> (i, j)>
#ss = affine_map<(i, k, j) -> ()>
#sy = affine_map<(i, k, j) -> (i, k)>
func.func private @mlx_report_out_of_bounds(i64, i64, i64)
// CHECK-LABEL: func.func @shifted_product
// CHECK: vector.reduction <or>
// CHECK-NEXT: scf.if
// CHECK: scf.for %[[LANE:.*]] = %c0{{.*}} to %c{{16|32}}
// CHECK: vector.extractelement %{{.*}}[%[[LANE]] : index] : vector<{{16|32}}xi1>
// CHECK: vector.extractelement %{{.*}}[%[[LANE]] : index] : vector<{{16|32}}xindex>
// CHECK: func.call @mlx_report_out_of_bounds
// CHECK: vector.maskedload
// CHECK: vector.gather
// CHECK: func.call @mlx_tile_f32
func.func @shifted_product(%A: memref<?x?xf32>, %B: memref<?x?xf32>, %s: memref<i32>, %Y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c0_i64 = arith.constant 0 : i64
  %true = arith.constant true
  %zero = arith.constant 0.0 : f32
  linalg.generic {indexing_maps = [#sa, #ss, #sy],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %s : memref<?x?xf32>, memref<i32>) outs(%Y : memref<?x?xf32>) {
  ^bb0(%a: f32, %shift: i32, %acc: f32):
    %k = linalg.index 1 : index
    %j = linalg.index 2 : index
    %j32 = arith.index_cast %j : index to i32
    %row32 = arith.addi %j32, %shift : i32
    %row = arith.index_cast %row32 : i32 to index
    %r = memref.dim %B, %c0 : memref<?x?xf32>
    %below = arith.cmpi slt, %row, %r : index
    %above = arith.cmpi sge, %row, %c0 : index
    %ok = arith.andi %above, %below : i1
    %b = scf.if %ok -> (f32) {
      %e = memref.load %B[%row, %k] : memref<?x?xf32>
      scf.yield %e : f32
    } else {
      %row64 = arith.index_cast %row : index to i64
      %r64 = arith.index_cast %r : index to i64
      func.call @mlx_report_out_of_bounds(%c0_i64, %row64, %r64) : (i64, i64, i64) -> ()
      scf.yield %zero : f32
    }
    %m = arith.mulf %a, %b : f32
    %sum = arith.addf %acc, %m : f32
    linalg.yield %sum : f32
  }
  return
}
