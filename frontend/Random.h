//===- Random.h - counter-based random numbers as arith ops -----*- C++ -*-===//
//
// `uniform(seed, dims…)` and `normal(seed, dims…)` are pure functions of the
// seed and each element's row-major linear index: Philox-4x32-10 (Salmon,
// Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC'11) with counter (index low word, index high word, 0, 0) and key
// (seed low word, seed high word). Built from plain arith ops, so every
// backend and every thread count computes the same bits.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_FRONTEND_RANDOM_H
#define MLX_FRONTEND_RANDOM_H

#include "mlir/IR/Builders.h"

#include <array>

namespace mlx {

/// Philox-4x32-10 of a counter (4 i32 words) under a key (2 i32 words):
/// 10 rounds of two 32×32→64-bit multiplies, with the key bumped by the
/// Weyl constants between rounds. Returns 4 i32 words.
std::array<mlir::Value, 4> buildPhilox4x32(mlir::OpBuilder &b,
                                           mlir::Location loc,
                                           std::array<mlir::Value, 4> counter,
                                           std::array<mlir::Value, 2> key);

/// Element `index` (i64) of uniform(seed) or normal(seed) (seed: i64) as a
/// float of `type`. Uniform in [0, 1): the top 24 bits of word 0 times 2^-24
/// (f32), or 53 bits of words 0 and 1 times 2^-53 (f64). Normal: Box–Muller,
/// √(−2 log(1 − u₁)) · cos(2π u₂), u₁ from the first word(s), u₂ from the
/// next.
mlir::Value buildRandom(mlir::OpBuilder &b, mlir::Location loc, bool normal,
                        mlir::Value seed, mlir::Value index,
                        mlir::FloatType type);

} // namespace mlx

#endif // MLX_FRONTEND_RANDOM_H
