//===- CheckNumerics.cpp - find the first op producing NaN/Inf --*- C++ -*-===//
//
// The `mlx-check-numerics` pass (mlxc run --check-numerics). After every
// float mlx.generic of the exported functions it adds a reduction that
// finds a NaN (always) or an infinity (unless the op itself writes ±inf
// from an `inf` literal, as a causal mask does, or reads a value such an op
// wrote), and calls mlx_report_nonfinite(id, kind) when it finds one. `id`
// indexes the module's `mlx.numerics_checks` attribute: the ops' source
// locations (numericsCheckLocations reads it back).
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/Adjoints.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"

namespace mlir::mlx {
#define GEN_PASS_DEF_CHECKNUMERICSPASS
#include "passes/Passes.h.inc"
} // namespace mlir::mlx

using namespace mlir;
using namespace mlir::mlx;

static constexpr llvm::StringLiteral kChecksAttr = "mlx.numerics_checks";

std::vector<Location> mlx::numericsCheckLocations(ModuleOp module) {
  std::vector<Location> locations;
  if (auto checks = module->getAttrOfType<ArrayAttr>(kChecksAttr))
    for (Attribute a : checks)
      locations.push_back(cast<LocationAttr>(a));
  return locations;
}

/// True when `op`'s body uses an infinite float constant (defined in the
/// body or, after constant hoisting, above it).
static bool writesInfinity(GenericOp op) {
  bool found = false;
  op.getBody().walk([&](Operation *inner) {
    for (Value v : inner->getOperands()) {
      FloatAttr f;
      if (matchPattern(v, m_Constant(&f)) && f.getValue().isInfinity())
        found = true;
    }
  });
  return found;
}

namespace {
struct CheckNumericsPass
    : public mlx::impl::CheckNumericsPassBase<CheckNumericsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    OpBuilder b(&getContext());
    b.setInsertionPointToStart(module.getBody());
    auto reportType = b.getFunctionType({b.getI64Type(), b.getI32Type()}, {});
    auto report = module.lookupSymbol<func::FuncOp>("mlx_report_nonfinite");
    if (!report) {
      report = b.create<func::FuncOp>(module.getLoc(), "mlx_report_nonfinite",
                                      reportType);
      report.setPrivate();
    }
    SmallVector<Attribute> locations;
    if (auto checks = module->getAttrOfType<ArrayAttr>(kChecksAttr))
      llvm::append_range(locations, checks);
    DenseSet<Value> mayHoldInfinity;
    SmallVector<GenericOp> generics;
    module.walk([&](GenericOp op) {
      auto type = op.getResult().getType();
      if (isa<FloatType>(type.getElementType()))
        generics.push_back(op);
    });
    for (GenericOp op : generics) {
      bool allowInfinity =
          writesInfinity(op) || llvm::any_of(op.getInputs(), [&](Value v) {
            return mayHoldInfinity.contains(v);
          });
      if (allowInfinity)
        mayHoldInfinity.insert(op.getResult());
      Location loc = op.getLoc();
      int64_t id = locations.size();
      locations.push_back(loc);
      b.setInsertionPointAfter(op);
      Value result = op.getResult();
      auto type = op.getResult().getType();
      unsigned rank = type.getRank();
      // kind = max over all elements of (NaN ? 2 : ±inf ? 1 : 0)
      Value kind = b.create<GenericOp>(
          loc, RankedTensorType::get({}, b.getI32Type()), ValueRange{result},
          tensorSizes(b, loc, result),
          ArrayRef<AffineMap>{
              AffineMap::getMultiDimIdentityMap(rank, b.getContext())},
          0, rank ? Combiner::max : Combiner::none,
          [&](OpBuilder &bb, Location l, ValueRange args) -> Value {
            Value x = args[0];
            Type i32 = bb.getI32Type();
            Value zero =
                bb.create<arith::ConstantOp>(l, bb.getIntegerAttr(i32, 0));
            Value one =
                bb.create<arith::ConstantOp>(l, bb.getIntegerAttr(i32, 1));
            Value two =
                bb.create<arith::ConstantOp>(l, bb.getIntegerAttr(i32, 2));
            Value isNaN =
                bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::UNO, x, x);
            Value inf = bb.create<arith::ConstantOp>(
                l, bb.getFloatAttr(
                       x.getType(),
                       APFloat::getInf(
                           cast<FloatType>(x.getType()).getFloatSemantics())));
            Value isInf =
                bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OEQ,
                                         bb.create<math::AbsFOp>(l, x), inf);
            Value infKind = allowInfinity ? zero : one;
            return bb.create<arith::SelectOp>(
                l, isNaN, two,
                bb.create<arith::SelectOp>(l, isInf, infKind, zero));
          });
      Value code = b.create<tensor::ExtractOp>(loc, kind, ValueRange{});
      Value bad = b.create<arith::CmpIOp>(
          loc, arith::CmpIPredicate::ne, code,
          b.create<arith::ConstantOp>(loc, b.getI32IntegerAttr(0)));
      auto ifOp = b.create<scf::IfOp>(loc, bad, /*withElseRegion=*/false);
      OpBuilder inner = ifOp.getThenBodyBuilder();
      Value idValue =
          inner.create<arith::ConstantOp>(loc, inner.getI64IntegerAttr(id));
      inner.create<func::CallOp>(loc, report, ValueRange{idValue, code});
    }
    module->setAttr(kChecksAttr, b.getArrayAttr(locations));
  }
};
} // namespace
