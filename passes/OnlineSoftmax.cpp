//===- OnlineSoftmax.cpp - a softmax feeding a sum over its index, online -===//
//
// The `mlx-online-softmax` pass: where the rows of a softmax over an index j
// feed a sum over that same j (attention: o[i, e] = Σ_j softmax_j(s[i, :])
// V[j, e]), the scores are computed a tile of keys at a time and the sum is
// carried across tiles as (running max m, running sum z, accumulator acc):
// the online-softmax (FlashAttention) rewrite, derived from the equations
// as written. The T×T scores are never stored (extra memory O(T·B + T·E)),
// and where the scores are masked causally (`j <= i ? … : -inf`) a key tile
// skips the query rows it masks whole.
//
// Matched, after mlx-batch-map-calls (every name is an mlx.generic):
//   S[i, j] = …                     (and its producers over (i, j))
//   M[i] = max[j] S[i, j]           (optionally M' = stop_gradient(M))
//   E[i, j] = exp(S[i, j] - M'[i])  Z[i] = sum[j] E[i, j]
//   P[i, j] = E[i, j] / Z[i]        O[i, e] = sum[j] P[i, j] * V[j, e]
// with S, M, E, Z and P read by nothing else (so a gradient, which reads P
// again, keeps the two-pass form).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "dialects/mlx/Adjoints.h"
#include "dialects/mlx/MlxDialect.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"

#include <limits>

namespace mlir::mlx {
#define GEN_PASS_DEF_ONLINESOFTMAXPASS
#include "passes/Passes.h.inc"
} // namespace mlir::mlx

using namespace mlir;
using namespace mlir::mlx;

namespace {

/// The ops of one matched softmax-weighted sum.
struct Match {
  /// S and the producers computed with it per tile, producers first.
  SmallVector<GenericOp> chain;
  GenericOp max, stop, exp, sum, div, out;
  /// out's operand that P is (0 or 1); the other is V.
  unsigned pOperand = 0;
  /// Whether S is −∞ where j > i (or j ≥ i).
  bool causal = false;
};

/// The body's yielded value.
Value yielded(GenericOp g) { return g.getYield().getValue(); }

/// The indexing maps of a generic's inputs.
SmallVector<AffineMap> mapsOf(GenericOp g) {
  return llvm::to_vector(llvm::map_range(g.getIndexingMaps(), [](Attribute a) {
    return cast<AffineMapAttr>(a).getValue();
  }));
}

/// Whether `map` is (d0, …, d{n−1}) on its leading dims.
bool isLeadingIdentity(AffineMap map, unsigned n) {
  if (map.getNumResults() != n)
    return false;
  for (unsigned k = 0; k < n; ++k) {
    auto d = dyn_cast<AffineDimExpr>(map.getResult(k));
    if (!d || d.getPosition() != k)
      return false;
  }
  return true;
}

bool hasKinds(GenericOp g, unsigned loops, unsigned parallel, Combiner c) {
  return g.getNumLoops() == loops && g.getNumParallelLoops() == parallel &&
         g.getCombiner() == c;
}

/// A row reduction `R[i] = comb[j] X[i, j]` of X.
bool isRowReduction(GenericOp g, Combiner c, Value x) {
  return g && hasKinds(g, 2, 1, c) && g.getInputs().size() == 1 &&
         g.getInputs()[0] == x && isLeadingIdentity(mapsOf(g)[0], 2) &&
         yielded(g) == g.getBody().getArgument(0);
}

/// X and y of `R[i, j] = f(X[i, j], y[i])` with body `f(a, b)` matched by
/// `body`; nullopt for another generic.
std::optional<std::pair<Value, Value>> rowBroadcastInputs(
    GenericOp g, function_ref<bool(Value, BlockArgument, BlockArgument)> body) {
  if (!g || !hasKinds(g, 2, 2, Combiner::none) || g.getInputs().size() != 2)
    return std::nullopt;
  auto maps = mapsOf(g);
  if (!isLeadingIdentity(maps[0], 2) || !isLeadingIdentity(maps[1], 1) ||
      !body(yielded(g), g.getBody().getArgument(0), g.getBody().getArgument(1)))
    return std::nullopt;
  return std::make_pair(g.getInputs()[0], g.getInputs()[1]);
}

/// The iteration dim a value of a generic body is (through index casts),
/// for `mlx.index`.
std::optional<int64_t> indexDim(Value v) {
  while (auto cast = v.getDefiningOp<arith::IndexCastOp>())
    v = cast.getIn();
  if (auto index = v.getDefiningOp<IndexOp>())
    return index.getDim();
  return std::nullopt;
}

/// Whether a body selects −∞ where j > i (dims 1 and 0): `j <= i ? x :
/// -inf`, `j < i ? …`, or the comparison written the other way round.
bool masksCausally(GenericOp g) {
  bool causal = false;
  g.getBody().walk([&](arith::SelectOp select) {
    FloatAttr masked;
    if (!matchPattern(select.getFalseValue(), m_Constant(&masked)) ||
        !masked.getValue().isInfinity() || !masked.getValue().isNegative())
      return;
    auto cmp = select.getCondition().getDefiningOp<arith::CmpIOp>();
    if (!cmp)
      return;
    std::optional<int64_t> l = indexDim(cmp.getLhs()),
                           r = indexDim(cmp.getRhs());
    using P = arith::CmpIPredicate;
    P p = cmp.getPredicate();
    causal |= (l == 1 && r == 0 &&
               (p == P::sle || p == P::slt || p == P::ule || p == P::ult)) ||
              (l == 0 && r == 1 &&
               (p == P::sge || p == P::sgt || p == P::uge || p == P::ugt));
  });
  return causal;
}

/// The producers of S over (i, j) that a tile recomputes, S last.
void collectChain(GenericOp g, SmallVector<GenericOp> &chain) {
  for (auto [input, map] : llvm::zip(g.getInputs(), mapsOf(g))) {
    auto producer = input.getDefiningOp<GenericOp>();
    if (producer && producer->hasOneUse() &&
        producer.getNumParallelLoops() == 2 && isLeadingIdentity(map, 2) &&
        producer->getParentRegion() == g->getParentRegion())
      collectChain(producer, chain);
  }
  chain.push_back(g);
}

/// Whether every input of the chain outside it is read at (i, j) through
/// plain dims only, so a tile is a slice of it.
bool slicable(const Match &m) {
  for (GenericOp g : m.chain)
    for (auto [input, map] : llvm::zip(g.getInputs(), mapsOf(g))) {
      if (llvm::is_contained(m.chain, input.getDefiningOp<GenericOp>()))
        continue;
      for (AffineExpr e : map.getResults())
        if (!isa<AffineDimExpr>(e) &&
            (e.isFunctionOfDim(0) || e.isFunctionOfDim(1)))
          return false;
    }
  return true;
}

std::optional<Match> match(GenericOp out) {
  // O[i, e] = sum[j] P[i, j] * V[j, e]
  if (!hasKinds(out, 3, 2, Combiner::add) || out.getInputs().size() != 2)
    return std::nullopt;
  auto mul = yielded(out).getDefiningOp<arith::MulFOp>();
  if (!mul || mul->getBlock() != &out.getBody().front())
    return std::nullopt;
  Match m;
  m.out = out;
  auto maps = mapsOf(out);
  MLIRContext *ctx = out.getContext();
  AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx),
             d2 = getAffineDimExpr(2, ctx);
  AffineMap pMap = AffineMap::get(3, 0, {d0, d2}, ctx),
            vMap = AffineMap::get(3, 0, {d2, d1}, ctx);
  for (unsigned p : {0u, 1u})
    if (maps[p] == pMap && maps[1 - p] == vMap) {
      m.pOperand = p;
      m.div = out.getInputs()[p].getDefiningOp<GenericOp>();
    }
  BlockArgument a0 = out.getBody().getArgument(0),
                a1 = out.getBody().getArgument(1);
  if (!m.div || !m.div->hasOneUse() ||
      !((mul.getLhs() == a0 && mul.getRhs() == a1) ||
        (mul.getLhs() == a1 && mul.getRhs() == a0)))
    return std::nullopt;
  // P = E / Z[i]
  auto isDivide = [](Value v, BlockArgument x, BlockArgument y) {
    auto div = v.getDefiningOp<arith::DivFOp>();
    return div && div.getLhs() == x && div.getRhs() == y;
  };
  auto divided = rowBroadcastInputs(m.div, isDivide);
  if (!divided)
    return std::nullopt;
  auto [e, z] = *divided;
  m.sum = z.getDefiningOp<GenericOp>();
  m.exp = e.getDefiningOp<GenericOp>();
  if (!isRowReduction(m.sum, Combiner::add, e) || !z.hasOneUse() || !m.exp)
    return std::nullopt;
  for (Operation *user : e.getUsers())
    if (user != m.sum && user != m.div)
      return std::nullopt;
  // E = exp(S - M')
  auto isExpOfDifference = [](Value v, BlockArgument x, BlockArgument y) {
    auto exp = v.getDefiningOp<math::ExpOp>();
    auto sub = exp ? exp.getOperand().getDefiningOp<arith::SubFOp>() : nullptr;
    return sub && sub.getLhs() == x && sub.getRhs() == y;
  };
  auto shifted = rowBroadcastInputs(m.exp, isExpOfDifference);
  if (!shifted || !shifted->second.hasOneUse())
    return std::nullopt;
  auto [s, mx] = *shifted;
  // M' = stop_gradient(M) or M; M = max[j] S
  m.max = mx.getDefiningOp<GenericOp>();
  if (m.max && hasKinds(m.max, 1, 1, Combiner::none) &&
      m.max.getInputs().size() == 1 && isLeadingIdentity(mapsOf(m.max)[0], 1)) {
    auto stop = yielded(m.max).getDefiningOp<StopGradientOp>();
    if (!stop || stop.getValue() != m.max.getBody().getArgument(0) ||
        !m.max.getInputs()[0].hasOneUse())
      return std::nullopt;
    m.stop = m.max;
    m.max = m.stop.getInputs()[0].getDefiningOp<GenericOp>();
  }
  if (!isRowReduction(m.max, Combiner::max, s))
    return std::nullopt;
  // S, read by M and E only.
  auto scores = s.getDefiningOp<GenericOp>();
  if (!scores || scores.getNumParallelLoops() != 2)
    return std::nullopt;
  for (Operation *user : s.getUsers())
    if (user != m.max && user != m.exp)
      return std::nullopt;
  // All in one block, S's sizes (T, Tk) those of the rest.
  for (Operation *op :
       {m.max.getOperation(), m.exp.getOperation(), m.sum.getOperation(),
        m.div.getOperation(), scores.getOperation()})
    if (op->getBlock() != out->getBlock())
      return std::nullopt;
  collectChain(scores, m.chain);
  for (GenericOp g : m.chain)
    m.causal |= masksCausally(g);
  if (!slicable(m))
    return std::nullopt;
  return m;
}

/// Builds the rewrite of one match.
class Rewriter {
public:
  Rewriter(Match m, int64_t keyTile)
      : m(std::move(m)), b(this->m.out), loc(this->m.out.getLoc()),
        keyTile(keyTile), f(this->m.out.getType().getElementType()) {}

  void run();

private:
  Match m;
  OpBuilder b;
  Location loc;
  int64_t keyTile;
  Type f;

  Value index(int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }
  Value floatConst(double v) {
    return b.create<arith::ConstantOp>(loc, b.getFloatAttr(f, v));
  }
  RankedTensorType tensorOf(unsigned rank) {
    return RankedTensorType::get(
        SmallVector<int64_t>(rank, ShapedType::kDynamic), f);
  }
  /// A tensor of the given sizes filled with `v`.
  Value filled(ValueRange sizes, double v) {
    Value c = floatConst(v);
    return b.create<GenericOp>(
        loc, tensorOf(sizes.size()), ValueRange{}, sizes, ArrayRef<AffineMap>{},
        sizes.size(), Combiner::none,
        [&](OpBuilder &, Location, ValueRange) { return c; });
  }
  /// An element-wise generic over `sizes` of `inputs` (each read at its
  /// leading dims: full rank, or a row value for rank 1 under rank 2).
  Value
  elementwise(ValueRange sizes, ValueRange inputs,
              function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
    AffineMap all =
        AffineMap::getMultiDimIdentityMap(sizes.size(), b.getContext());
    SmallVector<AffineMap> maps;
    for (Value in : inputs)
      maps.push_back(
          all.getMajorSubMap(cast<RankedTensorType>(in.getType()).getRank()));
    return b.create<GenericOp>(loc, tensorOf(sizes.size()), inputs, sizes, maps,
                               sizes.size(), Combiner::none, body);
  }
  /// `comb[j] X[i, j]` over sizes (rows, len).
  Value rowReduce(Value x, Value rows, Value len, Combiner c) {
    MLIRContext *ctx = b.getContext();
    return b.create<GenericOp>(
        loc, tensorOf(1), x, ValueRange{rows, len},
        AffineMap::getMultiDimIdentityMap(2, ctx), 1, c,
        [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  }
  /// The part of `v` whose dim `d` starts at `offsets[d]` with `sizes[d]`
  /// elements (whole where null).
  Value slice(Value v, ArrayRef<Value> offsets, ArrayRef<Value> sizes) {
    auto type = cast<RankedTensorType>(v.getType());
    SmallVector<OpFoldResult> off, size, stride;
    for (int64_t d = 0; d < type.getRank(); ++d) {
      bool cut = d < (int64_t)offsets.size() && offsets[d];
      off.push_back(cut ? OpFoldResult(offsets[d]) : b.getIndexAttr(0));
      size.push_back(
          cut ? OpFoldResult(sizes[d])
              : OpFoldResult(b.createOrFold<tensor::DimOp>(loc, v, d)));
      stride.push_back(b.getIndexAttr(1));
    }
    return b.create<tensor::ExtractSliceOp>(loc, type, v, off, size, stride);
  }
  Value insertRows(Value part, Value into, Value r0) {
    auto type = cast<RankedTensorType>(into.getType());
    SmallVector<OpFoldResult> off{r0}, size, stride;
    for (int64_t d = 0; d < type.getRank(); ++d) {
      if (d > 0)
        off.push_back(b.getIndexAttr(0));
      size.push_back(b.createOrFold<tensor::DimOp>(loc, part, d));
      stride.push_back(b.getIndexAttr(1));
    }
    return b.create<tensor::InsertSliceOp>(loc, part, into, off, size, stride);
  }
  Value cloneChain(Value r0, Value rows, Value j0, Value len);
  SmallVector<Value> tile(Value t, ValueRange state);
};

/// S's chain for the query rows r0 + (0..rows) and the keys j0 + (0..len).
Value Rewriter::cloneChain(Value r0, Value rows, Value j0, Value len) {
  IRMapping mapping;
  Value offsets[2] = {r0, j0}, extents[2] = {rows, len};
  for (GenericOp g : m.chain) {
    SmallVector<Value> inputs;
    for (auto [input, map] : llvm::zip(g.getInputs(), mapsOf(g))) {
      if (mapping.contains(input)) {
        inputs.push_back(mapping.lookup(input));
        continue;
      }
      // Read at i or j along some dims: those dims are the tile's.
      SmallVector<Value> off(map.getNumResults()), size(map.getNumResults());
      for (auto [k, e] : llvm::enumerate(map.getResults()))
        if (auto d = dyn_cast<AffineDimExpr>(e); d && d.getPosition() < 2) {
          off[k] = offsets[d.getPosition()];
          size[k] = extents[d.getPosition()];
        }
      bool cut = llvm::any_of(off, [](Value v) { return (bool)v; });
      inputs.push_back(cut ? slice(input, off, size) : input);
    }
    SmallVector<Value> sizes(g.getSizes());
    sizes[0] = rows;
    sizes[1] = len;
    auto tile = b.create<GenericOp>(loc, tensorOf(g.getNumParallelLoops()),
                                    inputs, sizes, g.getIndexingMaps(),
                                    g.getIteratorKinds(), g.getCombinerAttr());
    g.getBody().cloneInto(&tile.getBody(), mapping);
    // i and j in the body: the tile's dims plus its offsets.
    tile.getBody().walk([&](IndexOp index) {
      if (index.getDim() > 1)
        return;
      OpBuilder ib(index->getBlock(), std::next(index->getIterator()));
      Value shifted = ib.create<arith::AddIOp>(loc, index.getResult(),
                                               offsets[index.getDim()]);
      index.getResult().replaceAllUsesExcept(shifted, shifted.getDefiningOp());
    });
    mapping.map(g.getResult(), tile.getResult());
  }
  return mapping.lookup(m.chain.back().getResult());
}

/// One key tile t: the state (m, z, acc) of every query row, updated.
SmallVector<Value> Rewriter::tile(Value t, ValueRange state) {
  Value mPrev = state[0], zPrev = state[1], accPrev = state[2];
  SmallVector<Value> sSizes(m.chain.back().getSizes());
  Value queries = sSizes[0], keys = sSizes[1];
  Value e = m.out.getSizes()[1];
  Value j0 = b.create<arith::MulIOp>(loc, t, index(keyTile));
  Value len = b.create<arith::MinSIOp>(loc, index(keyTile),
                                       b.create<arith::SubIOp>(loc, keys, j0));
  // Causal: rows before j0 see none of these keys.
  Value r0 = m.causal ? b.create<arith::MinSIOp>(loc, j0, queries).getResult()
                      : index(0);
  Value rows = b.create<arith::SubIOp>(loc, queries, r0);
  Value s = cloneChain(r0, rows, j0, len);
  Value mOld = slice(mPrev, {r0}, {rows});
  Value zOld = slice(zPrev, {r0}, {rows});
  Value accOld = slice(accPrev, {r0}, {rows});
  Value tileMax = rowReduce(s, rows, len, Combiner::max);
  Value mNew = elementwise({rows}, {mOld, tileMax},
                           [](OpBuilder &bb, Location l, ValueRange a) {
                             return bb.create<arith::MaximumFOp>(l, a[0], a[1]);
                           });
  // The max subtracted: 0 while a row has seen only −∞ (exp(−∞ − 0) = 0,
  // where −∞ − (−∞) would be NaN).
  Value negInf = floatConst(-std::numeric_limits<double>::infinity());
  Value zero = floatConst(0);
  Value shift =
      elementwise({rows}, {mNew}, [&](OpBuilder &bb, Location l, ValueRange a) {
        Value none = bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OEQ,
                                              a[0], negInf);
        return bb.create<arith::SelectOp>(l, none, zero, a[0]);
      });
  auto expOfDifference = [](OpBuilder &bb, Location l, ValueRange a) {
    return bb.create<math::ExpOp>(l, bb.create<arith::SubFOp>(l, a[0], a[1]));
  };
  Value p = elementwise({rows, len}, {s, shift}, expOfDifference);
  Value rescale = elementwise({rows}, {mOld, shift}, expOfDifference);
  Value tileSum = rowReduce(p, rows, len, Combiner::add);
  auto scaleAdd = [](OpBuilder &bb, Location l, ValueRange a) {
    return bb.create<arith::AddFOp>(l, bb.create<arith::MulFOp>(l, a[0], a[1]),
                                    a[2]);
  };
  Value zNew = elementwise({rows}, {zOld, rescale, tileSum}, scaleAdd);
  // Σ_j p[i, j] V[j, e] over the tile's keys: `out` on the tile.
  SmallVector<Value> inputs(m.out.getInputs());
  inputs[m.pOperand] = p;
  inputs[1 - m.pOperand] = slice(inputs[1 - m.pOperand], {j0}, {len});
  auto pv =
      b.create<GenericOp>(loc, tensorOf(2), inputs, ValueRange{rows, e, len},
                          m.out.getIndexingMaps(), m.out.getIteratorKinds(),
                          m.out.getCombinerAttr());
  IRMapping none;
  m.out.getBody().cloneInto(&pv.getBody(), none);
  Value accNew = elementwise({rows, e}, {accOld, rescale, pv}, scaleAdd);
  return {insertRows(mNew, mPrev, r0), insertRows(zNew, zPrev, r0),
          insertRows(accNew, accPrev, r0)};
}

void Rewriter::run() {
  SmallVector<Value> sSizes(m.chain.back().getSizes());
  Value queries = sSizes[0], keys = sSizes[1], e = m.out.getSizes()[1];
  SmallVector<Value> inits{
      filled({queries}, -std::numeric_limits<double>::infinity()),
      filled({queries}, 0), filled({queries, e}, 0)};
  Value tiles = b.create<arith::DivUIOp>(
      loc, b.create<arith::AddIOp>(loc, keys, index(keyTile - 1)),
      index(keyTile));
  LoopOp loop = buildLoop(
      b, loc, index(0), tiles, inits,
      [&](OpBuilder &, Value t, ValueRange state) { return tile(t, state); });
  // O = acc / z
  Value o = elementwise({queries, e}, {loop.getResult(2), loop.getResult(1)},
                        [](OpBuilder &bb, Location l, ValueRange a) {
                          return bb.create<arith::DivFOp>(l, a[0], a[1]);
                        });
  m.out.getResult().replaceAllUsesWith(o);
  SmallVector<Operation *> dead{m.out, m.div, m.sum, m.exp};
  if (m.stop)
    dead.push_back(m.stop);
  dead.push_back(m.max);
  for (GenericOp g : llvm::reverse(m.chain))
    dead.push_back(g);
  for (Operation *op : dead)
    op->erase();
}

struct OnlineSoftmaxPass
    : public mlx::impl::OnlineSoftmaxPassBase<OnlineSoftmaxPass> {
  using OnlineSoftmaxPassBase::OnlineSoftmaxPassBase;
  void runOnOperation() override {
    SmallVector<Match> matches;
    getOperation()->walk([&](GenericOp g) {
      if (std::optional<Match> m = match(g))
        matches.push_back(*m);
    });
    for (const Match &m : matches)
      Rewriter(m, keyTile).run();
  }
};
} // namespace
