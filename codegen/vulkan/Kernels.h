//===- Kernels.h - what the Vulkan passes share -----------------*- C++ -*-===//
//
// Internal to codegen/vulkan: which operations a kernel may hold, and the
// row-kernel passes (RowKernels.cpp) that VulkanCodegen.cpp's pipeline
// runs.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_VULKAN_KERNELS_H
#define MLX_CODEGEN_VULKAN_KERNELS_H

#include "mlir/Pass/Pass.h"

#include <cstdint>
#include <memory>

namespace mlir::mlx::vulkan {

/// The invocations of a workgroup: along the innermost loop dimension of a
/// plain kernel, and cooperating on each row of a row kernel.
constexpr int64_t kWorkgroupSize = 64;

/// Marks the scf.parallel of a row kernel (already mapped to workgroups and
/// invocations: MapLoopsPass leaves it as it is).
constexpr llvm::StringLiteral kRowKernelAttr = "mlx.vulkan.rows";

/// Whether `op` is a call of the host functions kernels may call (reports).
bool isReportCall(Operation *op);

/// Whether `op` can run inside a kernel: scalar arithmetic, loops and
/// branches over loads and stores of buffers made outside it, reports.
bool fitsInKernel(Operation *op);

/// `mlx-vulkan-row-kernels`: fuses runs of linalg ops on buffers that share
/// their leading parallel dims (the rows) around a reduction into one
/// kernel: a workgroup per row, its invocations sharing each op's inner
/// loops, a row reduction combined in workgroup memory, a barrier between
/// the ops.
std::unique_ptr<Pass> createRowKernelsPass();

/// `mlx-vulkan-buffer-barriers`: the barriers of kernels also order their
/// storage-buffer accesses (upstream's gpu.barrier orders workgroup memory
/// only), since the ops of a row kernel hand each other rows in buffers.
std::unique_ptr<Pass> createBufferBarriersPass();

} // namespace mlir::mlx::vulkan

#endif // MLX_CODEGEN_VULKAN_KERNELS_H
