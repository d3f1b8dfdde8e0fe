//===- Session.h - one compile session: source to callable code -*- C++ -*-===//
//
// The compile sequence, written once: a Session owns the MLIRContext, the
// dialect registry, the sources and their diagnostics, and a target; it
// loads a file (or a source string) with its imports and compiles export
// requests into a Module of callable functions, or writes them out. Every
// failure comes back as a value: a DiagnosticError carrying exactly the
// text the CLI prints (`file:line:col: error: …`, caret line, notes), or a
// plain llvm::StringError for failures with no source location. mlxc, the
// unit tests and the fuzzers sit on it, and so will the embedding API.
//
// Threading: one session is used from one thread at a time; a Module's
// functions may be called from several threads at once.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_SESSION_SESSION_H
#define MLX_SESSION_SESSION_H

#include "codegen/Target.h"
#include "frontend/MLIRGen.h"
#include "runtime/Executable.h"
#include "session/CompileCache.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlx {

/// Where imports come from and which target compiles.
struct SessionOptions {
  /// Searched (after the importing file's directory) for `import NAME`;
  /// then $MLX_PATH, then the stdlib.
  std::vector<std::string> importPaths;
  /// The target's name: "cpu" (or "vulkan", in builds that have it).
  std::string backend = "cpu";
};

/// How a compile uses the compile cache (session/CompileCache.h).
enum class CacheUse {
  Off,     ///< compile, keep nothing
  Use,     ///< load a cached binary when there is one, else compile and keep
  Refresh, ///< compile (a cold start), and keep the binary
};

/// How to compile.
struct CompileOptions {
  /// Instrument every equation to report the first NaN or infinity it
  /// produces (and reject non-finite arguments).
  bool checkNumerics = false;
  /// Back-propagation through loops records every step's carried state (0)
  /// or one every this many steps, recomputing the rest from it.
  unsigned loopCheckpointInterval = 0;
  /// The compile cache (for `compile`; `build` always compiles).
  CacheUse cache = CacheUse::Use;
  /// Code generation: optimisation level and CPU.
  CodegenOptions codegen = {};
};

/// Diagnostics as a value: the text the CLI prints for them.
class DiagnosticError : public llvm::ErrorInfo<DiagnosticError> {
public:
  static char ID;
  explicit DiagnosticError(std::string diagnostics)
      : diagnostics(std::move(diagnostics)) {}
  /// The printed diagnostics, each line ending in a newline.
  const std::string &text() const { return diagnostics; }
  void log(llvm::raw_ostream &os) const override { os << diagnostics; }
  std::error_code convertToErrorCode() const override {
    return llvm::inconvertibleErrorCode();
  }

private:
  std::string diagnostics;
};

/// The levels `Session::lower` stops at (`mlxc emit --stage`).
enum class Stage {
  Mlx,    ///< generated from the source
  Grad,   ///< gradients expanded, simplified
  Linalg, ///< linalg on tensors, fused: every target's input
  Target, ///< lowered by the target (the LLVM dialect on the CPU)
};

class Session;

/// Compiled functions, loaded into this process and callable on tensors.
/// It must not outlive the session that compiled it.
class Module {
public:
  ~Module();
  /// The signature of exported function `name`, or null.
  const rt::Signature *signature(llvm::StringRef name) const;
  /// Calls exported function `name`. Arguments are checked against its
  /// signature (a mismatch is a diagnostic at the function); an
  /// out-of-range constant subscript or (with checkNumerics) a non-finite
  /// value comes back as a diagnostic at the equation, with its call sites.
  llvm::Expected<std::vector<rt::Tensor>>
  call(llvm::StringRef name, std::vector<rt::Tensor> args) const;
  /// Whether its code was compiled now or came from the compile cache.
  BinarySource source() const;

private:
  friend class Session;
  struct Impl;
  explicit Module(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

class Session {
public:
  /// A session for `options.backend`; an error if this build lacks it.
  static llvm::Expected<std::unique_ptr<Session>>
  create(SessionOptions options = {});
  ~Session();

  /// Loads the main file and its imports.
  llvm::Error loadFile(const std::string &path);
  /// Loads source text as the main file, named `name` in diagnostics.
  llvm::Error loadSource(const std::string &name, const std::string &source);

  /// The main file's parsed module (after a successful load).
  const ast::Module &mainModule() const;
  /// What compiled code runs on (the target's device, for reports).
  std::string device() const;
  /// `t` in the target's device memory (a copy, or `t` itself on the CPU):
  /// calls on it copy nothing in.
  rt::Tensor toDevice(const rt::Tensor &t) const;
  /// A result `t` in host memory (a copy out of device memory, or `t`).
  rt::Tensor fromDevice(const rt::Tensor &t) const;
  /// A function of the main file; the error names the ones it has.
  llvm::Expected<const ast::Function *> function(llvm::StringRef name);
  /// Requests for every function of the main file (`[...]` ones at rank 1).
  std::vector<ExportRequest> allExports() const;
  /// Checks every function of the main file (`mlxc check`): those of
  /// allExports by generating them, and those with static parameters with
  /// the statics as sizes of unknown value.
  llvm::Error checkAll();

  /// The parameter indices of `names` for a gradient of `fn`: each must be
  /// a float parameter, given once, and `fn` must have a float result.
  llvm::Expected<std::vector<int64_t>>
  gradientParameters(const ast::Function &fn,
                     llvm::ArrayRef<std::string> names);
  /// The float type a call of `fn` runs in, given the dtypes of the
  /// arguments known so far (nullopt: not known, such as a literal): a
  /// declared f32 stands for f64 when an f64 array is passed for it, and
  /// all f32 parameters must then agree.
  llvm::Expected<rt::DType>
  floatType(const ast::Function &fn,
            llvm::ArrayRef<std::optional<rt::DType>> argumentDTypes);
  /// The request that runs `fn` on `args` (one per parameter, in order;
  /// static parameters as integer scalars): in `floatType`, by default the
  /// one the arguments' dtypes give; `[...]` at the rank of the first
  /// argument for such a parameter; static values taken from theirs.
  llvm::Expected<ExportRequest>
  requestFor(const ast::Function &fn, llvm::ArrayRef<rt::Tensor> args,
             std::optional<rt::DType> floatType = std::nullopt);
  /// The signature of a request's entry point, results named after what
  /// the function returns (`d<param>` for gradients).
  rt::Signature signature(const ExportRequest &request) const;

  /// The module of `exports` at `stage`, verified.
  llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
  lower(const std::vector<ExportRequest> &exports, Stage stage,
        CompileOptions options = {});
  /// The gradient of `request.function` with respect to `request.wrt` (of
  /// the sum of its float results) as .mlx source (`mlxc derive`): one
  /// `def`, named as the request's export, taking the function's
  /// parameters and returning `d<param>` for each; equations in index
  /// notation, each with a comment naming the source lines it comes from.
  /// An error at the function names what the language cannot write yet.
  llvm::Expected<std::string> deriveSource(const ExportRequest &request);
  /// Prints a module lowered to Stage::Target in the target's own form
  /// (LLVM IR on the CPU).
  llvm::Error printTarget(mlir::ModuleOp module, llvm::StringRef stage,
                          llvm::raw_ostream &os);
  /// Compiles `exports` and loads them (JIT).
  llvm::Expected<std::unique_ptr<Module>>
  compile(const std::vector<ExportRequest> &exports,
          CompileOptions options = {});
  /// Compiles `exports` and writes them to `path` (AOT; on the CPU an
  /// OUT.o or OUT.so and its C header OUT.h).
  llvm::Error build(const std::vector<ExportRequest> &exports,
                    llvm::StringRef path, CompileOptions options = {});

  /// An error when the target cannot generate code with `options`.
  llvm::Error checkCodegen(const CodegenOptions &options);
  /// A user error at a source location, as a value (for a driver's own
  /// checks of its arguments).
  llvm::Error errorAt(const ast::Loc &loc, const llvm::Twine &message);

private:
  friend class Module;
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  rt::Signature withTraceResults(const ExportRequest &request,
                                 mlir::ModuleOp module) const;
  std::unique_ptr<Impl> impl;
};

} // namespace mlx

#endif // MLX_SESSION_SESSION_H
