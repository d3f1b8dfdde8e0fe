//===- Session.cpp - one compile session: source to callable code ------===//
#include "session/Session.h"

#include "codegen/cpu/CpuTarget.h"
#ifdef MLX_HAVE_VULKAN
#include "codegen/vulkan/VulkanTarget.h"
#endif
#include "frontend/Compiler.h"
#include "frontend/DiagnosticPrinter.h"
#include "frontend/RaiseToSource.h"
#include "frontend/SourcePrinter.h"
#include "passes/Passes.h"
#include "runtime/Numerics.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"

#include <cmath>
#include <mutex>

using namespace mlx;

char DiagnosticError::ID = 0;

static llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

//===----------------------------------------------------------------------===//
// Session
//===----------------------------------------------------------------------===//

struct Session::Impl {
  Impl(SessionOptions options, std::unique_ptr<Target> target,
       const mlir::DialectRegistry &registry)
      : options(std::move(options)), target(std::move(target)),
        ctx(registry, mlir::MLIRContext::Threading::DISABLED),
        diagnosticStream(diagnostics),
        printer(ctx, sourceMgr, diagnosticStream),
        compiler(ctx, sourceMgr, this->options.importPaths) {
    ctx.printOpOnDiagnostic(false);
  }

  /// The diagnostics printed since the last call, as an error value.
  llvm::Error takeError() {
    std::string text = std::move(diagnostics);
    diagnostics.clear();
    if (text.empty())
      return fail("compilation failed");
    return llvm::make_error<DiagnosticError>(std::move(text));
  }

  llvm::Error errorAt(mlir::Location loc, const llvm::Twine &message) {
    mlir::emitError(loc) << message.str();
    return takeError();
  }

  SessionOptions options;
  std::unique_ptr<Target> target;
  mlir::MLIRContext ctx;
  llvm::SourceMgr sourceMgr;
  std::string diagnostics;
  llvm::raw_string_ostream diagnosticStream;
  DiagnosticPrinter printer;
  Compiler compiler;
  /// The main file's name, for errors that have no line.
  std::string mainFile;
  /// Held by every session method and by a module call's error path: the
  /// context and the diagnostics buffer are one thread's at a time
  /// (recursive: methods call each other).
  std::recursive_mutex mutex;
};

/// Locks a session for the rest of the scope.
#define MLX_LOCK_SESSION(implPtr)                                              \
  std::lock_guard<std::recursive_mutex> sessionLock((implPtr)->mutex)

llvm::Expected<std::unique_ptr<Session>>
Session::create(SessionOptions options) {
  std::unique_ptr<Target> target;
  if (options.backend == "cpu")
    target = createCpuTarget();
  else if (options.backend == "vulkan") {
#ifdef MLX_HAVE_VULKAN
    auto vulkan = createVulkanTarget();
    if (!vulkan)
      return vulkan.takeError();
    target = std::move(*vulkan);
#else
    return fail("this build of mlxc has no Vulkan backend (--backend "
                "vulkan; configure with -DMLX_VULKAN=ON, as scripts/setup.sh "
                "does); --backend cpu is available");
#endif
  } else
    return fail("unknown backend '" + options.backend +
                "' (--backend cpu or vulkan)");
  mlir::DialectRegistry registry;
  mlir::mlx::registerMlxLevelDialects(registry);
  target->registerDialects(registry);
  return std::unique_ptr<Session>(new Session(
      std::make_unique<Impl>(std::move(options), std::move(target), registry)));
}

Session::Session(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
Session::~Session() = default;

llvm::Error Session::loadFile(const std::string &path) {
  MLX_LOCK_SESSION(impl);
  impl->mainFile = path;
  if (!impl->compiler.loadFile(path))
    return impl->takeError();
  return llvm::Error::success();
}

llvm::Error Session::loadSource(const std::string &name,
                                const std::string &source) {
  MLX_LOCK_SESSION(impl);
  impl->mainFile = name;
  if (!impl->compiler.loadSource(name, source))
    return impl->takeError();
  return llvm::Error::success();
}

std::string Session::device() const { return impl->target->device(); }

rt::Tensor Session::toDevice(const rt::Tensor &t) const {
  return impl->target->toDevice(t);
}

rt::Tensor Session::fromDevice(const rt::Tensor &t) const {
  return impl->target->fromDevice(t);
}

const ast::Module &Session::mainModule() const {
  return impl->compiler.mainModule();
}

llvm::Expected<const ast::Function *> Session::function(llvm::StringRef name) {
  MLX_LOCK_SESSION(impl);
  if (const ast::Function *fn = impl->compiler.findFunction(name.str()))
    return fn;
  std::vector<std::string> names;
  for (const auto &fn : mainModule().functions)
    names.push_back(fn->name);
  std::string text =
      impl->mainFile + ": error: no function '" + name.str() + "'" +
      didYouMean(name, names) +
      (names.empty() ? "" : " (it defines: " + llvm::join(names, ", ") + ")") +
      "\n";
  return llvm::make_error<DiagnosticError>(std::move(text));
}

std::vector<ExportRequest> Session::allExports() const {
  return impl->compiler.allExports();
}

llvm::Error Session::checkAll() {
  MLX_LOCK_SESSION(impl);
  auto module = lower(allExports(), Stage::Mlx);
  if (!module)
    return module.takeError();
  bool ok = true;
  for (const auto &fn : mainModule().functions)
    if (llvm::any_of(fn->params,
                     [](const ast::Param &p) { return p.isStatic; }))
      ok &= impl->compiler.sema()
                .check(*fn, fn->isShapePolymorphic() ? 1 : 0, rt::DType::f32,
                       {}, /*symbolicStatics=*/true)
                ->ok;
  return ok ? llvm::Error::success() : impl->takeError();
}

llvm::Error Session::errorAt(const ast::Loc &loc, const llvm::Twine &message) {
  MLX_LOCK_SESSION(impl);
  return impl->errorAt(impl->compiler.location(loc), message);
}

llvm::Error Session::checkCodegen(const CodegenOptions &options) {
  return impl->target->checkOptions(options);
}

llvm::Expected<std::vector<int64_t>>
Session::gradientParameters(const ast::Function &fn,
                            llvm::ArrayRef<std::string> names) {
  MLX_LOCK_SESSION(impl);
  if (auto wrt = impl->compiler.sema().gradientParameters(fn, names))
    return *wrt;
  return impl->takeError();
}

llvm::Expected<rt::DType>
Session::floatType(const ast::Function &fn,
                   llvm::ArrayRef<std::optional<rt::DType>> argumentDTypes) {
  MLX_LOCK_SESSION(impl);
  if (auto dtype = impl->compiler.sema().floatType(fn, argumentDTypes))
    return *dtype;
  return impl->takeError();
}

llvm::Expected<ExportRequest>
Session::requestFor(const ast::Function &fn, llvm::ArrayRef<rt::Tensor> args,
                    std::optional<rt::DType> floatType) {
  MLX_LOCK_SESSION(impl);
  if (args.size() != fn.params.size())
    return errorAt(fn.loc, "'" + fn.name + "' takes " +
                               llvm::Twine(fn.params.size()) +
                               " arguments but " + llvm::Twine(args.size()) +
                               " were given");
  ExportRequest request{&fn};
  if (!floatType) {
    std::vector<std::optional<rt::DType>> dtypes;
    for (const rt::Tensor &a : args)
      dtypes.push_back(a.dtype());
    auto fromArguments = this->floatType(fn, dtypes);
    if (!fromArguments)
      return fromArguments.takeError();
    floatType = *fromArguments;
  }
  request.floatType = *floatType;
  for (auto [k, p] : llvm::enumerate(fn.params)) {
    if (p.type.isAnyShape() && request.anyShapeRank == 0)
      request.anyShapeRank = args[k].rank();
    if (!p.isStatic)
      continue;
    // (A static declared float is Sema's error, found when compiling.)
    if (args[k].rank() != 0 ||
        (rt::isFloat(args[k].dtype()) && !rt::isFloat(p.type.dtype)))
      return errorAt(
          p.loc,
          "static parameter '" + p.name + "' needs one integer, got " +
              (args[k].rank() != 0
                   ? "shape " + rt::formatShape(args[k].shape())
                   : std::string("an ") + rt::dtypeName(args[k].dtype())));
    request.statics[p.name] = (int64_t)args[k].getDouble(0);
  }
  return request;
}

rt::Signature Session::signature(const ExportRequest &request) const {
  MLX_LOCK_SESSION(impl);
  return impl->compiler.signature(request);
}

llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
Session::lower(const std::vector<ExportRequest> &exports, Stage stage,
               CompileOptions options) {
  MLX_LOCK_SESSION(impl);
  mlir::OwningOpRef<mlir::ModuleOp> module = impl->compiler.generate(exports);
  if (!module || mlir::failed(mlir::verify(*module)))
    return impl->takeError();
  if (stage == Stage::Mlx)
    return std::move(module);
  mlir::PassManager pm(&impl->ctx);
  if (stage == Stage::Grad) {
    mlir::mlx::buildMlxGradPipeline(pm, options.loopCheckpointInterval);
  } else {
    mlir::mlx::buildMlxToLinalgPipeline(
        pm, options.checkNumerics, options.loopCheckpointInterval,
        options.codegen.onlineSoftmax && impl->target->name() == "cpu");
    if (stage == Stage::Target)
      impl->target->buildPipeline(pm, options.codegen);
  }
  if (mlir::failed(pm.run(*module)))
    return impl->takeError();
  return std::move(module);
}

/// A copy of `d` with static parameters' names replaced by their values.
static std::unique_ptr<ast::DimExpr> cloneDim(const ast::DimExpr &d,
                                              const StaticValues &statics) {
  auto c = std::make_unique<ast::DimExpr>();
  c->kind = d.kind;
  c->loc = d.loc;
  c->value = d.value;
  c->name = d.name;
  if (auto it = statics.find(d.name);
      d.kind == ast::DimExpr::Kind::Sym && it != statics.end()) {
    c->kind = ast::DimExpr::Kind::Int;
    c->value = it->second;
  }
  if (d.lhs)
    c->lhs = cloneDim(*d.lhs, statics);
  if (d.rhs)
    c->rhs = cloneDim(*d.rhs, statics);
  return c;
}

/// `t` for the printed gradient: statics as their values, `[...]` as the
/// instance's rank of dims D1, D2, ….
static ast::TypeSpec cloneType(const ast::TypeSpec &t,
                               const ExportRequest &request) {
  ast::TypeSpec c;
  c.loc = t.loc;
  c.dtype = t.dtype;
  if (t.isAnyShape()) {
    for (int64_t k = 1; k <= request.anyShapeRank; ++k) {
      c.dims.push_back(std::make_unique<ast::DimExpr>());
      c.dims.back()->kind = ast::DimExpr::Kind::Sym;
      c.dims.back()->name = "D" + std::to_string(k);
    }
    return c;
  }
  for (const auto &d : t.dims)
    c.dims.push_back(cloneDim(*d, request.statics));
  return c;
}

llvm::Expected<std::string>
Session::deriveSource(const ExportRequest &request) {
  MLX_LOCK_SESSION(impl);
  const ast::Function &fn = *request.function;
  auto module = lower({request}, Stage::Grad);
  if (!module)
    return module.takeError();
  std::string name = exportName(request);
  auto func = (*module)->lookupSymbol<mlir::func::FuncOp>(name);
  // The gradients only: the function's own results go, and with them what
  // only they needed; mapped calls become equations over all indices.
  auto ret =
      mlir::cast<mlir::func::ReturnOp>(func.getBody().front().getTerminator());
  llvm::SmallVector<mlir::Value> grads(
      ret.getOperands().drop_front(fn.results.size()));
  mlir::OpBuilder(ret).create<mlir::func::ReturnOp>(ret.getLoc(), grads);
  ret.erase();
  func.setType(mlir::FunctionType::get(&impl->ctx, func.getArgumentTypes(),
                                       mlir::ValueRange(grads).getTypes()));
  // Static parameters are their values in the printed program.
  llvm::BitVector statics(fn.params.size());
  mlir::OpBuilder b(func.getBody());
  for (auto [k, p] : llvm::enumerate(fn.params)) {
    if (!p.isStatic)
      continue;
    statics.set(k);
    mlir::BlockArgument arg = func.getArgument(k);
    auto type = mlir::cast<mlir::RankedTensorType>(arg.getType());
    arg.replaceAllUsesWith(b.create<mlir::arith::ConstantOp>(
        func.getLoc(),
        mlir::DenseElementsAttr::get(
            type, b.getIntegerAttr(type.getElementType(),
                                   request.statics.at(p.name)))));
  }
  func.eraseArguments(statics);
  mlir::PassManager pm(&impl->ctx);
  pm.addPass(mlir::mlx::createBatchMapCallsPass());
  mlir::mlx::buildMlxSimplifyPipeline(pm);
  if (mlir::failed(pm.run(**module)))
    return impl->takeError();

  ast::Function gradient;
  gradient.name = name;
  std::vector<std::string> resultNames;
  for (const ast::Param &p : fn.params) {
    if (p.isStatic)
      continue;
    gradient.params.push_back({p.loc, p.name, cloneType(p.type, request)});
  }
  for (int64_t k : request.wrt) {
    gradient.results.push_back(cloneType(fn.params[k].type, request));
    resultNames.push_back("d" + fn.params[k].name);
  }
  if (llvm::Error err = raiseToSource(func, gradient, resultNames))
    return errorAt(fn.loc, "cannot derive '" + fn.name + "' as source yet: " +
                               llvm::toString(std::move(err)));
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::SmallVector<std::string> wrt;
  for (int64_t k : request.wrt)
    wrt.push_back(fn.params[k].name);
  os << "# The gradient of " << fn.name << " ("
     << llvm::sys::path::filename(*fn.loc.file) << ":" << fn.loc.line
     << ") with respect to " << llvm::join(wrt, ", ")
     << ", derived by mlxc: for a result that is not one scalar, the "
        "gradient of the sum of its elements.\n";
  ast::printSource(gradient, os);
  return text;
}

llvm::Error Session::printTarget(mlir::ModuleOp module, llvm::StringRef stage,
                                 llvm::raw_ostream &os) {
  MLX_LOCK_SESSION(impl);
  return impl->target->printLowered(module, stage, os);
}

llvm::Error Session::build(const std::vector<ExportRequest> &exports,
                           llvm::StringRef path, CompileOptions options) {
  MLX_LOCK_SESSION(impl);
  if (llvm::Error err = impl->target->checkArtefactPath(path))
    return err;
  if (llvm::Error err = impl->target->checkOptions(options.codegen))
    return err;
  auto module = lower(exports, Stage::Target, options);
  if (!module)
    return module.takeError();
  std::vector<rt::Signature> signatures;
  for (const ExportRequest &r : exports)
    signatures.push_back(signature(r));
  return impl->target->emit(**module, signatures, path, impl->mainFile,
                            options.codegen);
}

//===----------------------------------------------------------------------===//
// Module
//===----------------------------------------------------------------------===//

struct Module::Impl {
  struct Entry {
    rt::Signature signature;
    const ast::Function *function;
  };
  Session::Impl *session;
  std::unique_ptr<rt::Executable> executable;
  std::vector<Entry> entries;
  CompileOptions options;
  /// What run-time checks report, by id.
  std::vector<mlir::mlx::BoundsCheck> boundsChecks;
  std::vector<mlir::Location> numericsChecks;
  BinarySource source = BinarySource::Compiled;

  const Entry *find(llvm::StringRef name) const {
    for (const Entry &e : entries)
      if (e.signature.name == name)
        return &e;
    return nullptr;
  }
};

Module::Module(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
Module::~Module() = default;

/// The signature of `request`, and for a trace request the traced values
/// after its results, as generation made them (`mlx.trace_names`).
rt::Signature Session::withTraceResults(const ExportRequest &request,
                                        mlir::ModuleOp module) const {
  rt::Signature sig = signature(request);
  if (!request.trace)
    return sig;
  auto func = module.lookupSymbol<mlir::func::FuncOp>(sig.name);
  auto names = func->getAttrOfType<mlir::ArrayAttr>("mlx.trace_names");
  mlir::TypeRange types = func.getFunctionType().getResults().drop_front(
      func.getNumResults() - names.size());
  auto lines = func->getAttrOfType<mlir::DenseI64ArrayAttr>("mlx.trace_lines");
  for (auto [name, type, line] : llvm::zip(names, types, lines.asArrayRef())) {
    auto tensor = mlir::cast<mlir::RankedTensorType>(type);
    mlir::Type element = tensor.getElementType();
    rt::DType dtype = element.isF32()         ? rt::DType::f32
                      : element.isF64()       ? rt::DType::f64
                      : element.isInteger(1)  ? rt::DType::boolean
                      : element.isInteger(32) ? rt::DType::i32
                                              : rt::DType::i64;
    sig.results.push_back({mlir::cast<mlir::StringAttr>(name).str(), dtype,
                           tensor.getRank(), line});
  }
  return sig;
}

llvm::Expected<std::unique_ptr<Module>>
Session::compile(const std::vector<ExportRequest> &exports,
                 CompileOptions options) {
  MLX_LOCK_SESSION(impl);
  if (llvm::Error err = impl->target->checkOptions(options.codegen))
    return std::move(err);
  auto module = lower(exports, Stage::Linalg, options);
  if (!module)
    return module.takeError();
  auto moduleImpl = std::make_unique<Module::Impl>();
  moduleImpl->session = impl.get();
  moduleImpl->options = options;
  moduleImpl->boundsChecks = mlir::mlx::boundsChecks(**module);
  moduleImpl->numericsChecks = mlir::mlx::numericsCheckLocations(**module);
  std::vector<rt::Signature> signatures;
  for (const ExportRequest &r : exports)
    signatures.push_back(withTraceResults(r, **module));

  // The key: the module at the linalg level (every target's input) and what
  // compiling it further depends on.
  std::string key;
  if (options.cache != CacheUse::Off) {
    std::string text;
    llvm::raw_string_ostream os(text);
    (*module)->print(os);
    key = compile_cache::keyOf(
        {text, impl->target->name().str(),
         impl->target->binaryKey(options.codegen),
         std::to_string(options.checkNumerics) + " " +
             std::to_string(options.loopCheckpointInterval) + " " +
             std::to_string(options.codegen.onlineSoftmax) + " " +
             std::to_string(options.codegen.rowBlocks)});
  }
  auto compileNow = [&]() -> llvm::Expected<std::string> {
    mlir::PassManager pm(&impl->ctx);
    impl->target->buildPipeline(pm, options.codegen);
    if (mlir::failed(pm.run(**module)))
      return impl->takeError();
    auto binary = impl->target->compileBinary(**module, options.codegen);
    if (binary && !key.empty())
      compile_cache::store(key, *binary);
    return binary;
  };
  std::optional<std::string> cached;
  if (options.cache == CacheUse::Use)
    cached = compile_cache::find(key, moduleImpl->source);
  auto executable =
      cached ? impl->target->loadBinary(*cached)
             : llvm::Expected<std::unique_ptr<rt::Executable>>(nullptr);
  if (!cached || !executable) {
    if (!executable) // a cached binary that does not load: compile again
      llvm::consumeError(executable.takeError());
    moduleImpl->source = BinarySource::Compiled;
    auto binary = compileNow();
    if (!binary)
      return binary.takeError();
    executable = impl->target->loadBinary(*binary);
    if (!executable)
      return executable.takeError();
  }
  moduleImpl->executable = std::move(*executable);
  for (auto [r, sig] : llvm::zip(exports, signatures)) {
    if (!moduleImpl->executable->exports(sig.name))
      return fail("no entry point for '" + sig.name + "'");
    moduleImpl->entries.push_back({std::move(sig), r.function});
  }
  return std::unique_ptr<Module>(new Module(std::move(moduleImpl)));
}

BinarySource Module::source() const { return impl->source; }

const rt::Signature *Module::signature(llvm::StringRef name) const {
  const Impl::Entry *entry = impl->find(name);
  return entry ? &entry->signature : nullptr;
}

llvm::Expected<std::vector<rt::Tensor>>
Module::call(llvm::StringRef name, std::vector<rt::Tensor> args) const {
  const Impl::Entry *entry = impl->find(name);
  if (!entry)
    return fail("no compiled function '" + name + "'");
  Session::Impl &session = *impl->session;
  const ast::Function &fn = *entry->function;
  // Calls run concurrently; only their errors need the session.
  auto errorAt = [&](mlir::Location loc, const llvm::Twine &message) {
    MLX_LOCK_SESSION(&session);
    return session.errorAt(loc, message);
  };
  auto errorAtSource = [&](const ast::Loc &loc, const llvm::Twine &message) {
    MLX_LOCK_SESSION(&session);
    return session.errorAt(session.compiler.location(loc), message);
  };
  std::string error;
  if (!rt::checkArguments(entry->signature, args, error))
    return errorAtSource(fn.loc, error);
  if (impl->options.checkNumerics)
    for (auto [k, a] : llvm::enumerate(args))
      if (rt::isFloat(a.dtype()))
        for (int64_t i = 0; i < a.numElements(); ++i)
          if (!std::isfinite(a.getDouble(i)))
            return errorAtSource(
                fn.params[k].loc,
                "argument '" + fn.params[k].name + "' holds " +
                    (std::isnan(a.getDouble(i)) ? "NaN" : "an infinity") +
                    " at element " + std::to_string(i) + " (--check-numerics)");
  rt::CallReports scope;
  std::vector<rt::Tensor> results =
      impl->executable->call(entry->signature, args);
  if (auto report = rt::takeBoundsReport()) {
    rt::takeCallError();
    rt::takeNumericsReport();
    const mlir::mlx::BoundsCheck &c = impl->boundsChecks.at(report->id);
    if (c.dim < 0) // a `check` statement
      return errorAt(c.loc, "check failed: " + c.tensor);
    return errorAt(c.loc,
                   rt::outOfRangeMessage(*report, c.dim, c.tensor, c.sizeName));
  }
  // (after a bounds report, which explains a failure that follows from it)
  if (auto error = rt::takeCallError()) {
    rt::takeNumericsReport();
    return fail(*error);
  }
  if (auto report = rt::takeNumericsReport())
    return errorAt(impl->numericsChecks.at(report->id),
                   llvm::Twine("first ") + (report->nan ? "NaN" : "infinity") +
                       " produced here (--check-numerics)");
  return results;
}
