//===- Embed.cpp - the embedding API over the compile session ------------===//
//
// include/mlxc/mlxc.h on top of session/Session.h: a Module is a session
// that loaded one main file; a Function compiles one instance per distinct
// request its arguments ask for (float type, `[...]` rank, static values)
// on first use and keeps it; a call finds its instance from the arguments'
// dtypes, ranks and static values without asking the session again. Tensors
// cross the boundary as views: no copy of arguments, results handed over with
// their buffers.
//
//===----------------------------------------------------------------------===//
#include "mlxc/mlxc.h"

#include "session/Session.h"

#include "llvm/ADT/STLExtras.h"

#include <cstring>
#include <map>
#include <mutex>

using namespace mlxc;

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

namespace mlxc {
/// Conversions between the public tensor and the runtime's.
struct TensorAccess {
  static mlx::rt::Tensor toRuntime(const Tensor &t) {
    return mlx::rt::Tensor::view((mlx::rt::DType)t.elementType, t.dims,
                                 t.elementStrides, t.base, t.owner);
  }
  static Tensor fromRuntime(const mlx::rt::Tensor &r) {
    Tensor t;
    t.elementType = (DType)r.dtype();
    t.dims = r.shape();
    t.elementStrides = r.strides();
    t.base = r.data();
    t.owner = std::make_shared<mlx::rt::Tensor>(r); // keeps the buffer
    return t;
  }
};
} // namespace mlxc

static_assert((int)DType::boolean == (int)mlx::rt::DType::boolean &&
                  (int)DType::i64 == (int)mlx::rt::DType::i64 &&
                  (int)DType::f64 == (int)mlx::rt::DType::f64,
              "the public dtypes mirror the runtime's");

const char *mlxc::dtypeName(DType dtype) {
  return mlx::rt::dtypeName((mlx::rt::DType)dtype);
}

size_t mlxc::dtypeSize(DType dtype) {
  return mlx::rt::dtypeSize((mlx::rt::DType)dtype);
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape) {
  return TensorAccess::fromRuntime(
      mlx::rt::Tensor::allocate((mlx::rt::DType)dtype, std::move(shape)));
}

Tensor Tensor::copyOf(DType dtype, std::vector<int64_t> shape,
                      const void *data) {
  Tensor t = zeros(dtype, std::move(shape));
  std::memcpy(t.base, data, t.numElements() * dtypeSize(dtype));
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape, void *data,
                    std::vector<int64_t> strides) {
  if (strides.empty()) {
    strides.assign(shape.size(), 1);
    for (size_t k = shape.size(); k-- > 1;)
      strides[k - 1] = strides[k] * shape[k];
  }
  return TensorAccess::fromRuntime(mlx::rt::Tensor::view(
      (mlx::rt::DType)dtype, std::move(shape), std::move(strides), data));
}

int64_t Tensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

double Tensor::at(int64_t flat) const {
  return TensorAccess::toRuntime(*this).getDouble(flat);
}

//===----------------------------------------------------------------------===//
// Modules and functions
//===----------------------------------------------------------------------===//

/// An error's text (the CLI's diagnostics, or a plain message).
static std::string textOf(llvm::Error error) {
  std::string text;
  llvm::handleAllErrors(
      std::move(error), [&](const mlx::DiagnosticError &d) { text = d.text(); },
      [&](const llvm::ErrorInfoBase &e) {
        text = "error: " + e.message() + "\n";
      });
  return text;
}

namespace mlxc::detail {
struct ModuleState {
  std::unique_ptr<mlx::Session> session;
  mlx::CompileOptions options;
};

struct FunctionState {
  std::shared_ptr<ModuleState> module;
  const mlx::ast::Function *function;
  /// Empty for the function itself.
  std::vector<int64_t> wrt;
  bool withValue = false;
  /// The compiled instances, by entry-point name.
  struct Instance {
    std::unique_ptr<mlx::Module> code;
    mlx::rt::Signature signature;
  };
  std::mutex mutex;
  std::map<std::string, Instance> instances;
  /// The instance of each argumentKey seen (a call's fast path).
  std::map<std::string, const Instance *> byArguments;

  /// What picks the instance, read off the arguments alone: each one's
  /// dtype and rank, and a static one's value.
  std::string argumentKey(const std::vector<mlx::rt::Tensor> &args) const {
    std::string key;
    for (auto [k, a] : llvm::enumerate(args)) {
      key += std::to_string((int)a.dtype()) + ":" + std::to_string(a.rank());
      if (k < function->params.size() && function->params[k].isStatic &&
          a.rank() == 0)
        key += "=" + std::to_string((int64_t)a.getDouble(0));
      key += ",";
    }
    return key;
  }

  /// The instance for `args`, compiled on first use; later calls with the
  /// same argumentKey find it without the session.
  Expected<const Instance *>
  instanceFor(const std::vector<mlx::rt::Tensor> &args) {
    std::string key = argumentKey(args);
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = byArguments.find(key); it != byArguments.end())
      return it->second;
    mlx::Session &session = *module->session;
    auto request = session.requestFor(*function, args);
    if (!request)
      return Expected<const Instance *>::failure(textOf(request.takeError()));
    request->wrt = wrt;
    mlx::rt::Signature signature = session.signature(*request);
    auto found = instances.find(signature.name);
    if (found == instances.end()) {
      auto code = session.compile({*request}, module->options);
      if (!code)
        return Expected<const Instance *>::failure(textOf(code.takeError()));
      found = instances.emplace(signature.name, Instance{}).first;
      found->second.code = std::move(*code);
      found->second.signature = std::move(signature);
    }
    return byArguments[key] = &found->second;
  }
};
} // namespace mlxc::detail

Expected<std::vector<Tensor>>
Function::operator()(const std::vector<Tensor> &args) const {
  using Result = Expected<std::vector<Tensor>>;
  std::vector<mlx::rt::Tensor> runtimeArgs;
  for (const Tensor &a : args)
    runtimeArgs.push_back(TensorAccess::toRuntime(a));
  auto instance = state->instanceFor(runtimeArgs);
  if (!instance)
    return Result::failure(instance.error());
  const auto &[code, signature] = **instance;
  auto results = code->call(signature.name, std::move(runtimeArgs));
  if (!results)
    return Result::failure(textOf(results.takeError()));
  // A gradient's entry returns the function's results first.
  size_t skip = state->wrt.empty() || state->withValue
                    ? 0
                    : results->size() - state->wrt.size();
  std::vector<Tensor> out;
  for (size_t k = skip; k < results->size(); ++k)
    out.push_back(TensorAccess::fromRuntime((*results)[k]));
  return out;
}

const std::string &Function::name() const { return state->function->name; }

std::vector<std::string> Function::parameters() const {
  std::vector<std::string> names;
  for (const mlx::ast::Param &p : state->function->params)
    names.push_back(p.name);
  return names;
}

Expected<Function> Module::lookup(const std::string &name,
                                  const std::vector<std::string> *wrt,
                                  bool withValue) const {
  mlx::Session &session = *state->session;
  auto fn = session.function(name);
  if (!fn)
    return Expected<Function>::failure(textOf(fn.takeError()));
  auto functionState = std::make_shared<detail::FunctionState>();
  functionState->module = state;
  functionState->function = *fn;
  functionState->withValue = withValue;
  if (wrt) {
    auto parameters = session.gradientParameters(**fn, *wrt);
    if (!parameters)
      return Expected<Function>::failure(textOf(parameters.takeError()));
    functionState->wrt = *parameters;
  }
  return Function(std::move(functionState));
}

Expected<Function> Module::function(const std::string &name) const {
  return lookup(name, nullptr, false);
}

Expected<Function> Module::grad(const std::string &name,
                                const std::vector<std::string> &wrt) const {
  return lookup(name, &wrt, false);
}

Expected<Function>
Module::valueAndGrad(const std::string &name,
                     const std::vector<std::string> &wrt) const {
  return lookup(name, &wrt, true);
}

std::vector<std::string> Module::functions() const {
  std::vector<std::string> names;
  for (const auto &fn : state->session->mainModule().functions)
    names.push_back(fn->name);
  return names;
}

//===----------------------------------------------------------------------===//
// Compiler
//===----------------------------------------------------------------------===//

Expected<Compiler> Compiler::create(Options options) {
  // The session checks the backend; one is made to find out now.
  auto session = mlx::Session::create({options.importPaths, options.backend});
  if (!session)
    return Expected<Compiler>::failure(textOf(session.takeError()));
  if (llvm::Error err =
          (*session)->checkCodegen({options.optLevel, options.cpu}))
    return Expected<Compiler>::failure(textOf(std::move(err)));
  return Compiler(std::move(options));
}

Expected<Module> Compiler::compile(const std::string *path,
                                   const std::string &source,
                                   const std::string &name) const {
  auto session = mlx::Session::create({options.importPaths, options.backend});
  if (!session)
    return Expected<Module>::failure(textOf(session.takeError()));
  llvm::Error loaded =
      path ? (*session)->loadFile(*path) : (*session)->loadSource(name, source);
  if (loaded)
    return Expected<Module>::failure(textOf(std::move(loaded)));
  // Every function is checked now (as `mlxc check` does), so that errors
  // come with the module rather than at a first call.
  if (llvm::Error err = (*session)->checkAll())
    return Expected<Module>::failure(textOf(std::move(err)));
  auto state = std::make_shared<detail::ModuleState>();
  state->session = std::move(*session);
  state->options = {options.checkNumerics,
                    options.loopCheckpointInterval,
                    mlx::CacheUse::Use,
                    {options.optLevel, options.cpu}};
  return Module(std::move(state));
}

Expected<Module> Compiler::compileFile(const std::string &path) const {
  return compile(&path, "", path);
}

Expected<Module> Compiler::compileSource(const std::string &source,
                                         const std::string &name) const {
  return compile(nullptr, source, name);
}
