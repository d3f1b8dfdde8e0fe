//===- Types.cpp - dtypes, symbolic shapes and instance names ---------===//
#include "frontend/Types.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MathExtras.h"

#include <map>

using namespace mlx;

std::optional<SDim> SDim::arith(char op, const SDim &a, const SDim &b) {
  if (a.constant && b.constant) {
    int64_t x = *a.constant, y = *b.constant;
    switch (op) {
    case '+':
      return of(x + y);
    case '-':
      return of(x - y);
    case '*':
      return of(x * y);
    default:
      if (y == 0)
        return std::nullopt;
      return of(llvm::divideFloorSigned(x, y));
    }
  }
  if (b.constant && ((*b.constant == 0 && (op == '+' || op == '-')) ||
                     (*b.constant == 1 && (op == '*' || op == '/'))))
    return a;
  if (a.constant &&
      ((*a.constant == 0 && op == '+') || (*a.constant == 1 && op == '*')))
    return b;
  if (b.constant && *b.constant == 0 && op == '/')
    return std::nullopt;
  auto text = [](const SDim &d) {
    return d.isArith() ? "(" + d.str() + ")" : d.str();
  };
  SDim out;
  out.op = op;
  out.symbol = text(a) + " " + op + " " + text(b);
  out.lhs = std::make_shared<SDim>(a);
  out.rhs = std::make_shared<SDim>(b);
  return out;
}

namespace {
/// A size as Σ coefficient · term, the constant under the term "": two
/// sizes with the same form are equal for every value of their symbols.
using LinearForm = std::map<std::string, int64_t>;

std::string keyOf(const LinearForm &form) {
  std::string key;
  for (const auto &[term, coefficient] : form)
    key += term + "#" + std::to_string(coefficient) + ";";
  return key;
}

std::optional<int64_t> constantOf(const LinearForm &form) {
  if (form.empty())
    return 0;
  if (form.size() == 1 && form.count(""))
    return form.at("");
  return std::nullopt;
}

LinearForm linearForm(const SDim &d) {
  LinearForm form;
  auto add = [&](const LinearForm &part, int64_t scale) {
    for (const auto &[term, coefficient] : part)
      if ((form[term] += scale * coefficient) == 0)
        form.erase(term);
  };
  if (d.constant) {
    if (*d.constant != 0)
      form[""] = *d.constant;
    return form;
  }
  if (!d.isArith()) {
    form[d.symbol] = 1;
    return form;
  }
  LinearForm a = linearForm(*d.lhs), b = linearForm(*d.rhs);
  switch (d.op) {
  case '+':
    add(a, 1);
    add(b, 1);
    return form;
  case '-':
    add(a, 1);
    add(b, -1);
    return form;
  case '*': {
    if (std::optional<int64_t> k = constantOf(b)) {
      add(a, *k);
      return form;
    }
    if (std::optional<int64_t> k = constantOf(a)) {
      add(b, *k);
      return form;
    }
    std::string x = keyOf(a), y = keyOf(b);
    if (y < x)
      std::swap(x, y);
    form["(" + x + ")*(" + y + ")"] = 1;
    return form;
  }
  default: { // floor division: exact where k divides every coefficient
    std::optional<int64_t> k = constantOf(b);
    if (k && *k != 0 && llvm::all_of(a, [&](const auto &entry) {
          return entry.second % *k == 0;
        })) {
      for (const auto &[term, coefficient] : a)
        form[term] = coefficient / *k;
      return form;
    }
    form["(" + keyOf(a) + ")/(" + keyOf(b) + ")"] = 1;
    return form;
  }
  }
}
} // namespace

bool SDim::sameAs(const SDim &other) const {
  return linearForm(*this) == linearForm(other);
}

bool SDim::provablyAtMost(const SDim &other,
                          const std::vector<std::string> &atLeastOne) const {
  LinearForm slack = linearForm(other);
  for (const auto &[term, coefficient] : linearForm(*this))
    if ((slack[term] -= coefficient) == 0)
      slack.erase(term);
  int64_t constant = 0;
  for (const auto &[term, coefficient] : slack) {
    if (term.empty()) {
      constant += coefficient;
      continue;
    }
    // A product or a quotient may hide a difference: not a size.
    if (coefficient < 0 || term.front() == '(')
      return false;
    if (llvm::is_contained(atLeastOne, term))
      constant += coefficient;
  }
  return constant >= 0;
}

std::string mlx::shapeStr(const Shape &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + shape[i].str();
  return s + "]";
}

bool mlx::sameShape(const Shape &a, const Shape &b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!a[i].sameAs(b[i]))
      return false;
  return true;
}

rt::DType EType::resolve(std::optional<rt::DType> preferred,
                         rt::DType defaultFloat) const {
  if (kind == Concrete)
    return dtype;
  if (preferred && (kind != LitFloat || rt::isFloat(*preferred)))
    return *preferred;
  return kind == LitFloat ? defaultFloat : rt::DType::i64;
}

std::string EType::str() const {
  switch (kind) {
  case Concrete:
    return rt::dtypeName(dtype);
  case LitInt:
    return "integer literal";
  case LitFloat:
    return "float literal";
  case Index:
    return "index";
  case Error:
    break;
  }
  return "<error>";
}

EType mlx::unifyTypes(EType a, EType b, llvm::StringRef what,
                      std::string &mismatch) {
  using K = EType::Kind;
  auto fail = [&](const std::string &detail) {
    mismatch = "dtype mismatch in " + what.str() + ": " + detail;
    return EType::lit(K::Error);
  };
  if (a.kind == K::Error || b.kind == K::Error)
    return EType::lit(K::Error);
  if (a.kind == K::Concrete && b.kind == K::Concrete) {
    if (a.dtype != b.dtype)
      return fail(a.str() + " and " + b.str());
    return a;
  }
  if (b.kind == K::Concrete)
    std::swap(a, b);
  if (a.kind == K::Concrete) {
    if (a.dtype == rt::DType::boolean)
      return fail("bool and " + b.str());
    if (b.kind == K::LitFloat && !rt::isFloat(a.dtype))
      return fail(a.str() + " and a float literal");
    return a;
  }
  if (a.kind == K::LitFloat || b.kind == K::LitFloat)
    return EType::lit(K::LitFloat);
  if (a.kind == K::Index || b.kind == K::Index)
    return EType::lit(K::Index);
  return EType::lit(K::LitInt);
}

rt::DType
mlx::callFloatType(const ast::Function &fn,
                   llvm::ArrayRef<std::optional<rt::DType>> argumentDTypes,
                   rt::DType callerFloatType, size_t *firstF64) {
  bool f32Passed = false;
  for (size_t k = 0; k < fn.params.size() && k < argumentDTypes.size(); ++k) {
    if (fn.params[k].type.dtype != rt::DType::f32)
      continue;
    if (argumentDTypes[k] == rt::DType::f64) {
      if (firstF64)
        *firstF64 = k;
      return rt::DType::f64;
    }
    f32Passed |= argumentDTypes[k] == rt::DType::f32;
  }
  return f32Passed ? rt::DType::f32 : callerFloatType;
}

std::optional<SDim>
mlx::dimOf(const ast::DimExpr &dim,
           llvm::function_ref<std::optional<SDim>(const std::string &)> symbol,
           std::string &error) {
  using K = ast::DimExpr::Kind;
  switch (dim.kind) {
  case K::Int:
    return SDim::of(dim.value);
  case K::Sym: {
    std::optional<SDim> s = symbol(dim.name);
    if (!s)
      error = "'" + dim.name + "' is not the dimension of any parameter";
    return s;
  }
  case K::Ellipsis:
    error = "'...' must be the only dimension of a type";
    return std::nullopt;
  default:
    break;
  }
  std::optional<SDim> a = dimOf(*dim.lhs, symbol, error);
  std::optional<SDim> b = a ? dimOf(*dim.rhs, symbol, error) : std::nullopt;
  if (!a || !b)
    return std::nullopt;
  char op = dim.kind == K::Add   ? '+'
            : dim.kind == K::Sub ? '-'
            : dim.kind == K::Mul ? '*'
                                 : '/';
  std::optional<SDim> out = SDim::arith(op, *a, *b);
  if (!out)
    error = "division by zero in a dimension";
  else if (out->constant && *out->constant < 0)
    error = "dimension evaluates to " + std::to_string(*out->constant);
  if (!out || (out->constant && *out->constant < 0))
    return std::nullopt;
  return out;
}

std::optional<int64_t> mlx::evaluateDim(
    const ast::DimExpr &dim,
    llvm::function_ref<std::optional<int64_t>(const std::string &)> symbol,
    std::string &error) {
  std::optional<SDim> size = dimOf(
      dim,
      [&](const std::string &name) -> std::optional<SDim> {
        std::optional<int64_t> v = symbol(name);
        return v ? std::optional<SDim>(SDim::of(*v)) : std::nullopt;
      },
      error);
  return size ? size->constant : std::nullopt;
}

std::string mlx::instanceName(const ast::Function &fn, int64_t anyShapeRank,
                              rt::DType floatType,
                              const StaticValues &statics) {
  std::string name = fn.name;
  if (fn.isShapePolymorphic())
    name += "_r" + std::to_string(anyShapeRank);
  if (floatType != rt::DType::f32)
    name += std::string("_") + rt::dtypeName(floatType);
  for (auto [k, p] : llvm::enumerate(fn.params)) {
    auto it = statics.find(p.name);
    if (!p.isStatic || it == statics.end())
      continue;
    bool ascii = llvm::all_of(
        p.name, [](char c) { return llvm::isAlnum(c) || c == '_'; });
    name += "_" + (ascii ? p.name : "p" + std::to_string(k)) +
            (it->second < 0 ? "m" + std::to_string(-it->second)
                            : std::to_string(it->second));
  }
  return name;
}

std::string mlx::exportName(const ExportRequest &request) {
  const ast::Function &fn = *request.function;
  std::string name = instanceName(fn, request.anyShapeRank, request.floatType,
                                  request.statics);
  if (request.trace)
    return name + "_trace";
  if (request.wrt.empty())
    return name;
  name += "_grad";
  for (int64_t k : request.wrt) {
    const std::string &param = fn.params[k].name;
    bool ascii = llvm::all_of(
        param, [](char c) { return llvm::isAlnum(c) || c == '_'; });
    name += "_" + (ascii ? param : "p" + std::to_string(k));
  }
  return name;
}
