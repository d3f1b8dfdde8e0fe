//===- Tensor.cpp - tensors, literals, printing -----------------*- C++ -*-===//
#include "runtime/Tensor.h"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

using namespace mlx::rt;

size_t mlx::rt::dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::f32:
  case DType::i32:
    return 4;
  case DType::f64:
  case DType::i64:
    return 8;
  case DType::boolean:
    return 1;
  }
  return 1;
}

const char *mlx::rt::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::f32:
    return "f32";
  case DType::f64:
    return "f64";
  case DType::i32:
    return "i32";
  case DType::i64:
    return "i64";
  case DType::boolean:
    return "bool";
  }
  return "?";
}

std::optional<DType> mlx::rt::parseDType(const std::string &name) {
  for (DType d :
       {DType::f32, DType::f64, DType::i32, DType::i64, DType::boolean})
    if (name == dtypeName(d))
      return d;
  return std::nullopt;
}

bool mlx::rt::isFloat(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64;
}

static std::vector<int64_t> rowMajorStrides(const std::vector<int64_t> &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = (int64_t)shape.size() - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

Tensor Tensor::allocate(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.elementType = dtype;
  t.dims = std::move(shape);
  t.elementStrides = rowMajorStrides(t.dims);
  size_t bytes =
      (size_t)std::max<int64_t>(t.numElements(), 1) * dtypeSize(dtype);
  // 64-byte alignment for vector loads in compiled code.
  size_t rounded = (bytes + 63) / 64 * 64;
  void *data = std::aligned_alloc(64, rounded);
  std::memset(data, 0, rounded);
  t.base = data;
  t.owner = std::shared_ptr<void>(data, std::free);
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape,
                    std::vector<int64_t> strides, void *data,
                    std::shared_ptr<void> owner) {
  Tensor t;
  t.elementType = dtype;
  t.dims = std::move(shape);
  t.elementStrides = std::move(strides);
  t.base = data;
  t.owner = std::move(owner);
  return t;
}

int64_t Tensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

bool Tensor::isContiguous() const {
  int64_t expected = 1;
  for (int64_t d = rank() - 1; d >= 0; --d) {
    if (dims[d] != 1 && elementStrides[d] != expected)
      return false;
    expected *= dims[d];
  }
  return true;
}

/// Byte offset of row-major element `flat`.
static int64_t elementOffset(const Tensor &t, int64_t flat) {
  int64_t offset = 0;
  for (int64_t d = t.rank() - 1; d >= 0; --d) {
    int64_t size = t.shape()[d];
    if (size == 0)
      return 0;
    offset += (flat % size) * t.strides()[d];
    flat /= size;
  }
  return offset * (int64_t)dtypeSize(t.dtype());
}

double Tensor::getDouble(int64_t flat) const {
  const char *p = static_cast<const char *>(base) + elementOffset(*this, flat);
  switch (elementType) {
  case DType::f32:
    return *reinterpret_cast<const float *>(p);
  case DType::f64:
    return *reinterpret_cast<const double *>(p);
  case DType::i32:
    return *reinterpret_cast<const int32_t *>(p);
  case DType::i64:
    return (double)*reinterpret_cast<const int64_t *>(p);
  case DType::boolean:
    return *reinterpret_cast<const uint8_t *>(p) ? 1.0 : 0.0;
  }
  return 0;
}

int64_t Tensor::getInt(int64_t flat) const {
  const char *p = static_cast<const char *>(base) + elementOffset(*this, flat);
  switch (elementType) {
  case DType::i32:
    return *reinterpret_cast<const int32_t *>(p);
  case DType::i64:
    return *reinterpret_cast<const int64_t *>(p);
  case DType::boolean:
    return *reinterpret_cast<const uint8_t *>(p) ? 1 : 0;
  default:
    return (int64_t)getDouble(flat);
  }
}

void Tensor::setDouble(int64_t flat, double value) {
  char *p = static_cast<char *>(base) + flat * dtypeSize(elementType);
  switch (elementType) {
  case DType::f32:
    *reinterpret_cast<float *>(p) = (float)value;
    break;
  case DType::f64:
    *reinterpret_cast<double *>(p) = value;
    break;
  case DType::i32:
    *reinterpret_cast<int32_t *>(p) = (int32_t)value;
    break;
  case DType::i64:
    *reinterpret_cast<int64_t *>(p) = (int64_t)value;
    break;
  case DType::boolean:
    *reinterpret_cast<uint8_t *>(p) = value != 0;
    break;
  }
}

Tensor Tensor::contiguous() const {
  if (isContiguous())
    return *this;
  return convertTo(elementType);
}

Tensor Tensor::convertTo(DType dtype) const {
  if (dtype == elementType && isContiguous())
    return *this;
  return copyAs(dtype);
}

Tensor Tensor::copy() const { return copyAs(elementType); }

Tensor Tensor::copyAs(DType dtype) const {
  Tensor out = allocate(dtype, dims);
  int64_t n = numElements();
  if (dtype == elementType) {
    size_t size = dtypeSize(dtype);
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(static_cast<char *>(out.base) + i * size,
                  static_cast<const char *>(base) + elementOffset(*this, i),
                  size);
    return out;
  }
  for (int64_t i = 0; i < n; ++i)
    out.setDouble(i, getDouble(i));
  return out;
}

//===----------------------------------------------------------------------===//
// Literals
//===----------------------------------------------------------------------===//

namespace {
/// Recursive-descent parser of nested-list literals.
class LiteralParser {
public:
  LiteralParser(const std::string &text) : text(text) {}

  bool parse(DType dtype, Tensor &out, std::string &error) {
    std::vector<int64_t> shape;
    if (!parseValue(0, shape) || !atEnd()) {
      error = message.empty() ? "unexpected '" + text.substr(pos, 1) + "'"
                              : message;
      error = "bad literal '" + text + "': " + error + " at offset " +
              std::to_string(pos);
      return false;
    }
    if (!isFloat(dtype) && hasFloat) {
      error = "bad literal '" + text + "': a " + std::string(dtypeName(dtype)) +
              " argument needs integer values";
      return false;
    }
    if (dtype != DType::f64) {
      double limit = dtype == DType::f32   ? (double)FLT_MAX
                     : dtype == DType::i32 ? 2147483648.0
                                           : 9223372036854775808.0;
      for (double v : values)
        if (dtype == DType::f32 ? std::isfinite(v) && std::fabs(v) > limit
                                : !(v >= -limit && v < limit)) {
          char shown[32];
          std::snprintf(shown, sizeof shown, "%g", v);
          error = "bad literal '" + text + "': " + shown +
                  " is out of range for " + dtypeName(dtype) +
                  (isFloat(dtype) ? " (write inf for infinity)" : "");
          return false;
        }
    }
    out = Tensor::allocate(dtype, shape);
    for (size_t i = 0; i < values.size(); ++i)
      out.setDouble((int64_t)i, values[i]);
    return true;
  }

private:
  void skipSpace() {
    while (pos < text.size() && std::isspace((unsigned char)text[pos]))
      ++pos;
  }
  bool atEnd() {
    skipSpace();
    return pos == text.size();
  }
  bool fail(const std::string &m) {
    if (message.empty())
      message = m;
    return false;
  }

  bool parseValue(size_t depth, std::vector<int64_t> &shape) {
    if (depth > 32)
      return fail("nested deeper than 32 levels");
    skipSpace();
    if (pos < text.size() && text[pos] == '[') {
      ++pos;
      int64_t count = 0;
      std::vector<int64_t> inner, first;
      skipSpace();
      if (pos < text.size() && text[pos] == ']') {
        ++pos;
        return setShape(depth, {0}, shape);
      }
      while (true) {
        inner.clear();
        if (!parseValue(depth + 1, inner))
          return false;
        if (count == 0)
          first = inner;
        else if (inner != first)
          return fail("ragged nested list (rows of different shapes)");
        ++count;
        skipSpace();
        if (pos < text.size() && text[pos] == ',') {
          ++pos;
          continue;
        }
        if (pos < text.size() && text[pos] == ']') {
          ++pos;
          break;
        }
        return fail("expected ',' or ']'");
      }
      shape.assign(1, count);
      shape.insert(shape.end(), first.begin(), first.end());
      return true;
    }
    return parseScalar();
  }
  bool setShape(size_t, std::vector<int64_t> s, std::vector<int64_t> &shape) {
    shape = std::move(s);
    return true;
  }
  bool parseScalar() {
    skipSpace();
    size_t start = pos;
    while (pos < text.size() &&
           (std::isalnum((unsigned char)text[pos]) || text[pos] == '.' ||
            text[pos] == '-' || text[pos] == '+'))
      ++pos;
    std::string token = text.substr(start, pos - start);
    if (token.empty())
      return fail("expected a number");
    if (token == "true" || token == "false") {
      values.push_back(token == "true");
      return true;
    }
    std::string lower = token;
    for (char &c : lower)
      c = (char)std::tolower((unsigned char)c);
    if (lower == "inf" || lower == "+inf" || lower == "-inf" ||
        lower == "nan") {
      hasFloat = true;
      values.push_back(lower == "nan"    ? NAN
                       : lower[0] == '-' ? -INFINITY
                                         : INFINITY);
      return true;
    }
    char *end = nullptr;
    double value = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size()) {
      pos = start;
      return fail("'" + token + "' is not a number");
    }
    if (std::isinf(value)) {
      pos = start;
      return fail("'" + token + "' is out of range (write inf for infinity)");
    }
    if (token.find_first_of(".eE") != std::string::npos)
      hasFloat = true;
    values.push_back(value);
    return true;
  }

  const std::string &text;
  size_t pos = 0;
  std::vector<double> values;
  bool hasFloat = false;
  std::string message;
};
} // namespace

bool mlx::rt::parseLiteral(const std::string &text, DType dtype, Tensor &out,
                           std::string &error) {
  return LiteralParser(text).parse(dtype, out, error);
}

//===----------------------------------------------------------------------===//
// Printing
//===----------------------------------------------------------------------===//

std::string mlx::rt::formatShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

static std::string formatNumber(const Tensor &t, int64_t flat, bool precise) {
  DType dtype = t.dtype();
  if (dtype == DType::boolean)
    return t.getInt(flat) ? "true" : "false";
  if (!isFloat(dtype))
    return std::to_string(t.getInt(flat));
  double v = t.getDouble(flat);
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v < 0 ? "-Infinity" : "Infinity";
  char buf[64];
  const char *fmt = !precise ? "%.6g" : dtype == DType::f32 ? "%.9g" : "%.17g";
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string mlx::rt::formatValues(const Tensor &t, bool precise) {
  std::string out;
  int64_t flat = 0;
  // With no elements, the lists before the first zero dim are all printed
  // (as NumPy's tolist() does) unless there are too many: then one per level.
  bool compactEmpty = false;
  if (t.numElements() == 0) {
    double lists = 1;
    for (int64_t d : t.shape()) {
      if (d == 0)
        break;
      lists *= (double)d;
    }
    compactEmpty = lists > (1 << 20);
  }
  std::function<void(int64_t)> rec = [&](int64_t d) {
    if (d == t.rank()) {
      out += formatNumber(t, flat++, precise);
      return;
    }
    if (compactEmpty) {
      out += "[";
      if (t.shape()[d] != 0 && d + 1 < t.rank())
        rec(d + 1);
      out += "]";
      return;
    }
    out += "[";
    for (int64_t i = 0; i < t.shape()[d]; ++i) {
      if (i)
        out += ", ";
      rec(d + 1);
    }
    out += "]";
  };
  rec(0);
  return out;
}
