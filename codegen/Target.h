//===- Target.h - the seam between linalg on tensors and a target -*- C++ -*-=//
//
// A target takes over from linalg on tensors (the output of mlx-to-linalg,
// the same for every target): it registers what it lowers through, builds
// its pipeline down to its own last IR level, and then loads the result in
// this process (JIT) or writes it out (AOT). The session (session/) sees
// targets only through this interface; the runtime calls what `load`
// returns through rt::Executable, so neither knows which target ran.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_TARGET_H
#define MLX_CODEGEN_TARGET_H

#include "runtime/Executable.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace mlir {
class DialectRegistry;
class OpPassManager;
} // namespace mlir

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlx {

/// How a target generates code.
struct CodegenOptions {
  /// LLVM's optimisation level, 0 to 3.
  unsigned optLevel = 3;
  /// The CPU to compile for: "host" (detected at run time, with its
  /// features), or an LLVM CPU name ("x86-64-v3", "znver4", …) for a
  /// portable build.
  std::string cpu = "host";
  /// Attention-like sums of softmax rows a key tile at a time
  /// (mlx-online-softmax; CPU only); off: the two-pass form.
  bool onlineSoftmax = true;
  /// A softmax's gradient (attention's) a block of rows at a time
  /// (mlx-cpu-row-blocks; CPU only); off: its T×T tensors whole.
  bool rowBlocks = true;
};

class Target {
public:
  virtual ~Target() = default;
  /// The name `--backend` gives the target.
  virtual llvm::StringRef name() const = 0;
  /// What the code runs on, for benchmark reports ("the host CPU (znver4)",
  /// "Vulkan device llvmpipe (…), a CPU").
  virtual std::string device() const = 0;
  /// `t` in the memory the target's code reads without a copy (Vulkan:
  /// device memory); for a benchmark, which times the upload apart.
  virtual rt::Tensor toDevice(const rt::Tensor &t) const { return t; }
  /// `t` (a result) in host memory: a copy out of device memory, or `t`.
  virtual rt::Tensor fromDevice(const rt::Tensor &t) const { return t; }
  /// Registers the dialects, interface models and translations the target
  /// lowers through (below linalg on tensors).
  virtual void registerDialects(mlir::DialectRegistry &registry) const = 0;
  /// Adds the passes from linalg on tensors down to the target's last IR
  /// level, for the code generation `options` (the CPU's vector width).
  virtual void buildPipeline(mlir::OpPassManager &pm,
                             const CodegenOptions &options) const = 0;
  /// Prints a lowered module in the target's own form: `stage` is what
  /// `--stage` names, "llvm" (the host code's LLVM IR) or "spirv" (the
  /// kernels); an error for a stage the target does not have.
  virtual llvm::Error printLowered(mlir::ModuleOp module, llvm::StringRef stage,
                                   llvm::raw_ostream &os) const = 0;
  /// Compiles a lowered module to what `loadBinary` loads (on the CPU an
  /// object file for the host): what the compile cache keeps.
  virtual llvm::Expected<std::string>
  compileBinary(mlir::ModuleOp module, const CodegenOptions &options) const = 0;
  /// Loads a binary of `compileBinary` into this process (JIT); an error,
  /// never a crash, for bytes that are not one.
  virtual llvm::Expected<std::unique_ptr<rt::Executable>>
  loadBinary(llvm::StringRef binary) const = 0;
  /// What a binary depends on besides the module (the CPU it is compiled
  /// for, the options), for the compile cache's keys.
  virtual std::string binaryKey(const CodegenOptions &options) const = 0;
  /// An error when `options` name something this target cannot do (an
  /// unknown CPU, an optimisation level above 3).
  virtual llvm::Error checkOptions(const CodegenOptions &options) const = 0;
  /// An error if `path` cannot name an artefact of this target; checked
  /// before compiling.
  virtual llvm::Error checkArtefactPath(llvm::StringRef path) const = 0;
  /// Writes a lowered module to `path` (AOT) with whatever describes its
  /// entry points `signatures` to a caller; `sourceName` names the .mlx file
  /// it came from. Nothing is left at `path` on failure.
  virtual llvm::Error emit(mlir::ModuleOp module,
                           llvm::ArrayRef<rt::Signature> signatures,
                           llvm::StringRef path, llvm::StringRef sourceName,
                           const CodegenOptions &options) const = 0;
};

} // namespace mlx

#endif // MLX_CODEGEN_TARGET_H
