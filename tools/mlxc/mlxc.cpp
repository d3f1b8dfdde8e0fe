//===- mlxc.cpp - the mlxc command-line driver ------------------*- C++ -*-===//
//
//   mlxc check FILE
//   mlxc emit  FILE --stage=ast|mlx|grad|linalg|llvm [-f NAME]
//   mlxc run   FILE -f NAME [--arg NAME=VALUE]... [--json] [--save DIR]
//   mlxc bench FILE -f NAME [--arg NAME=VALUE]... [--repeat N] [--json]
//   mlxc build FILE -o OUT.{o,so} [-f NAME]...
//   mlxc derive FILE -f NAME --wrt ARG[,ARG...]
//   mlxc explain FILE -f NAME [--arg NAME=VALUE]... --html OUT.html
//   common: -I DIR (import search path; $MLX_PATH too), --backend
//
// Commands are llvm::cl subcommands (`mlxc run --help` lists run's options);
// the compiling is the session's (session/Session.h): this file only parses
// arguments and prints results.
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
#include "tools/mlxc/Explain.h"
#include "tools/mlxc/ExplainPage.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <thread>
#include <unistd.h>

using namespace mlx;

namespace {

namespace cl = llvm::cl;

const char *kOverview = R"(mlxc — a compiler for ML math
usage:
  mlxc check FILE                       parse and check every function
  mlxc emit  FILE --stage=STAGE [-f NAME] [--grad ARG,...]
                                        print a stage: ast, mlx, grad, linalg,
                                        llvm
  mlxc run   FILE -f NAME [--arg NAME=VALUE]... [--grad ARG,...]
             [--json] [--save DIR] [--check-numerics]
                                        compile NAME and run it
  mlxc bench FILE -f NAME [--arg NAME=VALUE]... [--grad ARG,...]
             [--repeat N] [--json]      time calls after a warm-up (compile
                                        time apart)
  mlxc build FILE -o OUT [-f NAME]... [--grad ARG,...]
                                        write OUT.o or OUT.so plus OUT.h
                                        (--backend vulkan: the directory
                                        OUT, run by mlx-vulkan-run)
  mlxc trace FILE -f NAME [--arg NAME=VALUE]... [--grad ARG,...]
                                        run NAME and print each equation
                                        line beside the values it made
  mlxc derive FILE -f NAME --wrt ARG[,ARG...]
                                        print the gradient as .mlx source
  mlxc explain FILE -f NAME [--arg NAME=VALUE]... [--grad ARG,...]
             --html OUT.html [--rates R,...]
                                        write a page that animates the
                                        traced call (and a training loop)
`mlxc COMMAND --help` lists a command's options.
)";

cl::OptionCategory category("mlxc options");
cl::SubCommand checkCommand("check", "parse and check every function");
cl::SubCommand emitCommand("emit", "print a stage of the compilation");
cl::SubCommand runCommand("run", "compile a function and run it");
cl::SubCommand
    benchCommand("bench",
                 "time calls after a warm-up, compile time reported apart");
cl::SubCommand
    buildCommand("build",
                 "write an object file or shared library plus its C header "
                 "(with --backend vulkan, an artefact directory)");
cl::SubCommand traceCommand("trace", "run a function and print each equation "
                                     "line with the values it produced");
cl::SubCommand deriveCommand("derive",
                             "print the gradient of a function as .mlx "
                             "source (a program mlxc compiles)");
cl::SubCommand explainCommand("explain",
                              "write an HTML page animating a traced call");
cl::SubCommand *const commands[] = {
    &checkCommand, &emitCommand,  &runCommand,    &benchCommand,
    &buildCommand, &traceCommand, &deriveCommand, &explainCommand};

cl::list<std::string> positionals(cl::Positional, cl::desc("FILE"),
                                  cl::cat(category), cl::sub(checkCommand),
                                  cl::sub(emitCommand), cl::sub(runCommand),
                                  cl::sub(traceCommand),
                                  cl::sub(explainCommand),
                                  cl::sub(benchCommand), cl::sub(buildCommand),
                                  cl::sub(deriveCommand));
cl::list<std::string> strays(cl::Positional, cl::Hidden);
cl::list<std::string>
    importPaths("I", cl::Prefix, cl::value_desc("DIR"),
                cl::desc("add an import search path ($MLX_PATH is searched "
                         "too)"),
                cl::cat(category), cl::sub(checkCommand), cl::sub(emitCommand),
                cl::sub(runCommand), cl::sub(traceCommand),
                cl::sub(explainCommand), cl::sub(benchCommand),
                cl::sub(buildCommand), cl::sub(deriveCommand));
cl::opt<std::string>
    backend("backend", cl::init("cpu"), cl::value_desc("cpu|vulkan"),
            cl::desc("the target to compile for (default: $MLX_BACKEND, else "
                     "cpu; vulkan needs a build with the Vulkan backend)"),
            cl::cat(category), cl::sub(emitCommand), cl::sub(runCommand),
            cl::sub(traceCommand), cl::sub(explainCommand),
            cl::sub(benchCommand), cl::sub(buildCommand));
cl::list<std::string> functions("f", cl::value_desc("NAME"),
                                cl::desc("the function (run, bench: one)"),
                                cl::cat(category), cl::sub(emitCommand),
                                cl::sub(runCommand), cl::sub(traceCommand),
                                cl::sub(explainCommand), cl::sub(benchCommand),
                                cl::sub(buildCommand), cl::sub(deriveCommand));
cl::alias functionsLong("function", cl::aliasopt(functions),
                        cl::desc("alias for -f"));
cl::list<std::string>
    grads("grad", cl::CommaSeparated, cl::value_desc("ARG,..."),
          cl::desc("add the gradients dARG of the sum of the float results"),
          cl::cat(category), cl::sub(emitCommand), cl::sub(runCommand),
          cl::sub(traceCommand), cl::sub(explainCommand), cl::sub(benchCommand),
          cl::sub(buildCommand));
cl::list<std::string>
    wrtArgs("wrt", cl::CommaSeparated, cl::value_desc("ARG,..."),
            cl::desc("the parameters to differentiate with respect to"),
            cl::cat(category), cl::sub(deriveCommand));
cl::opt<std::string> htmlOutput("html", cl::value_desc("OUT.html"),
                                cl::desc("the page to write"),
                                cl::cat(category), cl::sub(explainCommand));
cl::list<double>
    rates("rates", cl::CommaSeparated, cl::value_desc("R,..."),
          cl::desc("a training loop's learning rates to run (default: the "
                   "given one halved, as given, doubled and quadrupled)"),
          cl::cat(category), cl::sub(explainCommand));
cl::opt<std::string> stage("stage", cl::init("mlx"), cl::value_desc("STAGE"),
                           cl::desc("ast, mlx, grad, linalg or llvm"),
                           cl::cat(category), cl::sub(emitCommand));
cl::list<std::string>
    arguments("arg", cl::value_desc("NAME=VALUE"),
              cl::desc("an argument: a literal ([1,2], 3.5) or a .npy file "
                       "(emit, build: the static parameters' values)"),
              cl::cat(category), cl::sub(runCommand), cl::sub(traceCommand),
              cl::sub(explainCommand), cl::sub(benchCommand),
              cl::sub(emitCommand), cl::sub(buildCommand),
              cl::sub(deriveCommand));
cl::opt<bool> json("json", cl::desc("print JSON"), cl::cat(category),
                   cl::sub(runCommand), cl::sub(benchCommand));
cl::opt<std::string> saveDir("save", cl::value_desc("DIR"),
                             cl::desc("write each result to DIR/NAME.npy"),
                             cl::cat(category), cl::sub(runCommand));
cl::opt<bool>
    checkNumerics("check-numerics",
                  cl::desc("report the first equation producing NaN or an "
                           "infinity"),
                  cl::cat(category), cl::sub(runCommand));
cl::opt<unsigned> loopCheckpoint(
    "loop-checkpoint", cl::init(0), cl::value_desc("K"),
    cl::desc("gradients through loops keep every K-th step's state and "
             "recompute the others (0: keep every step's)"),
    cl::cat(category), cl::sub(emitCommand), cl::sub(runCommand),
    cl::sub(traceCommand), cl::sub(explainCommand), cl::sub(benchCommand),
    cl::sub(buildCommand));
cl::opt<unsigned> optLevel("opt-level", cl::init(3), cl::value_desc("N"),
                           cl::desc("LLVM's optimisation level, 0 to 3"),
                           cl::cat(category), cl::sub(runCommand),
                           cl::sub(traceCommand), cl::sub(explainCommand),
                           cl::sub(benchCommand), cl::sub(buildCommand));
cl::opt<std::string>
    cpu("cpu", cl::init("host"), cl::value_desc("NAME"),
        cl::desc("the CPU to compile for: host (detected), or an LLVM CPU "
                 "name (x86-64-v3, znver4, ...) for a portable build"),
        cl::cat(category), cl::sub(runCommand), cl::sub(traceCommand),
        cl::sub(explainCommand), cl::sub(benchCommand), cl::sub(buildCommand));
cl::opt<bool> onlineSoftmax(
    "online-softmax", cl::init(true),
    cl::desc("compute a softmax feeding a sum over its index (attention) a "
             "key tile at a time, without the T×T scores (CPU; "
             "--online-softmax=false: the two-pass form)"),
    cl::cat(category), cl::sub(emitCommand), cl::sub(runCommand),
    cl::sub(traceCommand), cl::sub(explainCommand), cl::sub(benchCommand),
    cl::sub(buildCommand));
cl::opt<bool> rowBlocks(
    "row-blocks", cl::init(true),
    cl::desc("run a softmax's gradient (attention's) a block of query rows "
             "at a time, without the T×T tensors (CPU; --row-blocks=false: "
             "whole)"),
    cl::cat(category), cl::sub(emitCommand), cl::sub(runCommand),
    cl::sub(traceCommand), cl::sub(explainCommand), cl::sub(benchCommand),
    cl::sub(buildCommand));
cl::opt<int> repeat("repeat", cl::init(10), cl::value_desc("N"),
                    cl::desc("the number of timed calls"), cl::cat(category),
                    cl::sub(benchCommand));
cl::opt<std::string> output("o", cl::value_desc("OUT.o|OUT.so"),
                            cl::desc("the object file or shared library"),
                            cl::cat(category), cl::sub(buildCommand));

struct Options {
  std::string command, file, stage, output, saveDir, html, backend = "cpu";
  std::vector<double> rates;
  std::vector<std::string> functions, importPaths, grads;
  std::vector<std::pair<std::string, std::string>> args;
  bool json = false, checkNumerics = false;
  unsigned loopCheckpoint = 0;
  int repeat = 10;
  CodegenOptions codegen;
};

int usageError(const std::string &msg) {
  llvm::errs() << "mlxc: error: " << msg
               << " (`mlxc --help` lists the commands)\n";
  return 1;
}

int fail(const std::string &msg) {
  llvm::errs() << "mlxc: error: " << msg << "\n";
  return 1;
}

/// llvm::cl's complaint, said as mlxc says errors: "Unknown command line
/// argument '--x'.  Try: …" and "Did you mean '--y'?" become "unknown
/// option '--x'; did you mean '--y'?" and a pointer to the command's help.
std::string parseError(llvm::StringRef errors) {
  llvm::SmallVector<llvm::StringRef> lines;
  errors.trim().split(lines, '\n');
  std::string message;
  for (llvm::StringRef line : lines) {
    line = line.trim();
    line.consume_front("mlxc");
    line = line.ltrim(" :").ltrim();
    auto sub = line.split(": ");
    if (!sub.second.empty() && !sub.first.contains(' '))
      line = sub.second; // "mlxc run: …"
    llvm::StringRef unknown = "Unknown command line argument '";
    if (line.consume_front(unknown)) {
      message = "unknown option '" + line.split('\'').first.str() + "'";
    } else if (line.consume_front("Did you mean '")) {
      message += "; did you mean '" + line.split('\'').first.str() + "'?";
    } else {
      message += (message.empty() ? "" : "; ") + line.str();
    }
  }
  std::string command;
  for (cl::SubCommand *sub : commands)
    if (*sub)
      command = " " + sub->getName().str();
  if (message.empty()) // llvm::cl has printed it already
    message = "bad arguments";
  return message + " (`mlxc" + command + " --help` lists the options)";
}

/// Parses argv; returns an exit code when parsing ends the run.
std::optional<int> parseOptions(int argc, char **argv, Options &opts) {
  // Only mlxc's options: LLVM's own stay hidden (and unparsed).
  for (cl::SubCommand *sub : commands)
    cl::HideUnrelatedOptions(category, *sub);
  cl::HideUnrelatedOptions(category);
  std::vector<const char *> args(argv, argv + argc);
  for (const char *&a : args)
    if (llvm::StringRef(a) == "-h")
      a = "--help";
  std::string errors;
  llvm::raw_string_ostream errorStream(errors);
  if (!cl::ParseCommandLineOptions((int)args.size(), args.data(), kOverview,
                                   &errorStream)) {
    llvm::errs() << "mlxc: error: " << parseError(errors) << "\n";
    return 1;
  }
  auto active =
      llvm::find_if(commands, [](cl::SubCommand *c) { return bool(*c); });
  if (active == std::end(commands))
    return usageError(strays.empty() ? "no command given"
                                     : "unknown command '" + strays[0] + "'");
  opts.command = (*active)->getName().str();
  if (positionals.empty())
    return usageError("'" + opts.command + "' needs a FILE");
  if (positionals.size() > 1)
    return usageError("unexpected argument '" + positionals[1] + "'");
  opts.file = positionals[0];
  opts.stage = stage;
  opts.output = output;
  opts.html = htmlOutput;
  opts.rates.assign(rates.begin(), rates.end());
  if (opts.command == "explain" && opts.html.empty())
    return usageError("explain needs --html OUT.html");
  opts.saveDir = saveDir;
  opts.backend = backend;
  // $MLX_BACKEND picks the target where --backend does not (the test
  // suite runs once per backend this way).
  if (backend.getNumOccurrences() == 0)
    if (const char *env = std::getenv("MLX_BACKEND"); env && *env)
      opts.backend = env;
  opts.functions = functions;
  opts.importPaths = importPaths;
  opts.json = json;
  opts.checkNumerics = checkNumerics;
  opts.loopCheckpoint = loopCheckpoint;
  opts.codegen = {optLevel, cpu, onlineSoftmax, rowBlocks};
  // derive's --wrt names the parameters as --grad does for the others.
  for (const std::string &g : opts.command == "derive" ? wrtArgs : grads) {
    if (llvm::StringRef(g).trim().empty())
      return usageError(opts.command == "derive" ? "--wrt needs ARG[,ARG...]"
                                                 : "--grad needs ARG[,ARG...]");
    opts.grads.push_back(llvm::StringRef(g).trim().str());
  }
  if (opts.command == "derive" &&
      (opts.grads.empty() || opts.functions.size() != 1))
    return usageError("derive needs -f NAME and --wrt ARG[,ARG...]");
  if (repeat < 1)
    return usageError("--repeat needs a positive count");
  opts.repeat = repeat;
  for (llvm::StringRef a : arguments) {
    auto [name, value] = a.split('=');
    if (!a.contains('='))
      return usageError("--arg needs NAME=VALUE");
    opts.args.push_back({name.str(), value.str()});
  }
  if (opts.backend != "cpu" && opts.backend != "vulkan")
    return usageError("unknown backend '" + opts.backend +
                      "' (--backend cpu or vulkan)");
  return std::nullopt;
}

/// A JSON number with `digits` decimals (milliseconds: no more digits
/// than the clock has).
void fixedPoint(llvm::json::OStream &out, llvm::StringRef key, double value,
                int digits) {
  out.attributeBegin(key);
  out.rawValue([&](llvm::raw_ostream &os) {
    os << llvm::format("%.*f", digits, value);
  });
  out.attributeEnd();
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
    if (llvm::Error err = session.loadFile(opts.file))
      return report(std::move(err));
    if (opts.command == "check")
      return check();
    if (opts.command == "emit")
      return emit();
    if (opts.command == "run" || opts.command == "bench")
      return runFunction();
    if (opts.command == "trace")
      return traceFunction();
    if (opts.command == "derive")
      return derive();
    if (opts.command == "explain")
      return explain();
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
      for (const auto &[name, value] : opts.args) {
        auto p = llvm::find_if(
            (*fn)->params, [&](const ast::Param &p) { return p.name == name; });
        if (p == (*fn)->params.end() || !p->isStatic)
          return session.errorAt((*fn)->loc,
                                 "--arg " + name + ": " + opts.command +
                                     " takes values of static parameters "
                                     "only");
        rt::Tensor t;
        std::string error;
        if (!rt::parseLiteral(value, rt::DType::i64, t, error) || t.rank() != 0)
          return session.errorAt(p->loc, "static parameter '" + name +
                                             "' needs one integer, got '" +
                                             value + "'");
        request.statics[name] = (int64_t)t.getDouble(0);
      }
      for (const ast::Param &p : (*fn)->params)
        if (p.isStatic && !request.statics.count(p.name))
          return session.errorAt(p.loc, "'" + (*fn)->name +
                                            "' has the static parameter '" +
                                            p.name +
                                            "': give its value with "
                                            "--arg " +
                                            p.name + "=N");
      auto wrt = session.gradientParameters(**fn, opts.grads);
      if (!wrt)
        return wrt.takeError();
      request.wrt = *wrt;
      exports.push_back(request);
    }
    return exports;
  }

  int check() {
    llvm::Error err = session.checkAll();
    return err ? report(std::move(err)) : 0;
  }

  int emit() {
    const std::string &stageName = opts.stage;
    if (stageName == "ast") {
      ast::printModule(session.mainModule(), llvm::outs());
      return 0;
    }
    std::optional<Stage> stage =
        llvm::StringSwitch<std::optional<Stage>>(stageName)
            .Case("mlx", Stage::Mlx)
            .Case("grad", Stage::Grad)
            .Case("linalg", Stage::Linalg)
            .Case("llvm", Stage::Target)
            .Case("spirv", Stage::Target)
            .Default(std::nullopt);
    if (!stage)
      return fail("unknown stage '" + stageName +
                  "' (ast, mlx, grad, linalg, llvm, spirv)");
    auto exports = requestedExports();
    if (!exports)
      return report(exports.takeError());
    auto module = session.lower(
        *exports, *stage,
        {false, opts.loopCheckpoint, CacheUse::Use, opts.codegen});
    if (!module)
      return report(module.takeError());
    if (*stage != Stage::Target) {
      (*module)->print(llvm::outs());
      return 0;
    }
    if (llvm::Error err =
            session.printTarget(**module, stageName, llvm::outs()))
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
    for (auto [k, p] : llvm::enumerate(fn.params)) {
      std::string error;
      rt::DType dtype = rt::instanceDType(p.type.dtype, *floatType);
      if (!fileDTypes[k] &&
          !rt::parseLiteral(given[p.name], dtype, args[k], error))
        return session.errorAt(p.loc, "argument '" + p.name + "': " + error);
    }
    auto instance = session.requestFor(fn, args, *floatType);
    if (!instance)
      return instance.takeError();
    request = *instance;
    return llvm::Error::success();
  }

  /// The one -f function's request and arguments (--arg) and the --grad
  /// parameters; an exit code when something is wrong.
  std::optional<int> prepareCall(ExportRequest &request,
                                 std::vector<rt::Tensor> &args,
                                 std::vector<int64_t> &wrt) {
    if (opts.functions.size() != 1)
      return fail(opts.command + " needs exactly one -f NAME");
    auto fn = session.function(opts.functions[0]);
    if (!fn)
      return report(fn.takeError());
    request = ExportRequest{*fn};
    if (llvm::Error err = readArguments(**fn, request, args))
      return report(std::move(err));
    auto parameters = session.gradientParameters(**fn, opts.grads);
    if (!parameters)
      return report(parameters.takeError());
    wrt = *parameters;
    return std::nullopt;
  }

  int runFunction() {
    ExportRequest request{nullptr};
    std::vector<rt::Tensor> args;
    std::vector<int64_t> wrt;
    if (std::optional<int> failed = prepareCall(request, args, wrt))
      return *failed;
    request.wrt = wrt;
    rt::Signature sig = session.signature(request);

    // bench times a cold start (compiled now, then kept in the cache) and
    // a cached one (read back from the cache as a new process would).
    bool benchmark = opts.command == "bench";
    CompileOptions options{opts.checkNumerics, opts.loopCheckpoint,
                           benchmark ? CacheUse::Refresh : CacheUse::Use,
                           opts.codegen};
    auto compileTimed = [&](double &ms) {
      auto start = std::chrono::steady_clock::now();
      auto module = session.compile({request}, options);
      ms = std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now() - start)
               .count();
      return module;
    };
    double compileMs = 0, cachedMs = 0;
    auto module = compileTimed(compileMs);
    if (!module)
      return report(module.takeError());
    // The first call checks the arguments and the bounds (and warms up).
    auto results = (*module)->call(sig.name, args);
    if (!results)
      return report(results.takeError());
    if (!benchmark)
      return printResults(sig, *results);
    compile_cache::forgetMemory();
    options.cache = CacheUse::Use;
    auto cachedModule = compileTimed(cachedMs);
    if (!cachedModule)
      return report(cachedModule.takeError());
    return bench(**module, sig, args, compileMs, cachedMs,
                 (*cachedModule)->source());
  }

  /// Times calls (after the caller's warm-up call); compile time is
  /// reported apart.
  int bench(const Module &module, const rt::Signature &sig,
            const std::vector<rt::Tensor> &args, double compileMs,
            double cachedMs, BinarySource cachedSource) {
    const char *cache = cachedSource == BinarySource::Disk     ? "disk"
                        : cachedSource == BinarySource::Memory ? "memory"
                                                               : "none";
    auto since = [](std::chrono::steady_clock::time_point t0) {
      return std::chrono::duration<double, std::milli>(
                 std::chrono::steady_clock::now() - t0)
          .count();
    };
    // The arguments go to the device once (timed apart); the calls then
    // copy nothing in; copying the last call's results out is timed apart
    // too. (On the CPU both are nothing.)
    auto start = std::chrono::steady_clock::now();
    std::vector<rt::Tensor> onDevice;
    for (const rt::Tensor &a : args)
      onDevice.push_back(session.toDevice(a));
    double uploadMs = since(start);
    std::vector<double> times;
    std::vector<rt::Tensor> last;
    for (int r = 0; r < opts.repeat; ++r) {
      start = std::chrono::steady_clock::now();
      auto results = module.call(sig.name, onDevice);
      times.push_back(since(start));
      if (!results)
        return report(results.takeError());
      last = std::move(*results);
    }
    start = std::chrono::steady_clock::now();
    for (const rt::Tensor &t : last)
      (void)session.fromDevice(t);
    double downloadMs = since(start);
    std::sort(times.begin(), times.end());
    double median =
        times.size() % 2
            ? times[times.size() / 2]
            : (times[times.size() / 2 - 1] + times[times.size() / 2]) / 2;
    // Parallel loops run on an OpenMP team of MLX_NUM_THREADS (else
    // OMP_NUM_THREADS, else every core) threads.
    int threads = (int)std::thread::hardware_concurrency();
    for (const char *name : {"OMP_NUM_THREADS", "MLX_NUM_THREADS"}) // last wins
      if (const char *n = std::getenv(name); n && std::atoi(n) > 0)
        threads = std::atoi(n);
    if (opts.json) {
      llvm::json::OStream out(llvm::outs());
      out.object([&] {
        fixedPoint(out, "compile_ms", compileMs, 3);
        fixedPoint(out, "cached_compile_ms", cachedMs, 3);
        out.attribute("cache", cache);
        fixedPoint(out, "min_ms", times.front(), 4);
        fixedPoint(out, "median_ms", median, 4);
        fixedPoint(out, "upload_ms", uploadMs, 4);
        fixedPoint(out, "download_ms", downloadMs, 4);
        out.attribute("repeats", opts.repeat);
        out.attribute("threads", threads);
        out.attribute("device", session.device());
      });
      llvm::outs() << "\n";
      return 0;
    }
    llvm::outs() << llvm::format(
        "%s: compile %.1f ms cold, %.1f ms cached (%s); per call min %.4f "
        "ms, median %.4f ms over %d calls (%d thread%s) on %s; arguments in "
        "%.4f ms, results out %.4f ms\n",
        sig.name.c_str(), compileMs, cachedMs, cache, times.front(), median,
        opts.repeat, threads, threads == 1 ? "" : "s", session.device().c_str(),
        uploadMs, downloadMs);
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
      // Values print as rt::formatValues writes them: every digit a float
      // needs, and NaN / Infinity / -Infinity (as Python's json reads
      // them), which llvm::json has no spelling for.
      llvm::json::OStream out(llvm::outs());
      out.object([&] {
        out.attributeArray("outputs", [&] {
          for (auto [spec, t] : llvm::zip(sig.results, results))
            out.object([&, &t = t, &spec = spec] {
              out.attribute("name", spec.name);
              out.attribute("dtype", rt::dtypeName(t.dtype()));
              out.attributeBegin("shape");
              out.rawValue(rt::formatShape(t.shape()));
              out.attributeEnd();
              out.attributeBegin("data");
              out.rawValue(rt::formatValues(t, true));
              out.attributeEnd();
            });
        });
      });
      llvm::outs() << "\n";
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

  /// `mlxc trace`: an instrumented instance returns the value of every
  /// top-level statement too; each is printed under its source line (small
  /// tensors in full, large ones summarized), then the results and, with
  /// --grad, the gradients.
  int traceFunction() {
    Trace trace;
    if (std::optional<int> failed = collectTrace(trace))
      return *failed;
    auto print = [&](const TracedValue &v) {
      llvm::outs() << "      " << v.name << ": "
                   << rt::dtypeName(v.value.dtype());
      if (v.value.rank())
        llvm::outs() << rt::formatShape(v.value.shape());
      llvm::outs() << " = " << summarized(v.value) << "\n";
    };
    auto printLine = [&](int64_t line) {
      if (line > 0 && line <= (int64_t)trace.lines.size())
        llvm::outs() << llvm::format("%4d | ", (int)line)
                     << trace.lines[line - 1].trim() << "\n";
    };
    const ast::Function *fn = trace.function;
    llvm::outs() << fn->name << " (" << *fn->loc.file << ":" << fn->loc.line
                 << ")\n";
    int64_t lastLine = 0;
    for (const TracedValue &v : trace.statements) {
      if (v.line != lastLine)
        printLine(v.line);
      lastLine = v.line;
      print(v);
    }
    for (const ast::Stmt &stmt : fn->body)
      if (stmt.kind == ast::Stmt::Kind::Return)
        printLine(stmt.loc.line);
    llvm::outs() << "results\n";
    for (const TracedValue &v : trace.results)
      print(v);
    if (opts.grads.empty())
      return 0;
    llvm::outs() << "gradients of the sum of the float results\n";
    for (const TracedValue &v : trace.gradients)
      print(v);
    return 0;
  }

  /// Runs the -f function's instrumented instance (and its gradient with
  /// --grad) on the --arg arguments; an exit code when something fails.
  std::optional<int> collectTrace(Trace &trace) {
    ExportRequest request{nullptr};
    std::vector<int64_t> wrt;
    if (std::optional<int> failed = prepareCall(request, trace.args, wrt))
      return *failed;
    const ast::Function *fn = trace.function = request.function;
    trace.request = request;
    std::vector<ExportRequest> requests = {request};
    requests[0].trace = true;
    if (!wrt.empty()) {
      requests.push_back(request);
      requests[1].wrt = wrt;
    }
    auto module = session.compile(
        requests, {false, opts.loopCheckpoint, CacheUse::Use, opts.codegen});
    if (!module)
      return report(module.takeError());
    const rt::Signature &sig = *(*module)->signature(exportName(requests[0]));
    auto results = (*module)->call(sig.name, trace.args);
    if (!results)
      return report(results.takeError());
    if (auto source = llvm::MemoryBuffer::getFile(*fn->loc.file)) {
      trace.source = (*source)->getBuffer().str();
      llvm::StringRef(trace.source).split(trace.lines, '\n');
    }
    size_t numResults = fn->results.size();
    for (auto [k, spec] : llvm::enumerate(sig.results))
      (k < numResults ? trace.results : trace.statements)
          .push_back({spec.line, spec.name, (*results)[k]});
    if (requests.size() == 1)
      return std::nullopt;
    const rt::Signature &gradSig =
        *(*module)->signature(exportName(requests[1]));
    auto grads = (*module)->call(gradSig.name, trace.args);
    if (!grads)
      return report(grads.takeError());
    for (size_t k = numResults; k < gradSig.results.size(); ++k)
      trace.gradients.push_back({0, gradSig.results[k].name, (*grads)[k]});
    return std::nullopt;
  }

  /// `mlxc explain`: the trace as a page (ExplainPage.h), with a training
  /// loop's runs where the function has one.
  int explain() {
    llvm::StringRef dir = llvm::sys::path::parent_path(opts.html);
    if (!dir.empty() && !llvm::sys::fs::is_directory(dir))
      return fail("cannot write '" + opts.html + "': there is no directory '" +
                  dir.str() + "'");
    Trace trace;
    if (std::optional<int> failed = collectTrace(trace))
      return *failed;
    const ast::Function *fn = trace.function;
    ExplainData data;
    data.function = fn->name;
    data.location = llvm::sys::path::filename(*fn->loc.file).str() + ":" +
                    std::to_string(fn->loc.line);
    auto lineText = [&](int64_t line) {
      return line > 0 && line <= (int64_t)trace.lines.size()
                 ? trace.lines[line - 1].trim().str()
                 : std::string();
    };
    for (const TracedValue &v : trace.statements)
      data.statements.push_back({v.name, lineText(v.line), v.line, v.value});
    for (const TracedValue &v : trace.results)
      data.results.push_back({v.name, "", 0, v.value});
    for (const TracedValue &v : trace.gradients)
      data.gradients.push_back({v.name, "", 0, v.value});
    if (llvm::Error err = addTraining(
            session, trace, opts.rates,
            {false, opts.loopCheckpoint, CacheUse::Use, opts.codegen}, data))
      return report(std::move(err));
    std::string page = renderExplainPage(data);
    // A temporary file renamed into place: no partial page, ever.
    std::string tmp = opts.html + ".tmp." + std::to_string(::getpid());
    {
      std::error_code ec;
      llvm::raw_fd_ostream os(tmp, ec);
      if (!ec) {
        os << page;
        os.close();
        ec = os.error();
      }
      if (ec) {
        llvm::sys::fs::remove(tmp);
        return fail("cannot write '" + opts.html + "': " + ec.message());
      }
    }
    std::string error;
    if (!rt::commitFile(tmp, opts.html, error))
      return fail(error);
    llvm::outs() << "wrote " << opts.html << " (" << data.statements.size()
                 << " equations"
                 << (data.runs.empty() ? "" : ", a training loop") << ")\n";
    return 0;
  }

  /// A tensor's values: in full up to 64 elements, else its min, max and
  /// mean and its first elements.
  static std::string summarized(const rt::Tensor &t) {
    if (t.numElements() <= 64)
      return rt::formatValues(t, false);
    double lo = INFINITY, hi = -INFINITY, total = 0;
    for (int64_t i = 0; i < t.numElements(); ++i) {
      double v = t.getDouble(i);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      total += v;
    }
    auto g = [](double v) {
      return llvm::formatv("{0}", llvm::format("%g", v)).str();
    };
    std::string first;
    for (int64_t i = 0; i < 6; ++i)
      first += (i ? ", " : "") + g(t.getDouble(i));
    return "min " + g(lo) + ", max " + g(hi) + ", mean " +
           g(total / t.numElements()) + "; first [" + first + ", ...]";
  }

  /// `mlxc derive`: the gradient printed as .mlx source.
  int derive() {
    auto exports = requestedExports();
    if (!exports)
      return report(exports.takeError());
    auto source = session.deriveSource(exports->front());
    if (!source)
      return report(source.takeError());
    llvm::outs() << *source;
    return 0;
  }

  int build() {
    if (opts.output.empty())
      return fail("build needs -o OUT.o or -o OUT.so");
    auto exports = requestedExports();
    if (!exports)
      return report(exports.takeError());
    if (llvm::Error err = session.build(
            *exports, opts.output,
            {false, opts.loopCheckpoint, CacheUse::Off, opts.codegen}))
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
