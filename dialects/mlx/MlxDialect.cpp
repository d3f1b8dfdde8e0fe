//===- MlxDialect.cpp - mlx dialect registration -----------------*- C++
//-*-===//
//
// Registers the mlx ops and attributes, and lets the inliner move mlx ops
// (calls are inlined before lowering to linalg).
//
//===----------------------------------------------------------------------===//
#include "dialects/mlx/MlxDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Transforms/InliningUtils.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::mlx;

#include "dialects/mlx/MlxDialect.cpp.inc"
#include "dialects/mlx/MlxEnums.cpp.inc"
#include "dialects/mlx/MlxInterfaces.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "dialects/mlx/MlxAttrs.cpp.inc"

namespace {
/// Every mlx op is pure data flow over tensors, so it may be inlined
/// anywhere.
struct MlxInlinerInterface : public DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;
  bool isLegalToInline(Operation *, Operation *, bool) const final {
    return true;
  }
  bool isLegalToInline(Operation *, Region *, bool, IRMapping &) const final {
    return true;
  }
  bool isLegalToInline(Region *, Region *, bool, IRMapping &) const final {
    return true;
  }
};
} // namespace

void MlxDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/mlx/MlxAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/mlx/MlxOps.cpp.inc"
      >();
  addInterfaces<MlxInlinerInterface>();
}
