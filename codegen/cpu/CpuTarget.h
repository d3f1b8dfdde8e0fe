//===- CpuTarget.h - the CPU target -----------------------------*- C++ -*-===//
//
// The host CPU through LLVM: JIT-compiled in this process, or written as an
// object file or shared library with a C header (codegen/cpu/CHeader.h).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_CPU_CPUTARGET_H
#define MLX_CODEGEN_CPU_CPUTARGET_H

#include "codegen/Target.h"

namespace mlx {

/// The CPU target (`--backend cpu`).
std::unique_ptr<Target> createCpuTarget();

} // namespace mlx

#endif // MLX_CODEGEN_CPU_CPUTARGET_H
