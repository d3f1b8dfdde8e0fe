//===- Artefact.cpp - running what `mlxc build --backend vulkan` wrote ----===//
//
// Reads the manifest (Artefact.h), creates the kernels' pipelines, opens the
// host code with dlopen (its mlx_vk_* and mlx_report_* calls resolve to this
// runtime, which the program that loads it links), and calls functions as
// the JIT does (vk::call).
//
//===----------------------------------------------------------------------===//
#include "runtime/vulkan/Artefact.h"
#include "runtime/Numerics.h"

#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <sstream>

using namespace mlx;
using namespace mlx::vk;

namespace {
bool readFile(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream bytes;
  bytes << in.rdbuf();
  out = bytes.str();
  return true;
}
} // namespace

std::unique_ptr<Artefact> Artefact::load(const std::string &dir,
                                         std::string &error) {
  std::string manifestPath = dir + "/manifest.txt";
  std::ifstream manifest(manifestPath);
  if (!manifest) {
    error = "cannot read '" + manifestPath + "' (not an mlxc Vulkan artefact)";
    return nullptr;
  }
  auto bad = [&](const std::string &line) {
    error = "'" + manifestPath + "': bad line '" + line + "'";
    return nullptr;
  };
  std::string line, tag;
  int version = 0;
  if (!std::getline(manifest, line) ||
      !(std::istringstream(line) >> tag >> version) ||
      tag != "mlxc-vulkan-artefact") {
    error = "'" + manifestPath + "' is not an mlxc Vulkan artefact manifest";
    return nullptr;
  }
  if (version != kArtefactVersion) {
    error = "'" + manifestPath + "' has version " + std::to_string(version) +
            "; this runtime reads version " + std::to_string(kArtefactVersion);
    return nullptr;
  }
  std::unique_ptr<Artefact> a(new Artefact());
  std::vector<KernelSpec> kernels;
  std::string host;
  while (std::getline(manifest, line)) {
    std::istringstream words(line);
    if (!(words >> tag) || tag[0] == '#')
      continue;
    if (tag == "host") {
      if (!(words >> host))
        return bad(line);
    } else if (tag == "kernel") {
      KernelSpec k;
      std::string file, kinds, code;
      if (!(words >> k.name >> file >> k.workgroup[0] >> k.workgroup[1] >>
            k.workgroup[2] >> k.paramBytes))
        return bad(line);
      words >> kinds; // (none for a kernel without arguments)
      for (char c : kinds) {
        if (c != 'b' && c != 'p' && c != 'c' && c != 'r')
          return bad(line);
        k.args.push_back(c == 'b'   ? ArgKind::Buffer
                         : c == 'p' ? ArgKind::Params
                         : c == 'c' ? ArgKind::PushConstants
                                    : ArgKind::Report);
      }
      if (!readFile(dir + "/" + file, code) || code.size() % 4) {
        error = "cannot read kernel '" + dir + "/" + file + "'";
        return nullptr;
      }
      k.spirv.resize(code.size() / 4);
      std::memcpy(k.spirv.data(), code.data(), code.size());
      kernels.push_back(std::move(k));
    } else if (tag == "check") {
      int64_t id;
      Check c;
      if (!(words >> id >> c.dim >> c.location >> c.sizeName))
        return bad(line);
      if (c.sizeName == "-")
        c.sizeName.clear();
      std::getline(words >> std::ws, c.tensor);
      a->checks[id] = c;
    } else if (tag == "function") {
      std::string name;
      if (!(words >> name))
        return bad(line);
      rt::Signature sig;
      if (!rt::readSignature(manifest, name, sig, error)) {
        error = "'" + manifestPath + "': " + error;
        return nullptr;
      }
      a->signatures.push_back(std::move(sig));
    } else {
      return bad(line);
    }
  }
  if (host.empty()) {
    error = "'" + manifestPath + "' names no host library";
    return nullptr;
  }
  if (!device(error))
    return nullptr;
  a->program = Program::create(std::move(kernels), error);
  if (!a->program)
    return nullptr;
  std::string library = dir + "/" + host;
  a->library = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!a->library) {
    error = "cannot load '" + library + "': " + dlerror();
    return nullptr;
  }
  for (const rt::Signature &sig : a->signatures) {
    void *entry = dlsym(a->library, ("mlx_call_" + sig.name).c_str());
    if (!entry) {
      error = "'" + library + "' has no function '" + sig.name + "'";
      return nullptr;
    }
    a->entries.push_back(reinterpret_cast<void (*)(void **)>(entry));
  }
  return a;
}

Artefact::~Artefact() {
  program.reset();
  if (library)
    dlclose(library);
}

std::optional<std::vector<rt::Tensor>>
Artefact::call(const std::string &name, std::vector<rt::Tensor> args,
               std::string &error) const {
  size_t k = 0;
  while (k < signatures.size() && signatures[k].name != name)
    ++k;
  if (k == signatures.size()) {
    error = "the artefact has no function '" + name + "'";
    return std::nullopt;
  }
  if (!rt::checkArguments(signatures[k], args, error))
    return std::nullopt;
  rt::CallReports scope;
  std::vector<rt::Tensor> results =
      vk::call(*program, entries[k], signatures[k], args);
  std::optional<std::string> failure = rt::takeCallError();
  if (auto report = rt::takeBoundsReport()) {
    auto it = checks.find(report->id);
    if (it == checks.end())
      error = "bounds check " + std::to_string(report->id) + " failed";
    else if (it->second.dim < 0)
      error = it->second.location + ": check failed: " + it->second.tensor;
    else
      error = it->second.location + ": " +
              rt::outOfRangeMessage(*report, it->second.dim,
                                    it->second.tensor, it->second.sizeName);
    return std::nullopt;
  }
  rt::takeNumericsReport();
  if (failure) {
    error = *failure;
    return std::nullopt;
  }
  return results;
}
