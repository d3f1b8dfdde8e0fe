//===- Contractions.cpp - contractions packed and register-tiled ---------===//
//
// `mlx-cpu-contractions`. A contraction C[i, k] += Σ_r x(i, r)·y(r, k) as
// plain loops reads B with a stride, keeps one accumulator chain per
// element and leaves the vector unit mostly idle. This pass rewrites it,
// on buffers, into the shape of a BLIS kernel, generated from the op
// itself:
//
//  - packing: x is evaluated once per element into Ap[M/MR][K][MR], y into
//    Bp[N/NR][K][NR] (strips padded with zeros), one vector per step of r,
//    so the kernel reads both contiguously whatever the operands' layouts
//    (Bᵀ in QKᵀ, Aᵀ in a weight gradient) and whatever the factors compute
//    (a scaled Q, a masked product: the body's ops on each side are
//    applied to the vectors);
//  - cache blocking: tasks of rows of C (as many as a multiple of the
//    threads, spread over them by the scf.parallel the OpenMP lowering
//    picks up), the reduction in panels of KC; per panel the task's strips
//    of Ap stay in L2 while each strip of Bp serves all of them;
//  - a register tile of MR × NR elements of C in MR·NR/W vector registers
//    (W lanes), one shared function per module: per step of r, NR/W vector
//    loads of Bp, MR broadcasts of Ap and MR·NR/W vector FMAs.
//
// Each element of C is still accumulated in order of r from its initial
// value (the tile is loaded from C and stored back per panel), so the
// result is the same for every thread count; the FMA rounds once per step
// where mulf + addf rounded twice. Edge tiles (rows past M, columns past N)
// load and store C with masks.
//
// The match: a linalg.generic on buffers with i and k parallel and r a
// reduction, optionally a batch dim b (the output indexed (b, i, k): a
// product per batch, tasks over all of them, a side that does not read b
// packed once); i and k may be several dims the output holds contiguously
// and r several reduction dims, each flattened into one (conv2d: C[o, (y,
// x)] += K[o, (c, u, v)]·P[(c, u, v), (y, x)]; its gradient's patches
// dP[(c, u, v), (y, x)] += K[o, (c, u, v)]·G[o, (y, x)]); the output indexed
// (.., i, k) with unit stride in k; a body `out + x · y` (f32 or f64) where x
// depends only on inputs indexed without k and y only on inputs indexed without
// i (or the other way round), its ops element-wise or linalg.index of a dim its
// side may read (`j < H ? h[n, j] : x[n, j - H]`, an LSTM's [h, x]), the inputs
// with unit stride in their last dim; the product may be scaled by values that
// depend on no input (`out + x·y / √D`: the scaling is applied to x when
// packing). A factor the loops around the op do not change (an RNN's weights)
// is packed once, before them.
//
// A factor may also read a buffer at computed subscripts, plainly or
// guarded by a range check that reports (a gather fused in by
// mlx-cpu-fuse-gathers: a convolution's input, `I[c, y + u − 1, x + v −
// 1]` under its padding test): the packer reads it as one masked load
// where the lanes it reads are consecutive, else as a gather, masked by a
// select that zeroes the other lanes (the padding), and runs the report
// for each lane out of range. The reduction dims that such subscripts
// combine with the lanes (u, v) are packed outermost and the others (c)
// inside, on both sides alike, so that the subscript arithmetic is done
// once per (u, v) rather than per step and the packed panel is written in
// order; the sum runs in that order. Such a y is packed by the tasks
// themselves, a strip at a time just before its panels (column tasks
// only, each running every row): the strip stays in cache.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/RegionUtils.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

namespace {

/// A read of a buffer in lanes, not yet emitted: its lanes to read and
/// the value of the others.
struct PendingRead {
  memref::LoadOp load;
  Value mask, otherwise;
};

/// The register tile and cache blocking, from the vector width.
struct TileShape {
  int64_t lanes;      ///< W: elements per vector register
  int64_t vectors;    ///< NR / W: vector registers per row of the tile
  int64_t rows;       ///< MR
  int64_t panel;      ///< KC: steps of r per pass over a strip of Bp
  int64_t taskStrips; ///< strips of Ap per task (before balancing)
  int64_t cols() const { return lanes * vectors; }
};

TileShape tileShapeFor(unsigned vectorBits, Type element) {
  TileShape shape;
  unsigned bits = std::max(vectorBits, 128u);
  shape.lanes = bits / element.getIntOrFloatBitWidth();
  shape.vectors = 2;
  // Accumulators + the B vectors + a broadcast fit the register file:
  // 12·2 + 2 + 1 of AVX-512's 32, 6·2 + 2 + 1 of AVX2's 16.
  shape.rows = bits >= 512 ? 12 : 6;
  // Panels of 512 steps: a strip of Bp (64 KiB for 32 f32 lanes) and a
  // task's strips of Ap (16 · 24 KiB) stay in a 1 MiB L2. Measured on
  // 1024^3 and 2048^3 against 64–1024 (a longer panel loads and stores
  // each tile of C fewer times; above 512 the strips leave L2).
  shape.panel = 512;
  shape.taskStrips = 16;
  return shape;
}

/// A matched contraction (see the file comment).
struct Contraction {
  linalg::GenericOp op;
  /// The dims of C's rows, outermost first (one, or several that C holds
  /// contiguously: a convolution gradient's (c, u, v)); one flattened dim.
  SmallVector<unsigned, 3> is;
  /// The dims of C's columns, outermost first (one, or several that C
  /// holds contiguously: a convolution's (y, x)), and the reduction dims
  /// (several: a convolution's (c, u, v)); each taken as one flattened dim.
  SmallVector<unsigned, 2> ks;
  SmallVector<unsigned, 3> rs;
  /// A batch dim: the output's first subscript, before i and k (each batch
  /// is a product of its own; either side may use it).
  std::optional<unsigned> batch;
  Value x, y; ///< the factors in the body: x on the i side, y on the k side
  /// Scalings of the product by values of no input (`x·y / √D`), innermost
  /// first: a mulf or a divf (the product its dividend) and the scale.
  /// Applied to x as it is packed.
  SmallVector<std::pair<Operation *, Value>> scales;
};

/// The read of a guarded gather (mlx.gather's, fused in by
/// mlx-cpu-fuse-gathers): `scf.if in range { load B[indices] } else {
/// report; constant }` with B and the indices from outside the if.
memref::LoadOp guardedRead(scf::IfOp guard) {
  if (guard.getNumResults() != 1 || guard.getElseRegion().empty())
    return {};
  Block &then = guard.getThenRegion().front();
  auto load = dyn_cast<memref::LoadOp>(&then.front());
  if (!load || then.getTerminator()->getOperand(0) != load.getResult())
    return {};
  auto outside = [&](Value v) {
    return !guard->isAncestor(v.getParentBlock()->getParentOp());
  };
  if (!outside(load.getMemRef()) || !llvm::all_of(load.getIndices(), outside))
    return {};
  Value otherwise = guard.elseBlock()->getTerminator()->getOperand(0);
  if (!otherwise.getDefiningOp<arith::ConstantOp>())
    return {};
  return load;
}

/// The values from outside `op` that its regions use.
SmallVector<Value> capturedBy(Operation *op) {
  llvm::SetVector<Value> used;
  getUsedValuesDefinedAbove(op->getRegions(), used);
  return used.takeVector();
}

/// The block arguments `v` depends on through ops of `body`, and in
/// `indexDims` the loop dims it reads through linalg.index; false when one
/// of those ops has regions or side effects, or reads an index where
/// `indexDims` is null.
bool collectArguments(Value v, Block &body,
                      llvm::SmallSetVector<unsigned, 4> &args,
                      llvm::SmallSetVector<unsigned, 4> *indexDims = nullptr) {
  SmallVector<Value> work = {v};
  llvm::SmallPtrSet<Operation *, 8> seen;
  while (!work.empty()) {
    Value u = work.pop_back_val();
    if (auto arg = dyn_cast<BlockArgument>(u)) {
      if (arg.getOwner() == &body)
        args.insert(arg.getArgNumber());
      continue;
    }
    Operation *def = u.getDefiningOp();
    if (def->getBlock() != &body || !seen.insert(def).second)
      continue;
    if (auto index = dyn_cast<linalg::IndexOp>(def)) {
      if (!indexDims)
        return false;
      indexDims->insert(index.getDim());
      continue;
    }
    // A read of a buffer from outside at computed indices (a gather fused
    // in by mlx-cpu-fuse-gathers), or one guarded by a range check:
    // gathered into vectors when packing.
    if (auto load = dyn_cast<memref::LoadOp>(def)) {
      if (!indexDims || load.getMemRef().getParentBlock() == &body)
        return false;
      llvm::append_range(work, load.getIndices());
      continue;
    }
    if (auto guard = dyn_cast<scf::IfOp>(def)) {
      if (!indexDims || !guardedRead(guard))
        return false;
      work.push_back(guard.getCondition());
      llvm::append_range(work, capturedBy(guard));
      continue;
    }
    // Applied to vectors when packing: element-wise ops only (and the
    // extents of buffers, the same in every lane).
    if (def->getNumRegions() || !isPure(def) ||
        !(def->hasTrait<OpTrait::Elementwise>() || isa<memref::DimOp>(def)))
      return false;
    llvm::append_range(work, def->getOperands());
  }
  return true;
}

std::optional<Contraction> match(linalg::GenericOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumLoops() < 3 ||
      op.getNumReductionLoops() < 1 || op.getNumDpsInits() != 1)
    return std::nullopt;
  OpOperand *out = op.getDpsInitOperand(0);
  auto outType = dyn_cast<MemRefType>(out->get().getType());
  if (!outType || !isa<Float32Type, Float64Type>(outType.getElementType()) ||
      !isLastMemrefDimUnitStride(outType))
    return std::nullopt;
  AffineMap outMap = op.getMatchingIndexingMap(out);
  unsigned outRank = outMap.getNumResults();
  if (outRank < 2 || outRank + op.getNumReductionLoops() != op.getNumLoops() ||
      !outMap.isProjectedPermutation())
    return std::nullopt;
  SmallVector<unsigned> reduction;
  op.getReductionDims(reduction);

  // The body: yield(out + x·y).
  Block &body = op.getRegion().front();
  BlockArgument acc = body.getArgument(op.getNumDpsInputs());
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add || !acc.hasOneUse())
    return std::nullopt;
  Value product = add.getLhs() == acc   ? add.getRhs()
                  : add.getRhs() == acc ? add.getLhs()
                                        : Value();
  // Scalings of the product by values that depend on no input.
  auto invariant = [&](Value v) {
    llvm::SmallSetVector<unsigned, 4> args;
    return collectArguments(v, body, args) && args.empty();
  };
  SmallVector<std::pair<Operation *, Value>> scales;
  arith::MulFOp mul;
  while (product && product.getDefiningOp() &&
         product.getDefiningOp()->getBlock() == &body && product.hasOneUse()) {
    Operation *def = product.getDefiningOp();
    if (auto div = dyn_cast<arith::DivFOp>(def);
        div && invariant(div.getRhs())) {
      scales.push_back({def, div.getRhs()});
      product = div.getLhs();
      continue;
    }
    auto m = dyn_cast<arith::MulFOp>(def);
    if (!m)
      return std::nullopt;
    if (invariant(m.getRhs()) != invariant(m.getLhs())) {
      bool right = invariant(m.getRhs());
      scales.push_back({def, right ? m.getRhs() : m.getLhs()});
      product = right ? m.getLhs() : m.getRhs();
      continue;
    }
    mul = m;
    break;
  }
  if (!mul)
    return std::nullopt;
  std::reverse(scales.begin(), scales.end());

  // Which inputs each side may read: no k on the i side, no i on the k side.
  auto uses = [&](unsigned input, unsigned dim) {
    return op.getMatchingIndexingMap(op.getDpsInputOperand(input))
        .isFunctionOfDim(dim);
  };
  for (OpOperand *in : op.getDpsInputOperands()) {
    // Loaded as vectors: unit stride in the last dim.
    auto type = dyn_cast<MemRefType>(in->get().getType());
    if (!type || !op.getMatchingIndexingMap(in).isProjectedPermutation() ||
        (type.getRank() && !isLastMemrefDimUnitStride(type)))
      return std::nullopt;
  }
  auto onSide = [&](Value v, ArrayRef<unsigned> excluded) {
    llvm::SmallSetVector<unsigned, 4> args, dims;
    if (!collectArguments(v, body, args, &dims) ||
        llvm::any_of(excluded, [&](unsigned d) { return dims.contains(d); }))
      return false;
    return llvm::none_of(args, [&](unsigned a) {
      return a == acc.getArgNumber() ||
             llvm::any_of(excluded, [&](unsigned d) { return uses(a, d); });
    });
  };
  // The output's subscripts as (b, i, k) or (i, k) (a batched product
  // first), then as (i1, …, k1, k2, …) with C's rows and columns several
  // dims it holds contiguously (a convolution's (o, (y, x)), its
  // gradient's ((c, u, v), (y, x))).
  Value lhs = mul.getLhs(), rhs = mul.getRhs();
  SmallVector<std::pair<unsigned, unsigned>> splits{{1, 1}}; // (batch, rows)
  for (unsigned rows = 1; rows + 1 <= outRank; ++rows)
    splits.push_back({0, rows});
  for (auto [batches, rows] : splits) {
    if (outRank < batches + rows + 1)
      continue;
    Contraction c{op};
    for (unsigned r = batches; r < batches + rows; ++r)
      c.is.push_back(outMap.getDimPosition(r));
    for (unsigned r = batches + rows; r < outRank; ++r)
      c.ks.push_back(outMap.getDimPosition(r));
    if (batches && c.ks.size() > 1)
      continue; // (a batch and several column dims: not taken)
    if ((c.ks.size() > 1 || c.is.size() > 1) &&
        !outType.getLayout().isIdentity())
      continue;
    c.rs.assign(reduction.begin(), reduction.end());
    if (batches)
      c.batch = outMap.getDimPosition(0);
    c.scales = scales;
    if (onSide(lhs, c.ks) && onSide(rhs, c.is)) {
      c.x = lhs;
      c.y = rhs;
    } else if (onSide(rhs, c.ks) && onSide(lhs, c.is)) {
      c.x = rhs;
      c.y = lhs;
    } else {
      continue;
    }
    return c;
  }
  return std::nullopt;
}

/// The element type of the contraction's output.
Type elementOf(Contraction c) {
  return cast<MemRefType>(c.op.getDpsInitOperand(0)->get().getType())
      .getElementType();
}

/// Builds the rewritten contraction (see the file comment).
class ContractionBuilder {
public:
  ContractionBuilder(Contraction c, TileShape shape)
      : c(c), shape(shape), b(c.op), loc(c.op.getLoc()), element(elementOf(c)) {
  }

  void build() {
    SmallVector<Range> ranges =
        cast<linalg::LinalgOp>(c.op.getOperation()).createLoopRanges(b, loc);
    for (auto [dim, range] : llvm::enumerate(ranges))
      extents[dim] = getValueOrCreateConstantIndexOp(b, loc, range.size);
    M = product(c.is, extents);
    N = product(c.ks, extents);
    K = product(c.rs, extents);
    batches = c.batch ? extents[*c.batch] : index(1);
    orderReductions();
    Value rowStrips = ceilDiv(M, index(shape.rows));
    Value colStrips = ceilDiv(N, index(shape.cols()));
    Value packedA = packOnce(shape.rows, c.x, c.is, rowStrips);
    // A factor read at computed subscripts (a convolution's patches) is
    // packed a strip at a time by the task that uses it: the strip stays
    // in cache instead of a panel of all of them (7.2 MB per image for
    // conv2d 64→128 on 56×56) going to memory and back.
    Value packedB =
        packsPerTask() ? Value() : packOnce(shape.cols(), c.y, c.ks, colStrips);
    multiply(packedA, packedB, rowStrips, colStrips);
    for (Value packed : {packedA, packedB})
      if (packed && packed.getParentRegion() == c.op->getParentRegion())
        b.create<memref::DeallocOp>(loc, packed);
    c.op.erase();
  }

private:
  Value index(int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }

  /// ⌈a / d⌉ for d > 0 (arith.ceildivui has no LLVM lowering of its own).
  Value ceilDiv(Value a, Value d) {
    Value up = b.create<arith::SubIOp>(loc, b.create<arith::AddIOp>(loc, a, d),
                                       index(1));
    return b.create<arith::DivUIOp>(loc, up, d);
  }

  /// The ops of the body that `roots` are computed by.
  llvm::SmallPtrSet<Operation *, 8> opsOf(ArrayRef<Value> roots) {
    Block &body = c.op.getRegion().front();
    llvm::SmallPtrSet<Operation *, 8> ops;
    SmallVector<Value> work(roots);
    while (!work.empty()) {
      Operation *def = work.pop_back_val().getDefiningOp();
      if (def && def->getBlock() == &body && ops.insert(def).second) {
        llvm::append_range(work, def->getOperands());
        llvm::append_range(work, capturedBy(def));
      }
    }
    return ops;
  }

  /// The product of the extents of `dims`.
  Value product(ArrayRef<unsigned> dims,
                const llvm::DenseMap<unsigned, Value> &of) {
    Value result = of.lookup(dims.front());
    for (unsigned d : dims.drop_front())
      result = b.create<arith::MulIOp>(loc, result, of.lookup(d));
    return result;
  }

  /// `flat` (an index, or a vector of them) as the indices of `dims`
  /// (outermost first) it flattens, in `at`.
  void delinearize(Value flat, ArrayRef<unsigned> dims,
                   const llvm::DenseMap<unsigned, Value> &of,
                   llvm::DenseMap<unsigned, Value> &at) {
    for (unsigned d : llvm::reverse(dims.drop_front())) {
      Value extent = of.lookup(d);
      if (auto vector = dyn_cast<VectorType>(flat.getType()))
        extent = b.create<vector::BroadcastOp>(loc, vector, extent);
      at[d] = b.create<arith::RemUIOp>(loc, flat, extent);
      flat = b.create<arith::DivUIOp>(loc, flat, extent);
    }
    at[dims.front()] = flat;
  }

  /// Whether `factor` reads an input indexed by the batch dim.
  bool batched(Value factor) {
    if (!c.batch)
      return false;
    llvm::SmallSetVector<unsigned, 4> args, dims;
    collectArguments(factor, c.op.getRegion().front(), args, &dims);
    return dims.contains(*c.batch) || llvm::any_of(args, [&](unsigned a) {
             return c.op.getMatchingIndexingMap(c.op.getDpsInputOperand(a))
                 .isFunctionOfDim(*c.batch);
           });
  }

  /// `factor` packed (see pack) where the op runs, or before the outermost
  /// of the loops around it in which the factor is the same at every step
  /// (an RNN's weights, packed once for all its steps; freed after that
  /// loop).
  Value packOnce(int64_t width, Value factor, ArrayRef<unsigned> laneDims,
                 Value strips) {
    scf::ForOp loop = invariantLoop(factor, laneDims);
    if (!loop)
      return pack(strips, width, factor, laneDims, extents,
                  batched(factor) ? batches : index(1));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(loop);
    llvm::DenseMap<unsigned, Value> hoisted;
    for (unsigned d : packedDims(factor, laneDims))
      hoisted[d] = dimAt(factor, d);
    Value packed =
        pack(ceilDiv(product(laneDims, hoisted), index(width)), width, factor,
             laneDims, hoisted, batched(factor) ? hoisted[*c.batch] : index(1));
    b.setInsertionPointAfter(loop);
    b.create<memref::DeallocOp>(loc, packed);
    return packed;
  }

  /// The dims a pack of `factor` along `laneDims` ranges over: those, the
  /// reduction dims and the batch dim where it reads it.
  SmallVector<unsigned> packedDims(Value factor, ArrayRef<unsigned> laneDims) {
    SmallVector<unsigned> dims(laneDims);
    llvm::append_range(dims, c.rs);
    if (batched(factor))
      dims.push_back(*c.batch);
    return dims;
  }

  /// A buffer `factor` reads that has loop dim `dim`, and the dim's
  /// position in it; none when no buffer it reads has it.
  std::optional<std::pair<Value, unsigned>> bufferWithDim(Value factor,
                                                          unsigned dim) {
    llvm::SmallSetVector<unsigned, 4> args, dims;
    collectArguments(factor, c.op.getRegion().front(), args, &dims);
    for (unsigned a : args) {
      OpOperand *in = c.op.getDpsInputOperand(a);
      if (auto position = c.op.getMatchingIndexingMap(in).getResultPosition(
              getAffineDimExpr(dim, b.getContext())))
        return std::make_pair(in->get(), *position);
    }
    return std::nullopt;
  }

  /// The extent of loop dim `dim`, at the builder's insertion point, from
  /// a buffer `factor` reads (invariantLoop checked there is one).
  Value dimAt(Value factor, unsigned dim) {
    auto [buffer, position] = *bufferWithDim(factor, dim);
    return b.create<memref::DimOp>(loc, buffer, position);
  }

  /// The outermost scf.for of those directly around the op (loops in
  /// loops, nothing between) in which `factor` is invariant: the buffers it
  /// reads and the values from above the op its ops use are defined
  /// outside the loop, the buffers are written nowhere inside it (no op
  /// there writes them or a view of them, or takes them where it might),
  /// and the buffers give the extents of its dims (see packedDims).
  scf::ForOp invariantLoop(Value factor, ArrayRef<unsigned> laneDims) {
    Block &body = c.op.getRegion().front();
    llvm::SmallSetVector<unsigned, 4> args, dims;
    collectArguments(factor, body, args, &dims);
    SmallVector<Value> buffers, captured;
    for (unsigned a : args)
      buffers.push_back(c.op.getDpsInputOperand(a)->get());
    // What it computes (and the scalings packed with x) from.
    SmallVector<Value> roots = {factor};
    if (factor == c.x)
      for (auto [scale, by] : c.scales)
        roots.push_back(by);
    for (Value root : roots)
      if (root.getParentBlock() != &body)
        captured.push_back(root);
    for (Operation *op : opsOf(roots)) {
      SmallVector<Value> operands(op->getOperands());
      llvm::append_range(operands, capturedBy(op));
      for (Value operand : operands)
        if (operand.getParentBlock() != &body)
          captured.push_back(operand);
      op->walk(
          [&](memref::LoadOp load) { buffers.push_back(load.getMemRef()); });
    }
    scf::ForOp best;
    for (auto loop = dyn_cast<scf::ForOp>(c.op->getParentOp()); loop;
         loop = dyn_cast<scf::ForOp>(loop->getParentOp())) {
      auto outside = [&](Value v) {
        return !loop.getRegion().isAncestor(v.getParentRegion());
      };
      if (!llvm::all_of(buffers, outside) || !llvm::all_of(captured, outside) ||
          llvm::any_of(buffers,
                       [&](Value buffer) { return writtenIn(buffer, loop); }))
        break;
      best = loop;
    }
    // Its extents come from the buffers it reads.
    if (llvm::any_of(packedDims(factor, laneDims),
                     [&](unsigned d) { return !bufferWithDim(factor, d); }))
      return scf::ForOp();
    return best;
  }

  /// Whether something inside `loop` (or the loop itself) may write
  /// `buffer`: an op with a write effect on it or a view of it, or one
  /// that takes it without saying what it does with it (a call, a loop's
  /// initial value).
  static bool writtenIn(Value buffer, scf::ForOp loop) {
    SmallVector<Value> aliases = {buffer};
    while (!aliases.empty()) {
      Value alias = aliases.pop_back_val();
      for (Operation *user : alias.getUsers()) {
        if (auto view = dyn_cast<ViewLikeOpInterface>(user);
            view && view.getViewSource() == alias) {
          llvm::append_range(aliases, user->getResults());
          continue;
        }
        if (!loop->isAncestor(user))
          continue;
        auto effects = dyn_cast<MemoryEffectOpInterface>(user);
        if (!effects)
          return true;
        SmallVector<MemoryEffects::EffectInstance> onIt;
        effects.getEffectsOnValue(alias, onIt);
        if (llvm::any_of(onIt, [](const MemoryEffects::EffectInstance &e) {
              return !isa<MemoryEffects::Read>(e.getEffect());
            }))
          return true;
      }
    }
    return false;
  }

  /// `factor` for every (batch b, strip s, step p, lane l): its value at
  /// the lane dims (flattened) = s·width + l (zero past their extent), the
  /// reduction dims (flattened) = p and the batch dim = b, in a fresh buffer
  /// [batches][strips][K][width] (one batch where the factor does not
  /// depend on it): one strip per parallel iteration, one vector of
  /// `width` lanes per step (the factor's ops applied to vectors). `of`
  /// gives the dims' extents.
  Value pack(Value strips, int64_t width, Value factor,
             ArrayRef<unsigned> laneDims,
             const llvm::DenseMap<unsigned, Value> &of, Value packedBatches) {
    Value K = product(c.rs, of);
    auto dynamic = ShapedType::kDynamic;
    auto type = MemRefType::get({dynamic, dynamic, dynamic, width}, element);
    Value packed = b.create<memref::AllocOp>(
        loc, type, ValueRange{packedBatches, strips, K},
        b.getI64IntegerAttr(64));
    OpBuilder::InsertionGuard guard(b);
    auto strip = b.create<scf::ParallelOp>(
        loc, ValueRange{index(0)},
        ValueRange{b.create<arith::MulIOp>(loc, packedBatches, strips)},
        ValueRange{index(1)});
    b.setInsertionPoint(strip.getBody()->getTerminator());
    Value batch =
        b.create<arith::DivUIOp>(loc, strip.getInductionVars()[0], strips);
    Value s =
        b.create<arith::RemUIOp>(loc, strip.getInductionVars()[0], strips);
    packStrip(packed, batch, s, s, batch, width, factor, laneDims, of);
    return packed;
  }

  /// Strip `s` of `factor` (see pack) at batch `batch`, every step of r,
  /// into [`intoBatch`, `intoStrip`] of `packed`, the builder where it is.
  void packStrip(Value packed, Value intoBatch, Value intoStrip, Value s,
                 Value batch, int64_t width, Value factor,
                 ArrayRef<unsigned> laneDims,
                 const llvm::DenseMap<unsigned, Value> &of) {
    OpBuilder::InsertionGuard guard(b);
    Value extent = product(laneDims, of);
    auto lanesType = VectorType::get({width}, b.getIndexType());
    Value first = b.create<arith::MulIOp>(loc, s, index(width));
    Value lanes = b.create<arith::AddIOp>(
        loc, b.create<vector::StepOp>(loc, lanesType),
        b.create<vector::BroadcastOp>(loc, lanesType, first));
    Value inside = b.create<arith::CmpIOp>(
        loc, arith::CmpIPredicate::ult, lanes,
        b.create<vector::BroadcastOp>(loc, lanesType, extent));
    llvm::DenseMap<unsigned, Value> at;
    delinearize(lanes, laneDims, of, at);
    if (c.batch)
      at[*c.batch] = batch;
    Value p = reductionLoops(of, at, width);
    Value v = evaluate(factor, laneDims, width, first, at, inside);
    if (factor == c.x)
      for (auto [scale, by] : c.scales) {
        Value scaleBy = evaluate(by, laneDims, width, first, at, inside);
        v = b.create(loc, scale->getName().getIdentifier(), {v, scaleBy},
                     {v.getType()}, scale->getAttrs())
                ->getResult(0);
      }
    v = b.create<arith::SelectOp>(loc, inside, v,
                                  zerosOf(VectorType::get({width}, element)));
    b.create<vector::StoreOp>(loc, v, packed,
                              ValueRange{intoBatch, intoStrip, p, index(0)});
  }

  /// The loops over the reduction dims when packing, in the order of
  /// c.rs, the builder left inside them, their values in `at`; returns the
  /// step of r they stand for (the dims flattened in that order). Each
  /// innermost iteration packs `width` elements: what it stands for, for
  /// mlx-parallel-threshold (a strip of a 1024-column B is 32 × K
  /// iterations, but 32 × K × 32 elements to copy).
  Value reductionLoops(const llvm::DenseMap<unsigned, Value> &of,
                       llvm::DenseMap<unsigned, Value> &at, int64_t width) {
    Value p = index(0);
    scf::ForOp loop;
    for (unsigned d : c.rs) {
      loop = b.create<scf::ForOp>(loc, index(0), of.lookup(d), index(1));
      b.setInsertionPoint(loop.getBody()->getTerminator());
      at[d] = loop.getInductionVar();
      p = b.create<arith::AddIOp>(
          loc, b.create<arith::MulIOp>(loc, p, of.lookup(d)), at[d]);
    }
    if (loop)
      loop->setAttr(mlx::kLoopWorkAttr, b.getI64IntegerAttr(width));
    return p;
  }

  /// Orders c.rs, the reduction dims as both sides are packed and the
  /// kernel steps through them: those that a factor's index arithmetic
  /// combines with its lanes (a convolution's (u, v)) outermost, the others
  /// (its c) inside, so that arithmetic is computed once per value of the
  /// outer ones, not per step (loop-invariant code motion hoists it), and
  /// the packed panel is written in order. The sum runs in this order,
  /// for every thread count.
  void orderReductions() {
    llvm::SmallSetVector<unsigned, 4> coupled = laneCoupledDims(c.y, c.ks);
    coupled.set_union(laneCoupledDims(c.x, c.is));
    SmallVector<unsigned, 3> order;
    for (bool outside : {true, false})
      for (unsigned d : c.rs)
        if (coupled.contains(d) == outside)
          order.push_back(d);
    c.rs = order;
  }

  /// The reduction dims that index arithmetic of `factor` (ops on loop
  /// indices, not on the values of inputs) combines with its lane dims.
  llvm::SmallSetVector<unsigned, 4>
  laneCoupledDims(Value factor, ArrayRef<unsigned> laneDims) {
    Block &body = c.op.getRegion().front();
    llvm::SmallPtrSet<Operation *, 8> needed = opsOf({factor});
    llvm::DenseMap<Value, llvm::SmallSetVector<unsigned, 4>> indexDims;
    llvm::SmallSetVector<unsigned, 4> coupled;
    for (Operation &op : body.without_terminator()) {
      // Reads give values of inputs, whatever their subscripts.
      if (!needed.contains(&op) || isa<memref::LoadOp, scf::IfOp>(op))
        continue;
      llvm::SmallSetVector<unsigned, 4> dims;
      if (auto index = dyn_cast<linalg::IndexOp>(op))
        dims.insert(index.getDim());
      for (Value operand : op.getOperands())
        if (auto it = indexDims.find(operand); it != indexDims.end())
          dims.insert(it->second.begin(), it->second.end());
      for (Value result : op.getResults())
        indexDims[result] = dims;
      if (llvm::any_of(laneDims, [&](unsigned d) { return dims.contains(d); }))
        for (unsigned d : c.rs)
          if (dims.contains(d))
            coupled.insert(d);
    }
    return coupled;
  }

  /// `factor` in `width` lanes: each loop dim at its value in `at` (a
  /// vector of indices for the lane dims, the first lane's flattened index
  /// `first`; lanes outside `inside` are not read). The inputs it reads
  /// are loaded as vectors (a contiguous or a masked load along the one
  /// lane dim, a gather across rows, or a broadcast of an input indexed
  /// without lane dims), and the body's ops between them and it applied to
  /// vectors.
  Value evaluate(Value factor, ArrayRef<unsigned> laneDims, int64_t width,
                 Value first, const llvm::DenseMap<unsigned, Value> &at,
                 Value inside) {
    auto isLane = [&](unsigned d) { return llvm::is_contained(laneDims, d); };
    Block &body = c.op.getRegion().front();
    llvm::SmallSetVector<unsigned, 4> args, dims;
    collectArguments(factor, body, args, &dims);
    auto vectorOf = [&](Type t) { return VectorType::get({width}, t); };
    IRMapping mapping;
    // Reads of buffers from outside (fused gathers), emitted where first
    // used: a select may mask them first.
    llvm::DenseMap<Value, PendingRead> pending;
    auto take = [&](Value v) {
      PendingRead read = pending.lookup(v);
      pending.erase(v);
      return read;
    };
    auto materialize = [&](Value v) {
      if (!pending.count(v))
        return;
      PendingRead read = take(v);
      mapping.map(v,
                  gather(read.load, mapping, width, read.mask, read.otherwise));
    };
    for (unsigned a : args) {
      OpOperand *in = c.op.getDpsInputOperand(a);
      AffineMap map = c.op.getMatchingIndexingMap(in);
      Value memref = in->get();
      VectorType type = vectorOf(body.getArgument(a).getType());
      Value zeros = zerosOf(type);
      // Lane dims at 0 (at `first` for a contiguous load), the others at
      // their values.
      SmallVector<Value> indices;
      SmallVector<unsigned> lanePositions;
      for (unsigned r = 0; r < map.getNumResults(); ++r) {
        unsigned d = map.getDimPosition(r);
        if (isLane(d))
          lanePositions.push_back(r);
        indices.push_back(isLane(d) ? index(0) : at.lookup(d));
      }
      Value loaded;
      if (lanePositions.empty()) {
        loaded = b.create<vector::BroadcastOp>(
            loc, type, b.create<memref::LoadOp>(loc, memref, indices));
      } else if (laneDims.size() == 1 &&
                 lanePositions.back() == map.getNumResults() - 1) {
        indices.back() = first;
        loaded = b.create<vector::MaskedLoadOp>(loc, type, memref, indices,
                                                inside, zeros);
      } else {
        // Across rows: element offsets Σ lane·stride from [.., 0, .., p].
        auto metadata = b.create<memref::ExtractStridedMetadataOp>(loc, memref);
        SmallVector<std::pair<unsigned, Value>> lanes;
        for (unsigned position : lanePositions)
          lanes.push_back({position, at.lookup(map.getDimPosition(position))});
        loaded = b.create<vector::GatherOp>(loc, type, memref, indices,
                                            laneOffsets(metadata, lanes),
                                            inside, zeros);
      }
      mapping.map(body.getArgument(a), loaded);
    }
    // The ops factor depends on, in body order, on vectors; those that
    // depend on no input computed once and broadcast.
    llvm::SmallPtrSet<Operation *, 8> needed = opsOf({factor});
    for (Operation &op : body.without_terminator()) {
      if (!needed.contains(&op))
        continue;
      // The loop dims it reads: the lanes, the step of r or the batch.
      if (auto index = dyn_cast<linalg::IndexOp>(op)) {
        mapping.map(index, at.lookup(index.getDim()));
        continue;
      }
      // A select of two reads on a condition the same in every lane (an
      // LSTM's `j < H ? h[n, j] : x[n, j − H]`, j a step): only the read
      // it picks is loaded, under an scf.if (both were gathered per step;
      // both reads' range checks still ran where the reads were met).
      // LSTM layer (Xeon, 2 threads): this packing 13 → 8 % of the time,
      // the layer 1.17–1.23 → 1.10–1.15 s per 5 calls.
      auto sameInEveryLane = [&](Value v) {
        llvm::SmallSetVector<unsigned, 4> reads, loops;
        return collectArguments(v, body, reads, &loops) && reads.empty() &&
               llvm::none_of(loops, isLane);
      };
      if (auto select = dyn_cast<arith::SelectOp>(op);
          select && pending.count(select.getTrueValue()) &&
          pending.count(select.getFalseValue()) &&
          select.getTrueValue().hasOneUse() &&
          select.getFalseValue().hasOneUse() &&
          sameInEveryLane(select.getCondition())) {
        PendingRead onTrue = take(select.getTrueValue());
        PendingRead onFalse = take(select.getFalseValue());
        Value condition = mapping.lookupOrDefault(select.getCondition());
        if (isa<VectorType>(condition.getType())) // (broadcast: lane 0)
          condition = b.create<vector::ExtractOp>(loc, condition, 0);
        auto picked = b.create<scf::IfOp>(
            loc, TypeRange{vectorOf(select.getType())}, condition, true, true);
        for (auto [block, read] :
             {std::make_pair(picked.thenBlock(), onTrue),
              std::make_pair(picked.elseBlock(), onFalse)}) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(block);
          b.create<scf::YieldOp>(loc, gather(read.load, mapping, width,
                                             read.mask, read.otherwise));
        }
        mapping.map(select.getResult(), picked.getResult(0));
        continue;
      }
      // A select of a read and a value the same in every lane (`inside ?
      // x[…] : 0`, a padded input): the read masked by the condition.
      if (auto select = dyn_cast<arith::SelectOp>(op);
          select && pending.count(select.getTrueValue()) &&
          select.getTrueValue().hasOneUse()) {
        materialize(select.getFalseValue());
        Value otherwise = mapping.lookupOrDefault(select.getFalseValue());
        Value condition = mapping.lookupOrDefault(select.getCondition());
        if (!isa<VectorType>(otherwise.getType()) ||
            otherwise.getDefiningOp<vector::BroadcastOp>()) {
          PendingRead read = take(select.getTrueValue());
          mapping.map(select.getResult(),
                      gather(read.load, mapping, width,
                             b.create<arith::AndIOp>(
                                 loc, read.mask, broadcastTo(width, condition)),
                             broadcastTo(width, otherwise)));
          continue;
        }
      }
      SmallVector<Value> used(op.getOperands());
      llvm::append_range(used, capturedBy(&op));
      for (Value v : used)
        materialize(v);
      bool varies = llvm::any_of(used, [&](Value v) {
        return isa<VectorType>(mapping.lookupOrDefault(v).getType());
      });
      // A buffer read at indices that vary across the lanes, read where it
      // is used (see gather); a guarded one reports the lanes out of range
      // here.
      if (auto load = dyn_cast<memref::LoadOp>(op); load && varies) {
        pending[load.getResult()] = {load, inside,
                                     zerosOf(vectorOf(load.getType()))};
        continue;
      }
      if (auto guard = dyn_cast<scf::IfOp>(op); guard && varies) {
        Operation *constant =
            guard.elseBlock()->getTerminator()->getOperand(0).getDefiningOp();
        pending[guard.getResult(0)] = {
            guardedRead(guard), reportOutOfRange(guard, mapping, width, inside),
            broadcastTo(width, b.clone(*constant)->getResult(0))};
        continue;
      }
      // The same in every lane (index arithmetic of a step, an LSTM's
      // min(j, H − 1) and its range check): a scalar, broadcast where a
      // vector op uses it (LSTM layer, Xeon: the [h, x] packing 11 → 6 %
      // of the time; it was 12-lane i64 vector arithmetic per step).
      if (!varies) {
        b.clone(op, mapping);
        continue;
      }
      SmallVector<Value> operands;
      for (Value v : op.getOperands())
        operands.push_back(broadcastTo(width, mapping.lookupOrDefault(v)));
      SmallVector<Type> types;
      for (Type t : op.getResultTypes())
        types.push_back(vectorOf(t));
      Operation *vectorized = b.create(loc, op.getName().getIdentifier(),
                                       operands, types, op.getAttrs());
      mapping.map(op.getResults(), vectorized->getResults());
    }
    materialize(factor);
    return broadcastTo(width, mapping.lookupOrDefault(factor));
  }

  /// `v` in `width` lanes (broadcast where it is a scalar).
  Value broadcastTo(int64_t width, Value v) {
    if (isa<VectorType>(v.getType()))
      return v;
    return b.create<vector::BroadcastOp>(
        loc, VectorType::get({width}, v.getType()), v);
  }

  /// The lanes' element offsets Σ index·stride over the subscripts of a
  /// buffer (its metadata) that vary across the lanes: (position, vector).
  Value laneOffsets(memref::ExtractStridedMetadataOp metadata,
                    ArrayRef<std::pair<unsigned, Value>> lanes) {
    Value offsets;
    for (auto [position, at] : lanes) {
      Value offset = b.create<arith::MulIOp>(
          loc, at,
          b.create<vector::BroadcastOp>(loc, at.getType(),
                                        metadata.getStrides()[position]));
      offsets =
          offsets ? b.create<arith::AddIOp>(loc, offsets, offset) : offset;
    }
    return offsets;
  }

  /// The lanes not in `mask`.
  Value negate(Value mask) {
    auto masks = cast<VectorType>(mask.getType());
    return b.create<arith::XOrIOp>(
        loc, mask,
        b.create<arith::ConstantOp>(loc, DenseElementsAttr::get(masks, true)));
  }

  /// A vector of zeros.
  Value zerosOf(VectorType type) {
    return b.create<arith::ConstantOp>(
        loc, type,
        DenseElementsAttr::get(type, b.getZeroAttr(type.getElementType())));
  }

  /// `load` (of a buffer from outside the body) in `width` lanes, its
  /// indices in `mapping` (vectors or scalars): the lanes in `mask` read at
  /// element offsets Σ index·stride (`otherwise` in the others), as one
  /// vector load where those are consecutive and every lane is in `mask`
  /// (a convolution's patches, padding masked), else a gather. The
  /// subscripts the same in every lane go to the base, computed once.
  Value gather(memref::LoadOp load, IRMapping &mapping, int64_t width,
               Value mask, Value otherwise) {
    Value memref = load.getMemRef();
    auto metadata = b.create<memref::ExtractStridedMetadataOp>(loc, memref);
    auto lanesType = VectorType::get({width}, b.getIndexType());
    Value base = index(0);
    SmallVector<std::pair<unsigned, Value>> lanes;
    for (auto [position, subscript] : llvm::enumerate(load.getIndices())) {
      Value at = mapping.lookupOrDefault(subscript);
      if (isa<VectorType>(at.getType()))
        lanes.push_back({position, at});
      else
        base = b.create<arith::AddIOp>(
            loc, base,
            b.create<arith::MulIOp>(loc, at, metadata.getStrides()[position]));
    }
    Value offsets = laneOffsets(metadata, lanes);
    // The buffer as one dim of elements from its offset (its extent: the
    // outermost dim's; only the addressing matters).
    auto element = load.getType();
    auto flatType = MemRefType::get(
        {ShapedType::kDynamic}, element,
        StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, {1}));
    Value extent = b.create<arith::MulIOp>(loc, metadata.getSizes()[0],
                                           metadata.getStrides()[0]);
    Value flat = b.create<memref::ReinterpretCastOp>(
        loc, flatType, metadata.getBaseBuffer(),
        OpFoldResult(metadata.getOffset()), ArrayRef<OpFoldResult>{extent},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    // Consecutive where read: offset − lane the same in every lane of the
    // mask (an all-false mask reads nothing).
    Value relative = b.create<arith::SubIOp>(
        loc, offsets, b.create<vector::StepOp>(loc, lanesType));
    Value first = b.create<vector::ReductionOp>(
        loc, vector::CombiningKind::MAXSI,
        b.create<arith::SelectOp>(
            loc, mask, relative,
            b.create<vector::BroadcastOp>(loc, lanesType, index(0))));
    Value consecutive = b.create<arith::OrIOp>(
        loc, negate(mask),
        b.create<arith::CmpIOp>(
            loc, arith::CmpIPredicate::eq, relative,
            b.create<vector::BroadcastOp>(loc, lanesType, first)));
    Value contiguous = b.create<vector::ReductionOp>(
        loc, vector::CombiningKind::AND, consecutive);
    auto read = b.create<scf::IfOp>(
        loc, contiguous,
        [&](OpBuilder &ob, Location) {
          Value at = ob.create<arith::AddIOp>(loc, base, first);
          ob.create<scf::YieldOp>(loc, ob.create<vector::MaskedLoadOp>(
                                             loc, otherwise.getType(), flat,
                                             ValueRange{at}, mask, otherwise)
                                           .getResult());
        },
        [&](OpBuilder &ob, Location) {
          ob.create<scf::YieldOp>(
              loc, ob.create<vector::GatherOp>(loc, otherwise.getType(), flat,
                                               ValueRange{base}, offsets, mask,
                                               otherwise)
                       .getResult());
        });
    return read.getResult(0);
  }

  /// The range check of a guarded read (see guardedRead) in `width`
  /// lanes: where a lane of `inside` is out of range (a wrong program), the
  /// else branch (its report) runs for each such lane on its scalars.
  /// Returns the lanes to read: in range and inside.
  Value reportOutOfRange(scf::IfOp guard, IRMapping &mapping, int64_t width,
                         Value inside) {
    Value ok =
        broadcastTo(width, mapping.lookupOrDefault(guard.getCondition()));
    Value outOfRange = b.create<arith::AndIOp>(loc, inside, negate(ok));
    auto any =
        b.create<scf::IfOp>(loc,
                            b.create<vector::ReductionOp>(
                                loc, vector::CombiningKind::OR, outOfRange),
                            /*withElseRegion=*/false);
    OpBuilder::InsertionGuard insertion(b);
    b.setInsertionPoint(any.thenBlock()->getTerminator());
    auto lanes = b.create<scf::ForOp>(loc, index(0), index(width), index(1));
    b.setInsertionPoint(lanes.getBody()->getTerminator());
    Value lane = lanes.getInductionVar();
    auto wrong = b.create<scf::IfOp>(
        loc, b.create<vector::ExtractElementOp>(loc, outOfRange, lane),
        /*withElseRegion=*/false);
    b.setInsertionPoint(wrong.thenBlock()->getTerminator());
    llvm::SetVector<Value> used;
    getUsedValuesDefinedAbove(guard.getElseRegion(), used);
    IRMapping scalars;
    for (Value v : used) {
      Value mapped = mapping.lookupOrDefault(v);
      if (isa<VectorType>(mapped.getType()))
        mapped = b.create<vector::ExtractElementOp>(loc, mapped, lane);
      scalars.map(v, mapped);
    }
    for (Operation &op : guard.elseBlock()->without_terminator())
      b.clone(op, scalars);
    b.setInsertionPointAfter(any);
    return b.create<arith::AndIOp>(loc, ok, inside);
  }

  /// Whether y is packed per task (see build): it reads a buffer at
  /// computed subscripts and is not packed once before loops around.
  bool packsPerTask() {
    if (invariantLoop(c.y, c.ks))
      return false;
    return llvm::any_of(opsOf({c.y}), [](Operation *op) {
      return isa<memref::LoadOp, scf::IfOp>(op);
    });
  }

  /// The tasks (rows of C in groups of strips of Ap, columns in groups of
  /// strips of Bp) in parallel; per task, panels of KC steps of r, then the
  /// strips of Bp, then those of Ap: one register tile each.
  void multiply(Value packedA, Value packedB, Value rowStrips,
                Value colStrips) {
    OpBuilder::InsertionGuard guard(b);
    // Row tasks of about taskStrips strips, as many as a multiple of the
    // threads (OpenMP's static schedule then gives each thread the same
    // number), each the strips [t·S/T, (t+1)·S/T): equal within one.
    // (At least one task: an empty C has no strips, and a division by
    // zero tasks traps.)
    Value one = index(1);
    Value threads = b.create<arith::MaxUIOp>(
        loc,
        b.create<arith::IndexCastOp>(
             loc, b.getIndexType(),
             b.create<func::CallOp>(loc, threadCountFunction(), ValueRange{})
                 .getResult(0))
            .getResult(),
        one);
    // Packing B per task (no packedB): column tasks only, as many as a
    // multiple of the threads, each running every row, so that each strip
    // of B is packed once.
    auto multipleOfThreads = [&](Value tasks, Value strips) {
      tasks = b.create<arith::MulIOp>(loc, ceilDiv(tasks, threads), threads);
      return b.create<arith::MaxUIOp>(
          loc, b.create<arith::MinUIOp>(loc, tasks, strips), one);
    };
    Value rowTasks =
        packedB ? multipleOfThreads(ceilDiv(rowStrips, index(shape.taskStrips)),
                                    rowStrips)
                : one;
    Value colTasks = b.create<arith::MaxUIOp>(
        loc, ceilDiv(colStrips, index(kColTaskStrips)), one);
    if (packedB) {
      // Rows that fit one task's panel of Ap (an LSTM step's 64 rows against
      // 2048 columns of W) are not split: every row task reads all of Bp,
      // 8 MiB per step there, from L3. The columns are, where there are
      // enough of them.
      Value rowsFit = b.create<arith::CmpIOp>(
          loc, arith::CmpIPredicate::ule, rowStrips, index(shape.taskStrips));
      Value colsSpread = b.create<arith::CmpIOp>(
          loc, arith::CmpIPredicate::uge, colStrips, threads);
      Value fewRows = b.create<arith::AndIOp>(loc, rowsFit, colsSpread);
      rowTasks = b.create<arith::SelectOp>(loc, fewRows, one, rowTasks);
      colTasks = b.create<arith::SelectOp>(
          loc, fewRows, multipleOfThreads(colTasks, colStrips), colTasks);
    } else {
      colTasks = multipleOfThreads(colTasks, colStrips);
    }
    Value rowsPerTask = ceilDiv(rowStrips, rowTasks);
    Value colsPerTask = ceilDiv(colStrips, colTasks);
    Value perBatch = b.create<arith::MulIOp>(loc, rowTasks, colTasks);
    Value tasks = b.create<arith::MulIOp>(loc, batches, perBatch);
    auto task = b.create<scf::ParallelOp>(
        loc, ValueRange{index(0)}, ValueRange{tasks}, ValueRange{index(1)});
    b.setInsertionPoint(task.getBody()->getTerminator());
    Value batch =
        b.create<arith::DivUIOp>(loc, task.getInductionVars()[0], perBatch);
    Value t =
        b.create<arith::RemUIOp>(loc, task.getInductionVars()[0], perBatch);
    Value rowTask = b.create<arith::DivUIOp>(loc, t, colTasks);
    Value colTask = b.create<arith::RemUIOp>(loc, t, colTasks);
    // The task's batch: its packed strips (batch 0 of a side without one)
    // and its C.
    TypeRange params = tileFunction(shape.rows).getArgumentTypes();
    auto batchOf = [&](Value buffer, Value which, Type type) {
      auto source = cast<MemRefType>(buffer.getType());
      int64_t rank = source.getRank();
      SmallVector<OpFoldResult> offsets(rank, b.getIndexAttr(0)), sizes,
          strides(rank, b.getIndexAttr(1));
      offsets[0] = which;
      sizes.push_back(b.getIndexAttr(1));
      for (int64_t d = 1; d < rank; ++d)
        sizes.push_back(memref::getMixedSize(b, loc, buffer, d));
      auto reduced = memref::SubViewOp::inferRankReducedResultType(
          source.getShape().drop_front(), source, offsets, sizes, strides);
      Value view = b.create<memref::SubViewOp>(loc, cast<MemRefType>(reduced),
                                               buffer, offsets, sizes, strides);
      return b.create<memref::CastOp>(loc, type, view).getResult();
    };
    Value C = c.op.getDpsInitOperand(0)->get();
    int64_t rowDims = c.is.size(), colDims = c.ks.size();
    if (rowDims > 1 || colDims > 1) // C's rows and columns, contiguous: 2-D
      C = b.create<memref::CollapseShapeOp>(
          loc, C,
          ArrayRef<ReassociationIndices>{
              llvm::to_vector(llvm::seq<int64_t>(0, rowDims)),
              llvm::to_vector(llvm::seq<int64_t>(rowDims, rowDims + colDims))});
    Value tileA = batchOf(packedA, batched(c.x) ? batch : index(0), params[0]);
    // B packed per task: one strip of it at a time, [1][1][K][NR], seen by
    // the kernel as every strip (stride 0).
    Value local, tileB;
    if (packedB) {
      tileB = batchOf(packedB, batched(c.y) ? batch : index(0), params[1]);
    } else {
      auto dynamic = ShapedType::kDynamic;
      local = b.create<memref::AllocOp>(
          loc, MemRefType::get({1, 1, dynamic, shape.cols()}, element),
          ValueRange{K}, b.getI64IntegerAttr(64));
      auto metadata = b.create<memref::ExtractStridedMetadataOp>(loc, local);
      Value view = b.create<memref::ReinterpretCastOp>(
          loc,
          MemRefType::get(
              {dynamic, dynamic, shape.cols()}, element,
              StridedLayoutAttr::get(b.getContext(), 0, {0, shape.cols(), 1})),
          metadata.getBaseBuffer(), OpFoldResult(b.getIndexAttr(0)),
          ArrayRef<OpFoldResult>{colStrips, K, b.getIndexAttr(shape.cols())},
          ArrayRef<OpFoldResult>{b.getIndexAttr(0),
                                 b.getIndexAttr(shape.cols()),
                                 b.getIndexAttr(1)});
      tileB = b.create<memref::CastOp>(loc, params[1], view);
    }
    Value tileC = c.batch
                      ? batchOf(C, batch, params[2])
                      : b.create<memref::CastOp>(loc, params[2], C).getResult();
    auto rowShare = [&](Value task) {
      return b.create<arith::DivUIOp>(
          loc, b.create<arith::MulIOp>(loc, task, rowStrips), rowTasks);
    };
    Value rowFirst = rowShare(rowTask);
    Value rowEnd = rowShare(b.create<arith::AddIOp>(loc, rowTask, one));
    Value colFirst = b.create<arith::MulIOp>(loc, colTask, colsPerTask);
    // Panels of at most KC steps, all of about the same length (a short
    // last panel would load and store each tile of C for few steps).
    Value panels =
        b.create<arith::MaxUIOp>(loc, ceilDiv(K, index(shape.panel)), one);
    Value panelSteps = b.create<arith::MaxUIOp>(loc, ceilDiv(K, panels), one);
    // The strips of the task: Bp's outside, Ap's inside; packing B per
    // task, each strip of B packed for all steps, then its panels.
    Value col;
    if (!packedB) {
      col = stripLoop(colsPerTask, colFirst, colStrips).second;
      packStrip(local, index(0), index(0), col, batch, shape.cols(), c.y, c.ks,
                extents);
    }
    auto panel = b.create<scf::ForOp>(loc, index(0), K, panelSteps);
    b.setInsertionPoint(panel.getBody()->getTerminator());
    Value p0 = panel.getInductionVar();
    Value p1 = b.create<arith::MinUIOp>(
        loc, b.create<arith::AddIOp>(loc, p0, panelSteps), K);
    if (packedB)
      col = stripLoop(colsPerTask, colFirst, colStrips).second;
    auto [rows, row] = stripLoop(rowsPerTask, rowFirst, rowEnd);
    callKernels(row, ValueRange{tileA, tileB, tileC, row, col, p0, p1, M, N});
    // What an iteration stands for, for mlx-parallel-threshold: a tile of
    // at most KC steps, each MR·NR multiply-adds.
    rows->setAttr(mlx::kLoopWorkAttr,
                  b.getI64IntegerAttr(shape.panel * shape.rows * shape.cols()));
    if (local) {
      b.setInsertionPoint(task.getBody()->getTerminator());
      b.create<memref::DeallocOp>(loc, local);
    }
  }

  /// The kernel call for the strip of rows `row` with `operands`: the last
  /// strip of M, where it holds no more than 2·MR/3 or MR/3 rows, runs a
  /// kernel of that many rows (the strip is packed as every other): an
  /// LSTM step's 64 rows are 5 strips of 12 and one of 4, whose 12-row
  /// kernel spent two thirds of its FMAs on padding.
  void callKernels(Value row, ValueRange operands) {
    OpBuilder::InsertionGuard guard(b);
    SmallVector<int64_t> heights = {shape.rows};
    if (shape.rows % 3 == 0)
      heights.append({2 * shape.rows / 3, shape.rows / 3});
    Value left = b.create<arith::SubIOp>(
        loc, M, b.create<arith::MulIOp>(loc, row, index(shape.rows)));
    for (auto [k, height] : llvm::enumerate(heights)) {
      if (k + 1 == heights.size()) {
        b.create<func::CallOp>(loc, tileFunction(height), operands);
        break;
      }
      // More rows left than the next kernel holds: this one.
      auto choice = b.create<scf::IfOp>(
          loc,
          b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::sgt, left,
                                  index(heights[k + 1])),
          /*withElseRegion=*/true);
      b.setInsertionPoint(choice.thenBlock()->getTerminator());
      b.create<func::CallOp>(loc, tileFunction(height), operands);
      b.setInsertionPoint(choice.elseBlock()->getTerminator());
    }
  }

  /// `omp_get_max_threads` (libomp: the threads a parallel loop gets),
  /// declared once per module.
  func::FuncOp threadCountFunction() {
    auto module = c.op->getParentOfType<ModuleOp>();
    StringRef name = "omp_get_max_threads";
    if (auto existing = module.lookupSymbol<func::FuncOp>(name))
      return existing;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto declaration = b.create<func::FuncOp>(
        loc, name, b.getFunctionType({}, {b.getI32Type()}));
    declaration.setPrivate();
    return declaration;
  }

  /// `for j in 0..count { if first + j < end { … } }`, the builder left
  /// inside: a loop bounded by a value from outside the parallel loop
  /// (mlx-parallel-threshold counts its trips) over strips first + j.
  std::pair<scf::ForOp, Value> stripLoop(Value count, Value first, Value end) {
    auto loop = b.create<scf::ForOp>(loc, index(0), count, index(1));
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value strip = b.create<arith::AddIOp>(loc, first, loop.getInductionVar());
    auto inside = b.create<scf::IfOp>(
        loc,
        b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, strip, end),
        /*withElseRegion=*/false);
    b.setInsertionPoint(inside.thenBlock()->getTerminator());
    return {loop, strip};
  }

  /// The register tile as a function of the module, one per element type
  /// and tile shape, shared by its contractions (a tile is a few hundred
  /// instructions; a call per tile costs nothing beside its KC·MR·NR FMAs).
  /// Not inlined: a copy per contraction would multiply compile time.
  /// The register-tile kernel of `rows` of a strip's MR rows (see tile),
  /// declared once per module: `mlx_tile_f32_12x32`, `mlx_tile_f32_4of12x32`.
  func::FuncOp tileFunction(int64_t rows) {
    auto module = c.op->getParentOfType<ModuleOp>();
    std::string name =
        rows == shape.rows
            ? std::string(llvm::formatv("mlx_tile_{0}_{1}x{2}", element,
                                        shape.rows, shape.cols()))
            : std::string(llvm::formatv("mlx_tile_{0}_{1}of{2}x{3}", element,
                                        rows, shape.rows, shape.cols()));
    if (auto existing = module.lookupSymbol<func::FuncOp>(name))
      return existing;
    MLIRContext *ctx = b.getContext();
    auto dynamic = ShapedType::kDynamic;
    // One batch of a packed buffer: [strips][K][width], strided.
    auto packedType = [&](int64_t width) {
      return MemRefType::get(
          {dynamic, dynamic, width}, element,
          StridedLayoutAttr::get(ctx, dynamic, {dynamic, width, 1}));
    };
    auto cType =
        MemRefType::get({dynamic, dynamic}, element,
                        StridedLayoutAttr::get(ctx, dynamic, {dynamic, 1}));
    Type indexType = b.getIndexType();
    auto type = FunctionType::get(
        ctx,
        {packedType(shape.rows), packedType(shape.cols()), cType, indexType,
         indexType, indexType, indexType, indexType, indexType},
        {});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto kernel = b.create<func::FuncOp>(loc, name, type);
    kernel.setPrivate();
    kernel->setAttr("llvm.linkage",
                    LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));
    kernel->setAttr("passthrough",
                    b.getArrayAttr({b.getStringAttr("noinline")}));
    Block *entry = kernel.addEntryBlock();
    b.setInsertionPointToStart(entry);
    ValueRange args = entry->getArguments();
    tile(rows, args[0], args[1], args[2], args[3], args[4], args[5], args[6],
         args[7], args[8]);
    b.create<func::ReturnOp>(loc);
    return kernel;
  }

  /// One register tile: C[s·MR…, t·NR…] += Σ_{p0 ≤ p < p1} Ap[s, p]ᵀ Bp[t, p]
  /// for C of M × N, on the first `rows` of the strip's MR rows.
  void tile(int64_t rows, Value packedA, Value packedB, Value C, Value s,
            Value t, Value p0, Value p1, Value M, Value N) {
    auto vectorType = VectorType::get({shape.lanes}, element);
    Value row0 = b.create<arith::MulIOp>(loc, s, index(shape.rows));
    Value col0 = b.create<arith::MulIOp>(loc, t, index(shape.cols()));
    // A kernel of fewer rows runs the last strip only: masked always.
    Value full =
        rows < shape.rows
            ? b.create<arith::ConstantIntOp>(loc, 0, 1).getResult()
            : b.create<arith::AndIOp>(
                  loc,
                  b.create<arith::CmpIOp>(
                      loc, arith::CmpIPredicate::ule,
                      b.create<arith::AddIOp>(loc, row0, index(rows)), M),
                  b.create<arith::CmpIOp>(
                      loc, arith::CmpIPredicate::ule,
                      b.create<arith::AddIOp>(loc, col0, index(shape.cols())),
                      N))
                  .getResult();

    // Where element (ρ, v·W) of the tile lives in C, and, for edge tiles,
    // which of its lanes exist (none for rows past M).
    auto position = [&](OpBuilder &ob, int64_t rho, int64_t v) {
      Value row = ob.create<arith::AddIOp>(
          loc, row0, ob.create<arith::ConstantIndexOp>(loc, rho));
      Value col = ob.create<arith::AddIOp>(
          loc, col0, ob.create<arith::ConstantIndexOp>(loc, v * shape.lanes));
      return std::make_pair(row, col);
    };
    auto edge = [&](OpBuilder &ob, int64_t rho, int64_t v) {
      auto [row, col] = position(ob, rho, v);
      Value zero = ob.create<arith::ConstantIndexOp>(loc, 0);
      Value rowInside =
          ob.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, row, M);
      Value left = ob.create<arith::SubIOp>(
          loc, ob.create<arith::MaxUIOp>(loc, N, col), col);
      Value lanes = ob.create<arith::MinUIOp>(
          loc, left, ob.create<arith::ConstantIndexOp>(loc, shape.lanes));
      lanes = ob.create<arith::SelectOp>(loc, rowInside, lanes, zero);
      Value safeRow = ob.create<arith::SelectOp>(loc, rowInside, row, zero);
      Value mask = ob.create<vector::CreateMaskOp>(
          loc, VectorType::get({shape.lanes}, ob.getI1Type()), lanes);
      return std::make_tuple(safeRow, col, mask);
    };

    auto load = b.create<scf::IfOp>(
        loc, full,
        [&](OpBuilder &ob, Location) {
          SmallVector<Value> accs;
          for (int64_t rho = 0; rho < rows; ++rho)
            for (int64_t v = 0; v < shape.vectors; ++v) {
              auto [row, col] = position(ob, rho, v);
              accs.push_back(ob.create<vector::LoadOp>(loc, vectorType, C,
                                                       ValueRange{row, col}));
            }
          ob.create<scf::YieldOp>(loc, accs);
        },
        [&](OpBuilder &ob, Location) {
          SmallVector<Value> accs;
          Value zeros = ob.create<arith::ConstantOp>(
              loc, vectorType,
              DenseElementsAttr::get(vectorType, ob.getZeroAttr(element)));
          for (int64_t rho = 0; rho < rows; ++rho)
            for (int64_t v = 0; v < shape.vectors; ++v) {
              auto [row, col, mask] = edge(ob, rho, v);
              accs.push_back(ob.create<vector::MaskedLoadOp>(
                  loc, vectorType, C, ValueRange{row, col}, mask, zeros));
            }
          ob.create<scf::YieldOp>(loc, accs);
        });
    prefetchTileBelow(rows, C, row0, col0, M, N);

    auto steps = b.create<scf::ForOp>(
        loc, p0, p1, index(1), load.getResults(),
        [&](OpBuilder &ob, Location, Value p, ValueRange accs) {
          SmallVector<Value> bs, next;
          for (int64_t v = 0; v < shape.vectors; ++v)
            bs.push_back(ob.create<vector::LoadOp>(
                loc, vectorType, packedB,
                ValueRange{
                    t, p,
                    ob.create<arith::ConstantIndexOp>(loc, v * shape.lanes)}));
          for (int64_t rho = 0; rho < rows; ++rho) {
            Value a = ob.create<memref::LoadOp>(
                loc, packedA,
                ValueRange{s, p, ob.create<arith::ConstantIndexOp>(loc, rho)});
            Value as = ob.create<vector::BroadcastOp>(loc, vectorType, a);
            for (int64_t v = 0; v < shape.vectors; ++v)
              next.push_back(ob.create<vector::FMAOp>(
                  loc, as, bs[v], accs[rho * shape.vectors + v]));
          }
          ob.create<scf::YieldOp>(loc, next);
        });

    b.create<scf::IfOp>(
        loc, full,
        [&](OpBuilder &ob, Location) {
          for (int64_t rho = 0; rho < rows; ++rho)
            for (int64_t v = 0; v < shape.vectors; ++v) {
              auto [row, col] = position(ob, rho, v);
              ob.create<vector::StoreOp>(
                  loc, steps.getResult(rho * shape.vectors + v), C,
                  ValueRange{row, col});
            }
          ob.create<scf::YieldOp>(loc);
        },
        [&](OpBuilder &ob, Location) {
          for (int64_t rho = 0; rho < rows; ++rho)
            for (int64_t v = 0; v < shape.vectors; ++v) {
              auto [row, col, mask] = edge(ob, rho, v);
              ob.create<vector::MaskedStoreOp>(
                  loc, C, ValueRange{row, col}, mask,
                  steps.getResult(rho * shape.vectors + v));
            }
          ob.create<scf::YieldOp>(loc);
        });
  }

  /// Prefetches the tile of C under the one at (row0, col0): the next call
  /// in a task's order (its strips of Ap inside those of Bp). A tile's rows
  /// lie a row of C apart, so its loads miss in every level when the
  /// panel starts; prefetched a call ahead they overlap that call's FMAs
  /// (a 2048³ matmul's kernel 270–290 → 305–320 GFLOP/s, Xeon, 2 threads).
  /// Rows past M are clamped to the last one, columns past N to the first.
  void prefetchTileBelow(int64_t rows, Value C, Value row0, Value col0,
                         Value M, Value N) {
    Value lastRow = b.create<arith::SubIOp>(
        loc, b.create<arith::MaxUIOp>(loc, M, index(1)), index(1));
    for (int64_t rho = 0; rho < rows; ++rho) {
      Value row = b.create<arith::MinUIOp>(
          loc, b.create<arith::AddIOp>(loc, row0, index(shape.rows + rho)),
          lastRow);
      for (int64_t v = 0; v < shape.vectors; ++v) {
        Value col = b.create<arith::AddIOp>(loc, col0, index(v * shape.lanes));
        col = b.create<arith::SelectOp>(
            loc,
            b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, col, N),
            col, index(0));
        b.create<memref::PrefetchOp>(loc, C, ValueRange{row, col},
                                     /*isWrite=*/false, /*localityHint=*/3,
                                     /*isDataCache=*/true);
      }
    }
  }

  /// Strips of Bp per task: tasks split the columns only where a row task
  /// would otherwise hold many of them (wide, short products).
  static constexpr int64_t kColTaskStrips = 64;

  Contraction c;
  TileShape shape;
  OpBuilder b;
  Location loc;
  Type element;
  Value M, N, K, batches;
  llvm::DenseMap<unsigned, Value> extents; ///< of every loop dim, at the op
};

struct CpuContractionsPass
    : public PassWrapper<CpuContractionsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuContractionsPass)
  CpuContractionsPass() = default;
  CpuContractionsPass(const CpuContractionsPass &other) : PassWrapper(other) {}
  explicit CpuContractionsPass(unsigned bits) { vectorBits = bits; }
  StringRef getArgument() const final { return "mlx-cpu-contractions"; }
  StringRef getDescription() const final {
    return "contractions on buffers as packed, register-tiled vector kernels";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<vector::VectorDialect, scf::SCFDialect, func::FuncDialect,
                    LLVM::LLVMDialect, memref::MemRefDialect,
                    arith::ArithDialect>();
  }
  void runOnOperation() override {
    SmallVector<Contraction> found;
    getOperation().walk([&](linalg::GenericOp op) {
      if (auto c = match(op))
        found.push_back(*c);
    });
    for (Contraction c : found)
      ContractionBuilder(c, tileShapeFor(vectorBits, elementOf(c))).build();
  }
  Option<unsigned> vectorBits{
      *this, "vector-bits",
      llvm::cl::desc("the width of the target's vector registers in bits"),
      llvm::cl::init(256)};
};

} // namespace

std::unique_ptr<Pass> mlx::createCpuContractionsPass(unsigned vectorBits) {
  return std::make_unique<CpuContractionsPass>(vectorBits);
}

void mlx::registerCpuContractionsPass() {
  PassRegistration<CpuContractionsPass>();
}
