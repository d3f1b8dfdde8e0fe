//===- MlxOps.td - ops of the mlx dialect -------------------*- tablegen -*-===//
//
// The index-notation op, its body's helpers, and calls mapped over slices.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_OPS_TD
#define MLX_OPS_TD

include "dialects/mlx/MlxBase.td"
include "dialects/mlx/MlxInterfaces.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def Mlx_GenericOp : Mlx_Op<"generic", [Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<Mlx_DifferentiableOpInterface>,
    SingleBlock]> {
  let summary = "an index-notation definition: out[i..] = comb_r body(in[map(i..,r..)])";
  let description = [{
    One equation in index notation. The iteration space has one dimension
    per index; its sizes are the `sizes` operands (one `index` each). The
    first `rank(result)` dimensions are the result's free indices, in order,
    and are `parallel`; the rest are `reduction` indices, combined with
    `combiner` (add, mul, max or min; `none` when nothing is reduced).
    Operand `k` is read at `indexing_maps[k]` applied to the iteration
    point; the body receives those elements and yields the summand.

    ```mlir
    // p = sum[k] e[k]
    %p = mlx.generic ins(%e : tensor<?xf32>) sizes(%n)
        {combiner = #mlx.combiner<add>,
         indexing_maps = [affine_map<(d0) -> (d0)>],
         iterator_kinds = [#mlx.iterator<reduction>]} -> tensor<f32> {
    ^bb0(%x: f32):
      mlx.yield %x : f32
    }
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs,
                       Variadic<Index>:$sizes,
                       AffineMapArrayAttr:$indexing_maps,
                       TypedArrayAttrBase<Mlx_IteratorKindAttr,
                         "iterator kinds">:$iterator_kinds,
                       Mlx_CombinerAttr:$combiner);
  let results = (outs AnyRankedTensor:$result);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    (`ins` `(` $inputs^ `:` type($inputs) `)`)? `sizes` `(` $sizes `)`
    attr-dict `->` type($result) $body
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let builders = [
    OpBuilder<(ins "Type":$resultType, "ValueRange":$inputs,
      "ValueRange":$sizes, "ArrayRef<AffineMap>":$maps,
      "unsigned":$numParallel, "Combiner":$combiner,
      "function_ref<Value(OpBuilder &, Location, ValueRange)>":$bodyBuilder)>
  ];
  let extraClassDeclaration = [{
    /// Number of iteration dimensions (parallel and reduction).
    unsigned getNumLoops() { return getIteratorKinds().size(); }
    /// Number of leading parallel dimensions (= rank of the result).
    unsigned getNumParallelLoops() {
      return getResult().getType().getRank();
    }
    /// The body's terminator.
    YieldOp getYield();
  }];
}

def Mlx_YieldOp : Mlx_Op<"yield", [Pure, Terminator, ReturnLike,
    HasParent<"GenericOp">]> {
  let summary = "yields the element computed by an mlx.generic body";
  let description = [{ Terminates the body of `mlx.generic` with the value
    for the current iteration point (combined into the result). }];
  let arguments = (ins AnyType:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

def Mlx_IndexOp : Mlx_Op<"index", [Pure]> {
  let summary = "the current value of one index of the enclosing mlx.generic";
  let description = [{ Inside an `mlx.generic` body: the coordinate of
    iteration dimension `dim`, e.g. for masks like `(j <= i) ? s : -inf`. }];
  let arguments = (ins ConfinedAttr<I64Attr, [IntNonNegative]>:$dim);
  let results = (outs Index:$result);
  let assemblyFormat = "$dim attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Mlx_StopGradientOp : Mlx_Op<"stop_gradient", [Pure,
    SameOperandsAndResultType,
    DeclareOpInterfaceMethods<Mlx_ScalarDifferentiableOpInterface>]> {
  let summary = "identity whose derivative is zero";
  let description = [{
    `stop_gradient(x)` in a body: the value of `x`, treated as a constant by
    `mlx-autodiff`. Used where a value does not change the result, such as
    the max subtracted for stability in softmax. Lowered to its operand.
  }];
  let arguments = (ins AnyType:$value);
  let results = (outs AnyType:$result);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

def Mlx_SigmoidOp : Mlx_Op<"sigmoid", [Pure, SameOperandsAndResultType,
    DeclareOpInterfaceMethods<Mlx_ScalarDifferentiableOpInterface>]> {
  let summary = "the logistic function σ(x) = 1 / (1 + e^−x)";
  let description = [{
    `sigmoid(x)` in a body. Kept as one op through differentiation, so that
    its derivative is σ(x)·σ(−x) (σ(x)(1 − σ(x)) without the cancellation
    of 1 − σ(x) for large x) and `mlxc derive` can print it; lowered to
    linalg through `expandStable`, which computes it from e^−|x| ≤ 1 so
    that nothing overflows.
  }];
  let arguments = (ins AnyFloat:$value);
  let results = (outs AnyFloat:$result);
  let assemblyFormat = "$value attr-dict `:` type($value)";
  let extraClassDeclaration = [{
    /// σ(x) from e = e^−|x|: 1/(1 + e) for x ≥ 0, e/(1 + e) otherwise.
    static Value expandStable(OpBuilder &b, Location loc, Value x);
    /// (x ≥ 0, e^−|x|), with −|x| the select x ≥ 0 ? −x : x on that same
    /// condition, so that a derivative through it is each branch's own
    /// (smooth) one, also at x = 0 (also for softplus and log_sigmoid).
    static std::pair<Value, Value> buildExpNegAbs(OpBuilder &b, Location loc,
                                                  Value x);
  }];
}

def Mlx_CheckIndexOp : Mlx_Op<"check_index", [SameOperandsAndResultType,
    DeclareOpInterfaceMethods<Mlx_DifferentiableOpInterface>]> {
  let summary = "a run-time bounds check of a constant subscript";
  let description = [{
    `x[3]` on `x: f32[N]`: the result is `input` where dimension `dim` of
    it is larger than `index`. Elsewhere the op calls
    `mlx_report_out_of_bounds(id, index, size)` and its result is a zero
    tensor whose dimension `dim` has size `index + 1`, so that no read goes
    out of bounds; the caller reports the error after the call (`id`
    indexes the module's `mlx.bounds_checks`, which mlx-lower-to-linalg
    fills with each check's location, tensor and size names). `tensor`
    and `size_name` name the subscripted tensor and the dimension's size in
    the message. To its derivative it is the identity.

    ```mlir
    %x1 = mlx.check_index %x[0] above 3 {size_name = "N", tensor = "x"}
        : tensor<?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$dim,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$index,
                       StrAttr:$tensor, StrAttr:$size_name);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input `[` $dim `]` `above` $index attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Mlx_MapCallOp : Mlx_Op<"map_call", [Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    DeclareOpInterfaceMethods<Mlx_DifferentiableOpInterface>]> {
  let summary = "calls a function on slices, mapped over leading indices";
  let description = [{
    `P[i, :] = softmax(s[i, :])`: the result's first `num_mapped` dimensions
    are mapped indices; for each point of them, the callee is called on
    slices of the arguments and its result fills the remaining dimensions.
    Functions of the language have no side effects, so the op is pure:
    identical map_calls merge (CSE) and unused ones go (DCE).
    `arg_slices[k]` has one entry per dimension of argument `k`: the mapped
    index that fixes it, or -1 for a `:` (kept) dimension. `sizes` gives
    every dimension of the result.
  }];
  let arguments = (ins FlatSymbolRefAttr:$callee,
                       Variadic<AnyRankedTensor>:$args,
                       Variadic<Index>:$sizes,
                       TypedArrayAttrBase<DenseI64ArrayAttr,
                         "slices per argument">:$arg_slices,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$num_mapped);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $callee `(` $args `)` `sizes` `(` $sizes `)` attr-dict `:`
    functional-type($args, $result)
  }];
  let hasVerifier = 1;
}

def Mlx_GradOp : Mlx_Op<"grad", [Pure,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "the gradient of a function at a point (reverse mode)";
  let description = [{
    `grad(f, x, ...)(args)`: the gradient, at `args`, of the sum of all
    elements of all floating-point results of `callee` with respect to the
    arguments listed in `wrt` (one result each, shaped like the argument).
    With `with_value`, the callee's own results come first. The
    `mlx-autodiff` pass expands it into calls of adjoint functions.

    ```mlir
    %v, %dw = mlx.grad @mse(%w, %X, %y) wrt [0] with_value
        : (tensor<?xf32>, tensor<?x?xf32>, tensor<?xf32>) -> (tensor<f32>, tensor<?xf32>)
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$callee,
                       Variadic<AnyRankedTensor>:$args,
                       DenseI64ArrayAttr:$wrt,
                       UnitAttr:$with_value);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $callee `(` $args `)` `wrt` $wrt (`with_value` $with_value^)? attr-dict `:`
    functional-type($args, $results)
  }];
}

def Mlx_TakeOp : Mlx_Op<"take", [NoMemoryEffect,
    DeclareOpInterfaceMethods<ConditionallySpeculatable>,
    DeclareOpInterfaceMethods<Mlx_DifferentiableOpInterface>]> {
  let summary = "the slice at a run-time index of one dimension, bounds-checked";
  let description = [{
    `xs[t, :]` with `t` a value (a loop variable, an i32 scalar): `input`
    without dimension `dim`, at position `index` of it. Out of range
    (`index < 0` or `index >= size`), the op calls
    `mlx_report_out_of_bounds` (see `mlx.check_index`) and its result is
    zeros: no read goes out of bounds. `tensor` and `size_name` name the
    tensor and the dimension's size in the message. Its derivative adds the
    result's cotangent into slice `index` of zeros (a scatter-add).
    Not speculatable: an unexecuted out-of-range take must not report.

    ```mlir
    %row = mlx.take %xs[%t] dim 0 {size_name = "T", tensor = "xs"}
        : tensor<?x?xf32> -> tensor<?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, Index:$index,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$dim,
                       StrAttr:$tensor, StrAttr:$size_name);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `[` $index `]` `dim` $dim attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Mlx_PutOp : Mlx_Op<"put", [NoMemoryEffect,
    DeclareOpInterfaceMethods<ConditionallySpeculatable>,
    AllTypesMatch<["input", "result"]>,
    DeclareOpInterfaceMethods<Mlx_DifferentiableOpInterface>]> {
  let summary = "a copy of a tensor with one slice replaced, bounds-checked";
  let description = [{
    `hs[t, :] = h` with `t` a value: `input` with its slice at position
    `index` of dimension `dim` replaced by `value` (shaped like `input`
    without `dim`). Out of range, the op reports as `mlx.take` does and its
    result is `input` unchanged. To its derivative, the input's cotangent
    is the result's with that slice zeroed, the value's that slice.

    ```mlir
    %hs1 = mlx.put %h into %hs[%t] dim 0 {size_name = "T", tensor = "hs"}
        : tensor<?xf32> into tensor<?x?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$value, AnyRankedTensor:$input,
                       Index:$index,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$dim,
                       StrAttr:$tensor, StrAttr:$size_name);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $value `into` $input `[` $index `]` `dim` $dim attr-dict `:`
    type($value) `into` type($input)
  }];
  let hasVerifier = 1;
}

def Mlx_LoopOp : Mlx_Op<"loop", [RecursiveMemoryEffects,
    SingleBlockImplicitTerminator<"LoopYieldOp">,
    DeclareOpInterfaceMethods<Mlx_DifferentiableOpInterface>]> {
  let summary = "a sequential loop with carried state";
  let description = [{
    `for t in lo..hi { ... }`: the body runs for t = lower, ..., upper − 1
    in order (not at all when upper <= lower), on the values carried from
    the previous step (the `inits` at the first); the results are the
    values carried out of the last step (the inits after zero steps). The
    body's block arguments are the step's index and the carried values;
    each step yields values of the same types and sizes as the inits.

    Its derivative (back-propagation through time) runs the loop once more
    recording the carried state at the start of each step (one tensor per
    carried value with a leading dimension of one row per step: the sum of
    the carried values' sizes, in bytes, per step), then a reverse loop from
    the last step to the first that applies the VJP of the body (outlined
    into a function) to the recorded state.

    ```mlir
    %h = mlx.loop %c0 to %T (%h0) : (tensor<?xf32>) -> tensor<?xf32> {
    ^bb0(%t: index, %h_prev: tensor<?xf32>):
      ...
      mlx.loop_yield %h_next : tensor<?xf32>
    }
    ```
  }];
  let arguments = (ins Index:$lower, Index:$upper,
                       Variadic<AnyRankedTensor>:$inits);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $lower `to` $upper `(` $inits `)` attr-dict `:`
    functional-type($inits, $results) $body
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// The body's terminator.
    LoopYieldOp getYield();
  }];
}

def Mlx_LoopYieldOp : Mlx_Op<"loop_yield", [Pure, Terminator, ReturnLike,
    HasParent<"LoopOp">]> {
  let summary = "the values an mlx.loop step carries to the next";
  let arguments = (ins Variadic<AnyRankedTensor>:$values);
  let builders = [OpBuilder<(ins), [{ /* nothing */ }]>];
  let assemblyFormat = "attr-dict ($values^ `:` type($values))?";
}

def Mlx_GatherOp : Mlx_Op<"gather", [NoMemoryEffect,
    DeclareOpInterfaceMethods<ConditionallySpeculatable>,
    DeclareOpInterfaceMethods<Mlx_DifferentiableOpInterface>]> {
  let summary = "reads at computed subscripts, per element, bounds-checked";
  let description = [{
    `logits[t, targets[t]]`, `E[tokens[n], :]`: the result's leading dims
    are the gather space (the shape of every `indices` tensor), then one
    dim per kept (`:`) dim of `input`. `dims` has one entry per dim of
    `input`: `j >= 0` reads it at gather dim j, `-1` at the next computed
    index (the `indices` in order), `-2` keeps it whole. Out of range, a
    computed index is reported (`mlx_report_out_of_bounds`, `tensor` and
    that index's entry of `size_names` naming it) and the element reads 0.
    Its derivative adds the result's cotangent at the same subscripts
    (`mlx.scatter_add`). `in_range`, where present, has one entry per
    computed index: true where the front end proved that no element can
    take it out of range (`z[n, i + 2 * H]` of a dim of 4 * H, i < H), so
    no check is lowered for it.

    ```mlir
    %g = mlx.gather %logits[%targets] dims [0, -1]
        {size_names = ["K"], tensor = "logits"}
        : tensor<?x?xf32>[tensor<?xi32>] -> tensor<?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input,
                       Variadic<AnyRankedTensor>:$indices,
                       DenseI64ArrayAttr:$dims, StrAttr:$tensor,
                       StrArrayAttr:$size_names,
                       OptionalAttr<DenseBoolArrayAttr>:$in_range);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `[` $indices `]` `dims` $dims attr-dict `:` type($input) `[`
    type($indices) `]` `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The rank of the gather space (of every index tensor).
    int64_t getGatherRank();
  }];
}

def Mlx_ScatterAddOp : Mlx_Op<"scatter_add", [Pure,
    AllTypesMatch<["input", "result"]>,
    DeclareOpInterfaceMethods<Mlx_DifferentiableOpInterface>]> {
  let summary = "adds values at computed subscripts (the adjoint of a gather)";
  let description = [{
    `input` plus each element of `value` added at the element of `input`
    that `mlx.gather` with the same `indices` and `dims` would read for it
    (repeated subscripts add up). Out-of-range subscripts add nothing (the
    gather has reported them).
  }];
  let arguments = (ins AnyRankedTensor:$value, AnyRankedTensor:$input,
                       Variadic<AnyRankedTensor>:$indices,
                       DenseI64ArrayAttr:$dims);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $value `into` $input `[` $indices `]` `dims` $dims attr-dict `:`
    type($value) `into` type($input) `[` type($indices) `]`
  }];
  let hasVerifier = 1;
}

def Mlx_AssertOp : Mlx_Op<"assert", [MemoryEffects<[MemWrite]>]> {
  let summary = "a run-time check that every element of a condition holds";
  let description = [{
    `check cond` in a function: where some element of `condition` is false,
    `mlx_report_out_of_bounds` is called (as by `mlx.check_index`; the
    module's table marks the entry as a check, `message` is the condition
    as written) and the caller reports "check failed" after the call.
  }];
  let arguments = (ins TensorOf<[I1]>:$condition, StrAttr:$message);
  let assemblyFormat = "$condition attr-dict `:` type($condition)";
}

#endif // MLX_OPS_TD
