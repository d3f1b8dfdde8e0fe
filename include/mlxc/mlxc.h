//===- mlxc.h - the embedding API of mlxc -----------------------*- C++ -*-===//
//
// Compile `.mlx` source at run time and call its functions (and their
// gradients) on tensors, from any C++17 program:
//
//   auto compiler = mlxc::Compiler::create();
//   auto module = compiler->compileSource(
//       "import transformer\n"
//       "def attend(Q: f32[T, D], K: f32[T, D], V: f32[T, E]) -> f32[T, E] {\n"
//       "  return causal_attention(Q, K, V)\n"
//       "}\n");
//   if (!module) { std::cerr << module.error(); return 1; }
//   auto attend = module->function("attend");
//   auto out = (*attend)({Q, K, V});       // Expected<std::vector<Tensor>>
//   auto grads = module->grad("attend", {"Q", "K", "V"});
//
// Errors are values (Expected), never exceptions: error() holds exactly the
// text the `mlxc` command prints (`file:line:col: error: …`, the source
// line, a caret, notes). Only the C++ standard library appears here.
//
// Lifetimes: a Module keeps what compiled it alive; Functions keep their
// Module alive. A Tensor shares its buffer with its copies; a view borrows
// the caller's memory, which must outlive every call that reads it.
//
// Threading: a Function may be called from several threads at once (its
// first call for each instance compiles it, once, under a lock); results
// are new tensors owned by the caller.
//
//===----------------------------------------------------------------------===//
#ifndef MLXC_MLXC_H
#define MLXC_MLXC_H

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mlxc {

/// Element types: the language's f32, f64, i32, i64 and bool.
enum class DType { f32, f64, i32, i64, boolean };

/// The language's spelling of a dtype ("f32", …, "bool").
const char *dtypeName(DType dtype);
/// Bytes per element.
size_t dtypeSize(DType dtype);

/// A strided n-dimensional array: dtype, shape, strides (in elements) and
/// data, either owned (shared by copies) or a view of someone else's memory.
class Tensor {
public:
  /// An empty rank-0 f32 tensor with no data.
  Tensor() = default;
  /// A new zero-filled tensor in C order that owns its data.
  static Tensor zeros(DType dtype, std::vector<int64_t> shape);
  /// A new tensor in C order holding a copy of `data` (numElements values
  /// of `dtype`, C order).
  static Tensor copyOf(DType dtype, std::vector<int64_t> shape,
                       const void *data);
  /// A view of `data`, which the caller keeps alive: no copy is made.
  /// `strides` are in elements; empty means C order.
  static Tensor view(DType dtype, std::vector<int64_t> shape, void *data,
                     std::vector<int64_t> strides = {});

  DType dtype() const { return elementType; }
  const std::vector<int64_t> &shape() const { return dims; }
  const std::vector<int64_t> &strides() const { return elementStrides; }
  int64_t rank() const { return (int64_t)dims.size(); }
  int64_t numElements() const;
  void *data() const { return base; }
  /// The data as `T` (which must match dtype()).
  template <typename T> T *data() const { return static_cast<T *>(base); }
  /// The element at row-major position `flat`, converted to double.
  double at(int64_t flat) const;

private:
  friend struct TensorAccess;
  DType elementType = DType::f32;
  std::vector<int64_t> dims, elementStrides;
  void *base = nullptr;
  std::shared_ptr<void> owner;
};

/// A value or the text of what went wrong.
template <typename T> class Expected {
public:
  Expected(T value) : value(std::move(value)) {}
  /// A failure with `message` (mlxc's diagnostic text).
  static Expected failure(std::string message) {
    Expected e;
    e.message = std::move(message);
    return e;
  }
  /// True when it holds a value.
  explicit operator bool() const { return value.has_value(); }
  T &operator*() { return *value; }
  const T &operator*() const { return *value; }
  T *operator->() { return &*value; }
  const T *operator->() const { return &*value; }
  /// The diagnostics when it holds no value (empty otherwise).
  const std::string &error() const { return message; }

private:
  Expected() = default;
  std::optional<T> value;
  std::string message;
};

/// How a Compiler finds imports and compiles.
struct Options {
  /// Searched (after the importing file's directory) for `import NAME`;
  /// then $MLX_PATH, then the stdlib.
  std::vector<std::string> importPaths;
  /// The backend: "cpu".
  std::string backend = "cpu";
  /// Report the first NaN or infinity an equation produces as an error
  /// (and reject non-finite arguments).
  bool checkNumerics = false;
  /// Back-propagation through loops keeps every step (0) or one every this
  /// many steps, recomputing the others.
  unsigned loopCheckpointInterval = 0;
  /// LLVM's optimisation level, 0 to 3.
  unsigned optLevel = 3;
  /// The CPU to compile for: "host" (detected at run time), or an LLVM CPU
  /// name such as "x86-64-v3" (which the host must be able to run).
  std::string cpu = "host";
};

namespace detail {
struct ModuleState;
struct FunctionState;
} // namespace detail

/// A callable function of a compiled module (or its gradient).
class Function {
public:
  /// Calls it on one tensor per parameter, in order (static parameters as
  /// integer scalars). The arguments' dtypes choose the instance: f64
  /// arrays for `f32` parameters run it in f64; a `[...]` parameter takes
  /// the rank it is given. The first call of each instance compiles it.
  /// Results: the function's, in order; for a gradient, the gradients
  /// (after the function's results with valueAndGrad).
  Expected<std::vector<Tensor>>
  operator()(const std::vector<Tensor> &args) const;
  /// The function's name in the source.
  const std::string &name() const;
  /// Its parameters' names, in order.
  std::vector<std::string> parameters() const;

private:
  friend class Module;
  explicit Function(std::shared_ptr<detail::FunctionState> state)
      : state(std::move(state)) {}
  std::shared_ptr<detail::FunctionState> state;
};

/// A loaded and checked source file (and its imports).
class Module {
public:
  /// The function `name` of the main file.
  Expected<Function> function(const std::string &name) const;
  /// The gradient of `name` (of the sum of its float results) with respect
  /// to the float parameters `wrt`: a function returning d<param> for each.
  Expected<Function> grad(const std::string &name,
                          const std::vector<std::string> &wrt) const;
  /// Like grad, returning the function's results first.
  Expected<Function> valueAndGrad(const std::string &name,
                                  const std::vector<std::string> &wrt) const;
  /// The names of the main file's functions, in source order.
  std::vector<std::string> functions() const;

private:
  friend class Compiler;
  explicit Module(std::shared_ptr<detail::ModuleState> state)
      : state(std::move(state)) {}
  Expected<Function> lookup(const std::string &name,
                            const std::vector<std::string> *wrt,
                            bool withValue) const;
  std::shared_ptr<detail::ModuleState> state;
};

/// Compiles `.mlx` source into modules.
class Compiler {
public:
  /// A compiler with `options`; an error for an unknown backend.
  static Expected<Compiler> create(Options options = {});
  /// Loads `path` and its imports and checks every function in it.
  Expected<Module> compileFile(const std::string &path) const;
  /// The same for source text, called `name` in diagnostics.
  Expected<Module> compileSource(const std::string &source,
                                 const std::string &name = "<source>") const;

private:
  explicit Compiler(Options options) : options(std::move(options)) {}
  Expected<Module> compile(const std::string *path, const std::string &source,
                           const std::string &name) const;
  Options options;
};

} // namespace mlxc

#endif // MLXC_MLXC_H
