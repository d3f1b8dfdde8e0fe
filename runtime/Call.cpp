//===- Call.cpp - calling compiled functions --------------------*- C++ -*-===//
//
// The signature check every call of compiled code goes through, whatever
// the target.
//
//===----------------------------------------------------------------------===//
#include "runtime/Call.h"
#include "runtime/Executable.h"

#include <map>

using namespace mlx::rt;

std::optional<int64_t> mlx::rt::DimFormula::evaluate(
    const std::map<std::string, int64_t> &sizes) const {
  if (!op) {
    if (symbol.empty())
      return value;
    auto it = sizes.find(symbol);
    return it == sizes.end() ? std::nullopt : std::optional(it->second);
  }
  std::optional<int64_t> a = lhs->evaluate(sizes), b = rhs->evaluate(sizes);
  if (!a || !b || (op == '/' && *b == 0))
    return std::nullopt;
  switch (op) {
  case '+':
    return *a + *b;
  case '-':
    return *a - *b;
  case '*':
    return *a * *b;
  default: // floor division
    return *a / *b - ((*a % *b != 0) && ((*a < 0) != (*b < 0)));
  }
}

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
    if (p.staticValue && (int64_t)a.getDouble(0) != *p.staticValue) {
      error = "static parameter '" + p.name + "' was compiled for " +
              std::to_string(*p.staticValue) + " but the call passes " +
              std::to_string((int64_t)a.getDouble(0));
      return false;
    }
    for (size_t d = 0; d < p.dims.size(); ++d) {
      const DimSpec &spec = p.dims[d];
      int64_t size = a.shape()[d];
      if (spec.formula)
        continue; // checked once every symbol is bound
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
  // Dimensions given by formulas of the symbols (`W: f32[4 * H, H + M]`).
  std::map<std::string, int64_t> sizes;
  for (auto &[symbol, entry] : bound)
    sizes[symbol] = entry.first;
  for (size_t i = 0; i < args.size(); ++i)
    for (size_t d = 0; d < sig.params[i].dims.size(); ++d) {
      const DimSpec &spec = sig.params[i].dims[d];
      if (!spec.formula)
        continue;
      std::optional<int64_t> want = spec.formula->evaluate(sizes);
      int64_t size = args[i].shape()[d];
      if (want && *want != size) {
        error = "argument '" + sig.params[i].name + "' dimension " +
                std::to_string(d) + " (" + spec.symbol + ") must be " +
                std::to_string(*want) + " but is " + std::to_string(size);
        return false;
      }
    }
  return true;
}

mlx::rt::Executable::~Executable() = default;
