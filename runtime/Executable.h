//===- Executable.h - compiled code, as the runtime sees it -----*- C++ -*-===//
//
// The one interface through which the runtime (and every driver above it)
// calls compiled code, whatever the target: a loaded executable exports
// functions by name and calls them on tensors. How arguments reach the code
// (memref descriptors on the CPU, buffers and push constants on a GPU) is
// the target's business, behind this interface.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_RUNTIME_EXECUTABLE_H
#define MLX_RUNTIME_EXECUTABLE_H

#include "runtime/Call.h"

namespace mlx::rt {

/// Compiled, loaded code of one target. Calls are reentrant: one executable
/// may be called from several threads at once.
class Executable {
public:
  virtual ~Executable();
  /// Whether the executable exports a function named `name`.
  virtual bool exports(const std::string &name) const = 0;
  /// Calls the exported function `sig.name` on arguments already checked
  /// against `sig` (checkArguments). Every result owns its buffer.
  virtual std::vector<Tensor> call(const Signature &sig,
                                   const std::vector<Tensor> &args) const = 0;
};

} // namespace mlx::rt

#endif // MLX_RUNTIME_EXECUTABLE_H
