//===- FuseGathers.cpp - gathers evaluated inside the contractions -------===//
//
// `mlx-cpu-fuse-gathers`. A convolution reads its input at computed
// indices: `I[c, y·s + u − pad, x·s + v − pad]` lowers to a generic that
// gathers the patches P[c, u, v, y, x] (im2col: nine copies of the input
// for a 3×3 kernel) and a contraction over (c, u, v) that reads them. On
// the CPU the contraction's packer evaluates its factors once per element
// of the packed panel anyway, so the gather can be evaluated there, from
// the input itself (an implicit GEMM): no patches tensor is written, read
// back and packed. This pass fuses such a gather into the reduction that
// reads it (upstream's linalg::fuseElementwiseOps), which mlx-fuse-
// elementwise refuses in general because the consumer reads each element
// of the producer many times (once per output channel here).
//
// Taken: a generic with only parallel loops and one use, whose body reads
// a tensor with tensor.extract (guarded by a range check that reports an
// index out of range) and otherwise only computes indices and conditions
// (integer arithmetic, comparisons, selects): a recomputation costs a few
// integer ops, never a transcendental; its consumer a generic with a
// reduction dim. mlx-cpu-contractions then packs the gather's
// values (vector gathers from the input) where it packed the patches.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace {

/// Whether `inner` only computes indices and conditions, reads a tensor
/// or reports an index out of range (mlx.gather's guarded read:
/// `scf.if in range { extract } else { report; 0 }`).
bool isIndexWork(Operation &inner, bool &reads) {
  if (isa<tensor::ExtractOp>(inner)) {
    reads = true;
    return true;
  }
  if (auto call = dyn_cast<func::CallOp>(inner))
    return call.getCallee() == mlx::kOutOfBoundsReport;
  if (isa<linalg::IndexOp, arith::SelectOp, arith::ConstantOp, scf::YieldOp,
          linalg::YieldOp, tensor::DimOp>(inner))
    return true;
  if (isa<scf::IfOp>(inner)) {
    for (Region &region : inner.getRegions())
      for (Operation &nested : region.getOps())
        if (!isIndexWork(nested, reads))
          return false;
    return true;
  }
  // Integer and index arithmetic and comparisons (of any operands).
  return isa<arith::ArithDialect>(inner.getDialect()) &&
         llvm::all_of(inner.getResultTypes(),
                      [](Type t) { return t.isIntOrIndex(); });
}

/// Whether `op` is a gather cheap to recompute (see the file comment).
bool isCheapGather(linalg::GenericOp op) {
  if (op.getNumReductionLoops() || op.getNumDpsInits() != 1 || !op->hasOneUse())
    return false;
  bool reads = false;
  for (Operation &inner : op.getRegion().front())
    if (!isIndexWork(inner, reads))
      return false;
  return reads;
}

struct CpuFuseGathersPass
    : public PassWrapper<CpuFuseGathersPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CpuFuseGathersPass)
  StringRef getArgument() const final { return "mlx-cpu-fuse-gathers"; }
  StringRef getDescription() const final {
    return "fuse cheap gathers (a convolution's patches) into the "
           "reductions that read them";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<linalg::LinalgDialect, tensor::TensorDialect>();
  }
  void runOnOperation() override {
    // Upstream's element-wise fusion, taking only cheap gathers into
    // reductions; the fused op still yields the patches (upstream keeps a
    // producer's result whose loops only its output sized), which nothing
    // reads: dropped.
    RewritePatternSet patterns(&getContext());
    linalg::populateElementwiseOpsFusionPatterns(patterns, [](OpOperand *in) {
      auto producer = in->get().getDefiningOp<linalg::GenericOp>();
      auto consumer = dyn_cast<linalg::GenericOp>(in->getOwner());
      return producer && consumer && consumer.getNumReductionLoops() &&
             isCheapGather(producer);
    });
    linalg::populateEraseUnusedOperandsAndResultsPatterns(patterns);
    if (failed(
            applyPatternsAndFoldGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

std::unique_ptr<Pass> mlx::createCpuFuseGathersPass() {
  return std::make_unique<CpuFuseGathersPass>();
}

void mlx::registerCpuFuseGathersPass() {
  PassRegistration<CpuFuseGathersPass>();
}
