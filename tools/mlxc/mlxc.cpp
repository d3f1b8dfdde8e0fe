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
#include "frontend/ASTPrinter.h"
#include "frontend/DiagnosticPrinter.h"
#include "runtime/Call.h"
#include "session/Session.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

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
  if (opts.backend != "cpu" && opts.backend != "vulkan")
    return usageError("unknown backend '" + opts.backend +
                      "' (--backend cpu or vulkan)");
  return std::nullopt;
}

/// Prints an error value: diagnostics as they are, other errors after
/// "mlxc: error:". Returns exit code 1.
int report(llvm::Error err) {
  llvm::handleAllErrors(
      std::move(err),
      [](const DiagnosticError &d) { llvm::errs() << d.text(); },
      [](const llvm::ErrorInfoBase &e) {
        llvm::errs() << "mlxc: error: " << e.message() << "\n";
      });
  return 1;
}

/// One invocation: options in, a session underneath, results printed.
class Driver {
public:
  Driver(const Options &opts, Session &session)
      : opts(opts), session(session) {}

  int run() {
    if (opts.command != "check" && opts.command != "emit" &&
        opts.command != "run" && opts.command != "build" &&
        opts.command != "bench")
      return usageError("unknown command '" + opts.command + "'");
    if (llvm::Error err = session.loadFile(opts.file))
      return report(std::move(err));
    if (opts.command == "check")
      return check();
    if (opts.command == "emit")
      return emit();
    if (opts.command == "run" || opts.command == "bench")
      return runFunction();
    return build();
  }

private:
  /// The -f functions at rank 1 (every function without -f), each with
  /// the --grad parameters.
  llvm::Expected<std::vector<ExportRequest>> requestedExports() {
    if (opts.functions.empty())
      return session.allExports();
    std::vector<ExportRequest> exports;
    for (const std::string &name : opts.functions) {
      auto fn = session.function(name);
      if (!fn)
        return fn.takeError();
      ExportRequest request{*fn, (*fn)->isShapePolymorphic() ? 1 : 0};
      auto wrt = session.gradientParameters(**fn, opts.grads);
      if (!wrt)
        return wrt.takeError();
      request.wrt = *wrt;
      exports.push_back(request);
    }
    return exports;
  }

  int check() {
    auto module = session.lower(session.allExports(), Stage::Mlx);
    return module ? 0 : report(module.takeError());
  }

  int emit() {
    std::string stageName = opts.stage.empty() ? "mlx" : opts.stage;
    if (stageName == "ast") {
      ast::printModule(session.mainModule(), llvm::outs());
      return 0;
    }
    if (stageName == "spirv")
      return fail("--stage=spirv needs the Vulkan backend, which is not built "
                  "yet");
    std::optional<Stage> stage =
        llvm::StringSwitch<std::optional<Stage>>(stageName)
            .Case("mlx", Stage::Mlx)
            .Case("grad", Stage::Grad)
            .Case("linalg", Stage::Linalg)
            .Case("llvm", Stage::Target)
            .Default(std::nullopt);
    if (!stage)
      return fail("unknown stage '" + stageName +
                  "' (ast, mlx, grad, linalg, llvm, spirv)");
    auto exports = requestedExports();
    if (!exports)
      return report(exports.takeError());
    auto module = session.lower(*exports, *stage);
    if (!module)
      return report(module.takeError());
    if (*stage != Stage::Target) {
      (*module)->print(llvm::outs());
      return 0;
    }
    if (llvm::Error err = session.printTarget(**module, llvm::outs()))
      return report(std::move(err));
    return 0;
  }

  /// The arguments of `fn` from --arg: .npy files first (an f64 array for
  /// an `f32` parameter runs the function in f64), then literals in the
  /// dtype their parameter runs in. Sets the request's instance key.
  llvm::Error readArguments(const ast::Function &fn, ExportRequest &request,
                            std::vector<rt::Tensor> &args) {
    std::map<std::string, std::string> given;
    std::vector<std::string> names;
    for (const ast::Param &p : fn.params)
      names.push_back(p.name);
    for (const auto &[name, value] : opts.args) {
      auto it = llvm::find_if(
          fn.params, [&](const ast::Param &p) { return p.name == name; });
      if (it == fn.params.end())
        return session.errorAt(
            fn.loc, "'" + fn.name + "' has no parameter '" + name + "'" +
                        mlx::didYouMean(name, names) +
                        " (its parameters: " + llvm::join(names, ", ") + ")");
      if (!given.emplace(name, value).second)
        return session.errorAt(it->loc,
                               "argument '" + name + "' is given twice");
    }
    args.assign(fn.params.size(), rt::Tensor());
    std::vector<std::optional<rt::DType>> fileDTypes(fn.params.size());
    for (auto [k, p] : llvm::enumerate(fn.params)) {
      auto it = given.find(p.name);
      if (it == given.end())
        return session.errorAt(
            fn.loc, "'" + fn.name + "' takes " +
                        std::to_string(fn.params.size()) + " arguments but " +
                        std::to_string(given.size()) +
                        " were given; missing --arg " + p.name + "=VALUE");
      const std::string &value = it->second;
      if (!llvm::StringRef(value).ends_with(".npy") &&
          !llvm::sys::fs::is_regular_file(value))
        continue;
      std::string error;
      if (!rt::readNpy(value, args[k], error))
        return session.errorAt(p.loc, "argument '" + p.name + "': " + error);
      fileDTypes[k] = args[k].dtype();
    }
    auto floatType = session.floatType(fn, fileDTypes);
    if (!floatType)
      return floatType.takeError();
    int64_t anyShapeRank = -1;
    for (auto [k, p] : llvm::enumerate(fn.params)) {
      std::string error;
      rt::DType dtype = rt::instanceDType(p.type.dtype, *floatType);
      if (!fileDTypes[k] &&
          !rt::parseLiteral(given[p.name], dtype, args[k], error))
        return session.errorAt(p.loc, "argument '" + p.name + "': " + error);
      if (p.type.isAnyShape() && anyShapeRank < 0)
        anyShapeRank = args[k].rank();
    }
    request.anyShapeRank = std::max<int64_t>(anyShapeRank, 0);
    request.floatType = *floatType;
    return llvm::Error::success();
  }

  int runFunction() {
    if (opts.functions.size() != 1)
      return fail(opts.command + " needs exactly one -f NAME");
    auto fn = session.function(opts.functions[0]);
    if (!fn)
      return report(fn.takeError());
    ExportRequest request{*fn};
    std::vector<rt::Tensor> args;
    if (llvm::Error err = readArguments(**fn, request, args))
      return report(std::move(err));
    auto wrt = session.gradientParameters(**fn, opts.grads);
    if (!wrt)
      return report(wrt.takeError());
    request.wrt = *wrt;
    rt::Signature sig = session.signature(request);

    auto start = std::chrono::steady_clock::now();
    auto module = session.compile({request}, {opts.checkNumerics});
    if (!module)
      return report(module.takeError());
    double compileMs = std::chrono::duration<double, std::milli>(
                           std::chrono::steady_clock::now() - start)
                           .count();
    // The first call checks the arguments and the bounds (and warms up).
    auto results = (*module)->call(sig.name, args);
    if (!results)
      return report(results.takeError());
    if (opts.command == "bench")
      return bench(**module, sig, args, compileMs);
    return printResults(sig, *results);
  }

  /// Times calls (after the caller's warm-up call); compile time is
  /// reported apart.
  int bench(const Module &module, const rt::Signature &sig,
            const std::vector<rt::Tensor> &args, double compileMs) {
    std::vector<double> times;
    for (int r = 0; r < opts.repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      auto results = module.call(sig.name, args);
      auto t1 = std::chrono::steady_clock::now();
      if (!results)
        return report(results.takeError());
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
    auto exports = requestedExports();
    if (!exports)
      return report(exports.takeError());
    if (llvm::Error err = session.build(*exports, opts.output))
      return report(std::move(err));
    return 0;
  }

  const Options &opts;
  Session &session;
};

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  Options opts;
  if (auto code = parseOptions(argc, argv, opts))
    return *code;
  auto session = Session::create({opts.importPaths, opts.backend});
  if (!session)
    return report(session.takeError());
  return Driver(opts, **session).run();
}
