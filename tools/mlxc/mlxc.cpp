//===- mlxc.cpp - the mlxc command-line driver ------------------*- C++ -*-===//
//
//   mlxc check FILE
//   mlxc emit  FILE --stage=ast|mlx|linalg|llvm [-f NAME]
//   mlxc run   FILE -f NAME [--arg NAME=VALUE]... [--json] [--save DIR]
//   mlxc build FILE -o OUT.{o,so} [-f NAME]...
//   common: -I DIR (import search path; $MLX_PATH too)
//
// Exit code 0 on success, 1 on a user error (a file:line:col diagnostic
// with a caret line), never a crash. Outputs are written to a temporary file
// and renamed into place, so a failure leaves no partial file.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"
#include "frontend/ASTPrinter.h"
#include "frontend/Compiler.h"
#include "frontend/DiagnosticPrinter.h"
#include "passes/Passes.h"
#include "runtime/Call.h"
#include "runtime/Numerics.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <unistd.h>

using namespace mlx;

namespace {

const char *kUsage = R"(usage:
  mlxc check FILE                       parse and check every function
  mlxc emit  FILE --stage=STAGE [-f NAME]
                                        print a stage: ast, mlx, grad, linalg,
                                        llvm (--grad ARG: of NAME's gradient)
  mlxc run   FILE -f NAME [--arg NAME=VALUE]... [--grad ARG[,ARG]...]
             [--json] [--save DIR] [--check-numerics]
                                        compile NAME and run it on the CPU;
                                        VALUE is a literal ([1,2], 3.5) or .npy;
                                        --grad adds the gradients dARG;
                                        --check-numerics reports the first op
                                        producing NaN/Inf
  mlxc bench FILE -f NAME [--arg NAME=VALUE]... [--grad ARG,...]
             [--repeat N] [--json]      time calls after a warm-up (compile
                                        time apart)
  mlxc build FILE -o OUT [-f NAME]...   write OUT.o or OUT.so plus OUT.h
options:
  -I DIR      add an import search path ($MLX_PATH is searched too)
  --backend B where run, bench and build compile for: cpu (the default);
              vulkan needs a build with the Vulkan backend
)";

struct Options {
  std::string command, file, stage, output, saveDir, backend = "cpu";
  std::vector<std::string> functions, importPaths, grads;
  std::vector<std::pair<std::string, std::string>> args;
  bool json = false, checkNumerics = false;
  int repeat = 10;
};

int usageError(const std::string &msg) {
  llvm::errs() << "mlxc: error: " << msg << "\n" << kUsage;
  return 1;
}

int fail(const std::string &msg) {
  llvm::errs() << "mlxc: error: " << msg << "\n";
  return 1;
}

/// Options that take one string value.
struct StringOption {
  const char *flag;
  std::string Options::*field;
  const char *what;
};
const StringOption stringOptions[] = {
    {"--stage", &Options::stage, "a value"},
    {"-o", &Options::output, "a path"},
    {"--save", &Options::saveDir, "a directory"},
    {"--backend", &Options::backend, "cpu or vulkan"},
};

/// Parses argv; returns an exit code when parsing ends the run.
std::optional<int> parseOptions(int argc, char **argv, Options &opts) {
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string &flag) -> std::optional<std::string> {
      if (a.size() > flag.size() &&
          a.compare(0, flag.size() + 1, flag + "=") == 0)
        return a.substr(flag.size() + 1);
      if (a == flag) {
        if (i + 1 >= argc)
          return std::nullopt;
        return std::string(argv[++i]);
      }
      return std::nullopt;
    };
    auto is = [&](const std::string &flag) {
      return a == flag || a.compare(0, flag.size() + 1, flag + "=") == 0;
    };
    if (a == "-h" || a == "--help") {
      llvm::outs() << kUsage;
      return 0;
    }
    if (a == "--json") {
      opts.json = true;
    } else if (a == "--check-numerics") {
      opts.checkNumerics = true;
    } else if (auto it = llvm::find_if(
                   stringOptions,
                   [&](const StringOption &o) { return is(o.flag); });
               it != std::end(stringOptions)) {
      auto v = value(it->flag);
      if (!v)
        return usageError(std::string(it->flag) + " needs " + it->what);
      opts.*(it->field) = *v;
    } else if (is("-f") || is("--function")) {
      auto v = value(is("-f") ? "-f" : "--function");
      if (!v)
        return usageError("-f needs a function name");
      opts.functions.push_back(*v);
    } else if (is("--grad")) {
      auto v = value("--grad");
      if (!v || v->empty())
        return usageError("--grad needs ARG[,ARG...]");
      llvm::SmallVector<llvm::StringRef> names;
      llvm::StringRef(*v).split(names, ',', -1, false);
      for (llvm::StringRef n : names)
        opts.grads.push_back(n.trim().str());
    } else if (is("--repeat")) {
      auto v = value("--repeat");
      int n = v ? std::atoi(v->c_str()) : 0;
      if (n < 1)
        return usageError("--repeat needs a positive count");
      opts.repeat = n;
    } else if (is("--arg")) {
      auto v = value("--arg");
      if (!v || v->find('=') == std::string::npos)
        return usageError("--arg needs NAME=VALUE");
      size_t eq = v->find('=');
      opts.args.push_back({v->substr(0, eq), v->substr(eq + 1)});
    } else if (a.compare(0, 2, "-I") == 0) {
      std::string dir = a.substr(2);
      if (dir.empty()) {
        if (i + 1 >= argc)
          return usageError("-I needs a directory");
        dir = argv[++i];
      }
      opts.importPaths.push_back(dir);
    } else if (a.size() > 1 && a[0] == '-') {
      return usageError("unknown option '" + a + "'");
    } else {
      rest.push_back(a);
    }
  }
  if (rest.empty())
    return usageError("no command given");
  opts.command = rest[0];
  if (rest.size() < 2)
    return usageError("'" + opts.command + "' needs a FILE");
  if (rest.size() > 2)
    return usageError("unexpected argument '" + rest[2] + "'");
  opts.file = rest[1];
  if (opts.backend == "vulkan")
    return fail("this build of mlxc has no Vulkan backend (--backend vulkan); "
                "--backend cpu is available");
  if (opts.backend != "cpu")
    return usageError("unknown backend '" + opts.backend +
                      "' (--backend cpu or vulkan)");
  return std::nullopt;
}

/// Writes `text` to `path` through a temporary file renamed into place.
bool writeAtomically(const std::string &path,
                     const std::function<bool(llvm::raw_ostream &)> &write,
                     std::string &error) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(tmp, ec);
    if (ec) {
      error = "cannot write '" + path + "': " + ec.message();
      return false;
    }
    if (!write(os) || os.has_error()) {
      os.clear_error();
      llvm::sys::fs::remove(tmp);
      if (error.empty())
        error = "cannot write '" + path + "'";
      return false;
    }
  }
  return rt::commitFile(tmp, path, error);
}

/// Everything one invocation shares: context, sources, diagnostics.
class Driver {
public:
  Driver(const Options &opts) : opts(opts) {
    mlir::DialectRegistry registry;
    mlir::mlx::registerMlxLevelDialects(registry);
    mlir::mlx::registerCpuTargetDialects(registry);
    ctx.appendDialectRegistry(registry);
    ctx.printOpOnDiagnostic(false);
    handler = std::make_unique<DiagnosticPrinter>(ctx, sourceMgr, llvm::errs());
    compiler = std::make_unique<Compiler>(ctx, sourceMgr, opts.importPaths);
  }

  int run() {
    if (opts.command != "check" && opts.command != "emit" &&
        opts.command != "run" && opts.command != "build" &&
        opts.command != "bench")
      return usageError("unknown command '" + opts.command + "'");
    if (!compiler->loadFile(opts.file))
      return 1;
    if (opts.command == "check")
      return check();
    if (opts.command == "emit")
      return emit();
    if (opts.command == "run" || opts.command == "bench")
      return runFunction();
    return build();
  }

private:
  /// The user's error at a source location; returns exit code 1.
  int errorAt(const ast::Loc &loc, const std::string &msg) {
    mlir::emitError(compiler->location(loc)) << msg;
    return 1;
  }

  std::optional<std::vector<ExportRequest>> requestedExports() {
    if (opts.functions.empty())
      return compiler->allExports();
    std::vector<ExportRequest> exports;
    for (const std::string &name : opts.functions) {
      const ast::Function *fn = compiler->findFunction(name);
      if (!fn) {
        noSuchFunction(name);
        return std::nullopt;
      }
      ExportRequest request{fn, fn->isShapePolymorphic() ? 1 : 0};
      if (!opts.grads.empty()) {
        auto wrt = gradIndices(*fn);
        if (!wrt)
          return std::nullopt;
        request.wrt = *wrt;
      }
      exports.push_back(request);
    }
    return exports;
  }

  void noSuchFunction(const std::string &name) {
    std::string known;
    std::vector<std::string> names;
    for (const auto &fn : compiler->mainModule().functions) {
      known += (known.empty() ? "" : ", ") + fn->name;
      names.push_back(fn->name);
    }
    llvm::errs() << opts.file << ": error: no function '" << name << "'"
                 << mlx::didYouMean(name, names)
                 << (known.empty() ? "" : " (it defines: " + known + ")")
                 << "\n";
  }

  static std::vector<std::string> paramNames(const ast::Function &fn) {
    std::vector<std::string> names;
    for (const ast::Param &p : fn.params)
      names.push_back(p.name);
    return names;
  }

  /// Parameter indices for --grad, or an error at the function.
  std::optional<std::vector<int64_t>> gradIndices(const ast::Function &fn) {
    std::vector<int64_t> wrt;
    for (const std::string &name : opts.grads) {
      auto it = llvm::find_if(
          fn.params, [&](const ast::Param &p) { return p.name == name; });
      if (it == fn.params.end()) {
        errorAt(fn.loc, "--grad " + name + ": '" + fn.name +
                            "' has no parameter '" + name + "'" +
                            mlx::didYouMean(name, paramNames(fn)));
        return std::nullopt;
      }
      if (!rt::isFloat(it->type.dtype)) {
        errorAt(it->loc, "--grad " + name +
                             ": cannot differentiate with respect to '" + name +
                             "', it is " + rt::dtypeName(it->type.dtype));
        return std::nullopt;
      }
      if (llvm::is_contained(wrt, it - fn.params.begin())) {
        errorAt(it->loc, "--grad " + name + ": '" + name + "' is given twice");
        return std::nullopt;
      }
      wrt.push_back(it - fn.params.begin());
    }
    if (!wrt.empty() && llvm::none_of(fn.results, [](const ast::TypeSpec &t) {
          return rt::isFloat(t.dtype);
        })) {
      errorAt(fn.loc, "--grad: '" + fn.name +
                          "' has no float result to differentiate (the "
                          "gradient is of the sum of its float results)");
      return std::nullopt;
    }
    return wrt;
  }

  int check() {
    auto module = compiler->generate(compiler->allExports());
    if (!module || mlir::failed(mlir::verify(*module)))
      return 1;
    return 0;
  }

  bool lower(mlir::ModuleOp module,
             llvm::function_ref<void(mlir::OpPassManager &)> build) {
    mlir::PassManager pm(&ctx);
    build(pm);
    return mlir::succeeded(pm.run(module));
  }

  int emit() {
    std::string stage = opts.stage.empty() ? "mlx" : opts.stage;
    if (stage == "ast") {
      printAST();
      return 0;
    }
    if (stage == "spirv")
      return fail("--stage=spirv needs the Vulkan backend, which is not built "
                  "yet");
    if (stage != "mlx" && stage != "grad" && stage != "linalg" &&
        stage != "llvm")
      return fail("unknown stage '" + stage +
                  "' (ast, mlx, grad, linalg, llvm, spirv)");
    auto exports = requestedExports();
    if (!exports)
      return 1;
    auto module = compiler->generate(*exports);
    if (!module || mlir::failed(mlir::verify(*module)))
      return 1;
    if (stage == "mlx") {
      module->print(llvm::outs());
      return 0;
    }
    if (stage == "grad") {
      if (!lower(*module, mlir::mlx::buildMlxGradPipeline))
        return 1;
      module->print(llvm::outs());
      return 0;
    }
    if (!lower(*module, [](mlir::OpPassManager &pm) {
          mlir::mlx::buildMlxToLinalgPipeline(pm);
        }))
      return 1;
    if (stage == "linalg") {
      module->print(llvm::outs());
      return 0;
    }
    if (!lower(*module, mlir::mlx::buildLinalgToLLVMPipeline))
      return 1;
    llvm::LLVMContext llvmCtx;
    std::string error;
    auto llvmModule = mlir::mlx::translateToLLVMIR(*module, llvmCtx, error);
    if (!llvmModule)
      return fail(error);
    llvmModule->print(llvm::outs(), nullptr);
    return 0;
  }

  void printAST() { ast::printModule(compiler->mainModule(), llvm::outs()); }

  int runFunction() {
    if (opts.functions.size() != 1)
      return fail(opts.command + " needs exactly one -f NAME");
    const ast::Function *fn = compiler->findFunction(opts.functions[0]);
    if (!fn) {
      noSuchFunction(opts.functions[0]);
      return 1;
    }
    // Arguments, by parameter name.
    std::map<std::string, std::string> given;
    for (const auto &arg : opts.args) {
      const std::string &name = arg.first, &value = arg.second;
      auto it = llvm::find_if(
          fn->params, [&](const ast::Param &p) { return p.name == name; });
      if (it == fn->params.end()) {
        std::vector<std::string> names = paramNames(*fn);
        return errorAt(
            fn->loc, "'" + fn->name + "' has no parameter '" + name + "'" +
                         mlx::didYouMean(name, names) +
                         " (its parameters: " + llvm::join(names, ", ") + ")");
      }
      if (!given.emplace(name, value).second)
        return errorAt(it->loc, "argument '" + name + "' is given twice");
    }
    // Read the .npy arguments first: an f64 array for an `f32` parameter
    // runs the function in f64, and literals then parse as f64 too.
    std::vector<rt::Tensor> args(fn->params.size());
    std::vector<bool> isFile(fn->params.size());
    rt::DType floatType = rt::DType::f32;
    for (auto [k, p] : llvm::enumerate(fn->params)) {
      auto it = given.find(p.name);
      if (it == given.end())
        return errorAt(fn->loc,
                       "'" + fn->name + "' takes " +
                           std::to_string(fn->params.size()) +
                           " arguments but " + std::to_string(given.size()) +
                           " were given; missing --arg " + p.name + "=VALUE");
      const std::string &value = it->second;
      isFile[k] = llvm::StringRef(value).ends_with(".npy") ||
                  llvm::sys::fs::is_regular_file(value);
      std::string error;
      if (isFile[k] && !rt::readNpy(value, args[k], error))
        return errorAt(p.loc, "argument '" + p.name + "': " + error);
      if (isFile[k] && p.type.dtype == rt::DType::f32 &&
          args[k].dtype() == rt::DType::f64)
        floatType = rt::DType::f64;
    }
    // A declared f32 stands for the arguments' float type: one per call.
    const ast::Param *f64Param = nullptr;
    for (auto [k, p] : llvm::enumerate(fn->params))
      if (isFile[k] && p.type.dtype == rt::DType::f32 &&
          args[k].dtype() == rt::DType::f64 && !f64Param)
        f64Param = &p;
    for (auto [k, p] : llvm::enumerate(fn->params))
      if (f64Param && isFile[k] && p.type.dtype == rt::DType::f32 &&
          args[k].dtype() == rt::DType::f32)
        return errorAt(
            p.loc, "argument '" + p.name + "' is an f32 .npy but '" +
                       f64Param->name + "' is f64: a parameter declared f32 " +
                       "runs in the float type of the arguments (f64 .npy " +
                       "files run the function in f64), so all of them must " +
                       "agree; save '" + p.name + "' as f64 or '" +
                       f64Param->name + "' as f32");
    int64_t anyShapeRank = -1;
    for (auto [k, p] : llvm::enumerate(fn->params)) {
      std::string error;
      rt::DType dtype = rt::instanceDType(p.type.dtype, floatType);
      if (!isFile[k] && !rt::parseLiteral(given[p.name], dtype, args[k], error))
        return errorAt(p.loc, "argument '" + p.name + "': " + error);
      if (p.type.isAnyShape() && anyShapeRank < 0)
        anyShapeRank = args[k].rank();
    }
    if (anyShapeRank < 0)
      anyShapeRank = 0;
    ExportRequest request{fn, anyShapeRank, floatType};
    auto wrt = gradIndices(*fn);
    if (!wrt)
      return 1;
    request.wrt = *wrt;
    rt::Signature sig = compiler->signature(request);
    std::string error;
    if (!rt::checkArguments(sig, args, error))
      return errorAt(fn->loc, error);

    auto start = std::chrono::steady_clock::now();
    auto module = compiler->generate({request});
    if (!module || mlir::failed(mlir::verify(*module)))
      return 1;
    if (!lower(*module, [&](mlir::OpPassManager &pm) {
          mlir::mlx::buildMlxToCpuPipeline(pm, opts.checkNumerics);
        }))
      return 1;
    // What a failing run-time bounds check says.
    std::vector<mlir::mlx::BoundsCheck> checks =
        mlir::mlx::boundsChecks(*module);
    auto outOfBounds = [&]() {
      auto report = rt::takeBoundsReport();
      if (!report)
        return false;
      const mlir::mlx::BoundsCheck &c = checks.at(report->id);
      mlir::emitError(c.loc)
          << "index " << report->index << " is out of range for dimension "
          << c.dim << " of '" << c.tensor << "' (size " << c.sizeName << " = "
          << report->size << ")";
      return true;
    };
    auto jit = mlir::mlx::JitModule::create(*module, error);
    if (!jit)
      return fail("JIT compilation failed: " + error);
    void *entry = jit->lookupEntry(sig.name);
    if (!entry)
      return fail("no entry point for '" + sig.name + "'");
    auto compiled = std::chrono::steady_clock::now();
    if (opts.command == "bench") {
      rt::callEntry(entry, sig, args); // warm-up, and the bounds checks
      if (outOfBounds())
        return 1;
      return bench(
          entry, sig, args,
          std::chrono::duration<double, std::milli>(compiled - start).count());
    }
    if (opts.checkNumerics)
      for (auto [k, a] : llvm::enumerate(args))
        if (rt::isFloat(a.dtype()))
          for (int64_t i = 0; i < a.numElements(); ++i)
            if (!std::isfinite(a.getDouble(i)))
              return errorAt(
                  fn->params[k].loc,
                  "argument '" + fn->params[k].name + "' holds " +
                      (std::isnan(a.getDouble(i)) ? "NaN" : "an infinity") +
                      " at element " + std::to_string(i) +
                      " (--check-numerics)");
    std::vector<rt::Tensor> results = rt::callEntry(entry, sig, args);
    if (outOfBounds())
      return 1;
    if (auto report = rt::takeNumericsReport()) {
      mlir::emitError(mlir::mlx::numericsCheckLocations(*module)[report->id])
          << "first " << (report->nan ? "NaN" : "infinity")
          << " produced here (--check-numerics)";
      return 1;
    }
    return printResults(sig, results);
  }

  /// Times calls (after the caller's warm-up call); compile time is
  /// reported apart.
  int bench(void *entry, const rt::Signature &sig,
            const std::vector<rt::Tensor> &args, double compileMs) {
    std::vector<double> times;
    for (int r = 0; r < opts.repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      std::vector<rt::Tensor> results = rt::callEntry(entry, sig, args);
      auto t1 = std::chrono::steady_clock::now();
      times.push_back(
          std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(times.begin(), times.end());
    double median =
        times.size() % 2
            ? times[times.size() / 2]
            : (times[times.size() / 2 - 1] + times[times.size() / 2]) / 2;
    // Compiled code runs on the calling thread.
    const int threads = 1;
    if (opts.json) {
      llvm::outs() << llvm::format(
          "{\"compile_ms\":%.3f,\"min_ms\":%.4f,\"median_ms\":%.4f,"
          "\"repeats\":%d,\"threads\":%d}\n",
          compileMs, times.front(), median, opts.repeat, threads);
      return 0;
    }
    llvm::outs() << llvm::format(
        "%s: compile %.1f ms; per call min %.4f ms, median %.4f ms over %d "
        "calls (%d thread)\n",
        sig.name.c_str(), compileMs, times.front(), median, opts.repeat,
        threads);
    return 0;
  }

  int printResults(const rt::Signature &sig,
                   const std::vector<rt::Tensor> &results) {
    if (!opts.saveDir.empty()) {
      llvm::sys::fs::create_directories(opts.saveDir);
      for (auto [spec, t] : llvm::zip(sig.results, results)) {
        std::string error;
        llvm::SmallString<256> path(opts.saveDir);
        llvm::sys::path::append(path, spec.name + ".npy");
        if (!rt::writeNpy(std::string(path), t, error))
          return fail(error);
      }
    }
    if (opts.json) {
      llvm::outs() << "{\"outputs\":[";
      for (size_t k = 0; k < results.size(); ++k) {
        const rt::Tensor &t = results[k];
        llvm::outs() << (k ? "," : "") << "{\"name\":\"" << sig.results[k].name
                     << "\",\"dtype\":\"" << rt::dtypeName(t.dtype())
                     << "\",\"shape\":" << rt::formatShape(t.shape())
                     << ",\"data\":" << rt::formatValues(t, true) << "}";
      }
      llvm::outs() << "]}\n";
      return 0;
    }
    for (auto [spec, t] : llvm::zip(sig.results, results)) {
      llvm::outs() << spec.name << ": " << rt::dtypeName(t.dtype());
      if (t.rank())
        llvm::outs() << rt::formatShape(t.shape());
      llvm::outs() << " = " << rt::formatValues(t, false) << "\n";
    }
    return 0;
  }

  int build() {
    if (opts.output.empty())
      return fail("build needs -o OUT.o or -o OUT.so");
    llvm::StringRef out(opts.output);
    bool shared = out.ends_with(".so");
    if (!shared && !out.ends_with(".o"))
      return fail("-o must name a .o or .so file");
    llvm::StringRef dir = llvm::sys::path::parent_path(out);
    if (!dir.empty() && !llvm::sys::fs::is_directory(dir))
      return fail("cannot write '" + opts.output + "': no directory '" +
                  dir.str() + "'");
    auto exports = requestedExports();
    if (!exports)
      return 1;
    auto module = compiler->generate(*exports);
    if (!module || mlir::failed(mlir::verify(*module)))
      return 1;
    std::vector<rt::Signature> sigs;
    for (const ExportRequest &r : *exports)
      sigs.push_back(compiler->signature(r));
    if (!lower(*module, [](mlir::OpPassManager &pm) {
          mlir::mlx::buildMlxToCpuPipeline(pm);
        }))
      return 1;
    std::string error;
    std::string object = shared ? opts.output + ".tmp.o" : opts.output;
    std::string tmpObject = object + ".part." + std::to_string(getpid());
    if (!mlir::mlx::emitObjectFile(*module, tmpObject, error)) {
      llvm::sys::fs::remove(tmpObject);
      return fail("cannot write '" + opts.output + "': " + error);
    }
    if (shared) {
      std::string tmpLib = opts.output + ".part." + std::to_string(getpid());
      auto cc = llvm::sys::findProgramByName("cc");
      if (!cc) {
        llvm::sys::fs::remove(tmpObject);
        return fail("linking a shared library needs 'cc' on the PATH");
      }
      llvm::SmallVector<llvm::StringRef> argv = {*cc,    "-shared", "-o",
                                                 tmpLib, tmpObject, "-lm"};
      int rc = llvm::sys::ExecuteAndWait(*cc, argv);
      llvm::sys::fs::remove(tmpObject);
      if (rc != 0) {
        llvm::sys::fs::remove(tmpLib);
        return fail("linking '" + opts.output + "' failed");
      }
      if (!rt::commitFile(tmpLib, opts.output, error))
        return fail(error);
    } else if (!rt::commitFile(tmpObject, object, error)) {
      return fail(error);
    }
    llvm::SmallString<256> header(opts.output);
    llvm::sys::path::replace_extension(header, ".h");
    if (!writeAtomically(
            std::string(header),
            [&](llvm::raw_ostream &os) {
              writeHeader(os, sigs);
              return true;
            },
            error))
      return fail(error);
    return 0;
  }

  static std::string cType(rt::DType d) {
    switch (d) {
    case rt::DType::f32:
      return "float";
    case rt::DType::f64:
      return "double";
    case rt::DType::i32:
      return "int32_t";
    case rt::DType::i64:
      return "int64_t";
    case rt::DType::boolean:
      return "uint8_t";
    }
    return "void";
  }

  /// `int mlx_check_NAME(args..., char *message, size_t size)`: 0 when the
  /// argument shapes fit the signature (literal sizes; every use of a
  /// symbolic dimension agrees), else 1 with a message naming the argument.
  void writeCheck(llvm::raw_ostream &os, const rt::Signature &sig,
                  const std::vector<std::string> &params) {
    os << "/* 0 when the arguments' shapes fit " << sig.name
       << "'s signature, else 1 and a message. */\n"
       << "static inline int mlx_check_" << sig.name << "(";
    for (size_t i = 0; i < params.size(); ++i)
      os << "const " << params[i] << " *" << sig.params[i].name << ", ";
    os << "char *message, size_t size) {\n";
    std::map<std::string, std::pair<std::string, size_t>> first;
    for (const rt::ParamSpec &p : sig.params)
      for (size_t d = 0; d < p.dims.size(); ++d) {
        const rt::DimSpec &spec = p.dims[d];
        std::string size = p.name + "->sizes[" + std::to_string(d) + "]";
        std::string want, what;
        if (spec.size >= 0) {
          want = std::to_string(spec.size);
          what = "must be " + want;
        } else {
          auto [it, inserted] = first.try_emplace(spec.symbol, p.name, d);
          if (inserted)
            continue;
          want = it->second.first + "->sizes[" +
                 std::to_string(it->second.second) + "]";
          what = "(" + spec.symbol + ") must equal argument '" +
                 it->second.first + "' dimension " +
                 std::to_string(it->second.second);
        }
        os << "  if (" << size << " != " << want << ") {\n"
           << "    snprintf(message, size, \"argument '" << p.name
           << "' dimension " << d << " " << what << ", got %lld\", "
           << "(long long)" << size << ");\n    return 1;\n  }\n";
      }
    for (const rt::ParamSpec &p : sig.params)
      os << "  (void)" << p.name << ";\n";
    os << "  (void)message;\n  (void)size;\n  return 0;\n}\n";
  }

  void writeHeader(llvm::raw_ostream &os,
                   const std::vector<rt::Signature> &sigs) {
    std::string guard =
        "MLXC_" + llvm::sys::path::stem(opts.output).upper() + "_H";
    for (char &c : guard)
      if (!isalnum((unsigned char)c))
        c = '_';
    os << "/* Generated by mlxc from " << llvm::sys::path::filename(opts.file)
       << ". Do not edit.\n"
       << " *\n"
       << " * Each function NAME has two entry points:\n"
       << " *   void _mlir_ciface_NAME(NAME_results *out, <one descriptor per "
          "argument>);\n"
       << " *   void mlx_call_NAME(void **args);  args[0] = out, args[1+i] = "
          "&argument i\n"
       << " * A descriptor is a strided memref: {allocated, aligned, offset,\n"
       << " * sizes[R], strides[R]} (strides in elements). Each result's\n"
       << " * 'allocated' pointer is owned by the caller: release it with "
          "free().\n"
       << " * Symbolic dimensions are not checked here: arguments that share "
          "a\n"
       << " * dimension name must agree in size.\n"
       << " * A constant subscript x[c] of a symbolic dimension is checked in\n"
       << " * the call: out of range, the code calls mlx_report_out_of_bounds\n"
       << " * (id, index, size), whose weak default aborts; define it to "
          "handle\n"
       << " * the error (the call's results are then meaningless).\n"
       << " */\n"
       << "#ifndef " << guard << "\n#define " << guard << "\n\n"
       << "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n\n"
       << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
       << "void mlx_report_out_of_bounds(int64_t id, int64_t index, int64_t "
          "size);\n\n";
    std::set<std::string> emitted;
    auto descriptor = [&](rt::DType d, int64_t rank) {
      std::string name = "mlx_" + std::string(rt::dtypeName(d)) + "_" +
                         std::to_string(rank) + "d";
      if (emitted.insert(name).second) {
        os << "typedef struct {\n  " << cType(d) << " *allocated;\n  "
           << cType(d) << " *aligned;\n  int64_t offset;\n";
        if (rank)
          os << "  int64_t sizes[" << rank << "];\n  int64_t strides[" << rank
             << "];\n";
        os << "} " << name << ";\n\n";
        // NAME_of(data, sizes...): a descriptor of contiguous row-major
        // data the caller owns.
        os << "static inline " << name << " " << name << "_of(" << cType(d)
           << " *data";
        for (int64_t k = 0; k < rank; ++k)
          os << ", int64_t n" << k;
        os << ") {\n  " << name << " t = {data, data, 0";
        if (rank) {
          os << ", {";
          for (int64_t k = 0; k < rank; ++k)
            os << (k ? ", " : "") << "n" << k;
          os << "}, {";
          for (int64_t k = 0; k < rank; ++k) {
            os << (k ? ", " : "");
            std::string stride = "1";
            for (int64_t j = k + 1; j < rank; ++j)
              stride += " * n" + std::to_string(j);
            os << stride;
          }
          os << "}";
        }
        os << "};\n  return t;\n}\n\n";
      }
      return name;
    };
    for (const rt::Signature &sig : sigs) {
      std::vector<std::string> params;
      for (const rt::ParamSpec &p : sig.params)
        params.push_back(descriptor(p.dtype, (int64_t)p.dims.size()));
      std::vector<std::string> results;
      for (const rt::ResultSpec &r : sig.results)
        results.push_back(descriptor(r.dtype, r.rank));
      os << "/* " << sig.name << "(";
      for (size_t i = 0; i < sig.params.size(); ++i) {
        const rt::ParamSpec &p = sig.params[i];
        os << (i ? ", " : "") << p.name << ": " << rt::dtypeName(p.dtype);
        if (!p.dims.empty()) {
          os << "[";
          for (size_t d = 0; d < p.dims.size(); ++d)
            os << (d ? ", " : "")
               << (p.dims[d].size >= 0 ? std::to_string(p.dims[d].size)
                                       : p.dims[d].symbol);
          os << "]";
        }
      }
      os << ") */\ntypedef struct {\n";
      for (size_t k = 0; k < results.size(); ++k)
        os << "  " << results[k] << " " << sig.results[k].name << ";\n";
      os << "} " << sig.name << "_results;\n";
      os << "void _mlir_ciface_" << sig.name << "(" << sig.name
         << "_results *out";
      for (size_t i = 0; i < params.size(); ++i)
        os << ", " << params[i] << " *" << sig.params[i].name;
      os << ");\nvoid mlx_call_" << sig.name << "(void **args);\n";
      writeCheck(os, sig, params);
      os << "\n";
    }
    os << "#ifdef __cplusplus\n}\n#endif\n\n#endif\n";
  }

  const Options &opts;
  mlir::MLIRContext ctx{mlir::MLIRContext::Threading::DISABLED};
  llvm::SourceMgr sourceMgr;
  std::unique_ptr<DiagnosticPrinter> handler;
  std::unique_ptr<Compiler> compiler;
};

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  Options opts;
  if (auto code = parseOptions(argc, argv, opts))
    return *code;
  Driver driver(opts);
  return driver.run();
}
