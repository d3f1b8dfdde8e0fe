//===- Kernels.h - what the Vulkan passes share -----------------*- C++ -*-===//
//
// Internal to codegen/vulkan: which operations a kernel may hold, and the
// row-kernel passes (RowKernels.cpp) that VulkanCodegen.cpp's pipeline
// runs.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_VULKAN_KERNELS_H
#define MLX_CODEGEN_VULKAN_KERNELS_H

#include "passes/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Pass/Pass.h"

#include <cstdint>
#include <memory>

namespace mlir::mlx::vulkan {

/// The invocations of a workgroup: along the innermost loop dimension of a
/// plain kernel, and cooperating on each row of a row kernel.
constexpr int64_t kWorkgroupSize = 64;

/// Marks the scf.parallel of a row kernel or a tiled contraction (already
/// mapped to workgroups and invocations: MapLoopsPass leaves it as it is).
constexpr llvm::StringLiteral kMappedKernelAttr = "mlx.vulkan.mapped";

/// The mapping of a parallel loop dim onto processor `p` (identity map and
/// bound), for gpu::setMappingAttr.
gpu::ParallelLoopDimMappingAttr mappingTo(MLIRContext *ctx, gpu::Processor p);

/// Clones the body of `op` (but its yield) at `b`: block arguments and
/// values as `mapping` has them, `linalg.index d` as `ivs[d]`.
void cloneBody(OpBuilder &b, linalg::LinalgOp op, ArrayRef<Value> ivs,
               IRMapping &mapping);

/// Whether `op` is a call of the host functions kernels may call (reports).
bool isReportCall(Operation *op);

/// Whether `op` can run inside a kernel: scalar arithmetic, loops and
/// branches over loads and stores of buffers made outside it, reports.
bool fitsInKernel(Operation *op);

/// A linalg op on buffers that a fused kernel can compute: its body fits
/// in a kernel.
bool isFusible(Operation *op);

/// The combiner C of a reduction with one output whose body yields
/// C(out, g) (g free of out), C associative and commutative with a neutral
/// element (arith::getNeutralElement); null for any other op.
Operation *reductionCombiner(linalg::LinalgOp op);

/// C(acc, other), cloned from `op`'s combiner C.
Value combine(OpBuilder &b, linalg::LinalgOp op, Operation *combiner, Value acc,
              Value other);

/// `mlx-vulkan-tiled-contractions`: a contraction C[b, i, k] ⊕= Σ_r
/// f(A[…i…r…], B[…r…k…]) (a matrix product: each operand reused across
/// the other's dim) becomes a kernel over 16×16 tiles of C: each workgroup
/// stages 16×16 tiles of A and B in workgroup memory per step of r, its
/// 256 invocations each accumulating one element of C; the fill of C just
/// before it folds into the kernel.
std::unique_ptr<Pass> createTiledContractionsPass();

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
