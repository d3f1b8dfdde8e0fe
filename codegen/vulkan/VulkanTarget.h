//===- VulkanTarget.h - the Vulkan target -----------------------*- C++ -*-===//
//
// Any Vulkan device through SPIR-V compute shaders (codegen/vulkan) and the
// thin runtime of runtime/vulkan; `--backend vulkan`.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_VULKAN_VULKANTARGET_H
#define MLX_CODEGEN_VULKAN_VULKANTARGET_H

#include "codegen/Target.h"

namespace mlx {

/// The Vulkan target for the process's device (runtime/vulkan); an error
/// when there is no loader or no device.
llvm::Expected<std::unique_ptr<Target>> createVulkanTarget();

} // namespace mlx

#endif // MLX_CODEGEN_VULKAN_VULKANTARGET_H
