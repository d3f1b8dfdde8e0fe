//===- RowKernels.cpp - fused row kernels for the Vulkan target --*- C++
//-*-===//
//
// `mlx-vulkan-row-kernels`. A row softmax is six linalg ops (fill, max,
// exp, fill, sum, divide) that each walk the same rows; as plain kernels
// they are six dispatches, and each reduction runs in one invocation per
// row. Here such a run of ops becomes one kernel: one workgroup per row
// (the ops' shared leading parallel dims), whose invocations share each
// op's inner loops; a reduction of a row to one value gives each
// invocation a strided part and combines the partial values in workgroup
// memory (a tree of kWorkgroupSize / 2, / 4, … steps); a barrier separates
// consecutive ops, which hand each other their rows through buffers.
//
// A run is legal when every buffer it writes is an allocation of the
// function that each op indexes with the row dims first and by nothing
// else of the rows (row r touches only buffer[r, …]), so rows are
// independent and each row's ops keep their order. It forms around a
// reduction, from the ops before and after it that are legal with it;
// element-wise ops join only over loop extents of the run's reductions
// (so none does more than a reduction's work in a single workgroup).
//
//===----------------------------------------------------------------------===//
#include "codegen/vulkan/Kernels.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVEnums.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

#include <set>
#include <tuple>

using namespace mlir;
using namespace mlir::mlx::vulkan;

namespace {

/// A loop extent, comparable across ops: a constant, or a dim of a
/// function argument, or some other index value.
using Extent = std::tuple<const void *, int64_t, int64_t>;

std::optional<Extent> extentOf(Value buffer, unsigned dim);

/// The extent an index value stands for.
Extent extentOfSize(Value size) {
  if (auto k = getConstantIntValue(size))
    return {nullptr, -1, *k};
  if (auto dimOp = size.getDefiningOp<memref::DimOp>())
    if (auto k = dimOp.getConstantIndex())
      if (auto e = extentOf(dimOp.getSource(), *k))
        return *e;
  return {size.getAsOpaquePointer(), -1, 0};
}

std::optional<Extent> extentOf(Value buffer, unsigned dim) {
  auto type = dyn_cast<MemRefType>(buffer.getType());
  if (!type || dim >= type.getRank())
    return std::nullopt;
  if (!type.isDynamicDim(dim))
    return Extent{nullptr, -1, type.getDimSize(dim)};
  if (auto alloc = buffer.getDefiningOp<memref::AllocOp>())
    return extentOfSize(alloc.getDynamicSizes()[type.getDynamicDimIndex(dim)]);
  return Extent{buffer.getAsOpaquePointer(), dim, 0};
}

/// The extents loop `d` of `op` is known by: one per operand dim it
/// indexes (linalg requires them all equal, so any one shared with another
/// op's proves the two loops equal).
std::set<Extent> loopExtents(linalg::LinalgOp op, unsigned d) {
  std::set<Extent> out;
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isa<MemRefType>(operand.get().getType()))
      continue;
    AffineMap map = op.getMatchingIndexingMap(&operand);
    for (auto [k, expr] : llvm::enumerate(map.getResults()))
      if (auto dimExpr = dyn_cast<AffineDimExpr>(expr);
          dimExpr && dimExpr.getPosition() == d)
        if (auto e = extentOf(operand.get(), k))
          out.insert(*e);
  }
  return out;
}

bool intersects(const std::set<Extent> &a, const std::set<Extent> &b) {
  return llvm::any_of(a, [&](const Extent &e) { return b.count(e); });
}

bool reduces(linalg::LinalgOp op) { return op.getNumReductionLoops() > 0; }

} // namespace

bool mlir::mlx::vulkan::isFusible(Operation *o) {
  auto op = dyn_cast<linalg::LinalgOp>(o);
  if (!op || !op.hasPureBufferSemantics() || o->getNumResults())
    return false;
  for (Value v : o->getOperands())
    if (auto t = dyn_cast<MemRefType>(v.getType());
        t && t.getElementType().isIndex())
      return false;
  WalkResult walk = op.getBlock()->walk([](Operation *inner) {
    return fitsInKernel(inner) ? WalkResult::advance()
                               : WalkResult::interrupt();
  });
  return !walk.wasInterrupted();
}

namespace {

/// How many leading loops of `op` can be rows: parallel, and the leading
/// dims of every output.
unsigned rowDimsOf(linalg::LinalgOp op) {
  auto iterators = op.getIteratorTypesArray();
  unsigned n = 0;
  for (; n < iterators.size() && n < 3; ++n) {
    if (iterators[n] != utils::IteratorType::parallel)
      break;
    bool leading = llvm::all_of(op.getDpsInitsMutable(), [&](OpOperand &out) {
      AffineMap map = op.getMatchingIndexingMap(&out);
      return n < map.getNumResults() &&
             map.getResult(n) == getAffineDimExpr(n, op->getContext());
    });
    if (!leading)
      break;
  }
  return n;
}

/// Whether `op` reduces over inputs it reuses across one of its parallel
/// dims (a matrix product): its rows leave the innermost parallel dim to
/// the invocations, each of which reduces on its own.
bool isContraction(linalg::LinalgOp op) {
  if (!reduces(op))
    return false;
  for (OpOperand *in : op.getDpsInputOperands()) {
    if (!isa<MemRefType>(in->get().getType()))
      continue;
    AffineMap map = op.getMatchingIndexingMap(in);
    for (unsigned d = 0; d < op.getNumLoops(); ++d)
      if (op.getIteratorTypesArray()[d] == utils::IteratorType::parallel &&
          !map.isFunctionOfDim(d))
        return true;
  }
  return false;
}

} // namespace

Operation *mlir::mlx::vulkan::reductionCombiner(linalg::LinalgOp op) {
  if (!reduces(op) || op.getNumDpsInits() != 1)
    return nullptr;
  OpOperand *out = op.getDpsInitOperand(0);
  Type element = getElementTypeOrSelf(out->get().getType());
  if (!(element.isF32() || element.isF64() || element.isInteger(32) ||
        element.isInteger(64)))
    return nullptr;
  BlockArgument acc = op.getMatchingBlockArgument(out);
  auto yield = cast<linalg::YieldOp>(op.getBlock()->getTerminator());
  Operation *combiner = yield.getOperand(0).getDefiningOp();
  if (!combiner || combiner->getNumOperands() != 2 ||
      combiner->getBlock() != op.getBlock() || !acc.hasOneUse() ||
      *acc.getUsers().begin() != combiner ||
      !isa<arith::AddFOp, arith::MulFOp, arith::MaximumFOp, arith::MinimumFOp,
           arith::MaxNumFOp, arith::MinNumFOp, arith::AddIOp, arith::MulIOp,
           arith::MaxSIOp, arith::MinSIOp, arith::MaxUIOp, arith::MinUIOp,
           arith::AndIOp, arith::OrIOp, arith::XOrIOp>(combiner) ||
      !arith::getNeutralElement(combiner))
    return nullptr;
  return combiner;
}

Value mlir::mlx::vulkan::combine(OpBuilder &b, linalg::LinalgOp op,
                                 Operation *combiner, Value acc, Value other) {
  Value out = op.getMatchingBlockArgument(op.getDpsInitOperand(0));
  IRMapping mapping;
  for (Value operand : combiner->getOperands())
    mapping.map(operand, operand == out ? acc : other);
  return b.clone(*combiner, mapping)->getResult(0);
}

namespace {

/// A row reduction the invocations share: one output indexed by the rows
/// alone, inner loops all reductions, and a combiner (reductionCombiner).
Operation *sharedCombiner(linalg::LinalgOp op, unsigned rows) {
  if (op.getNumParallelLoops() != rows ||
      op.getMatchingIndexingMap(op.getDpsInitOperand(0)).getNumResults() !=
          rows)
    return nullptr;
  return reductionCombiner(op);
}

/// The most buffers a run may use: each is a binding, and devices have as
/// few as 32 storage buffers per shader (lavapipe; with the report buffer
/// and the parameters, 26 here).
constexpr size_t kMaxRunBuffers = 24;

/// Whether the run `ops` is legal with `rows` row dims (see the file
/// comment) and small enough.
bool isLegal(ArrayRef<linalg::LinalgOp> ops, unsigned rows) {
  llvm::SmallDenseSet<Value> buffers, written, writtenRoots;
  for (linalg::LinalgOp op : ops)
    for (Value v : op->getOperands())
      if (isa<MemRefType>(v.getType()))
        buffers.insert(v);
  if (buffers.size() > kMaxRunBuffers)
    return false;
  for (linalg::LinalgOp op : ops)
    for (OpOperand &out : op.getDpsInitsMutable()) {
      written.insert(out.get());
      writtenRoots.insert(mlx::rootOf(out.get()));
    }
  for (Value w : written)
    if (!w.getDefiningOp<memref::AllocOp>())
      return false;
  SmallVector<std::set<Extent>> rowExtents(rows);
  std::set<Extent> reducedExtents;
  for (linalg::LinalgOp op : ops) {
    if (rowDimsOf(op) < rows)
      return false;
    for (unsigned d = 0; d < rows; ++d) {
      std::set<Extent> e = loopExtents(op, d);
      if (e.empty() ||
          (!rowExtents[d].empty() && !intersects(e, rowExtents[d])))
        return false;
      rowExtents[d].insert(e.begin(), e.end());
    }
    if (reduces(op))
      for (unsigned d = 0; d < op.getNumLoops(); ++d) {
        std::set<Extent> e = loopExtents(op, d);
        reducedExtents.insert(e.begin(), e.end());
      }
    for (OpOperand &operand : op->getOpOperands()) {
      Value v = operand.get();
      if (!isa<MemRefType>(v.getType()) ||
          !writtenRoots.count(mlx::rootOf(v)))
        continue;
      if (!written.count(v))
        return false; // a view of a buffer the run writes
      AffineMap map = op.getMatchingIndexingMap(&operand);
      if (map.getNumResults() < rows)
        return false;
      for (unsigned k = 0; k < map.getNumResults(); ++k) {
        AffineExpr expr = map.getResult(k);
        if (k < rows ? expr != getAffineDimExpr(k, op->getContext())
                     : llvm::any_of(
                           llvm::seq(0u, rows),
                           [&](unsigned d) { return expr.isFunctionOfDim(d); }))
          return false;
      }
      // Read where it writes: the same element only, and not in a
      // reduction (whose output is its running value).
      if (!op.isDpsInit(&operand))
        for (OpOperand &out : op.getDpsInitsMutable())
          if (out.get() == v &&
              (reduces(op) || op.getMatchingIndexingMap(&out) != map))
            return false;
    }
  }
  // Element-wise ops do at most a reduction's work.
  for (linalg::LinalgOp op : ops)
    if (!reduces(op))
      for (unsigned d = rows; d < op.getNumLoops(); ++d)
        if (!intersects(loopExtents(op, d), reducedExtents))
          return false;
  return true;
}

/// Ops a run can step over: moved before it (pure ones, allocations) or
/// after it (deallocations).
bool isHoistable(Operation *op) {
  return op->getNumRegions() == 0 &&
         (isMemoryEffectFree(op) || isa<memref::AllocOp>(op));
}
bool isTransparent(Operation *op) {
  return isHoistable(op) || isa<memref::DeallocOp>(op);
}

/// Builds one row kernel's code.
class RowKernelBuilder {
public:
  RowKernelBuilder(OpBuilder &b, Location loc, ValueRange rows, Value tid)
      : b(b), loc(loc), rows(rows.begin(), rows.end()), tid(tid) {
    step = b.create<arith::ConstantIndexOp>(loc, kWorkgroupSize);
    zero = b.create<arith::ConstantIndexOp>(loc, 0);
    one = b.create<arith::ConstantIndexOp>(loc, 1);
  }

  void emit(linalg::LinalgOp op) {
    if (Operation *combiner = sharedCombiner(op, rows.size()))
      emitSharedReduction(op, combiner);
    else
      emitLoops(op);
    b.create<gpu::BarrierOp>(loc);
  }

private:
  /// The extents of `op`'s loops, made in the kernel.
  SmallVector<Value> extents(linalg::LinalgOp op) {
    SmallVector<Value> out;
    for (Range r : op.createLoopRanges(b, loc))
      out.push_back(getValueOrCreateConstantIndexOp(b, loc, r.size));
    return out;
  }

  SmallVector<Value> indices(AffineMap map, ArrayRef<Value> ivs) {
    SmallVector<Value> out;
    for (AffineExpr expr : map.getResults()) {
      if (auto d = dyn_cast<AffineDimExpr>(expr)) {
        out.push_back(ivs[d.getPosition()]);
        continue;
      }
      auto single = AffineMap::get(map.getNumDims(), 0, expr);
      out.push_back(b.create<affine::AffineApplyOp>(loc, single, ivs));
    }
    return out;
  }

  /// Maps `op`'s block arguments to their values at `ivs` (loads), except
  /// `skip`, and clones its body; returns the yielded values.
  SmallVector<Value> body(linalg::LinalgOp op, ArrayRef<Value> ivs,
                          IRMapping &mapping, Value skip = nullptr) {
    for (OpOperand &operand : op->getOpOperands()) {
      BlockArgument arg = op.getMatchingBlockArgument(&operand);
      if (arg == skip || arg.use_empty())
        continue;
      Value v = operand.get();
      if (isa<MemRefType>(v.getType()))
        v = b.create<memref::LoadOp>(
            loc, v, indices(op.getMatchingIndexingMap(&operand), ivs));
      mapping.map(arg, v);
    }
    cloneBody(b, op, ivs, mapping);
    SmallVector<Value> yielded;
    for (Value v : op.getBlock()->getTerminator()->getOperands())
      yielded.push_back(mapping.lookupOrDefault(v));
    return yielded;
  }

  void store(linalg::LinalgOp op, ArrayRef<Value> values, ArrayRef<Value> ivs) {
    for (auto [out, v] : llvm::zip(op.getDpsInitsMutable(), values))
      b.create<memref::StoreOp>(loc, v, out.get(),
                                indices(op.getMatchingIndexingMap(&out), ivs));
  }

  /// The inner loops, parallel ones first (the innermost of them strided
  /// over the invocations; without any, invocation 0 alone), then the
  /// reductions, each invocation updating its outputs in memory.
  void emitLoops(linalg::LinalgOp op) {
    SmallVector<Value> ub = extents(op);
    SmallVector<unsigned> parallel, reduction;
    for (unsigned d = rows.size(); d < op.getNumLoops(); ++d)
      (op.getIteratorTypesArray()[d] == utils::IteratorType::parallel
           ? parallel
           : reduction)
          .push_back(d);
    SmallVector<Value> ivs(op.getNumLoops());
    llvm::copy(rows, ivs.begin());
    OpBuilder::InsertionGuard guard(b);
    if (parallel.empty()) {
      Value first =
          b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, tid, zero);
      auto only = b.create<scf::IfOp>(loc, first, /*withElse=*/false);
      b.setInsertionPointToStart(&only.getThenRegion().front());
    }
    for (unsigned d : parallel) {
      bool strided = d == parallel.back();
      auto loop = b.create<scf::ForOp>(loc, strided ? tid : zero, ub[d],
                                       strided ? step : one);
      ivs[d] = loop.getInductionVar();
      b.setInsertionPointToStart(loop.getBody());
    }
    for (unsigned d : reduction) {
      auto loop = b.create<scf::ForOp>(loc, zero, ub[d], one);
      ivs[d] = loop.getInductionVar();
      b.setInsertionPointToStart(loop.getBody());
    }
    IRMapping mapping;
    store(op, body(op, ivs, mapping), ivs);
  }

  /// Memory each invocation of the workgroup has a slot of, per type.
  Value shared(Type element) {
    Value &slot = sharedBuffers[element];
    if (!slot) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(b.getInsertionBlock());
      auto space = spirv::StorageClassAttr::get(b.getContext(),
                                                spirv::StorageClass::Workgroup);
      slot = b.create<memref::AllocOp>(
          loc, MemRefType::get({kWorkgroupSize}, element, AffineMap(), space));
    }
    return slot;
  }

  void emitSharedReduction(linalg::LinalgOp op, Operation *combiner) {
    SmallVector<Value> ub = extents(op);
    Type element = combiner->getResult(0).getType();
    Value neutral =
        b.create<arith::ConstantOp>(loc, *arith::getNeutralElement(combiner));
    Value out = op.getMatchingBlockArgument(op.getDpsInitOperand(0));
    // Each invocation's part, the innermost reduction strided, in a
    // variable (SPIR-V's lowering of scf.for leaves a loop's results
    // undefined when it runs no iteration).
    auto function = spirv::StorageClassAttr::get(b.getContext(),
                                                 spirv::StorageClass::Function);
    Value partial = b.create<memref::AllocaOp>(
        loc, MemRefType::get({1}, element, AffineMap(), function));
    b.create<memref::StoreOp>(loc, neutral, partial, zero);
    SmallVector<Value> ivs(op.getNumLoops());
    llvm::copy(rows, ivs.begin());
    {
      OpBuilder::InsertionGuard guard(b);
      for (unsigned d = rows.size(); d < op.getNumLoops(); ++d) {
        bool strided = d + 1 == op.getNumLoops();
        auto loop = b.create<scf::ForOp>(loc, strided ? tid : zero, ub[d],
                                         strided ? step : one);
        ivs[d] = loop.getInductionVar();
        b.setInsertionPointToStart(loop.getBody());
      }
      IRMapping mapping;
      mapping.map(out, b.create<memref::LoadOp>(loc, partial, zero));
      body(op, ivs, mapping, out);
      b.create<memref::StoreOp>(loc, mapping.lookup(combiner->getResult(0)),
                                partial, zero);
    }
    Value part = b.create<memref::LoadOp>(loc, partial, zero);
    // The tree over the workgroup's slots.
    Value slots = shared(element);
    b.create<memref::StoreOp>(loc, part, slots, tid);
    b.create<gpu::BarrierOp>(loc);
    for (int64_t half = kWorkgroupSize / 2; half > 0; half /= 2) {
      Value h = b.create<arith::ConstantIndexOp>(loc, half);
      Value lower =
          b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, tid, h);
      auto step = b.create<scf::IfOp>(loc, lower, /*withElse=*/false);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&step.getThenRegion().front());
        Value mine = b.create<memref::LoadOp>(loc, slots, tid);
        Value other = b.create<memref::LoadOp>(
            loc, slots, ValueRange{b.create<arith::AddIOp>(loc, tid, h)});
        b.create<memref::StoreOp>(loc, combine(b, op, combiner, mine, other),
                                  slots, tid);
      }
      b.create<gpu::BarrierOp>(loc);
    }
    // Invocation 0 folds the total into the output.
    Value first =
        b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, tid, zero);
    auto write = b.create<scf::IfOp>(loc, first, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&write.getThenRegion().front());
    OpOperand *init = op.getDpsInitOperand(0);
    SmallVector<Value> at = indices(op.getMatchingIndexingMap(init), ivs);
    Value old = b.create<memref::LoadOp>(loc, init->get(), at);
    Value total = b.create<memref::LoadOp>(loc, slots, zero);
    b.create<memref::StoreOp>(loc, combine(b, op, combiner, old, total),
                              init->get(), at);
  }

  OpBuilder &b;
  Location loc;
  SmallVector<Value> rows;
  Value tid, step, zero, one;
  llvm::DenseMap<Type, Value> sharedBuffers;
};

struct RowKernelsPass
    : public PassWrapper<RowKernelsPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(RowKernelsPass)

  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<affine::AffineDialect, gpu::GPUDialect, scf::SCFDialect,
                    spirv::SPIRVDialect>();
  }

  /// The runs of `block`, each from a reduction outwards.
  void formRuns(Block &block) {
    SmallVector<Operation *> ops;
    for (Operation &op : block)
      ops.push_back(&op);
    size_t done = 0; // ops before this belong to earlier runs
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!isFusible(ops[i]) || !reduces(cast<linalg::LinalgOp>(ops[i])))
        continue;
      auto seed = cast<linalg::LinalgOp>(ops[i]);
      unsigned rows = rowDimsOf(seed);
      if (isContraction(seed) && rows >= 2)
        rows -= 1;
      SmallVector<linalg::LinalgOp> run{seed};
      if (!isLegal(run, rows))
        continue;
      size_t first = i, last = i;
      for (size_t j = i + 1; j < ops.size(); ++j) {
        if (isTransparent(ops[j]))
          continue;
        if (!isFusible(ops[j]))
          break;
        run.push_back(cast<linalg::LinalgOp>(ops[j]));
        if (!isLegal(run, rows)) {
          run.pop_back();
          break;
        }
        last = j;
      }
      for (size_t j = i; j-- > done;) {
        if (isTransparent(ops[j]))
          continue;
        if (!isFusible(ops[j]))
          break;
        run.insert(run.begin(), cast<linalg::LinalgOp>(ops[j]));
        if (!isLegal(run, rows)) {
          run.erase(run.begin());
          break;
        }
        first = j;
      }
      build(ArrayRef(ops).slice(first, last - first + 1), run, rows);
      done = last + 1;
      i = last;
    }
  }

  /// Replaces the ops `range` (the run's ops and ops it steps over) by the
  /// row kernel.
  void build(ArrayRef<Operation *> range, ArrayRef<linalg::LinalgOp> run,
             unsigned rows) {
    llvm::SmallPtrSet<Operation *, 8> members;
    for (linalg::LinalgOp op : run)
      members.insert(op);
    Operation *front = range.front(), *back = range.back();
    for (Operation *op : range) {
      if (members.count(op))
        continue;
      if (isHoistable(op))
        op->moveBefore(front);
      else
        op->moveAfter(back), back = op;
    }
    OpBuilder b(front);
    Location loc = front->getLoc();
    Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
    Value one = b.create<arith::ConstantIndexOp>(loc, 1);
    SmallVector<Value> lbs, ubs, steps;
    linalg::LinalgOp seed = run.front();
    SmallVector<Range> ranges = seed.createLoopRanges(b, loc);
    for (unsigned d = 0; d < rows; ++d) {
      lbs.push_back(zero);
      ubs.push_back(getValueOrCreateConstantIndexOp(b, loc, ranges[d].size));
      steps.push_back(one);
    }
    if (rows == 0) { // one workgroup
      lbs.push_back(zero);
      ubs.push_back(one);
      steps.push_back(one);
    }
    auto grid = b.create<scf::ParallelOp>(loc, lbs, ubs, steps);
    grid->setAttr(kMappedKernelAttr, b.getUnitAttr());
    b.setInsertionPointToStart(grid.getBody());
    Value size = b.create<arith::ConstantIndexOp>(loc, kWorkgroupSize);
    auto threads = b.create<scf::ParallelOp>(loc, ValueRange{zero},
                                             ValueRange{size}, ValueRange{one});
    b.setInsertionPointToStart(threads.getBody());
    SmallVector<Value> rowIvs;
    if (rows)
      rowIvs = grid.getInductionVars();
    RowKernelBuilder kernel(b, loc, rowIvs, threads.getInductionVars()[0]);
    for (linalg::LinalgOp op : run)
      kernel.emit(op);
    for (linalg::LinalgOp op : run)
      op->erase();

    MLIRContext *ctx = b.getContext();
    auto dim = [&](gpu::Processor p) { return mappingTo(ctx, p); };
    const gpu::Processor blocks[] = {
        gpu::Processor::BlockX, gpu::Processor::BlockY, gpu::Processor::BlockZ};
    SmallVector<gpu::ParallelLoopDimMappingAttr> gridMap;
    unsigned n = grid.getNumLoops();
    for (unsigned k = 0; k < n; ++k)
      gridMap.push_back(dim(blocks[n - 1 - k]));
    (void)gpu::setMappingAttr(grid, gridMap);
    (void)gpu::setMappingAttr(threads, {dim(gpu::Processor::ThreadX)});
  }

  void runOnOperation() override {
    SmallVector<Block *> blocks;
    getOperation().walk([&](Block *block) {
      if (!isa<linalg::LinalgOp>(block->getParentOp()))
        blocks.push_back(block);
    });
    for (Block *block : blocks)
      formRuns(*block);
  }
};

struct BufferBarriersPass
    : public PassWrapper<BufferBarriersPass, OperationPass<spirv::ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(BufferBarriersPass)
  void runOnOperation() override {
    getOperation().walk([](spirv::ControlBarrierOp barrier) {
      barrier.setMemorySemantics(barrier.getMemorySemantics() |
                                 spirv::MemorySemantics::UniformMemory);
    });
  }
};

} // namespace

std::unique_ptr<Pass> mlir::mlx::vulkan::createRowKernelsPass() {
  return std::make_unique<RowKernelsPass>();
}

std::unique_ptr<Pass> mlir::mlx::vulkan::createBufferBarriersPass() {
  return std::make_unique<BufferBarriersPass>();
}
