//===- Passes.td - mlx passes ------------------------------*- tablegen -*-===//
#ifndef MLX_PASSES_TD
#define MLX_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerMlxToLinalgPass : Pass<"mlx-lower-to-linalg", "ModuleOp"> {
  let summary = "lower mlx ops to linalg, tensor, scf and func";
  let description = [{
    `mlx.generic` becomes `linalg.generic` on a `tensor.empty` destination
    (filled with the combiner's identity when it reduces); `mlx.index`
    becomes `linalg.index`. `mlx.map_call` becomes a loop nest over the
    mapped indices that extracts the argument slices, calls the callee and
    inserts its result. Run the inliner afterwards to inline those calls.
  }];
  let dependentDialects = ["linalg::LinalgDialect", "tensor::TensorDialect",
                           "scf::SCFDialect", "func::FuncDialect",
                           "arith::ArithDialect"];
}

def BatchMapCallsPass : Pass<"mlx-batch-map-calls", "ModuleOp"> {
  let summary = "lift mlx.map_call into generics over the mapped indices";
  let description = [{
    `P[i, :] = softmax(s[i, :])`: the callee's ops are lifted over the
    mapped indices (prepended to every value's dims, as leading parallel
    dims of every `mlx.generic`), so the rows are computed by generics over
    (i, k) instead of a loop over rows. A callee is lifted when it has one
    result and only generics, bounds checks, `tensor.dim`/`tensor.cast` and
    scalar arithmetic (after inlining, every callee of the language); a
    callee becomes liftable once its own map_calls are lifted. Others keep
    the map_call, which `mlx-lower-to-linalg` lowers to a loop.
  }];
  let dependentDialects = ["tensor::TensorDialect", "arith::ArithDialect"];
}

def OnlineSoftmaxPass : Pass<"mlx-online-softmax"> {
  let summary = "a softmax feeding a sum over its index, a key tile at a time";
  let description = [{
    The online-softmax (FlashAttention) rewrite, derived from the
    equations: where `P[i, :] = softmax(S[i, :])` (batched: a row max, exp
    of the difference, a row sum and a divide) feeds `O[i, e] = Σ_j P[i, j]
    V[j, e]` and nothing else reads S or P, an `mlx.loop` over tiles of
    `key-tile` keys carries the running max m, the running sum z and the
    accumulator of every query row: per tile, S's equations (and the
    producers computed with it) on that tile's keys, m' = max(m, max_j S),
    p = exp(S − m'), z' = z·e^(m−m') + Σ_j p, acc' = acc·e^(m−m') + Σ_j p V;
    O = acc / z. The T×T scores are never stored. Where S is −∞ for j > i
    (a causal mask, `j <= i ? … : -inf`), a tile of keys from j0 on skips
    the query rows before j0, which it masks whole. A row that has seen only
    −∞ subtracts 0, so a row masked whole gives 0/0 = NaN, as the two-pass
    form does.
  }];
  let options = [Option<"keyTile", "key-tile", "int64_t", "64",
                        "keys per tile">];
  let dependentDialects = ["tensor::TensorDialect", "arith::ArithDialect",
                           "math::MathDialect"];
}

def LoopOrderPass : Pass<"mlx-loop-order"> {
  let summary = "move innermost the loop that walks memory contiguously";
  let description = [{
    For each `linalg.generic`, makes the iteration dim that is the last
    subscript of the most operands the innermost loop (keeping the order of
    the others), so that loops lowered from index notation, which lists
    reduction indices last, access memory contiguously and vectorize.
  }];
  let dependentDialects = ["linalg::LinalgDialect"];
}

def FuseElementwisePass : Pass<"mlx-fuse-elementwise"> {
  let summary = "fuse element-wise producers into consumers, never by recomputing";
  let description = [{
    Upstream's element-wise fusion (linalg `populateElementwiseOpsFusionPatterns`)
    merges a single-use element-wise producer into its consumer, but only
    where the consumer reads each of the producer's elements once: the
    consumer's indexing map of the fused operand is a permutation of its
    loops. A consumer that broadcasts the operand over a further loop (a
    contraction over `P[i, j]` with `o[i, e] = Σ_j P[i, j] V[j, e]` reads
    each `P[i, j]` E times) keeps the producer as a tensor: fusing would
    recompute its body (an `exp`, say) once per element of that loop.
    A producer that others read too is fused into an element-wise consumer
    as a further output of the fused op (computed once), where those
    others come after the consumer: AdamW's m and v, returned and read by
    the update of w, are made in the same pass as w.
  }];
  let dependentDialects = ["linalg::LinalgDialect"];
}

def CheckNumericsPass : Pass<"mlx-check-numerics", "ModuleOp"> {
  let summary = "report the first op whose result holds a NaN or an infinity";
  let description = [{
    Debugging aid behind `mlxc run --check-numerics`: after every float
    `mlx.generic`, a reduction looks for NaN (and for infinities, unless the
    op writes ±inf from a literal, like a causal mask, or reads such a
    value) and calls `mlx_report_nonfinite(id, kind)` when it finds one;
    `id` indexes the module's `mlx.numerics_checks` locations
    (`numericsCheckLocations(module)`). Run on inlined functions.
  }];
  let dependentDialects = ["func::FuncDialect", "scf::SCFDialect",
                           "tensor::TensorDialect", "math::MathDialect",
                           "arith::ArithDialect"];
}

def AutodiffPass : Pass<"mlx-autodiff", "ModuleOp"> {
  let summary = "expand mlx.grad into vector-Jacobian product functions";
  let description = [{
    Reverse-mode automatic differentiation at the mlx level. Each `mlx.grad`
    becomes a call of the primal (for the value and the shapes of the seeds)
    and one call of `<f>_vjp<k…>`, the vector-Jacobian product of `f` for
    the arguments `k…` of the request: the forward sweep of `f`, then one
    reverse sweep that yields every requested cotangent. The
    adjoint of an `mlx.generic` is an `mlx.generic` per differentiable input
    with a permuted iteration space (the input's indices are the result,
    every other index is summed), so gradients stay fusable. Calls are
    differentiated through their callee's VJP (once per callee and set of
    arguments); `mlx.map_call` maps the callee's VJP over the same slices.
    In `c ? a : b` and `max`/`min` the gradient reaches only the chosen
    operand, and nothing computed for the other reaches any result (guarded
    adjoints); ties of `max`/`min` split it ½/½.
    `max`/`min` reductions send the gradient to the first arg-max; `prod`
    is exact with zeros. Run `mlx-simplify` afterwards: inlining and CSE
    merge the duplicated forward sweeps, DCE drops what is not needed.
  }];
  let dependentDialects = ["func::FuncDialect", "arith::ArithDialect",
                           "math::MathDialect", "tensor::TensorDialect"];
  let options = [
    Option<"loopCheckpointInterval", "loop-checkpoint", "unsigned", "0",
           "back-propagation through mlx.loop records every step's state "
           "(0) or every k-th and recomputes the others">
  ];
}

#endif // MLX_PASSES_TD
