//===- CpuTarget.h - the CPU target -----------------------------*- C++ -*-===//
//
// The host CPU through LLVM: JIT-compiled in this process, or written as an
// object file or shared library with a C header (codegen/cpu/CHeader.h).
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_CPU_CPUTARGET_H
#define MLX_CODEGEN_CPU_CPUTARGET_H

#include "codegen/Target.h"

#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace llvm::orc {
class LLJIT;
} // namespace llvm::orc

namespace mlx {

/// The CPU target (`--backend cpu`).
std::unique_ptr<Target> createCpuTarget();

/// Host code of a target, loaded into this process: an object file of
/// codegen/cpu with its `mlx_call_NAME` entry points.
class HostCode {
public:
  /// Loads `object` into a fresh LLJIT: libm, libomp and the numerics
  /// reports resolve as for CPU code; each name of `overrides` (malloc,
  /// free, a runtime's entry points) resolves to its address instead.
  static llvm::Expected<std::unique_ptr<HostCode>>
  load(llvm::StringRef object, const std::map<std::string, void *> &overrides);
  ~HostCode();

  /// The packed entry point `mlx_call_NAME(void **args)` of `name`, or
  /// null (looked up once, then remembered).
  void *entry(const std::string &name) const;

  /// Calls `name` (which must exist) through its packed entry point on
  /// arguments checked against `sig`: `args[i].data()` is what the code
  /// sees. Results are views of the allocations the code made, each freed
  /// with `freeFn` once no view holds it.
  /// `invoke`, where given, makes the call (`invoke(entry, packed)`) and
  /// says whether the code ran to its end; when it did not, there are no
  /// results.
  std::vector<rt::Tensor>
  call(const rt::Signature &sig, const std::vector<rt::Tensor> &args,
       void (*freeFn)(void *),
       const std::function<bool(void (*)(void **), void **)> &invoke =
           nullptr) const;

private:
  explicit HostCode(std::unique_ptr<llvm::orc::LLJIT> jit);
  std::unique_ptr<llvm::orc::LLJIT> jit;
  mutable std::mutex entriesMutex;
  mutable std::map<std::string, void *> entries;
};

} // namespace mlx

#endif // MLX_CODEGEN_CPU_CPUTARGET_H
