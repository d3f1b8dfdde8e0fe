//===- Artefact.h - running what `mlxc build --backend vulkan` wrote -*- C++
//-*-===//
//
// An artefact is a directory: `manifest.txt` (what follows), the host code
// as a shared library, and one SPIR-V file per kernel. Loading it needs
// this runtime and the Vulkan loader only, not the compiler.
//
//   mlxc-vulkan-artefact 1
//   host LIBRARY.so
//   kernel NAME FILE.spv WX WY WZ PARAM-BYTES ARGS   (ARGS: b, p, c or r
//                        per argument: buffer, parameter block in a buffer
//                        or as push constants, report buffer)
//   check ID DIM LOCATION SIZE-NAME TENSOR…          (bounds checks, for
//                        messages; SIZE-NAME `-` when none)
//   function NAME        (then rt::writeSignature's lines, up to `end`)
//
// Kernel K of the host code's mlx_vk_launch calls is the K-th kernel line.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_RUNTIME_VULKAN_ARTEFACT_H
#define MLX_RUNTIME_VULKAN_ARTEFACT_H

#include "runtime/vulkan/VulkanRuntime.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlx::vk {

/// The manifest's version this runtime reads.
constexpr int kArtefactVersion = 1;

/// A loaded artefact: its kernels on the device, its host code, and the
/// signatures of its functions. Calls may come from any thread.
class Artefact {
public:
  /// Loads the artefact in `dir`; null with `error` set when the manifest,
  /// a file, the device or the driver fails.
  static std::unique_ptr<Artefact> load(const std::string &dir,
                                        std::string &error);
  ~Artefact();

  /// The functions it exports, in the manifest's order.
  const std::vector<rt::Signature> &functions() const { return signatures; }

  /// Calls function `name` on `args` (host or device memory): the results,
  /// or nothing with `error` set (an unknown function, arguments that do
  /// not match its signature, a failed bounds check, a device error).
  std::optional<std::vector<rt::Tensor>> call(const std::string &name,
                                              std::vector<rt::Tensor> args,
                                              std::string &error) const;

  Artefact(const Artefact &) = delete;
  Artefact &operator=(const Artefact &) = delete;

private:
  Artefact() = default;
  /// A bounds check's message parts (from the manifest's `check` lines).
  struct Check {
    int64_t dim = -1;
    std::string location, sizeName, tensor;
  };
  void *library = nullptr;
  std::unique_ptr<Program> program;
  std::vector<rt::Signature> signatures;
  std::vector<void (*)(void **)> entries;
  std::map<int64_t, Check> checks;
};

} // namespace mlx::vk

#endif // MLX_RUNTIME_VULKAN_ARTEFACT_H
