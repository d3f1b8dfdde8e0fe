//===- Call.cpp - calling compiled functions --------------------*- C++ -*-===//
//
// The signature check every call of compiled code goes through, whatever
// the target; the packed calling convention of compiled code; signatures
// as text (in a Vulkan artefact's manifest).
//
//===----------------------------------------------------------------------===//
#include "runtime/Call.h"
#include "runtime/Executable.h"

#include <cctype>
#include <istream>
#include <map>
#include <ostream>
#include <sstream>

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

std::vector<Tensor> mlx::rt::callPacked(
    void (*entry)(void **), const Signature &sig,
    const std::vector<Tensor> &args, void (*freeFn)(void *),
    const std::function<bool(void (*)(void **), void **)> &invoke) {
  std::vector<std::vector<int64_t>> descriptors;
  for (const Tensor &a : args) {
    std::vector<int64_t> desc(3 + 2 * a.rank());
    desc[0] = desc[1] = (int64_t)(intptr_t)a.data();
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
  std::vector<void *> packed = {results.data()};
  for (auto &desc : descriptors)
    packed.push_back(desc.data());
  if (!invoke)
    entry(packed.data());
  else if (!invoke(entry, packed.data()))
    return {};

  // The buffer deallocation pipeline returns every result of an exported
  // function owned (a returned argument or constant is cloned), so each
  // allocation is the caller's; results may share one.
  std::map<intptr_t, std::shared_ptr<void>> owners;
  std::vector<Tensor> out;
  size_t at = 0;
  for (const ResultSpec &r : sig.results) {
    int64_t *desc = results.data() + at;
    at += 3 + 2 * r.rank;
    auto allocated = (intptr_t)desc[0];
    std::vector<int64_t> shape(desc + 3, desc + 3 + r.rank);
    std::vector<int64_t> strides(desc + 3 + r.rank, desc + 3 + 2 * r.rank);
    void *data =
        (char *)(intptr_t)desc[1] + desc[2] * (int64_t)dtypeSize(r.dtype);
    std::shared_ptr<void> &owner = owners[allocated];
    if (!owner)
      owner = std::shared_ptr<void>((void *)allocated, freeFn);
    out.push_back(Tensor::view(r.dtype, shape, strides, data, owner));
  }
  return out;
}

namespace {
void writeFormula(std::ostream &os, const DimFormula &f) {
  if (!f.op) {
    if (f.symbol.empty())
      os << f.value;
    else
      os << f.symbol;
    return;
  }
  os << "(" << f.op << " ";
  writeFormula(os, *f.lhs);
  os << " ";
  writeFormula(os, *f.rhs);
  os << ")";
}

/// Splits a DIM list into tokens: `(`, `)`, and words.
std::vector<std::string> tokens(std::istream &is) {
  std::vector<std::string> out;
  std::string word;
  char c;
  while (is.get(c)) {
    if (c == '(' || c == ')' || std::isspace((unsigned char)c)) {
      if (!word.empty())
        out.push_back(word), word.clear();
      if (c != ' ' && c != '\t')
        out.push_back(std::string(1, c));
    } else {
      word += c;
    }
  }
  if (!word.empty())
    out.push_back(word);
  return out;
}

/// How the language writes a formula: `H + M`, `(H + M) * 2`.
std::string formulaText(const DimFormula &f) {
  if (!f.op)
    return f.symbol.empty() ? std::to_string(f.value) : f.symbol;
  auto side = [](const DimFormula &d) {
    return d.op ? "(" + formulaText(d) + ")" : formulaText(d);
  };
  return side(*f.lhs) + " " + f.op + " " + side(*f.rhs);
}

bool isNumber(const std::string &w) {
  return !w.empty() &&
         w.find_first_not_of("0123456789", w[0] == '-' ? 1 : 0) ==
             std::string::npos &&
         w != "-";
}

std::shared_ptr<const DimFormula>
parseFormula(const std::vector<std::string> &t, size_t &at) {
  if (at >= t.size())
    return nullptr;
  auto f = std::make_shared<DimFormula>();
  if (t[at] != "(") {
    if (isNumber(t[at]))
      f->value = std::stoll(t[at]);
    else
      f->symbol = t[at];
    ++at;
    return f;
  }
  if (at + 1 >= t.size() || t[at + 1].size() != 1)
    return nullptr;
  f->op = t[at + 1][0];
  at += 2;
  f->lhs = parseFormula(t, at);
  f->rhs = parseFormula(t, at);
  if (!f->lhs || !f->rhs || at >= t.size() || t[at] != ")")
    return nullptr;
  ++at;
  return f;
}
} // namespace

void mlx::rt::writeSignature(std::ostream &os, const Signature &sig) {
  os << "function " << sig.name << "\n";
  for (const ParamSpec &p : sig.params) {
    os << "param " << p.name << " " << dtypeName(p.dtype);
    if (p.staticValue)
      os << " =" << *p.staticValue;
    for (const DimSpec &d : p.dims) {
      os << " ";
      if (d.size >= 0)
        os << d.size;
      else if (d.formula)
        writeFormula(os, *d.formula);
      else
        os << d.symbol;
    }
    os << "\n";
  }
  for (const ResultSpec &r : sig.results)
    os << "result " << r.name << " " << dtypeName(r.dtype) << " " << r.rank
       << "\n";
  os << "end\n";
}

bool mlx::rt::readSignature(std::istream &is, const std::string &name,
                            Signature &sig, std::string &error) {
  sig = Signature{name, {}, {}};
  std::string line;
  while (std::getline(is, line)) {
    std::istringstream words(line);
    std::string kind, entry, dtype;
    words >> kind;
    if (kind == "end")
      return true;
    words >> entry >> dtype;
    std::optional<DType> type = parseDType(dtype);
    if (!type || (kind != "param" && kind != "result")) {
      error = "bad signature line '" + line + "'";
      return false;
    }
    if (kind == "result") {
      ResultSpec r{entry, *type, -1, 0};
      if (!(words >> r.rank) || r.rank < 0) {
        error = "bad signature line '" + line + "'";
        return false;
      }
      sig.results.push_back(r);
      continue;
    }
    ParamSpec p{entry, *type, {}, std::nullopt};
    std::vector<std::string> t = tokens(words);
    size_t at = 0;
    if (at < t.size() && t[at].size() > 1 && t[at][0] == '=' &&
        isNumber(t[at].substr(1)))
      p.staticValue = std::stoll(t[at++].substr(1));
    while (at < t.size()) {
      DimSpec d;
      if (isNumber(t[at])) {
        d.size = std::stoll(t[at++]);
      } else if (t[at] != "(") {
        d.symbol = t[at++];
      } else {
        d.formula = parseFormula(t, at);
        if (!d.formula) {
          error = "bad dimension in '" + line + "'";
          return false;
        }
        d.symbol = formulaText(*d.formula);
      }
      p.dims.push_back(d);
    }
    sig.params.push_back(p);
  }
  error = "signature of '" + name + "' has no end";
  return false;
}

mlx::rt::Executable::~Executable() = default;
