//===- Call.cpp - calling compiled functions --------------------*- C++ -*-===//
//
// A rank-R strided memref descriptor is {allocated ptr, aligned ptr, offset,
// sizes[R], strides[R]}: 3 + 2R eight-byte words. Results are laid out back
// to back in one buffer.
//
//===----------------------------------------------------------------------===//
#include "runtime/Call.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

using namespace mlx::rt;

bool mlx::rt::checkArguments(const Signature &sig, std::vector<Tensor> &args,
                             std::string &error) {
  if (args.size() != sig.params.size()) {
    error = "'" + sig.name + "' takes " + std::to_string(sig.params.size()) +
            " arguments but " + std::to_string(args.size()) + " were given";
    return false;
  }
  // symbol → (size, parameter that bound it)
  std::map<std::string, std::pair<int64_t, std::string>> bound;
  for (size_t i = 0; i < args.size(); ++i) {
    const ParamSpec &p = sig.params[i];
    Tensor &a = args[i];
    std::string expected = std::string(dtypeName(p.dtype));
    // `[...]` parameters (any shape) have dims named "...0", "...1".
    bool anyShape = !p.dims.empty() && p.dims[0].symbol.rfind("...", 0) == 0;
    std::string declared = expected + "[";
    for (size_t d = 0; d < p.dims.size() && !anyShape; ++d)
      declared += (d ? ", " : "") + (p.dims[d].size >= 0
                                         ? std::to_string(p.dims[d].size)
                                         : p.dims[d].symbol);
    declared += anyShape ? "...]" : "]";
    std::string received =
        std::string(dtypeName(a.dtype())) + formatShape(a.shape());
    if (a.dtype() != p.dtype) {
      error = "argument '" + p.name + "' must be " + expected + " but is " +
              dtypeName(a.dtype()) + " (expected " + declared + ", received " +
              received + ")";
      return false;
    }
    if (a.rank() != (int64_t)p.dims.size()) {
      error = "argument '" + p.name + "' must have rank " +
              std::to_string(p.dims.size()) + " but has shape " +
              formatShape(a.shape()) + " (expected " + declared +
              ", received " + received + ")";
      return false;
    }
    for (size_t d = 0; d < p.dims.size(); ++d) {
      const DimSpec &spec = p.dims[d];
      int64_t size = a.shape()[d];
      if (spec.size >= 0) {
        if (size != spec.size) {
          error = "argument '" + p.name + "' dimension " + std::to_string(d) +
                  " must be " + std::to_string(spec.size) + " but is " +
                  std::to_string(size) + " (expected " + declared +
                  ", received " + received + ")";
          return false;
        }
        continue;
      }
      auto [it, inserted] = bound.try_emplace(spec.symbol, size, p.name);
      if (!inserted && it->second.first != size) {
        error = "argument '" + p.name + "' dimension " + std::to_string(d) +
                " (" + spec.symbol + ") is " + std::to_string(size) +
                " but argument '" + it->second.second + "' has " + spec.symbol +
                " = " + std::to_string(it->second.first) + " (expected " +
                declared + ", received " + received + ")";
        return false;
      }
    }
    a = a.contiguous();
  }
  return true;
}

std::vector<Tensor> mlx::rt::callEntry(void *entry, const Signature &sig,
                                       const std::vector<Tensor> &args) {
  // Argument descriptors.
  std::vector<std::vector<int64_t>> descriptors;
  for (const Tensor &a : args) {
    std::vector<int64_t> desc(3 + 2 * a.rank());
    desc[0] = (int64_t)(intptr_t)a.data();
    desc[1] = (int64_t)(intptr_t)a.data();
    desc[2] = 0;
    for (int64_t d = 0; d < a.rank(); ++d) {
      desc[3 + d] = a.shape()[d];
      desc[3 + a.rank() + d] = a.strides()[d];
    }
    descriptors.push_back(std::move(desc));
  }
  size_t resultWords = 0;
  for (const ResultSpec &r : sig.results)
    resultWords += 3 + 2 * r.rank;
  std::vector<int64_t> results(resultWords, 0);
  std::vector<void *> packed;
  packed.push_back(results.data());
  for (auto &desc : descriptors)
    packed.push_back(desc.data());

  using Entry = void (*)(void **);
  reinterpret_cast<Entry>(entry)(packed.data());

  // Take ownership of each result buffer exactly once. A buffer that is an
  // argument's or a constant's (not malloc'ed by the callee) is copied.
  std::set<intptr_t> inputs;
  for (const Tensor &a : args)
    inputs.insert((intptr_t)a.data());
  std::map<intptr_t, std::shared_ptr<void>> owners;
  std::vector<Tensor> out;
  size_t at = 0;
  for (const ResultSpec &r : sig.results) {
    int64_t *desc = results.data() + at;
    at += 3 + 2 * r.rank;
    intptr_t allocated = (intptr_t)desc[0];
    char *aligned = (char *)(intptr_t)desc[1];
    std::vector<int64_t> shape(desc + 3, desc + 3 + r.rank);
    std::vector<int64_t> strides(desc + 3 + r.rank, desc + 3 + 2 * r.rank);
    void *data = aligned + desc[2] * (int64_t)dtypeSize(r.dtype);
    bool borrowed = inputs.count(allocated) || allocated == 0xdeadbeef;
    if (borrowed) {
      out.push_back(Tensor::view(r.dtype, shape, strides, data).copy());
      continue;
    }
    auto &owner = owners[allocated];
    if (!owner)
      owner = std::shared_ptr<void>((void *)allocated, std::free);
    out.push_back(Tensor::view(r.dtype, shape, strides, data, owner));
  }
  return out;
}
