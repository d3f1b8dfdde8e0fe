//===- CpuTarget.cpp - the CPU target ---------------------------*- C++ -*-===//
//
// The Target interface over codegen/cpu: its pipeline, the JIT (an object
// file for the host CPU, loaded into an ORC LLJIT behind rt::Executable and
// called through the packed memref ABI; the compile cache keeps the object)
// and AOT artefacts (.o, or .so linked by `cc`, plus the C header).
//
// A rank-R strided memref descriptor is {allocated ptr, aligned ptr,
// offset, sizes[R], strides[R]}: 3 + 2R eight-byte words. Results are laid
// out back to back in one buffer.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuTarget.h"
#include "codegen/cpu/CHeader.h"
#include "codegen/cpu/CpuCodegen.h"
#include "passes/Passes.h"
#include "runtime/Allocator.h"
#include "runtime/Numerics.h"

#include "mlir/Pass/PassManager.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/DynamicLibrary.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <unistd.h>

using namespace mlx;

namespace {

/// The OpenMP runtime's file, loaded by the JIT and linked by `mlxc build`.
constexpr const char *kOpenMPRuntime = "libomp.so.5";

/// JIT-compiled CPU code.
class CpuExecutable : public rt::Executable {
public:
  explicit CpuExecutable(std::unique_ptr<HostCode> code)
      : code(std::move(code)) {}

  bool exports(const std::string &name) const override {
    return code->entry(name) != nullptr;
  }

  std::vector<rt::Tensor>
  call(const rt::Signature &sig,
       const std::vector<rt::Tensor> &args) const override {
    return code->call(sig, args, mlx_free);
  }

private:
  std::unique_ptr<HostCode> code;
};

llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// The OpenMP runtime that parallel loops call (__kmpc_fork_call, ...),
/// loaded into the process once. MLX_NUM_THREADS sets the team size
/// (else OMP_NUM_THREADS; default: every core), and idle
/// workers stop spinning after KMP_BLOCKTIME ms (default here 1 ms, not
/// libomp's 200: spinning workers take cores from everything else).
llvm::Error loadThreadRuntime() {
  static const std::string error = [] {
    if (const char *n = std::getenv("MLX_NUM_THREADS"); n && *n)
      setenv("OMP_NUM_THREADS", n, /*overwrite=*/1);
    setenv("KMP_BLOCKTIME", "1", /*overwrite=*/0);
    std::string message;
    if (llvm::sys::DynamicLibrary::LoadLibraryPermanently(kOpenMPRuntime,
                                                          &message))
      return "cannot load the thread runtime " + std::string(kOpenMPRuntime) +
             " (Debian package libomp5-19): " + message;
    return std::string();
  }();
  return error.empty() ? llvm::Error::success() : fail(error);
}

class CpuTarget : public Target {
public:
  llvm::StringRef name() const override { return "cpu"; }

  std::string device() const override {
    return "the host CPU (" + llvm::sys::getHostCPUName().str() + ")";
  }

  void registerDialects(mlir::DialectRegistry &registry) const override {
    mlir::mlx::registerCpuTargetDialects(registry);
  }

  void buildPipeline(mlir::OpPassManager &pm,
                     const CodegenOptions &options) const override {
    mlir::mlx::buildLinalgToCpuPipeline(
        pm, mlir::mlx::vectorBitsOf(options.cpu), options.rowBlocks);
  }

  llvm::Error printLowered(mlir::ModuleOp module, llvm::StringRef stage,
                           llvm::raw_ostream &os) const override {
    if (stage != "llvm")
      return fail("--stage=" + stage + " needs --backend vulkan");
    std::string error = mlir::mlx::printLLVMIR(module, os);
    return error.empty() ? llvm::Error::success() : fail(error);
  }

  llvm::Expected<std::string>
  compileBinary(mlir::ModuleOp module,
                const CodegenOptions &options) const override {
    std::string error;
    std::optional<std::string> object = mlir::mlx::emitObject(
        module, /*defaultReports=*/false, options.optLevel, options.cpu, error);
    if (!object)
      return fail("JIT compilation failed: " + error);
    return std::move(*object);
  }

  llvm::Expected<std::unique_ptr<rt::Executable>>
  loadBinary(llvm::StringRef binary) const override {
    // Its memory: large blocks are reused (runtime/Allocator.h).
    auto code = HostCode::load(
        binary, {{"malloc", (void *)&mlx_alloc}, {"free", (void *)&mlx_free}});
    if (!code)
      return code.takeError();
    return std::make_unique<CpuExecutable>(std::move(*code));
  }

  std::string binaryKey(const CodegenOptions &options) const override {
    return mlir::mlx::cpuDescription(options.optLevel, options.cpu);
  }

  llvm::Error checkOptions(const CodegenOptions &options) const override {
    std::string error =
        mlir::mlx::checkCodegenOptions(options.optLevel, options.cpu);
    return error.empty() ? llvm::Error::success() : fail(error);
  }

  llvm::Error checkArtefactPath(llvm::StringRef path) const override {
    if (!path.ends_with(".so") && !path.ends_with(".o"))
      return fail("-o must name a .o or .so file");
    llvm::StringRef dir = llvm::sys::path::parent_path(path);
    if (!dir.empty() && !llvm::sys::fs::is_directory(dir))
      return fail("cannot write '" + path + "': no directory '" + dir + "'");
    return llvm::Error::success();
  }

  llvm::Error emit(mlir::ModuleOp module,
                   llvm::ArrayRef<rt::Signature> signatures,
                   llvm::StringRef path, llvm::StringRef sourceName,
                   const CodegenOptions &options) const override {
    if (llvm::Error err = checkArtefactPath(path))
      return err;
    std::string output = path.str(), error;
    bool shared = path.ends_with(".so");
    std::string pid = std::to_string(getpid());
    std::string object = shared ? output + ".tmp.o" : output;
    std::string tmpObject = object + ".part." + pid;
    if (!mlir::mlx::emitObjectFile(module, tmpObject, options.optLevel,
                                   options.cpu, error)) {
      llvm::sys::fs::remove(tmpObject);
      return fail("cannot write '" + output + "': " + error);
    }
    if (shared) {
      std::string tmpLib = output + ".part." + pid;
      error = mlir::mlx::linkSharedLibrary(tmpObject, tmpLib);
      llvm::sys::fs::remove(tmpObject);
      if (!error.empty())
        return fail("linking '" + output + "' failed");
      if (!rt::commitFile(tmpLib, output, error))
        return fail(error);
    } else if (!rt::commitFile(tmpObject, object, error)) {
      return fail(error);
    }
    // The header, through a temporary renamed into place.
    llvm::SmallString<256> header(path);
    llvm::sys::path::replace_extension(header, ".h");
    std::string tmpHeader = std::string(header) + ".tmp." + pid;
    {
      std::error_code ec;
      llvm::raw_fd_ostream os(tmpHeader, ec);
      if (ec)
        return fail("cannot write '" + header + "': " + ec.message());
      writeCHeader(os, signatures, path, sourceName);
      if (os.has_error()) {
        os.clear_error();
        llvm::sys::fs::remove(tmpHeader);
        return fail("cannot write '" + header + "'");
      }
    }
    if (!rt::commitFile(tmpHeader, std::string(header), error))
      return fail(error);
    return llvm::Error::success();
  }
};

} // namespace

HostCode::HostCode(std::unique_ptr<llvm::orc::LLJIT> jit)
    : jit(std::move(jit)) {}
HostCode::~HostCode() = default;

llvm::Expected<std::unique_ptr<HostCode>>
HostCode::load(llvm::StringRef object,
               const std::map<std::string, void *> &overrides) {
  mlir::mlx::initializeNativeTarget();
  if (llvm::Error err = loadThreadRuntime())
    return std::move(err);
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return jit.takeError();
  llvm::orc::JITDylib &lib = (*jit)->getMainJITDylib();
  // libm and libomp from the process; what checked code reports to
  // (runtime/Numerics.h) by address, and the overrides.
  auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!process)
    return process.takeError();
  lib.addGenerator(std::move(*process));
  llvm::orc::MangleAndInterner mangle((*jit)->getExecutionSession(),
                                      (*jit)->getDataLayout());
  std::map<std::string, void *> symbols = {
      {"mlx_report_nonfinite", (void *)&mlx_report_nonfinite},
      {mlir::mlx::kOutOfBoundsReport.str(), (void *)&mlx_report_out_of_bounds}};
  for (const auto &[name, address] : overrides)
    symbols[name] = address;
  llvm::orc::SymbolMap defined;
  for (const auto &[name, address] : symbols)
    defined[mangle(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                             llvm::JITSymbolFlags::Exported};
  if (llvm::Error err =
          lib.define(llvm::orc::absoluteSymbols(std::move(defined))))
    return std::move(err);
  if (llvm::Error err = (*jit)->addObjectFile(
          llvm::MemoryBuffer::getMemBufferCopy(object, "mlx-object")))
    return std::move(err);
  return std::unique_ptr<HostCode>(new HostCode(std::move(*jit)));
}

void *HostCode::entry(const std::string &name) const {
  std::lock_guard<std::mutex> lock(entriesMutex);
  auto [it, inserted] = entries.try_emplace(name, nullptr);
  if (inserted) {
    auto address = jit->lookup("mlx_call_" + name);
    if (address)
      it->second = address->toPtr<void *>();
    else
      llvm::consumeError(address.takeError());
  }
  return it->second;
}

std::vector<rt::Tensor> HostCode::call(
    const rt::Signature &sig, const std::vector<rt::Tensor> &args,
    void (*freeFn)(void *),
    const std::function<bool(void (*)(void **), void **)> &invoke) const {
  auto fn = reinterpret_cast<void (*)(void **)>(entry(sig.name));
  assert(fn && "call of a function the code does not export");
  return rt::callPacked(fn, sig, args, freeFn, invoke);
}

std::unique_ptr<Target> mlx::createCpuTarget() {
  return std::make_unique<CpuTarget>();
}
