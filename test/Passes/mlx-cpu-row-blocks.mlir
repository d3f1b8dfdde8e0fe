// mlx-cpu-row-blocks: the ops over a score matrix that a row reduction
// reads and a product sums over the rows of (attention's gradient) run in
// one scf.for over blocks of max(32, 2^18 / row length) rows: the scores'
// rows recomputed per block from Q's rows and the whole K, the row outputs
// inserted into their rows, the sums over the rows (dK) carried as
// accumulators, their readers after the loop. Numbers: row-blocks.test
// (NumPy float64 references, several blocks and a partial one).
// RUN: %mlx-opt %s --mlx-cpu-row-blocks --canonicalize --cse | FileCheck %s

#q = affine_map<(i, j, d) -> (i, d)>
#k = affine_map<(i, j, d) -> (j, d)>
#s = affine_map<(i, j, d) -> (i, j)>
#row = affine_map<(i, j) -> (i, j)>
#each = affine_map<(i, j) -> (i)>
#col = affine_map<(i, j) -> (j)>
#tr = affine_map<(i, j) -> (j, i)>
#pv_p = affine_map<(i, e, j) -> (i, j)>
#pv_v = affine_map<(i, e, j) -> (j, e)>
#pv_o = affine_map<(i, e, j) -> (i, e)>
#dk_p = affine_map<(j, d, i) -> (i, j)>
#dk_q = affine_map<(j, d, i) -> (i, d)>
#dk_o = affine_map<(j, d, i) -> (j, d)>

// E = exp(S − rowmax S) with S = Q Kᵀ; o = E V (rows), dK = Eᵀ Q (a sum
// over the rows), c = Σ_i E[i, j] (a column sum) and its double 2c (read
// after the loop).
// CHECK-LABEL: func.func @scores
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : index
// CHECK-DAG: %[[EL:.*]] = arith.constant 262144 : index
// CHECK: %[[N:.*]] = tensor.dim %arg0, %c0
// CHECK: %[[COLS:.*]] = tensor.dim %arg1, %c0
// CHECK-NOT: tensor.empty(%[[N]], %[[COLS]])
// CHECK: %[[PER:.*]] = arith.maxui %[[COLS]], %c1
// CHECK: %[[DIV:.*]] = arith.divui %[[EL]], %[[PER]]
// CHECK: %[[STEP:.*]] = arith.maxui %[[DIV]], %[[C32]]
// CHECK: %[[LOOP:.*]]:3 = scf.for %[[B:.*]] = %c0 to %[[N]] step %[[STEP]] iter_args(%[[O:.*]] = %{{.*}}, %[[DK:.*]] = %{{.*}}, %[[C:.*]] = %{{.*}})
// CHECK: %[[SIZE:.*]] = arith.minui %[[STEP]], %{{.*}}
// CHECK: tensor.empty(%[[SIZE]], %[[COLS]])
// CHECK: %[[QROWS:.*]] = tensor.extract_slice %arg0[%[[B]], 0] [%[[SIZE]], %{{.*}}]
// CHECK: %[[SBLOCK:.*]] = linalg.generic {{.*}} ins(%[[QROWS]], %arg1 : {{.*}})
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: %[[OROWS:.*]] = tensor.extract_slice %[[O]][%[[B]], 0] [%[[SIZE]], %{{.*}}]
// CHECK: linalg.fill {{.*}} outs(%[[OROWS]]
// CHECK: %[[OBLOCK:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %arg2 : {{.*}})
// CHECK: %[[OINS:.*]] = tensor.insert_slice %[[OBLOCK]] into %[[O]][%[[B]], 0] [%[[SIZE]], %{{.*}}]
// CHECK: %[[DKNEXT:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %[[QROWS]] : {{.*}}) outs(%[[DK]] : tensor<?x?xf32>)
// CHECK: %[[CNEXT:.*]] = linalg.generic {{.*}} outs(%[[C]] : tensor<?xf32>)
// CHECK: scf.yield %[[OINS]], %[[DKNEXT]], %[[CNEXT]]
// CHECK: linalg.generic {{.*}} ins(%[[LOOP]]#2 : tensor<?xf32>)
// CHECK: return %[[LOOP]]#0, %[[LOOP]]#1, %{{.*}}
func.func @scores(%Q: tensor<?x?xf32>, %K: tensor<?x?xf32>, %V: tensor<?x?xf32>) -> (tensor<?x?xf32>, tensor<?x?xf32>, tensor<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %n = tensor.dim %Q, %c0 : tensor<?x?xf32>
  %d = tensor.dim %Q, %c1 : tensor<?x?xf32>
  %m = tensor.dim %K, %c0 : tensor<?x?xf32>
  %e = tensor.dim %V, %c1 : tensor<?x?xf32>
  %nm = tensor.empty(%n, %m) : tensor<?x?xf32>
  %s0 = linalg.fill ins(%zero : f32) outs(%nm : tensor<?x?xf32>) -> tensor<?x?xf32>
  %S = linalg.generic {indexing_maps = [#q, #k, #s], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%Q, %K : tensor<?x?xf32>, tensor<?x?xf32>) outs(%s0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %vn = tensor.empty(%n) : tensor<?xf32>
  %mx0 = linalg.fill ins(%ninf : f32) outs(%vn : tensor<?xf32>) -> tensor<?xf32>
  %mx = linalg.generic {indexing_maps = [#row, #each], iterator_types = ["parallel", "reduction"]}
      ins(%S : tensor<?x?xf32>) outs(%mx0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %E = linalg.generic {indexing_maps = [#row, #each, #row], iterator_types = ["parallel", "parallel"]}
      ins(%S, %mx : tensor<?x?xf32>, tensor<?xf32>) outs(%nm : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %x = arith.subf %a, %b : f32
    %y = math.exp %x : f32
    linalg.yield %y : f32
  } -> tensor<?x?xf32>
  %ne = tensor.empty(%n, %e) : tensor<?x?xf32>
  %o0 = linalg.fill ins(%zero : f32) outs(%ne : tensor<?x?xf32>) -> tensor<?x?xf32>
  %o = linalg.generic {indexing_maps = [#pv_p, #pv_v, #pv_o], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%E, %V : tensor<?x?xf32>, tensor<?x?xf32>) outs(%o0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %md = tensor.empty(%m, %d) : tensor<?x?xf32>
  %k0 = linalg.fill ins(%zero : f32) outs(%md : tensor<?x?xf32>) -> tensor<?x?xf32>
  %dK = linalg.generic {indexing_maps = [#dk_p, #dk_q, #dk_o], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%E, %Q : tensor<?x?xf32>, tensor<?x?xf32>) outs(%k0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %vm = tensor.empty(%m) : tensor<?xf32>
  %c00 = linalg.fill ins(%zero : f32) outs(%vm : tensor<?xf32>) -> tensor<?xf32>
  %c = linalg.generic {indexing_maps = [#row, #col], iterator_types = ["reduction", "parallel"]}
      ins(%E : tensor<?x?xf32>) outs(%c00 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %c2 = linalg.generic {indexing_maps = [affine_map<(j) -> (j)>, affine_map<(j) -> (j)>], iterator_types = ["parallel"]}
      ins(%c : tensor<?xf32>) outs(%vm : tensor<?xf32>) {
  ^bb0(%a: f32, %out: f32):
    %r = arith.addf %a, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  return %o, %dK, %c2 : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?xf32>
}

// Row softmax with nothing summing over its rows: left to
// mlx-cpu-fuse-rows' parallel blocks.
// CHECK-LABEL: func.func @softmax_only
// CHECK-NOT: scf.for
// CHECK: return
func.func @softmax_only(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %ninf = arith.constant 0xFF800000 : f32
  %n = tensor.dim %x, %c0 : tensor<?x?xf32>
  %d = tensor.dim %x, %c1 : tensor<?x?xf32>
  %e1 = tensor.empty(%n) : tensor<?xf32>
  %m0 = linalg.fill ins(%ninf : f32) outs(%e1 : tensor<?xf32>) -> tensor<?xf32>
  %e2 = tensor.empty(%n, %d) : tensor<?x?xf32>
  %s = linalg.generic {indexing_maps = [#row, #row], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<?x?xf32>) outs(%e2 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.addf %a, %a : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %m = linalg.generic {indexing_maps = [#row, #each], iterator_types = ["parallel", "reduction"]}
      ins(%s : tensor<?x?xf32>) outs(%m0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %p = linalg.generic {indexing_maps = [#row, #each, #row], iterator_types = ["parallel", "parallel"]}
      ins(%s, %m : tensor<?x?xf32>, tensor<?xf32>) outs(%e2 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %y = arith.subf %a, %b : f32
    %z = math.exp %y : f32
    linalg.yield %z : f32
  } -> tensor<?x?xf32>
  return %p : tensor<?x?xf32>
}

// A square matrix read both by its rows and transposed (S[i, j]·S[j, i]):
// a block of rows does not hold what the transposed read needs; left whole.
// CHECK-LABEL: func.func @transposed_read
// CHECK-NOT: scf.for
// CHECK: return
func.func @transposed_read(%Q: tensor<?x?xf32>) -> (tensor<?x?xf32>, tensor<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %n = tensor.dim %Q, %c0 : tensor<?x?xf32>
  %d = tensor.dim %Q, %c1 : tensor<?x?xf32>
  %nn = tensor.empty(%n, %n) : tensor<?x?xf32>
  %s0 = linalg.fill ins(%zero : f32) outs(%nn : tensor<?x?xf32>) -> tensor<?x?xf32>
  %S = linalg.generic {indexing_maps = [#q, #k, #s], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%Q, %Q : tensor<?x?xf32>, tensor<?x?xf32>) outs(%s0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %vn = tensor.empty(%n) : tensor<?xf32>
  %z0 = linalg.fill ins(%zero : f32) outs(%vn : tensor<?xf32>) -> tensor<?xf32>
  %z = linalg.generic {indexing_maps = [#row, #tr, #each], iterator_types = ["parallel", "reduction"]}
      ins(%S, %S : tensor<?x?xf32>, tensor<?x?xf32>) outs(%z0 : tensor<?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %nd = tensor.empty(%n, %d) : tensor<?x?xf32>
  %k0 = linalg.fill ins(%zero : f32) outs(%nd : tensor<?x?xf32>) -> tensor<?x?xf32>
  %dK = linalg.generic {indexing_maps = [#dk_p, #dk_q, #dk_o], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%S, %Q : tensor<?x?xf32>, tensor<?x?xf32>) outs(%k0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %dK, %z : tensor<?x?xf32>, tensor<?xf32>
}

// Causal: S[i, j] = j <= i ? (Q Kᵀ)[i, j] : −∞, E = exp(S − rowmax S),
// o = E V and dK = Eᵀ Q. A block of rows [b, b + n) computes the columns
// [0, min(keys, b + n)) only: K's and V's first rows, dK's first rows
// updated in place; rows per block max(32, min(128, 2^19 / keys)).
// CHECK-LABEL: func.func @causal
// CHECK-DAG: %[[C128:.*]] = arith.constant 128 : index
// CHECK-DAG: %[[EL:.*]] = arith.constant 524288 : index
// CHECK: %[[N:.*]] = tensor.dim %arg0, %c0
// CHECK: %[[COLS:.*]] = tensor.dim %arg1, %c0
// CHECK: %[[PER:.*]] = arith.maxui %[[COLS]], %c1
// CHECK: %[[DIV:.*]] = arith.divui %[[EL]], %[[PER]]
// CHECK: %[[CAP:.*]] = arith.minui %[[DIV]], %[[C128]]
// CHECK: %[[STEP:.*]] = arith.maxui %[[CAP]], %c32
// CHECK: scf.for %[[B:.*]] = %c0 to %[[N]] step %[[STEP]] iter_args(%[[O:.*]] = %{{.*}}, %[[DK:.*]] = %{{.*}})
// CHECK: %[[SIZE:.*]] = arith.minui %[[STEP]], %{{.*}}
// CHECK: %[[END:.*]] = arith.addi %[[B]], %[[SIZE]]
// CHECK: %[[COLEND:.*]] = arith.minui %[[COLS]], %[[END]]
// CHECK: tensor.empty(%[[SIZE]], %[[COLEND]])
// CHECK: %[[KROWS:.*]] = tensor.extract_slice %arg1[0, 0] [%[[COLEND]], %{{.*}}]
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[KROWS]] : {{.*}})
// CHECK: arith.select
// CHECK: %[[VROWS:.*]] = tensor.extract_slice %arg2[0, 0] [%[[COLEND]], %{{.*}}]
// CHECK: %[[DKROWS:.*]] = tensor.extract_slice %[[DK]][0, 0] [%[[COLEND]], %{{.*}}]
// CHECK: %[[DKBLOCK:.*]] = linalg.generic {{.*}} outs(%[[DKROWS]] : tensor<?x?xf32>)
// CHECK: tensor.insert_slice %[[DKBLOCK]] into %[[DK]][0, 0] [%[[COLEND]], %{{.*}}]
func.func @causal(%Q: tensor<?x?xf32>, %K: tensor<?x?xf32>, %V: tensor<?x?xf32>) -> (tensor<?x?xf32>, tensor<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %n = tensor.dim %Q, %c0 : tensor<?x?xf32>
  %d = tensor.dim %Q, %c1 : tensor<?x?xf32>
  %m = tensor.dim %K, %c0 : tensor<?x?xf32>
  %e = tensor.dim %V, %c1 : tensor<?x?xf32>
  %nm = tensor.empty(%n, %m) : tensor<?x?xf32>
  %s0 = linalg.fill ins(%zero : f32) outs(%nm : tensor<?x?xf32>) -> tensor<?x?xf32>
  %P = linalg.generic {indexing_maps = [#q, #k, #s], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%Q, %K : tensor<?x?xf32>, tensor<?x?xf32>) outs(%s0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %S = linalg.generic {indexing_maps = [#row, #row], iterator_types = ["parallel", "parallel"]}
      ins(%P : tensor<?x?xf32>) outs(%nm : tensor<?x?xf32>) {
  ^bb0(%a: f32, %out: f32):
    %j = linalg.index 1 : index
    %i = linalg.index 0 : index
    %keep = arith.cmpi sle, %j, %i : index
    %r = arith.select %keep, %a, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %vn = tensor.empty(%n) : tensor<?xf32>
  %mx0 = linalg.fill ins(%ninf : f32) outs(%vn : tensor<?xf32>) -> tensor<?xf32>
  %mx = linalg.generic {indexing_maps = [#row, #each], iterator_types = ["parallel", "reduction"]}
      ins(%S : tensor<?x?xf32>) outs(%mx0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %E = linalg.generic {indexing_maps = [#row, #each, #row], iterator_types = ["parallel", "parallel"]}
      ins(%S, %mx : tensor<?x?xf32>, tensor<?xf32>) outs(%nm : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %x = arith.subf %a, %b : f32
    %y = math.exp %x : f32
    linalg.yield %y : f32
  } -> tensor<?x?xf32>
  %ne = tensor.empty(%n, %e) : tensor<?x?xf32>
  %o0 = linalg.fill ins(%zero : f32) outs(%ne : tensor<?x?xf32>) -> tensor<?x?xf32>
  %o = linalg.generic {indexing_maps = [#pv_p, #pv_v, #pv_o], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%E, %V : tensor<?x?xf32>, tensor<?x?xf32>) outs(%o0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %md = tensor.empty(%m, %d) : tensor<?x?xf32>
  %k0 = linalg.fill ins(%zero : f32) outs(%md : tensor<?x?xf32>) -> tensor<?x?xf32>
  %dK = linalg.generic {indexing_maps = [#dk_p, #dk_q, #dk_o], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%E, %Q : tensor<?x?xf32>, tensor<?x?xf32>) outs(%k0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %o, %dK : tensor<?x?xf32>, tensor<?x?xf32>
}

// The masked columns hold 1, which the row sum adds: every column is
// computed, K read whole (no column cut; blocks of max(32, 2^18 / keys)
// rows).
// CHECK-LABEL: func.func @masked_to_one
// CHECK: arith.constant 262144 : index
// CHECK: scf.for
// CHECK-NOT: arith.addi
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %arg1 : {{.*}})
// CHECK: return
func.func @masked_to_one(%Q: tensor<?x?xf32>, %K: tensor<?x?xf32>) -> (tensor<?xf32>, tensor<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %n = tensor.dim %Q, %c0 : tensor<?x?xf32>
  %d = tensor.dim %Q, %c1 : tensor<?x?xf32>
  %m = tensor.dim %K, %c0 : tensor<?x?xf32>
  %nm = tensor.empty(%n, %m) : tensor<?x?xf32>
  %s0 = linalg.fill ins(%zero : f32) outs(%nm : tensor<?x?xf32>) -> tensor<?x?xf32>
  %P = linalg.generic {indexing_maps = [#q, #k, #s], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%Q, %K : tensor<?x?xf32>, tensor<?x?xf32>) outs(%s0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %S = linalg.generic {indexing_maps = [#row, #row], iterator_types = ["parallel", "parallel"]}
      ins(%P : tensor<?x?xf32>) outs(%nm : tensor<?x?xf32>) {
  ^bb0(%a: f32, %out: f32):
    %j = linalg.index 1 : index
    %i = linalg.index 0 : index
    %keep = arith.cmpi sle, %j, %i : index
    %r = arith.select %keep, %a, %one : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  %vn = tensor.empty(%n) : tensor<?xf32>
  %z0 = linalg.fill ins(%zero : f32) outs(%vn : tensor<?xf32>) -> tensor<?xf32>
  %z = linalg.generic {indexing_maps = [#row, #each], iterator_types = ["parallel", "reduction"]}
      ins(%S : tensor<?x?xf32>) outs(%z0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  %md = tensor.empty(%m, %d) : tensor<?x?xf32>
  %k0 = linalg.fill ins(%zero : f32) outs(%md : tensor<?x?xf32>) -> tensor<?x?xf32>
  %dK = linalg.generic {indexing_maps = [#dk_p, #dk_q, #dk_o], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%S, %Q : tensor<?x?xf32>, tensor<?x?xf32>) outs(%k0 : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x?xf32>
  return %z, %dK : tensor<?xf32>, tensor<?x?xf32>
}
