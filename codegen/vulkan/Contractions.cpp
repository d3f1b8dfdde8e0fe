//===- Contractions.cpp - contractions tiled in workgroup memory -*- C++
//-*-===//
//
// `mlx-vulkan-tiled-contractions` (Kernels.h). A matrix product as a plain
// kernel gives each invocation one element of C and the whole K loop over
// global memory: every element of A and B is read once per row or column
// of C. Tiled, a 16×16 workgroup loads a 16×16 tile of A and one of B per
// step of the reduction into workgroup memory (one element each), waits,
// and each invocation accumulates its element of C from the tiles: each
// element of A and B is read from global memory once per tile of C.
//
// The match: one reduction loop r, two or three parallel loops (the last
// two i and k, a batch dim before them), one output indexed by the
// parallel loops in order, a reduction combiner, and exactly two buffer
// inputs, A using i and r but not k, B using r and k but not i (either may
// use the batch dim). The body is cloned per element, so f is anything
// (a scaled product, a masked one).
//
//===----------------------------------------------------------------------===//
#include "codegen/vulkan/Kernels.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVEnums.h"

using namespace mlir;
using namespace mlir::mlx::vulkan;

namespace {

/// The tile edge: workgroups of kTile × kTile invocations.
constexpr int64_t kTile = 16;

/// A matched contraction (see the file comment).
struct Contraction {
  linalg::LinalgOp op;
  Operation *combiner;
  OpOperand *a, *b;
  unsigned i, k, r;
  std::optional<unsigned> batch;
};

std::optional<Contraction> match(linalg::LinalgOp op) {
  if (!isFusible(op) || op.getNumReductionLoops() != 1 ||
      op.getNumParallelLoops() < 2 || op.getNumParallelLoops() > 3)
    return std::nullopt;
  Operation *combiner = reductionCombiner(op);
  if (!combiner)
    return std::nullopt;
  SmallVector<unsigned> parallel, reduction;
  op.getParallelDims(parallel);
  op.getReductionDims(reduction);
  Contraction c{op,
                combiner,
                nullptr,
                nullptr,
                parallel[parallel.size() - 2],
                parallel.back(),
                reduction[0],
                std::nullopt};
  if (parallel.size() == 3)
    c.batch = parallel[0];
  OpOperand *out = op.getDpsInitOperand(0);
  AffineMap outMap = op.getMatchingIndexingMap(out);
  if (outMap.getNumResults() != parallel.size())
    return std::nullopt;
  for (auto [k, d] : llvm::enumerate(parallel))
    if (outMap.getResult(k) != getAffineDimExpr(d, op->getContext()))
      return std::nullopt;
  for (OpOperand *in : op.getDpsInputOperands()) {
    if (!isa<MemRefType>(in->get().getType()))
      continue;
    AffineMap map = op.getMatchingIndexingMap(in);
    if (!map.isProjectedPermutation() || !map.isFunctionOfDim(c.r))
      return std::nullopt;
    bool usesI = map.isFunctionOfDim(c.i), usesK = map.isFunctionOfDim(c.k);
    if (usesI && !usesK && !c.a)
      c.a = in;
    else if (usesK && !usesI && !c.b)
      c.b = in;
    else
      return std::nullopt;
  }
  Value written = mlx::rootOf(out->get());
  auto plain = [](OpOperand *o) {
    Type t = cast<MemRefType>(o->get().getType()).getElementType();
    return t.isF32() || t.isF64() || t.isInteger(32) || t.isInteger(64);
  };
  if (!c.a || !c.b || !plain(c.a) || !plain(c.b) ||
      !out->get().getDefiningOp<memref::AllocOp>() ||
      mlx::rootOf(c.a->get()) == written || mlx::rootOf(c.b->get()) == written)
    return std::nullopt;
  return c;
}

/// The fill of `out` right before `op` (over ops that touch no memory), if
/// any: its value.
std::pair<linalg::FillOp, Value> precedingFill(linalg::LinalgOp op, Value out) {
  for (Operation *o = op->getPrevNode(); o; o = o->getPrevNode()) {
    if (auto fill = dyn_cast<linalg::FillOp>(o))
      return fill.getOutputs()[0] == out &&
                     !isa<MemRefType>(fill.getInputs()[0].getType())
                 ? std::pair(fill, fill.getInputs()[0])
                 : std::pair(linalg::FillOp(), Value());
    if (o->getNumRegions() || !isMemoryEffectFree(o))
      break;
  }
  return {linalg::FillOp(), Value()};
}

struct TiledContractionsPass
    : public PassWrapper<TiledContractionsPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TiledContractionsPass)

  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<affine::AffineDialect, gpu::GPUDialect, scf::SCFDialect,
                    spirv::SPIRVDialect>();
  }

  void runOnOperation() override {
    SmallVector<Contraction> found;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (auto c = match(op))
        found.push_back(*c);
    });
    for (Contraction &c : found)
      build(c);
  }

  /// A load of `operand` at the loop values `ivs` (affine.apply for other
  /// than plain dims).
  static Value load(OpBuilder &b, Location loc, linalg::LinalgOp op,
                    OpOperand *operand, ArrayRef<Value> ivs) {
    AffineMap map = op.getMatchingIndexingMap(operand);
    SmallVector<Value> at;
    for (AffineExpr e : map.getResults())
      at.push_back(ivs[cast<AffineDimExpr>(e).getPosition()]);
    return b.create<memref::LoadOp>(loc, operand->get(), at);
  }

  void build(Contraction &c) {
    linalg::LinalgOp op = c.op;
    OpOperand *out = op.getDpsInitOperand(0);
    auto [fill, init] = precedingFill(op, out->get());
    OpBuilder b(op);
    Location loc = op.getLoc();
    MLIRContext *ctx = b.getContext();
    SmallVector<Value> extent;
    for (Range r : op.createLoopRanges(b, loc))
      extent.push_back(getValueOrCreateConstantIndexOp(b, loc, r.size));
    Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
    Value one = b.create<arith::ConstantIndexOp>(loc, 1);
    Value tile = b.create<arith::ConstantIndexOp>(loc, kTile);
    Value last = b.create<arith::ConstantIndexOp>(loc, kTile - 1);
    auto tiles = [&](Value n) {
      return b
          .create<arith::DivUIOp>(loc, b.create<arith::AddIOp>(loc, n, last),
                                  tile)
          .getResult();
    };
    // The grid: (batch,) tiles of i, tiles of k.
    SmallVector<Value> lbs, ubs, steps;
    if (c.batch)
      lbs.push_back(zero), ubs.push_back(extent[*c.batch]),
          steps.push_back(one);
    lbs.append({zero, zero});
    ubs.append({tiles(extent[c.i]), tiles(extent[c.k])});
    steps.append({one, one});
    auto grid = b.create<scf::ParallelOp>(loc, lbs, ubs, steps);
    grid->setAttr(kMappedKernelAttr, b.getUnitAttr());
    b.setInsertionPointToStart(grid.getBody());
    auto threads =
        b.create<scf::ParallelOp>(loc, ValueRange{zero, zero},
                                  ValueRange{tile, tile}, ValueRange{one, one});
    b.setInsertionPointToStart(threads.getBody());
    ValueRange blockIvs = grid.getBody()->getArguments();
    Value ty = threads.getBody()->getArgument(0);
    Value tx = threads.getBody()->getArgument(1);
    Value bi = blockIvs[blockIvs.size() - 2], bk = blockIvs.back();

    SmallVector<Value> ivs(op.getNumLoops());
    if (c.batch)
      ivs[*c.batch] = blockIvs[0];
    ivs[c.i] = b.create<arith::AddIOp>(
        loc, b.create<arith::MulIOp>(loc, bi, tile), ty);
    ivs[c.k] = b.create<arith::AddIOp>(
        loc, b.create<arith::MulIOp>(loc, bk, tile), tx);
    auto below = [&](Value v, Value n) {
      return b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, v, n)
          .getResult();
    };
    Value inI = below(ivs[c.i], extent[c.i]);
    Value inK = below(ivs[c.k], extent[c.k]);

    auto workgroup =
        spirv::StorageClassAttr::get(ctx, spirv::StorageClass::Workgroup);
    auto function =
        spirv::StorageClassAttr::get(ctx, spirv::StorageClass::Function);
    auto elementOf = [](OpOperand *o) {
      return cast<MemRefType>(o->get().getType()).getElementType();
    };
    Value tileA = b.create<memref::AllocOp>(
        loc, MemRefType::get({kTile * kTile}, elementOf(c.a), AffineMap(),
                             workgroup));
    Value tileB = b.create<memref::AllocOp>(
        loc, MemRefType::get({kTile * kTile}, elementOf(c.b), AffineMap(),
                             workgroup));
    Type accType = c.combiner->getResult(0).getType();
    Value acc = b.create<memref::AllocaOp>(
        loc, MemRefType::get({1}, accType, AffineMap(), function));
    b.create<memref::StoreOp>(
        loc,
        b.create<arith::ConstantOp>(loc, *arith::getNeutralElement(c.combiner)),
        acc, zero);

    // Per step of r: stage the tiles, then accumulate from them.
    auto step = b.create<scf::ForOp>(loc, zero, extent[c.r], tile);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(step.getBody());
      Value r0 = step.getInductionVar();
      Value mine = b.create<arith::AddIOp>(
          loc, b.create<arith::MulIOp>(loc, ty, tile), tx);
      auto stage = [&](OpOperand *operand, Value inside, Value r, Value into) {
        SmallVector<Value> at(ivs.begin(), ivs.end());
        at[c.r] = r;
        auto guarded = b.create<scf::IfOp>(
            loc, b.create<arith::AndIOp>(loc, inside, below(r, extent[c.r])),
            [&](OpBuilder &t, Location l) {
              t.create<scf::YieldOp>(l, load(t, l, op, operand, at));
            },
            [&](OpBuilder &e, Location l) {
              e.create<scf::YieldOp>(l,
                                     e.create<arith::ConstantOp>(
                                          l, e.getZeroAttr(elementOf(operand)))
                                         .getResult());
            });
        b.create<memref::StoreOp>(loc, guarded.getResult(0), into, mine);
      };
      stage(c.a, inI, b.create<arith::AddIOp>(loc, r0, tx), tileA);
      stage(c.b, inK, b.create<arith::AddIOp>(loc, r0, ty), tileB);
      b.create<gpu::BarrierOp>(loc);
      Value count = b.create<arith::MinUIOp>(
          loc, tile, b.create<arith::SubIOp>(loc, extent[c.r], r0));
      // (count >= 1, so the loop's result is defined: SPIR-V's lowering of
      // scf.for leaves it undefined after no iteration)
      auto inner = b.create<scf::ForOp>(
          loc, zero, count, one,
          ValueRange{b.create<memref::LoadOp>(loc, acc, zero)});
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(inner.getBody());
        Value rr = inner.getInductionVar();
        SmallVector<Value> at(ivs.begin(), ivs.end());
        at[c.r] = b.create<arith::AddIOp>(loc, r0, rr);
        // Element (row, column) of a tile.
        auto fromTile = [&](Value tileBuffer, Value row, Value column) {
          return b.create<memref::LoadOp>(
              loc, tileBuffer,
              ValueRange{b.create<arith::AddIOp>(
                  loc, b.create<arith::MulIOp>(loc, row, tile), column)});
        };
        IRMapping mapping;
        for (OpOperand &operand : op->getOpOperands()) {
          BlockArgument arg = op.getMatchingBlockArgument(&operand);
          if (&operand == c.a)
            mapping.map(arg, fromTile(tileA, ty, rr));
          else if (&operand == c.b)
            mapping.map(arg, fromTile(tileB, rr, tx));
          else if (&operand == out)
            mapping.map(arg, inner.getRegionIterArgs()[0]);
          else
            mapping.map(arg, operand.get());
        }
        cloneBody(b, op, at, mapping);
        b.create<scf::YieldOp>(loc, mapping.lookup(c.combiner->getResult(0)));
      }
      b.create<memref::StoreOp>(loc, inner.getResult(0), acc, zero);
      b.create<gpu::BarrierOp>(loc);
    }
    // The element of C, where it lies inside C.
    auto write =
        b.create<scf::IfOp>(loc, b.create<arith::AndIOp>(loc, inI, inK),
                            /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&write.getThenRegion().front());
      SmallVector<Value> at;
      for (AffineExpr e : op.getMatchingIndexingMap(out).getResults())
        at.push_back(ivs[cast<AffineDimExpr>(e).getPosition()]);
      Value start = init ? init : b.create<memref::LoadOp>(loc, out->get(), at);
      Value total = b.create<memref::LoadOp>(loc, acc, zero);
      b.create<memref::StoreOp>(loc, combine(b, op, c.combiner, start, total),
                                out->get(), at);
    }

    auto dim = [&](gpu::Processor p) { return mappingTo(ctx, p); };
    SmallVector<gpu::ParallelLoopDimMappingAttr> gridMap;
    if (c.batch)
      gridMap.push_back(dim(gpu::Processor::BlockZ));
    gridMap.append({dim(gpu::Processor::BlockY), dim(gpu::Processor::BlockX)});
    (void)gpu::setMappingAttr(grid, gridMap);
    (void)gpu::setMappingAttr(
        threads, {dim(gpu::Processor::ThreadY), dim(gpu::Processor::ThreadX)});
    op->erase();
    if (fill)
      fill->erase();
  }
};

} // namespace

std::unique_ptr<Pass> mlir::mlx::vulkan::createTiledContractionsPass() {
  return std::make_unique<TiledContractionsPass>();
}
