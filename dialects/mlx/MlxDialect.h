//===- MlxDialect.h - the mlx dialect ---------------------------*- C++ -*-===//
//
// Declares the mlx dialect, its enums/attributes, interfaces and ops.
// Include this one header to use the dialect (and dialects/mlx/Adjoints.h
// to differentiate).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_DIALECTS_MLX_MLXDIALECT_H
#define MLX_DIALECTS_MLX_MLXDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/mlx/MlxDialect.h.inc"
#include "dialects/mlx/MlxEnums.h.inc"

namespace mlir::mlx {
class ReverseSweep; // dialects/mlx/Adjoints.h
class ScalarSweep;
} // namespace mlir::mlx
#include "dialects/mlx/MlxInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/mlx/MlxAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialects/mlx/MlxOps.h.inc"

#endif // MLX_DIALECTS_MLX_MLXDIALECT_H
