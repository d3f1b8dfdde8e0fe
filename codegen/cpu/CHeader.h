//===- CHeader.h - the C header of an AOT-built CPU library -----*- C++ -*-===//
//
// `mlxc build -o OUT.so` writes OUT.h beside the library: the memref
// descriptor types, each function's results struct and entry points
// (`_mlir_ciface_NAME`, `mlx_call_NAME`) and a shape check in plain C.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_CPU_CHEADER_H
#define MLX_CODEGEN_CPU_CHEADER_H

#include "runtime/Call.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlx {

/// Writes the header declaring `sigs` for the library `outputName` (its
/// stem names the include guard), built from the .mlx file `sourceName`.
void writeCHeader(llvm::raw_ostream &os, llvm::ArrayRef<rt::Signature> sigs,
                  llvm::StringRef outputName, llvm::StringRef sourceName);

} // namespace mlx

#endif // MLX_CODEGEN_CPU_CHEADER_H
