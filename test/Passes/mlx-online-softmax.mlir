// mlx-online-softmax on causal attention as mlx-batch-map-calls leaves it:
// o[i, e] = Σ_j softmax_j(s[i, :]) V[j, e] with s[i, j] = j <= i ?
// Σ_d Q[i, d] K[j, d] / √D : −∞. It becomes a loop over tiles of 64 keys
// carrying the running max, sum and accumulator of every query row; per
// tile, the scores of its keys for the query rows from its first key on
// (the causal mask removes the rows before), with the mask's i and j
// shifted by the tile's offsets. Nothing T×T is left.
// RUN: %mlx-opt %s --mlx-online-softmax | FileCheck %s

// CHECK-LABEL: func.func @causal_attention
// CHECK-DAG: %[[T:.*]] = tensor.dim %arg0, %c0
// CHECK: %[[TILES:.*]] = arith.divui
// CHECK: %[[STATE:.*]]:3 = mlx.loop %{{.*}} to %[[TILES]](%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<?xf32>, tensor<?xf32>, tensor<?x?xf32>)
// CHECK-NEXT: ^bb0(%[[TILE:.*]]: index, %[[M:.*]]: tensor<?xf32>, %[[Z:.*]]: tensor<?xf32>, %[[ACC:.*]]: tensor<?x?xf32>):
// CHECK: %[[J0:.*]] = arith.muli %[[TILE]], %{{.*}} : index
// CHECK: %[[LEN:.*]] = arith.minsi %{{.*}}, %{{.*}} : index
// CHECK: %[[R0:.*]] = arith.minsi %[[J0]], %[[T]] : index
// CHECK: %[[ROWS:.*]] = arith.subi %[[T]], %[[R0]] : index
// CHECK: %[[QT:.*]] = tensor.extract_slice %arg0[%[[R0]], 0] [%[[ROWS]], %{{.*}}]
// CHECK: %[[KT:.*]] = tensor.extract_slice %arg1[%[[J0]], 0] [%[[LEN]], %{{.*}}]
// CHECK: %[[S:.*]] = mlx.generic ins(%[[QT]], %[[KT]] : {{.*}}) sizes(%[[ROWS]], %[[LEN]], %{{.*}}) {combiner = #mlx.combiner<add>
// CHECK: mlx.generic ins(%[[S]] : tensor<?x?xf32>) sizes(%[[ROWS]], %[[LEN]])
// CHECK: mlx.index 1
// CHECK-NEXT: arith.addi %{{.*}}, %[[J0]]
// CHECK: mlx.index 0
// CHECK-NEXT: arith.addi %{{.*}}, %[[R0]]
// The running max: m' = max(m, max_j s); 0 subtracted while it is −∞.
// CHECK: combiner = #mlx.combiner<max>
// CHECK: arith.maximumf
// CHECK: arith.cmpf oeq
// CHECK: math.exp
// The values tile: V's rows j0 .. j0 + len.
// CHECK: tensor.extract_slice %arg2[%[[J0]], 0] [%[[LEN]], %{{.*}}]
// CHECK: tensor.insert_slice %{{.*}} into %[[M]][%[[R0]]]
// CHECK: tensor.insert_slice %{{.*}} into %[[Z]][%[[R0]]]
// CHECK: tensor.insert_slice %{{.*}} into %[[ACC]][%[[R0]], 0]
// o = acc / z
// CHECK: mlx.generic ins(%[[STATE]]#2, %[[STATE]]#1 : tensor<?x?xf32>, tensor<?xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.divf
// CHECK-NOT: combiner = #mlx.combiner<max>
// CHECK: return

// The probabilities are a result too: they are stored, and nothing changes.
// CHECK-LABEL: func.func @probabilities_kept
// CHECK-NOT: mlx.loop
// CHECK: combiner = #mlx.combiner<max>
// CHECK: return %{{.*}}, %{{.*}} : tensor<?x?xf32>, tensor<?x?xf32>

#map = affine_map<(d0, d1, d2) -> (d0, d2)>
#map1 = affine_map<(d0, d1, d2) -> (d1, d2)>
#map2 = affine_map<(d0, d1) -> (d0, d1)>
#map3 = affine_map<(d0) -> (d0)>
#map4 = affine_map<(d0, d1) -> (d0)>
#map5 = affine_map<(d0, d1, d2) -> (d2, d1)>
module {
  func.func @causal_attention(%arg0: tensor<?x?xf32>, %arg1: tensor<?x?xf32>, %arg2: tensor<?x?xf32>) -> tensor<?x?xf32> attributes {llvm.emit_c_interface} {
    %cst = arith.constant 0xFF800000 : f32
    %c1 = arith.constant 1 : index
    %c0 = arith.constant 0 : index
    %dim = tensor.dim %arg0, %c0 : tensor<?x?xf32>
    %dim_0 = tensor.dim %arg0, %c1 : tensor<?x?xf32>
    %dim_1 = tensor.dim %arg2, %c1 : tensor<?x?xf32>
    %0 = mlx.generic ins(%arg0, %arg1 : tensor<?x?xf32>, tensor<?x?xf32>) sizes(%dim, %dim, %dim_0) {combiner = #mlx.combiner<add>, indexing_maps = [#map, #map1], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32, %arg4: f32):
      %8 = arith.mulf %arg3, %arg4 : f32
      %9 = arith.index_cast %dim_0 : index to i64
      %10 = arith.sitofp %9 : i64 to f32
      %11 = math.sqrt %10 : f32
      %12 = arith.divf %8, %11 : f32
      mlx.yield %12 : f32
    }
    %1 = mlx.generic ins(%0 : tensor<?x?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<none>, indexing_maps = [#map2], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32):
      %8 = mlx.index 1 : index
      %9 = arith.index_cast %8 : index to i64
      %10 = mlx.index 0 : index
      %11 = arith.index_cast %10 : index to i64
      %12 = arith.cmpi sle, %9, %11 : i64
      %13 = arith.select %12, %arg3, %cst : f32
      mlx.yield %13 : f32
    }
    %2 = mlx.generic ins(%1 : tensor<?x?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<max>, indexing_maps = [#map2], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32> {
    ^bb0(%arg3: f32):
      mlx.yield %arg3 : f32
    }
    %3 = mlx.generic ins(%2 : tensor<?xf32>) sizes(%dim) {combiner = #mlx.combiner<none>, indexing_maps = [#map3], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
    ^bb0(%arg3: f32):
      %8 = mlx.stop_gradient %arg3 : f32
      mlx.yield %8 : f32
    }
    %4 = mlx.generic ins(%1, %3 : tensor<?x?xf32>, tensor<?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<none>, indexing_maps = [#map2, #map4], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32, %arg4: f32):
      %8 = arith.subf %arg3, %arg4 : f32
      %9 = math.exp %8 : f32
      mlx.yield %9 : f32
    }
    %5 = mlx.generic ins(%4 : tensor<?x?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<add>, indexing_maps = [#map2], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32> {
    ^bb0(%arg3: f32):
      mlx.yield %arg3 : f32
    }
    %6 = mlx.generic ins(%4, %5 : tensor<?x?xf32>, tensor<?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<none>, indexing_maps = [#map2, #map4], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32, %arg4: f32):
      %8 = arith.divf %arg3, %arg4 : f32
      mlx.yield %8 : f32
    }
    %7 = mlx.generic ins(%6, %arg2 : tensor<?x?xf32>, tensor<?x?xf32>) sizes(%dim, %dim_1, %dim) {combiner = #mlx.combiner<add>, indexing_maps = [#map, #map5], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32, %arg4: f32):
      %8 = arith.mulf %arg3, %arg4 : f32
      mlx.yield %8 : f32
    }
    return %7 : tensor<?x?xf32>
  }
  func.func @probabilities_kept(%arg0: tensor<?x?xf32>, %arg1: tensor<?x?xf32>, %arg2: tensor<?x?xf32>) -> (tensor<?x?xf32>, tensor<?x?xf32>) attributes {llvm.emit_c_interface} {
    %cst = arith.constant 0xFF800000 : f32
    %c1 = arith.constant 1 : index
    %c0 = arith.constant 0 : index
    %dim = tensor.dim %arg0, %c0 : tensor<?x?xf32>
    %dim_0 = tensor.dim %arg0, %c1 : tensor<?x?xf32>
    %dim_1 = tensor.dim %arg2, %c1 : tensor<?x?xf32>
    %0 = mlx.generic ins(%arg0, %arg1 : tensor<?x?xf32>, tensor<?x?xf32>) sizes(%dim, %dim, %dim_0) {combiner = #mlx.combiner<add>, indexing_maps = [#map, #map1], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32, %arg4: f32):
      %8 = arith.mulf %arg3, %arg4 : f32
      %9 = arith.index_cast %dim_0 : index to i64
      %10 = arith.sitofp %9 : i64 to f32
      %11 = math.sqrt %10 : f32
      %12 = arith.divf %8, %11 : f32
      mlx.yield %12 : f32
    }
    %1 = mlx.generic ins(%0 : tensor<?x?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<none>, indexing_maps = [#map2], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32):
      %8 = mlx.index 1 : index
      %9 = arith.index_cast %8 : index to i64
      %10 = mlx.index 0 : index
      %11 = arith.index_cast %10 : index to i64
      %12 = arith.cmpi sle, %9, %11 : i64
      %13 = arith.select %12, %arg3, %cst : f32
      mlx.yield %13 : f32
    }
    %2 = mlx.generic ins(%1 : tensor<?x?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<max>, indexing_maps = [#map2], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32> {
    ^bb0(%arg3: f32):
      mlx.yield %arg3 : f32
    }
    %3 = mlx.generic ins(%2 : tensor<?xf32>) sizes(%dim) {combiner = #mlx.combiner<none>, indexing_maps = [#map3], iterator_kinds = [#mlx.iterator<parallel>]} -> tensor<?xf32> {
    ^bb0(%arg3: f32):
      %8 = mlx.stop_gradient %arg3 : f32
      mlx.yield %8 : f32
    }
    %4 = mlx.generic ins(%1, %3 : tensor<?x?xf32>, tensor<?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<none>, indexing_maps = [#map2, #map4], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32, %arg4: f32):
      %8 = arith.subf %arg3, %arg4 : f32
      %9 = math.exp %8 : f32
      mlx.yield %9 : f32
    }
    %5 = mlx.generic ins(%4 : tensor<?x?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<add>, indexing_maps = [#map2], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?xf32> {
    ^bb0(%arg3: f32):
      mlx.yield %arg3 : f32
    }
    %6 = mlx.generic ins(%4, %5 : tensor<?x?xf32>, tensor<?xf32>) sizes(%dim, %dim) {combiner = #mlx.combiner<none>, indexing_maps = [#map2, #map4], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32, %arg4: f32):
      %8 = arith.divf %arg3, %arg4 : f32
      mlx.yield %8 : f32
    }
    %7 = mlx.generic ins(%6, %arg2 : tensor<?x?xf32>, tensor<?x?xf32>) sizes(%dim, %dim_1, %dim) {combiner = #mlx.combiner<add>, indexing_maps = [#map, #map5], iterator_kinds = [#mlx.iterator<parallel>, #mlx.iterator<parallel>, #mlx.iterator<reduction>]} -> tensor<?x?xf32> {
    ^bb0(%arg3: f32, %arg4: f32):
      %8 = arith.mulf %arg3, %arg4 : f32
      mlx.yield %8 : f32
    }
    return %7, %6 : tensor<?x?xf32>, tensor<?x?xf32>
  }
}
