//===- RowBlocks.cpp - the ops over a score matrix, a block of rows at a time
//=//
//
// `mlx-cpu-row-blocks`. Attention's gradient reads the T×T probabilities P
// again, so mlx-online-softmax leaves it in the two-pass form: the scores,
// P, their gradient dS and the masks around them are each a T×T tensor
// (64 MiB apiece at T = 4096), written once and read back by the products
// that make o = P V, dQ = dS K, dK = dSᵀ Q and dV = Pᵀ 1. This pass runs
// all the ops over such a matrix a block of its rows at a time, in one
// sequential scf.for: per block the scores of those rows are recomputed
// from Q and K, the row reductions (softmax's max and sum) complete inside
// the block, outputs indexed by the row (o, dQ) are written into their
// rows, and outputs that sum over the rows (dK, dV's column sums) are
// carried across the blocks as accumulators (a linalg reduction adds to
// its init). The extra memory is a few blocks of rows (about 1 MiB
// each), O(T), not O(T²); the blocks stay in the cache between the ops.
//
// Found from a seed: a rank-2 result that a row reduction reads (the
// scores feeding softmax's max), with its first subscript as the row
// loop. The group grows along that loop to the producers that make the
// seed's rows (the QKᵀ product, the fills of its inits) and to every
// reader of a member's rows; a reader whose row loop is a reduction
// accumulates and ends the growth there. Taken only where such an
// accumulating product exists (else mlx-cpu-fuse-rows' parallel blocks
// are the better plan) and every member reads its producers' rows at the
// same subscript. Rows per block: see kBlockElements.
//
// Under a causal mask (a member selects on `j <= i`) a block of rows
// [r, r + n) computes the columns [0, r + n) only: every member gets a
// column loop (the seed's second subscript, followed through the maps),
// and an abstract evaluation of the bodies shows what each member holds
// at a masked column (−∞ after the select, 0 after exp, 0 times or over
// anything, …). The cut is taken only where each sum over the columns
// or the rows adds its combiner's identity there (0 to a sum, −∞ to a
// max) and no matrix is read outside; the operands read at the column
// (K, V rows) and the accumulators (dK, dV) are sliced to those columns.
// This assumes the values combined at masked columns are finite (V, the
// row sums), as the masked form reads them only to multiply by 0.
//
// The sums over rows are added block by block: results differ from the
// unblocked form in rounding only, and are the same for any thread count.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/MapVector.h"

using namespace mlir;

namespace {

/// Rows per block: max(kMinRows, kBlockElements / columns), 1 MiB of f32
/// per block of the matrix (attention T = 4096 fwd+bwd before the causal
/// cut: 163 ms with 128 KiB blocks, 141 with 1 MiB, 161 unblocked); a
/// product with few columns (a classifier's logits) runs as one block.
constexpr int64_t kBlockElements = 1 << 18;
constexpr int64_t kMinRows = 32;
/// Under a causal mask a block computes the columns up to its last row, so
/// smaller blocks waste less of the triangle: at most kCausalRows rows
/// (AVX-512 Xeon, 2 threads: T = 1024 fwd+bwd 7.2 ms with 1024-row blocks,
/// 5.5 with 512, 4.7 with 128, 5.2 with 64; T = 4096 88 ms with 32 rows,
/// 73 with 64 or 128, 75 with 256).
constexpr int64_t kCausalRows = 128;

/// The result of `map` that is loop `loop` itself, if any.
std::optional<unsigned> positionOf(AffineMap map, unsigned loop) {
  return map.getResultPosition(getAffineDimExpr(loop, map.getContext()));
}

AffineMap outputMap(linalg::LinalgOp op) {
  return op.getMatchingIndexingMap(op.getDpsInitOperand(0));
}

/// Follows fills to the tensor they fill.
Value destinationRoot(Value v) {
  while (auto fill = v.getDefiningOp<linalg::FillOp>())
    v = fill.getOutputs()[0];
  return v;
}

/// One op of the group: its loop over the matrix's rows, and whether that
/// loop is a reduction (the op sums over the rows and accumulates).
struct Member {
  unsigned loop = 0;
  bool accumulates = false;
  /// Its loop over the matrix's columns, where it has one.
  std::optional<unsigned> col;
};

/// The loop that result `k` of `op`'s output map is.
std::optional<unsigned> loopAt(linalg::LinalgOp op, unsigned k) {
  AffineMap map = outputMap(op);
  if (k >= map.getNumResults())
    return std::nullopt;
  if (auto dim = dyn_cast<AffineDimExpr>(map.getResult(k)))
    return dim.getPosition();
  return std::nullopt;
}

/// The ops run per block, in block order, found from a seed.
class Group {
public:
  /// Grows the group from `seed`'s row loop; false where its members
  /// cannot run per block.
  bool grow(linalg::GenericOp seed) {
    block = seed->getBlock();
    if (join(seed, *loopAt(seed, 0)) != Joined)
      return false;
    for (unsigned next = 0; next < members.size(); ++next) {
      auto op = cast<linalg::LinalgOp>(members.begin()[next].first);
      Member member = members.begin()[next].second;
      // Producers of the rows it reads.
      for (OpOperand &operand : op->getOpOperands()) {
        auto producer = operand.get().getDefiningOp<linalg::LinalgOp>();
        std::optional<unsigned> pos =
            positionOf(op.getMatchingIndexingMap(&operand), member.loop);
        if (!producer || !pos || producer->getBlock() != block ||
            producer.getNumDpsInits() != 1)
          continue;
        auto dim = dyn_cast<AffineDimExpr>(outputMap(producer).getResult(*pos));
        if (!dim || join(producer, dim.getPosition()) == Conflict)
          return false;
      }
      // Readers of its rows (a sum over the rows is complete only after
      // the last block: its readers wait; a fill's readers share its
      // value, not its rows).
      if (member.accumulates || isa<linalg::FillOp>(op))
        continue;
      unsigned pos = *positionOf(outputMap(op), member.loop);
      for (OpOperand &use : op->getResult(0).getUses()) {
        auto reader = dyn_cast<linalg::LinalgOp>(use.getOwner());
        if (!reader || reader->getBlock() != block)
          continue;
        auto dim = dyn_cast<AffineDimExpr>(
            reader.getMatchingIndexingMap(&use).getResult(pos));
        if (dim && join(reader, dim.getPosition()) == Conflict)
          return false;
      }
    }
    return valid();
  }

  llvm::MapVector<Operation *, Member> members;
  Block *block = nullptr;

private:
  enum Outcome { Joined, Refused, Conflict };

  /// Adds `op` with row loop `loop` where it can run per block.
  Outcome join(linalg::LinalgOp op, unsigned loop) {
    if (auto it = members.find(op); it != members.end())
      return it->second.loop == loop ? Joined : Conflict;
    if (!isa<linalg::GenericOp, linalg::FillOp>(op) ||
        !op.hasPureTensorSemantics() || op->getNumResults() != 1 ||
        op.getNumDpsInits() != 1 || loop >= op.getNumLoops() ||
        !llvm::all_of(op.getIndexingMapsArray(), [](AffineMap map) {
          return map.isProjectedPermutation();
        }))
      return Refused;
    bool reduction =
        op.getIteratorTypesArray()[loop] == utils::IteratorType::reduction;
    if (!reduction && !positionOf(outputMap(op), loop))
      return Refused;
    members.insert({op, Member{loop, reduction}});
    return Joined;
  }

  /// Whether every member reads its member producers' rows at its own row
  /// loop, no member reads a sum over the rows, and one member is a
  /// product summing over the rows (the plan's reason).
  bool valid() {
    bool accumulatingProduct = false;
    for (auto [op, member] : members) {
      auto linalgOp = cast<linalg::LinalgOp>(op);
      for (OpOperand &operand : op->getOpOperands()) {
        auto it = members.find(operand.get().getDefiningOp());
        if (it == members.end())
          continue;
        std::optional<unsigned> pos =
            positionOf(linalgOp.getMatchingIndexingMap(&operand), member.loop);
        if (isa<linalg::FillOp>(it->first) && !pos)
          continue; // (reads the fill whole: the original is kept)
        if (it->second.accumulates || !pos ||
            *pos != *positionOf(outputMap(cast<linalg::LinalgOp>(it->first)),
                                it->second.loop))
          return false;
      }
      if (member.accumulates &&
          llvm::count_if(linalgOp.getDpsInputOperands(), [](OpOperand *in) {
            auto type = dyn_cast<RankedTensorType>(in->get().getType());
            return type && type.getRank() >= 2;
          }) >= 2)
        accumulatingProduct = true;
    }
    return accumulatingProduct;
  }
};

/// What a member's value is at a column the causal mask removes (j > i):
/// anything, 0 or −∞. The masked form computes those values and adds
/// them as nothing (0 to a sum, −∞ to a max); skipping them assumes the
/// values it combines there are finite, as attention's are.
enum class Masked { Any, Zero, NegInf };

/// The linalg.index loop `v` is (through index casts).
std::optional<unsigned> indexLoop(Value v) {
  while (auto cast = v.getDefiningOp<arith::IndexCastOp>())
    v = cast.getIn();
  if (auto index = v.getDefiningOp<linalg::IndexOp>())
    return index.getDim();
  return std::nullopt;
}

/// Whether `cond` is the causal test `col <= row`.
bool isCausalTest(Value cond, unsigned row, unsigned col) {
  auto cmp = cond.getDefiningOp<arith::CmpIOp>();
  if (!cmp)
    return false;
  std::optional<unsigned> lhs = indexLoop(cmp.getLhs());
  std::optional<unsigned> rhs = indexLoop(cmp.getRhs());
  switch (cmp.getPredicate()) {
  case arith::CmpIPredicate::sle:
  case arith::CmpIPredicate::ule:
    return lhs == col && rhs == row;
  case arith::CmpIPredicate::sge:
  case arith::CmpIPredicate::uge:
    return lhs == row && rhs == col;
  default:
    return false;
  }
}

/// The causal mask's effect on the group: each member's column loop, and
/// whether every member adds nothing from the columns past its row's
/// (so a block of rows [r, r + n) needs the columns [0, r + n) only).
class CausalColumns {
public:
  /// False where the columns cannot be cut (no causal mask, or a member
  /// that takes something from a masked column).
  bool analyze(Group &group, linalg::GenericOp seed,
               ArrayRef<Operation *> order) {
    auto &members = group.members;
    Member &first = members[seed];
    unsigned rowPos = *positionOf(outputMap(seed), first.loop);
    first.col = loopAt(seed, 1 - rowPos);
    if (!assignColumns(group))
      return false;
    bool masked = false;
    for (Operation *op : order) {
      Member &member = members[op];
      if (!member.col)
        continue;
      if (isa<linalg::FillOp>(op)) {
        values[op] = Masked::Any; // (only inits: overwritten)
        continue;
      }
      auto generic = cast<linalg::GenericOp>(op);
      std::optional<Masked> value = evaluate(group, generic, member, masked);
      if (!value)
        return false;
      values[op] = *value;
      // A matrix read outside would need its removed columns.
      bool columnOut = positionOf(outputMap(generic), *member.col).has_value();
      if (columnOut && !member.accumulates &&
          llvm::any_of(op->getUsers(), [&](Operation *user) {
            return !members.contains(user);
          }))
        return false;
    }
    return masked;
  }

private:
  /// The column loops: the seed's, followed through the members' maps
  /// both ways; false where two reads disagree.
  static bool assignColumns(Group &group) {
    auto &members = group.members;
    for (bool changed = true; changed;) {
      changed = false;
      for (auto &[op, member] : members) {
        auto linalgOp = cast<linalg::LinalgOp>(op);
        for (OpOperand &operand : op->getOpOperands()) {
          auto it = members.find(operand.get().getDefiningOp());
          if (it == members.end())
            continue;
          Member &producer = it->second;
          AffineMap map = linalgOp.getMatchingIndexingMap(&operand);
          AffineMap produced = outputMap(cast<linalg::LinalgOp>(it->first));
          if (isa<linalg::FillOp>(it->first) && !positionOf(map, member.loop))
            continue; // (a fill read whole)
          std::optional<unsigned> theirs =
              producer.col ? positionOf(produced, *producer.col) : std::nullopt;
          std::optional<unsigned> ours =
              member.col ? positionOf(map, *member.col) : std::nullopt;
          if (theirs && ours) {
            if (*theirs != *ours)
              return false;
            continue;
          }
          if ((theirs && member.col) || (ours && producer.col))
            return false; // the column read at another loop
          if (theirs) {
            auto dim = dyn_cast<AffineDimExpr>(map.getResult(*theirs));
            if (!dim)
              return false;
            member.col = dim.getPosition();
            changed = true;
          } else if (ours) {
            auto dim = dyn_cast<AffineDimExpr>(produced.getResult(*ours));
            if (!dim)
              return false;
            producer.col = dim.getPosition();
            changed = true;
          }
        }
      }
    }
    return true;
  }

  /// The member's value at a removed column; for a member that sums over
  /// the columns or the rows, whether those add nothing (else nullopt).
  std::optional<Masked> evaluate(Group &group, linalg::GenericOp op,
                                 const Member &member, bool &masked) {
    DenseMap<Value, Masked> of;
    Block &body = op.getRegion().front();
    for (OpOperand *in : op.getDpsInputOperands()) {
      Masked value = Masked::Any;
      auto it = group.members.find(in->get().getDefiningOp());
      if (it != group.members.end() && it->second.col &&
          positionOf(op.getMatchingIndexingMap(in), *member.col))
        value = values.lookup(it->first);
      of[body.getArgument(in->getOperandNumber())] = value;
    }
    // Values from the body and constants (from anywhere); Any otherwise.
    auto get = [&](Value v) {
      if (auto it = of.find(v); it != of.end())
        return it->second;
      FloatAttr constant;
      if (!matchPattern(v, m_Constant(&constant)))
        return Masked::Any;
      APFloat f = constant.getValue();
      if (f.isZero())
        return Masked::Zero;
      return f.isInfinity() && f.isNegative() ? Masked::NegInf : Masked::Any;
    };
    for (Operation &inner : body.without_terminator()) {
      if (inner.getNumResults() != 1)
        continue;
      Value result = inner.getResult(0);
      Masked value = Masked::Any;
      if (isa<arith::ConstantOp>(inner)) {
        value = get(result);
      } else if (auto select = dyn_cast<arith::SelectOp>(inner)) {
        if (isCausalTest(select.getCondition(), member.loop, *member.col)) {
          value = get(select.getFalseValue());
          masked = true;
        } else if (get(select.getTrueValue()) == get(select.getFalseValue())) {
          value = get(select.getTrueValue());
        }
      } else if (isa<arith::SubFOp, arith::AddFOp>(inner)) {
        Masked a = get(inner.getOperand(0)), b = get(inner.getOperand(1));
        if (a == Masked::Zero && b == Masked::Zero)
          value = Masked::Zero;
        else if (a == Masked::NegInf && b == Masked::Any)
          value = Masked::NegInf;
        else if (isa<arith::AddFOp>(inner) && b == Masked::NegInf &&
                 a == Masked::Any)
          value = Masked::NegInf;
      } else if (isa<arith::MulFOp>(inner)) {
        Masked a = get(inner.getOperand(0)), b = get(inner.getOperand(1));
        if ((a == Masked::Zero && b != Masked::NegInf) ||
            (b == Masked::Zero && a != Masked::NegInf))
          value = Masked::Zero;
      } else if (isa<arith::DivFOp>(inner)) {
        if (get(inner.getOperand(0)) == Masked::Zero &&
            get(inner.getOperand(1)) == Masked::Any)
          value = Masked::Zero;
      } else if (isa<arith::NegFOp>(inner)) {
        if (get(inner.getOperand(0)) == Masked::Zero)
          value = Masked::Zero;
      } else if (isa<math::ExpOp>(inner)) {
        if (get(inner.getOperand(0)) == Masked::NegInf)
          value = Masked::Zero;
      }
      of[result] = value;
    }
    Value yielded = body.getTerminator()->getOperand(0);
    bool sums = member.accumulates || op.getIteratorTypesArray()[*member.col] ==
                                          utils::IteratorType::reduction;
    if (!sums)
      return get(yielded);
    // acc ⊕ contribution, the contribution the combiner's identity.
    Value acc = body.getArgument(op.getDpsInitOperand(0)->getOperandNumber());
    Operation *combine = yielded.getDefiningOp();
    if (!combine || combine->getNumOperands() != 2)
      return std::nullopt;
    Value contribution = combine->getOperand(0) == acc ? combine->getOperand(1)
                                                       : combine->getOperand(0);
    if (!llvm::is_contained(combine->getOperands(), acc))
      return std::nullopt;
    Masked identity = isa<arith::AddFOp>(combine) ? Masked::Zero
                      : isa<arith::MaximumFOp, arith::MaxNumFOp>(combine)
                          ? Masked::NegInf
                          : Masked::Any;
    if (identity == Masked::Any || get(contribution) != identity)
      return std::nullopt;
    return Masked::Any;
  }

  DenseMap<Operation *, Masked> values;
};

/// A rank-2 generic result read by a reduction over its second subscript
/// (a row reduction), in the function's body.
bool isSeed(linalg::GenericOp op) {
  if (op.getNumDpsInits() != 1 || !op.hasPureTensorSemantics())
    return false;
  AffineMap map = outputMap(op);
  if (map.getNumResults() != 2 || !isa<AffineDimExpr>(map.getResult(0)) ||
      !isa<AffineDimExpr>(map.getResult(1)))
    return false;
  return llvm::any_of(op->getResult(0).getUses(), [](OpOperand &use) {
    auto reader = dyn_cast<linalg::GenericOp>(use.getOwner());
    if (!reader || reader.getNumDpsInits() != 1)
      return false;
    AffineMap in = reader.getMatchingIndexingMap(&use);
    auto row = dyn_cast<AffineDimExpr>(in.getResult(0));
    auto col = dyn_cast<AffineDimExpr>(in.getResult(1));
    auto iterators = reader.getIteratorTypesArray();
    return row && col &&
           iterators[row.getPosition()] == utils::IteratorType::parallel &&
           iterators[col.getPosition()] == utils::IteratorType::reduction;
  });
}

/// Rewrites `group` as one scf.for over blocks of rows; false (nothing
/// changed) where the ops around it do not allow it.
bool blockRows(RewriterBase &rewriter, Group &group, linalg::GenericOp seed) {
  auto &members = group.members;
  auto isMember = [&](Operation *op) { return members.contains(op); };
  // Members in block order; the ops between them that read a member's
  // result move after the loop (they must not feed a member). A fill
  // stays for its readers outside.
  SmallVector<Operation *> order;
  for (Operation &op : *group.block)
    if (isMember(&op))
      order.push_back(&op);
  llvm::SetVector<Operation *> after;
  for (Operation *op = order.front(); op != order.back();
       op = op->getNextNode()) {
    if (isMember(op))
      continue;
    bool reads = false;
    op->walk([&](Operation *nested) {
      for (Value v : nested->getOperands())
        if (Operation *def = v.getDefiningOp();
            def && ((isMember(def) && !isa<linalg::FillOp>(def)) ||
                    after.contains(def)))
          reads = true;
    });
    if (reads)
      after.insert(op);
  }
  for (Operation *op : order)
    for (Value v : op->getOperands())
      if (after.contains(v.getDefiningOp()))
        return false;

  // The loop's carried values: members read from outside (rows written
  // into a whole tensor) and sums over the rows.
  auto readOutside = [&](Operation *op) {
    return llvm::any_of(op->getUsers(),
                        [&](Operation *user) { return !isMember(user); });
  };
  SmallVector<Operation *> outputs;
  SmallVector<Value> inits;
  for (Operation *op : order) {
    if (isa<linalg::FillOp>(op) || !readOutside(op))
      continue;
    Value init = cast<linalg::LinalgOp>(op).getDpsInitOperand(0)->get();
    if (!members[op].accumulates)
      init = destinationRoot(init);
    if (Operation *def = init.getDefiningOp();
        def && isMember(def) && !isa<linalg::FillOp>(def))
      return false;
    outputs.push_back(op);
    inits.push_back(init);
  }

  // Under a causal mask a block of rows [r, r + n) reads the columns
  // [0, r + n) only.
  bool causal = CausalColumns().analyze(group, seed, order);
  if (!causal)
    for (auto &entry : members)
      entry.second.col = std::nullopt;

  Location loc = seed.getLoc();
  rewriter.setInsertionPointAfter(order.back());
  unsigned seedPos = *positionOf(outputMap(seed), members[seed].loop);
  Value seedDest = destinationRoot(seed.getDpsInitOperand(0)->get());
  Value rows = rewriter.create<tensor::DimOp>(loc, seedDest, seedPos);
  Value cols = rewriter.create<tensor::DimOp>(loc, seedDest, 1 - seedPos);
  auto constant = [&](int64_t v) {
    return rewriter.create<arith::ConstantIndexOp>(loc, v);
  };
  Value rowsPerBlock = rewriter.create<arith::DivUIOp>(
      loc, constant(causal ? 2 * kBlockElements : kBlockElements),
      rewriter.create<arith::MaxUIOp>(loc, cols, constant(1)));
  if (causal)
    rowsPerBlock = rewriter.create<arith::MinUIOp>(loc, rowsPerBlock,
                                                   constant(kCausalRows));
  rowsPerBlock =
      rewriter.create<arith::MaxUIOp>(loc, rowsPerBlock, constant(kMinRows));
  auto loop =
      rewriter.create<scf::ForOp>(loc, constant(0), rows, rowsPerBlock, inits);
  rewriter.setInsertionPointToStart(loop.getBody());
  Value start = loop.getInductionVar();
  Value size = rewriter.create<arith::MinUIOp>(
      loc, rowsPerBlock, rewriter.create<arith::SubIOp>(loc, rows, start));
  Value columns;
  if (causal)
    columns = rewriter.create<arith::MinUIOp>(
        loc, cols, rewriter.create<arith::AddIOp>(loc, start, size));

  // What a member reads of `source` at `map`: the block's rows at the row
  // loop's subscript, the first `columns` at the column loop's; null
  // where it reads it whole.
  auto slice = [&](Value source, AffineMap map, const Member &member) -> Value {
    std::optional<unsigned> rowAt = positionOf(map, member.loop);
    std::optional<unsigned> colAt =
        member.col ? positionOf(map, *member.col) : std::nullopt;
    auto type = dyn_cast<RankedTensorType>(source.getType());
    if (!type || (!rowAt && !colAt))
      return {};
    SmallVector<OpFoldResult> offsets(type.getRank(), rewriter.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes,
        strides(type.getRank(), rewriter.getIndexAttr(1));
    for (int64_t k = 0; k < type.getRank(); ++k)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, source, k));
    if (rowAt) {
      offsets[*rowAt] = start;
      sizes[*rowAt] = size;
    }
    if (colAt)
      sizes[*colAt] = columns;
    return rewriter.create<tensor::ExtractSliceOp>(loc, source, offsets, sizes,
                                                   strides);
  };

  IRMapping tiled; // member result → its block
  SmallVector<Value> yields(outputs.size());
  for (Operation *op : order) {
    auto linalgOp = cast<linalg::LinalgOp>(op);
    Member member = members[op];
    auto outputIt = llvm::find(outputs, op);
    std::optional<unsigned> output;
    if (outputIt != outputs.end())
      output = outputIt - outputs.begin();
    SmallVector<Value> operands;
    Value outputSlice; // (null: the whole carried value)
    for (OpOperand &operand : op->getOpOperands()) {
      Value v = operand.get();
      AffineMap map = linalgOp.getMatchingIndexingMap(&operand);
      if (linalgOp.isDpsInit(&operand) && output) {
        Value carried = loop.getRegionIterArg(*output);
        outputSlice = slice(carried, map, member);
        Value dest = outputSlice ? outputSlice : carried;
        // A fill of the output's rows: filled per block (a sum over the
        // rows starts from its init once, before the loop).
        if (auto fill = v.getDefiningOp<linalg::FillOp>();
            fill && !member.accumulates)
          dest = rewriter
                     .create<linalg::FillOp>(fill.getLoc(), fill.getInputs()[0],
                                             dest)
                     .getResult(0);
        operands.push_back(dest);
        continue;
      }
      if (Value block = tiled.lookupOrNull(v);
          block && positionOf(map, member.loop)) {
        operands.push_back(block);
        continue;
      }
      Value part = slice(v, map, member);
      operands.push_back(part ? part : v);
    }
    SmallVector<Type> resultTypes{
        operands[linalgOp.getDpsInitOperand(0)->getOperandNumber()].getType()};
    Operation *blockOp = clone(rewriter, op, resultTypes, operands);
    SmallVector<OpFoldResult> offsets(linalgOp.getNumLoops(),
                                      rewriter.getIndexAttr(0));
    offsets[member.loop] = start;
    if (isa<linalg::GenericOp>(blockOp))
      linalg::offsetIndices(rewriter, cast<linalg::LinalgOp>(blockOp), offsets);
    tiled.map(op->getResult(0), blockOp->getResult(0));
    if (!output)
      continue;
    if (!outputSlice) {
      yields[*output] = blockOp->getResult(0);
      continue;
    }
    auto part = outputSlice.getDefiningOp<tensor::ExtractSliceOp>();
    yields[*output] = rewriter.create<tensor::InsertSliceOp>(
        loc, blockOp->getResult(0), loop.getRegionIterArg(*output),
        part.getMixedOffsets(), part.getMixedSizes(), part.getMixedStrides());
  }
  rewriter.create<scf::YieldOp>(loc, yields);

  // Readers outside see the loop's results; the members go.
  for (auto [k, op] : llvm::enumerate(outputs))
    rewriter.replaceUsesWithIf(
        op->getResult(0), loop.getResult(k), [&](OpOperand &use) {
          return !isMember(use.getOwner()) && !loop->isAncestor(use.getOwner());
        });
  Operation *last = loop;
  for (Operation *op : after) {
    op->moveAfter(last);
    last = op;
  }
  for (Operation *op : llvm::reverse(order))
    if (op->use_empty())
      rewriter.eraseOp(op);
  return true;
}

struct CpuRowBlocksPass
    : public PassWrapper<CpuRowBlocksPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuRowBlocksPass)
  StringRef getArgument() const final { return "mlx-cpu-row-blocks"; }
  StringRef getDescription() const final {
    return "the ops over a score matrix (attention's gradient) a block of its "
           "rows at a time, sums over the rows accumulated";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry
        .insert<scf::SCFDialect, tensor::TensorDialect, arith::ArithDialect>();
  }

  void runOnOperation() override {
    // Sizes read from the inits, not from the results about to go; a
    // block of an empty tensor an empty block (not a slice of a T×T
    // allocation).
    RewritePatternSet patterns(&getContext());
    memref::populateResolveRankedShapedTypeResultDimsPatterns(patterns);
    tensor::populateFoldTensorEmptyPatterns(patterns);
    FrozenRewritePatternSet frozen(std::move(patterns));
    (void)applyPatternsAndFoldGreedily(getOperation(), frozen);

    IRRewriter rewriter(&getContext());
    llvm::SmallPtrSet<Operation *, 8> tried;
    while (true) {
      linalg::GenericOp seed;
      for (Block &block : getOperation().getBody())
        for (auto op : block.getOps<linalg::GenericOp>())
          if (!seed && !tried.contains(op) && isSeed(op))
            seed = op;
      if (!seed)
        break;
      tried.insert(seed);
      Group group;
      if (group.grow(seed) && blockRows(rewriter, group, seed))
        (void)applyPatternsAndFoldGreedily(getOperation(), frozen);
    }
  }
};

} // namespace

std::unique_ptr<Pass> mlx::createCpuRowBlocksPass() {
  return std::make_unique<CpuRowBlocksPass>();
}

void mlx::registerCpuRowBlocksPass() { PassRegistration<CpuRowBlocksPass>(); }
