//===- VulkanTarget.cpp - the Vulkan target ---------------------*- C++ -*-===//
//
// The Target interface over codegen/vulkan: the device's SPIR-V target
// environment, the pipeline, and the JIT: a binary holds the host code (an
// object file for the host CPU, loaded as on the CPU target with its
// allocations and launches routed to runtime/vulkan) and the kernels'
// SPIR-V; the compile cache keeps it. A call copies the arguments into
// device memory, runs the host code within a vk::CallScope (one submit at
// the end) and returns views of the result buffers.
//
// Binary layout (little-endian): "MLXVK2\n\0", u64 host object size, the
// object, u32 kernel count, then per kernel: u32 name size, name, u32
// workgroup[3], u32 argument count, one byte per argument kind, u32
// parameter bytes, u32 word count, the SPIR-V words.
//
//===----------------------------------------------------------------------===//
#include "codegen/vulkan/VulkanTarget.h"
#include "codegen/cpu/CpuCodegen.h"
#include "codegen/cpu/CpuTarget.h"
#include "codegen/vulkan/VulkanCodegen.h"

#include "passes/Passes.h"
#include "runtime/vulkan/Artefact.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <unistd.h>

using namespace mlx;

namespace {

constexpr char kMagic[8] = {'M', 'L', 'X', 'V', 'K', '2', '\n', '\0'};

llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

template <typename T> void put(std::string &out, T v) {
  out.append(reinterpret_cast<const char *>(&v), sizeof(T));
}

/// Reads a binary back; false when it is not a whole one.
struct Reader {
  llvm::StringRef data;
  size_t at = 0;
  template <typename T> bool get(T &v) {
    if (at + sizeof(T) > data.size())
      return false;
    std::memcpy(&v, data.data() + at, sizeof(T));
    at += sizeof(T);
    return true;
  }
  bool bytes(size_t n, llvm::StringRef &out) {
    if (at + n > data.size())
      return false;
    out = data.substr(at, n);
    at += n;
    return true;
  }
};

/// Loaded host code and kernels.
class VulkanExecutable : public rt::Executable {
public:
  VulkanExecutable(std::unique_ptr<HostCode> host,
                   std::unique_ptr<vk::Program> program)
      : host(std::move(host)), program(std::move(program)) {}

  bool exports(const std::string &name) const override {
    return host->entry(name) != nullptr;
  }

  std::vector<rt::Tensor>
  call(const rt::Signature &sig,
       const std::vector<rt::Tensor> &args) const override {
    auto entry = reinterpret_cast<void (*)(void **)>(host->entry(sig.name));
    return vk::call(*program, entry, sig, args);
  }

private:
  std::unique_ptr<HostCode> host;
  std::unique_ptr<vk::Program> program;
};

class VulkanTarget : public Target {
public:
  explicit VulkanTarget(const vk::DeviceInfo &device)
      : info(device), targetEnv(mlir::mlx::targetEnvFor(device)) {}

  llvm::StringRef name() const override { return "vulkan"; }

  std::string device() const override {
    return "Vulkan device " + info.name + " (" + info.kind + ", " +
           info.driver + ")";
  }

  rt::Tensor toDevice(const rt::Tensor &t) const override {
    return vk::toDevice(t);
  }

  rt::Tensor fromDevice(const rt::Tensor &t) const override {
    return t.copy(); // into host memory (rt::Tensor::allocate)
  }

  void registerDialects(mlir::DialectRegistry &registry) const override {
    mlir::mlx::registerVulkanTargetDialects(registry);
  }

  void buildPipeline(mlir::OpPassManager &pm,
                     const CodegenOptions &) const override {
    vk::DeviceInfo limits = info;
    limits.maxPushConstantsSize = pushBytes();
    mlir::mlx::buildLinalgToVulkanPipeline(pm, targetEnv, limits);
  }

  llvm::Error printLowered(mlir::ModuleOp module, llvm::StringRef stage,
                           llvm::raw_ostream &os) const override {
    if (stage == "spirv") {
      os << "// " << info.name << " (" << info.kind << "), " << targetEnv
         << "\n";
      for (const auto &k : mlir::mlx::readKernels(module, /*strip=*/false))
        os << "// kernel " << k.spec.name << ": workgroup "
           << k.spec.workgroup[0] << "x" << k.spec.workgroup[1] << "x"
           << k.spec.workgroup[2] << ", " << k.spec.spirv.size() << " words\n"
           << k.assembly << "\n";
      return llvm::Error::success();
    }
    if (stage != "llvm")
      return fail("the Vulkan target has no stage '" + stage + "'");
    mlir::OwningOpRef<mlir::ModuleOp> host(module.clone());
    mlir::mlx::readKernels(*host, /*strip=*/true);
    std::string error = mlir::mlx::printLLVMIR(*host, os);
    return error.empty() ? llvm::Error::success() : fail(error);
  }

  llvm::Expected<std::string>
  compileBinary(mlir::ModuleOp module,
                const CodegenOptions &options) const override {
    std::vector<mlir::mlx::LoweredKernel> kernels =
        mlir::mlx::readKernels(module, /*strip=*/true);
    std::string error;
    std::optional<std::string> object = mlir::mlx::emitObject(
        module, /*defaultReports=*/false, options.optLevel, options.cpu, error);
    if (!object)
      return fail("JIT compilation of the host code failed: " + error);
    std::string out(kMagic, sizeof(kMagic));
    put<uint64_t>(out, object->size());
    out += *object;
    put<uint32_t>(out, kernels.size());
    for (const auto &k : kernels) {
      put<uint32_t>(out, k.spec.name.size());
      out += k.spec.name;
      for (uint32_t w : k.spec.workgroup)
        put<uint32_t>(out, w);
      put<uint32_t>(out, k.spec.args.size());
      for (vk::ArgKind a : k.spec.args)
        put<uint8_t>(out, (uint8_t)a);
      put<uint32_t>(out, k.spec.paramBytes);
      put<uint32_t>(out, k.spec.spirv.size());
      out.append(reinterpret_cast<const char *>(k.spec.spirv.data()),
                 k.spec.spirv.size() * 4);
    }
    return out;
  }

  llvm::Expected<std::unique_ptr<rt::Executable>>
  loadBinary(llvm::StringRef binary) const override {
    Reader r{binary};
    llvm::StringRef magic, object;
    uint64_t objectSize = 0;
    uint32_t count = 0;
    if (!r.bytes(sizeof(kMagic), magic) ||
        magic != llvm::StringRef(kMagic, sizeof(kMagic)) ||
        !r.get(objectSize) || !r.bytes(objectSize, object) || !r.get(count))
      return fail("not a Vulkan binary of this mlxc");
    std::vector<vk::KernelSpec> kernels(count);
    for (vk::KernelSpec &k : kernels) {
      uint32_t size = 0, args = 0, words = 0;
      llvm::StringRef name, kinds, code;
      bool ok = r.get(size) && r.bytes(size, name) && r.get(k.workgroup[0]) &&
                r.get(k.workgroup[1]) && r.get(k.workgroup[2]) && r.get(args) &&
                r.bytes(args, kinds) && r.get(k.paramBytes) && r.get(words) &&
                r.bytes((size_t)words * 4, code);
      if (!ok)
        return fail("a truncated Vulkan binary");
      k.name = name.str();
      for (char c : kinds)
        k.args.push_back((vk::ArgKind)c);
      k.spirv.resize(words);
      std::memcpy(k.spirv.data(), code.data(), code.size());
    }
    // MLX_VULKAN_SPV_DIR=DIR keeps each kernel as DIR/NAME.K.spv (the tests
    // run spirv-val on them), whether compiled now or from the cache.
    if (const char *dir = std::getenv("MLX_VULKAN_SPV_DIR"); dir && *dir)
      for (const auto &[i, k] : llvm::enumerate(kernels)) {
        std::error_code ec;
        llvm::raw_fd_ostream os(std::string(dir) + "/" + k.name + "." +
                                    std::to_string(i) + ".spv",
                                ec);
        if (!ec)
          os.write(reinterpret_cast<const char *>(k.spirv.data()),
                   k.spirv.size() * 4);
      }
    std::string error;
    auto program = vk::Program::create(std::move(kernels), error);
    if (!program)
      return fail(error);
    auto host = HostCode::load(
        object, {{"mlx_vk_malloc", (void *)&mlx_vk_malloc},
                 {"mlx_vk_aligned_alloc", (void *)&mlx_vk_aligned_alloc},
                 {"mlx_vk_free", (void *)&mlx_vk_free},
                 {"mlx_vk_launch", (void *)&mlx_vk_launch},
                 {"mlx_vk_sync", (void *)&mlx_vk_sync}});
    if (!host)
      return host.takeError();
    return std::make_unique<VulkanExecutable>(std::move(*host),
                                              std::move(program));
  }

  std::string binaryKey(const CodegenOptions &options) const override {
    return info.name + " " + info.driver + " " + targetEnv + " push " +
           std::to_string(pushBytes()) + " host " +
           mlir::mlx::cpuDescription(options.optLevel, options.cpu);
  }

  llvm::Error checkOptions(const CodegenOptions &options) const override {
    std::string error =
        mlir::mlx::checkCodegenOptions(options.optLevel, options.cpu);
    return error.empty() ? llvm::Error::success() : fail(error);
  }

  /// A directory (Artefact.h has its layout).
  llvm::Error checkArtefactPath(llvm::StringRef path) const override {
    if (path.ends_with(".so") || path.ends_with(".o"))
      return fail("mlxc build --backend vulkan writes a directory (kernels, "
                  "host library, manifest): -o DIR, not '" +
                  path + "'");
    if (llvm::sys::fs::exists(path) && !llvm::sys::fs::is_directory(path))
      return fail("'" + path + "' exists and is not a directory");
    return llvm::Error::success();
  }

  llvm::Error emit(mlir::ModuleOp module,
                   llvm::ArrayRef<rt::Signature> signatures,
                   llvm::StringRef path, llvm::StringRef,
                   const CodegenOptions &options) const override {
    if (llvm::Error err = checkArtefactPath(path))
      return err;
    if (std::error_code ec = llvm::sys::fs::create_directories(path))
      return fail("cannot create '" + path + "': " + ec.message());
    std::string dir = path.str(), error, pid = std::to_string(getpid());
    std::vector<mlir::mlx::LoweredKernel> kernels =
        mlir::mlx::readKernels(module, /*strip=*/true);
    // Each file through a temporary renamed into place; the manifest last.
    auto write = [&](const std::string &name,
                     llvm::function_ref<void(llvm::raw_ostream &)> fill) {
      std::string tmp = dir + "/" + name + ".part." + pid;
      std::error_code ec;
      {
        llvm::raw_fd_ostream os(tmp, ec);
        if (!ec) {
          fill(os);
          if (os.has_error()) {
            os.clear_error();
            ec = std::make_error_code(std::errc::io_error);
          }
        }
      }
      if (ec) {
        llvm::sys::fs::remove(tmp);
        error = "cannot write '" + dir + "/" + name + "': " + ec.message();
        return false;
      }
      return rt::commitFile(tmp, dir + "/" + name, error);
    };
    std::string object = dir + "/host.o.part." + pid;
    if (!mlir::mlx::emitObjectFile(module, object, options.optLevel,
                                   options.cpu, error)) {
      llvm::sys::fs::remove(object);
      return fail("cannot write the host code: " + error);
    }
    std::string library = dir + "/host.so.part." + pid;
    error = mlir::mlx::linkSharedLibrary(object, library);
    llvm::sys::fs::remove(object);
    if (!error.empty() || !rt::commitFile(library, dir + "/host.so", error))
      return fail("cannot write '" + dir + "/host.so': " + error);
    std::vector<std::string> files;
    for (const auto &[i, k] : llvm::enumerate(kernels)) {
      files.push_back(k.spec.name + "." + std::to_string(i) + ".spv");
      if (!write(files.back(), [&](llvm::raw_ostream &os) {
            os.write(reinterpret_cast<const char *>(k.spec.spirv.data()),
                     k.spec.spirv.size() * 4);
          }))
        return fail(error);
    }
    bool written = write("manifest.txt", [&](llvm::raw_ostream &os) {
      os << "mlxc-vulkan-artefact " << vk::kArtefactVersion << "\n"
         << "# written by mlxc for " << device() << "\n"
         << "host host.so\n";
      for (const auto &[i, k] : llvm::enumerate(kernels)) {
        os << "kernel " << k.spec.name << " " << files[i] << " "
           << k.spec.workgroup[0] << " " << k.spec.workgroup[1] << " "
           << k.spec.workgroup[2] << " " << k.spec.paramBytes << " ";
        for (vk::ArgKind a : k.spec.args)
          os << (a == vk::ArgKind::Buffer          ? 'b'
                 : a == vk::ArgKind::Params        ? 'p'
                 : a == vk::ArgKind::PushConstants ? 'c'
                                                   : 'r');
        os << "\n";
      }
      for (const auto &[id, c] :
           llvm::enumerate(mlir::mlx::boundsChecks(module))) {
        std::string where = "?";
        if (auto at = c.loc->findInstanceOf<mlir::FileLineColLoc>())
          where = (at.getFilename().str() + ":" + std::to_string(at.getLine()) +
                   ":" + std::to_string(at.getColumn()));
        os << "check " << id << " " << c.dim << " " << where << " "
           << (c.sizeName.empty() ? "-" : c.sizeName) << " " << c.tensor
           << "\n";
      }
      std::ostringstream sigs;
      for (const rt::Signature &sig : signatures)
        rt::writeSignature(sigs, sig);
      os << sigs.str();
    });
    return written ? llvm::Error::success() : fail(error);
  }

private:
  /// The largest parameter block passed as push constants: the device's
  /// limit, or 0 with MLX_VULKAN_PUSH_CONSTANTS=0 (all in buffers).
  uint32_t pushBytes() const {
    const char *use = std::getenv("MLX_VULKAN_PUSH_CONSTANTS");
    return use && std::string(use) == "0" ? 0 : info.maxPushConstantsSize;
  }

  vk::DeviceInfo info;
  std::string targetEnv;
};

} // namespace

llvm::Expected<std::unique_ptr<Target>> mlx::createVulkanTarget() {
  std::string error;
  const vk::DeviceInfo *device = vk::device(error);
  if (!device)
    return fail("--backend vulkan: " + error);
  return std::make_unique<VulkanTarget>(*device);
}
