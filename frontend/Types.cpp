//===- Types.cpp - dtypes, symbolic shapes and instance names ---------===//
#include "frontend/Types.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MathExtras.h"

using namespace mlx;

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
                   size_t *firstF64) {
  for (size_t k = 0; k < fn.params.size() && k < argumentDTypes.size(); ++k)
    if (fn.params[k].type.dtype == rt::DType::f32 &&
        argumentDTypes[k] == rt::DType::f64) {
      if (firstF64)
        *firstF64 = k;
      return rt::DType::f64;
    }
  return rt::DType::f32;
}

std::optional<int64_t> mlx::evaluateDim(
    const ast::DimExpr &dim,
    llvm::function_ref<std::optional<int64_t>(const std::string &)> symbol,
    std::string &error) {
  using K = ast::DimExpr::Kind;
  switch (dim.kind) {
  case K::Int:
    return dim.value;
  case K::Sym:
    return symbol(dim.name);
  case K::Ellipsis:
    return std::nullopt;
  default:
    break;
  }
  std::optional<int64_t> a = evaluateDim(*dim.lhs, symbol, error);
  std::optional<int64_t> b = evaluateDim(*dim.rhs, symbol, error);
  if (!a || !b)
    return std::nullopt;
  switch (dim.kind) {
  case K::Add:
    return *a + *b;
  case K::Sub:
    return *a - *b;
  case K::Mul:
    return *a * *b;
  default:
    if (*b == 0) {
      error = "division by zero in a dimension";
      return std::nullopt;
    }
    return llvm::divideFloorSigned(*a, *b);
  }
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
