//===- VulkanCodegen.h - the Vulkan backend's passes ------------*- C++ -*-===//
//
// linalg on tensors → buffers → parallel loops → one gpu.launch per loop
// nest (innermost dimension over a workgroup's invocations, the others over
// workgroups; a nest with no parallel loop runs in one invocation) → kernels
// outlined and lowered to SPIR-V with upstream conversions, serialized. The
// host part of each function stays on the CPU (codegen/cpu's lowering) and
// calls the runtime (runtime/vulkan) to launch each kernel; every buffer is
// allocated through it.
//
// The module that comes out is the host code in the LLVM dialect; its
// attribute `mlx.vulkan.kernels` lists the kernels (readKernels).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_VULKAN_VULKANCODEGEN_H
#define MLX_CODEGEN_VULKAN_VULKANCODEGEN_H

#include "runtime/vulkan/VulkanRuntime.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace mlir {
class DialectRegistry;
class OpPassManager;
namespace mlx {

/// Registers what the Vulkan target lowers through (the CPU's dialects for
/// the host code, plus gpu and spirv).
void registerVulkanTargetDialects(DialectRegistry &registry);

/// The SPIR-V target environment (`#spirv.target_env<…>`) for a device:
/// SPIR-V 1.3 for Vulkan 1.1 with the capabilities its features allow.
std::string targetEnvFor(const ::mlx::vk::DeviceInfo &device);

/// The Vulkan pipeline from linalg on tensors, for `targetEnv` and the
/// limits of `device`: kernels' parameter blocks up to its
/// maxPushConstantsSize are push constants; a kernel with more storage
/// buffers than it allows is an error.
void buildLinalgToVulkanPipeline(OpPassManager &pm,
                                 const std::string &targetEnv,
                                 const ::mlx::vk::DeviceInfo &device);

/// A kernel of the lowered module, with its SPIR-V (as the spirv dialect
/// prints it, for `--stage=spirv`).
struct LoweredKernel {
  ::mlx::vk::KernelSpec spec;
  std::string assembly;
};

/// The kernels of a module that buildLinalgToVulkanPipeline lowered, in
/// the order mlx_vk_launch numbers them; `strip` removes the attribute that
/// holds them (before the module is translated to LLVM IR).
std::vector<LoweredKernel> readKernels(ModuleOp module, bool strip);

} // namespace mlx
} // namespace mlir

#endif // MLX_CODEGEN_VULKAN_VULKANCODEGEN_H
