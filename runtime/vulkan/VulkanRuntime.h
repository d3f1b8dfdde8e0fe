//===- VulkanRuntime.h - the thin Vulkan runtime ----------------*- C++ -*-===//
//
// Runs the compute shaders of codegen/vulkan. One device per process (picked
// by MLX_VULKAN_DEVICE, an index or part of a name; else a discrete GPU
// before an integrated one before a CPU device such as lavapipe), found
// through the Vulkan loader opened at run time, so that a machine without
// one gets an error, not a failed start. Buffers are host-visible device
// memory that the host code of a function allocates and frees through
// mlx_vk_malloc/mlx_vk_free; a call records every dispatch of a function
// into one command buffer, with a barrier between dispatches, and submits
// it once at the end (or earlier where host code reads device memory:
// mlx_vk_sync). Kernel arguments are bound as storage buffers (scalars in a
// small per-call arena). Std-only: a program that loads a `mlxc build
// --backend vulkan` artefact links this runtime alone.
//
// With MLX_VULKAN_VALIDATION=1 the Khronos validation layer is enabled and
// any message it prints fails the call.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_RUNTIME_VULKAN_VULKANRUNTIME_H
#define MLX_RUNTIME_VULKAN_VULKANRUNTIME_H

#include "runtime/Call.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlx::vk {

/// What the compiler needs to know of the device: its name, the features
/// that decide the SPIR-V capabilities, and the limits kernels must fit.
struct DeviceInfo {
  std::string name;        ///< e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::string kind;        ///< "discrete GPU", "integrated GPU", "CPU", …
  std::string driver;      ///< driver name and version
  uint32_t apiVersion = 0; ///< VK_MAKE_API_VERSION
  bool float64 = false, int64 = false, int16 = false, int8 = false;
  bool storage8 = false; ///< 8-bit types in storage buffers
  uint32_t subgroupSize = 0;
  uint32_t maxWorkgroupInvocations = 0;
  std::array<uint32_t, 3> maxWorkgroupCount{};
  uint64_t maxStorageBufferRange = 0;
  uint32_t maxPushConstantsSize = 0;
  uint32_t maxStorageBuffersPerStage = 0;
  uint64_t maxAllocationSize = 0;
  uint32_t maxSharedMemory = 0;
};

/// The process's device, opened on first use; null with `error` set when
/// there is none (no loader, no device, MLX_VULKAN_DEVICE out of range).
const DeviceInfo *device(std::string &error);

/// How a kernel argument is passed: a buffer; the kernel's parameters
/// (its sizes, strides and other scalars packed into KernelSpec::paramBytes
/// bytes of host memory, so that one shader serves every shape) as push
/// constants (PushConstants: where they fit the device's
/// maxPushConstantsSize) or copied into a small buffer when the launch is
/// recorded (Params: one binding however many there are); or the call's
/// report buffer (eight i32: an out-of-range subscript sets [0] with the
/// check id, index and size in [1..3]; a non-finite value sets [4] with id
/// and kind in [5..6]; reported to runtime/Numerics.h when the call ends).
enum class ArgKind : uint8_t { Buffer, Params, Report, PushConstants };

/// One compute shader: entry point `name` in `spirv`, its workgroup size,
/// and its arguments: argument b is binding b of set 0 (push constants
/// have none).
struct KernelSpec {
  std::string name;
  std::vector<uint32_t> spirv;
  std::array<uint32_t, 3> workgroup{1, 1, 1};
  std::vector<ArgKind> args;
  uint32_t paramBytes = 0; ///< the size of the Params argument's block
};

/// A set of kernels with their pipelines, made once and called from any
/// thread. `mlx_vk_launch(k, …)` runs kernels()[k] of the calling thread's
/// current program (CallScope).
class Program {
public:
  /// Creates the pipelines; null with `error` set (naming the Vulkan result
  /// code) when the driver rejects one.
  static std::unique_ptr<Program> create(std::vector<KernelSpec> kernels,
                                         std::string &error);
  ~Program();
  const std::vector<KernelSpec> &kernels() const;
  struct Impl;

private:
  explicit Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
  friend class CallScope;
};

/// One call of a program's host code on this thread: launches record into
/// its command buffer; `finish` submits what is left and waits, then frees
/// what the host code freed meanwhile. Reports the first error of the call
/// through rt::reportCallError.
class CallScope {
public:
  explicit CallScope(const Program &program);
  ~CallScope();
  /// Submits and waits for every recorded dispatch; false after an error.
  bool finish();
  /// Calls `entry(args)` (host code of the program). An error that leaves
  /// the host code nothing sensible to do (memory the device cannot
  /// allocate) ends it early: run returns false, and every buffer the call
  /// had allocated is freed.
  bool run(void (*entry)(void **), void **args);
  CallScope(const CallScope &) = delete;
  CallScope &operator=(const CallScope &) = delete;
  struct Impl;

private:
  std::unique_ptr<Impl> impl;
};

/// `t` as a contiguous tensor in device memory: itself where it is one, else
/// a copy (mlx_vk_malloc'd, freed with its last view).
rt::Tensor toDevice(const rt::Tensor &t);

/// Calls `entry`, the packed entry point of `program`'s host code, on
/// `args` (checked against `sig`): copies them into device memory (those
/// not there already: toDevice), runs the
/// host code within a CallScope (one submit), and returns the results
/// (views of mapped device memory); none after an error, which the call
/// reports through rt::reportCallError.
std::vector<rt::Tensor> call(const Program &program, void (*entry)(void **),
                             const rt::Signature &sig,
                             const std::vector<rt::Tensor> &args);

/// Whether `p` points into a buffer of the runtime (a tensor already on
/// the device, such as an earlier call's result).
bool isDeviceMemory(const void *p);

} // namespace mlx::vk

extern "C" {
/// Device memory the host code (and the caller, for arguments) allocates:
/// mapped host-visible buffers. On failure (out of device memory, over the
/// device's limits) the call gets an error and the memory comes from the
/// host, so that the function can run to its end without touching the
/// device.
void *mlx_vk_malloc(size_t bytes);
void *mlx_vk_aligned_alloc(size_t alignment, size_t bytes);
/// Frees what mlx_vk_malloc returned; within a call, once the dispatches
/// recorded so far have run.
void mlx_vk_free(void *p);
/// Records kernel `kernel` of the current program over a grid of
/// gx × gy × gz workgroups; `args[i]` is argument i: a buffer's address
/// (for Params, of the host memory that holds the parameters).
void mlx_vk_launch(int64_t kernel, int64_t gx, int64_t gy, int64_t gz,
                   const int64_t *args);
/// Runs what has been recorded and waits: host code calls it before it
/// reads or writes device memory itself.
void mlx_vk_sync();
}

#endif // MLX_RUNTIME_VULKAN_VULKANRUNTIME_H
