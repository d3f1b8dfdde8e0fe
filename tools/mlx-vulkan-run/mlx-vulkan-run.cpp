//===- mlx-vulkan-run.cpp - run a Vulkan artefact without the compiler ----===//
//
//   mlx-vulkan-run DIR FUNCTION [NAME=VALUE]... [--save OUTDIR]
//
// Loads what `mlxc build --backend vulkan -o DIR` wrote, calls FUNCTION with
// each parameter NAME given as a literal (`3`, `[[1,2],[3,4]]`) or a .npy
// file, and prints the results as `mlxc run` does (or saves them as
// OUTDIR/NAME.npy). It links runtime/vulkan alone (libmlxc_vulkan_runtime):
// the small C++ program issue 12 asks an artefact to run from.
//
//===----------------------------------------------------------------------===//
#include "runtime/vulkan/Artefact.h"

#include <cstdio>
#include <map>
#include <string>

using namespace mlx;

static int fail(const std::string &message) {
  std::fprintf(stderr, "mlx-vulkan-run: error: %s\n", message.c_str());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3)
    return fail("usage: mlx-vulkan-run DIR FUNCTION [NAME=VALUE]... "
                "[--save OUTDIR]");
  std::string error, saveDir;
  std::map<std::string, std::string> given;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--save" && i + 1 < argc) {
      saveDir = argv[++i];
      continue;
    }
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail("expected NAME=VALUE, got '" + a + "'");
    given[a.substr(0, eq)] = a.substr(eq + 1);
  }
  auto artefact = vk::Artefact::load(argv[1], error);
  if (!artefact)
    return fail(error);
  const rt::Signature *sig = nullptr;
  for (const rt::Signature &s : artefact->functions())
    if (s.name == argv[2])
      sig = &s;
  if (!sig)
    return fail(std::string("the artefact has no function '") + argv[2] + "'");
  std::vector<rt::Tensor> args;
  for (const rt::ParamSpec &p : sig->params) {
    auto it = given.find(p.name);
    if (it == given.end())
      return fail("missing argument '" + p.name + "'");
    const std::string &v = it->second;
    rt::Tensor t;
    bool ok = v.size() > 4 && v.compare(v.size() - 4, 4, ".npy") == 0
                  ? rt::readNpy(v, t, error)
                  : rt::parseLiteral(v, p.dtype, t, error);
    if (!ok)
      return fail("argument '" + p.name + "': " + error);
    args.push_back(t);
    given.erase(it);
  }
  if (!given.empty())
    return fail("'" + sig->name + "' has no parameter '" +
                given.begin()->first + "'");
  auto results = artefact->call(sig->name, args, error);
  if (!results)
    return fail(error);
  for (size_t k = 0; k < results->size(); ++k) {
    const rt::Tensor &t = (*results)[k];
    const std::string &name = sig->results[k].name;
    if (!saveDir.empty()) {
      if (!rt::writeNpy(saveDir + "/" + name + ".npy", t, error))
        return fail(error);
      continue;
    }
    std::printf("%s: %s%s = %s\n", name.c_str(), rt::dtypeName(t.dtype()),
                t.rank() ? rt::formatShape(t.shape()).c_str() : "",
                rt::formatValues(t, false).c_str());
  }
  return 0;
}
