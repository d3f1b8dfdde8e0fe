//===- Npy.cpp - NumPy .npy reading and writing -----------------*- C++ -*-===//
//
// The .npy format (NumPy NEP 1): magic "\x93NUMPY", version, a header length,
// a Python-dict header {'descr', 'fortran_order', 'shape'}, then raw data.
//
//===----------------------------------------------------------------------===//
#include "runtime/Tensor.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace mlx::rt;

namespace {
/// Finds `'key':` in the header dict and returns the text after it.
bool findKey(const std::string &header, const std::string &key,
             size_t &valueStart) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos)
    return false;
  at = header.find(':', at);
  if (at == std::string::npos)
    return false;
  valueStart = at + 1;
  while (valueStart < header.size() && header[valueStart] == ' ')
    ++valueStart;
  return true;
}
} // namespace

bool mlx::rt::readNpy(const std::string &path, Tensor &out,
                      std::string &error) {
  // stdio, not iostreams: a directory or an unreadable file is an error
  // code here, not an exception.
  FILE *in = std::fopen(path.c_str(), "rb");
  if (!in) {
    error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::string bytes;
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, in)) > 0)
    bytes.append(chunk, n);
  int readError = std::ferror(in) ? errno : 0;
  std::fclose(in);
  if (readError) {
    error = "cannot read '" + path + "': " + std::strerror(readError);
    return false;
  }
  return parseNpy(bytes, path, out, error);
}

bool mlx::rt::parseNpy(const std::string &bytes, const std::string &path,
                       Tensor &out, std::string &error) {
  auto bad = [&](const std::string &why) {
    error = "'" + path + "' is not a valid .npy file: " + why;
    return false;
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    return bad("missing the \\x93NUMPY magic");
  unsigned major = (unsigned char)bytes[6];
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = (unsigned char)bytes[8] | ((unsigned char)bytes[9] << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return bad("truncated header");
    headerLen = 0;
    for (int i = 3; i >= 0; --i)
      headerLen = (headerLen << 8) | (unsigned char)bytes[8 + i];
    headerStart = 12;
  } else {
    return bad("unsupported format version " + std::to_string(major));
  }
  if (headerLen > bytes.size() - headerStart)
    return bad("truncated header");
  std::string header = bytes.substr(headerStart, headerLen);

  size_t at;
  if (!findKey(header, "descr", at) || header[at] != '\'')
    return bad("no 'descr' in the header");
  size_t end = header.find('\'', at + 1);
  if (end == std::string::npos)
    return bad("unterminated 'descr'");
  std::string descr = header.substr(at + 1, end - at - 1);
  if (descr.size() < 2)
    return bad("bad 'descr' '" + descr + "'");
  if (descr[0] == '>')
    return bad("big-endian data ('" + descr + "') is not supported");
  std::string kind = descr.substr(1);
  DType dtype;
  if (kind == "f4")
    dtype = DType::f32;
  else if (kind == "f8")
    dtype = DType::f64;
  else if (kind == "i4")
    dtype = DType::i32;
  else if (kind == "i8")
    dtype = DType::i64;
  else if (kind == "b1")
    dtype = DType::boolean;
  else
    return bad("unsupported dtype '" + descr +
               "' (use float32, float64, int32, int64 or bool)");

  if (!findKey(header, "fortran_order", at))
    return bad("no 'fortran_order' in the header");
  bool fortran = header.compare(at, 4, "True") == 0;

  if (!findKey(header, "shape", at) || header[at] != '(')
    return bad("no 'shape' tuple in the header");
  end = header.find(')', at);
  if (end == std::string::npos)
    return bad("unterminated 'shape'");
  std::vector<int64_t> shape;
  std::string dims = header.substr(at + 1, end - at - 1);
  std::stringstream ss(dims);
  std::string item;
  int64_t count = 1;
  while (std::getline(ss, item, ',')) {
    size_t first = item.find_first_not_of(' ');
    if (first == std::string::npos)
      continue;
    size_t last = item.find_last_not_of(' ');
    std::string digits = item.substr(first, last - first + 1);
    if (digits.empty() || digits.size() > 13 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      return bad("bad dimension '" + item + "' in 'shape'");
    long long dim = std::strtoll(digits.c_str(), nullptr, 10);
    if (dim > (1LL << 40))
      return bad("bad dimension '" + item + "' in 'shape'");
    shape.push_back(dim);
    if (shape.size() > 16)
      return bad("more than 16 dimensions");
    if (dim != 0 && count > (1LL << 40) / dim)
      return bad("too many elements");
    count *= dim;
  }
  size_t dataStart = headerStart + headerLen;
  size_t need = (size_t)count * dtypeSize(dtype);
  if (bytes.size() - dataStart < need)
    return bad("expected " + std::to_string(need) + " bytes of data, found " +
               std::to_string(bytes.size() - dataStart));
  Tensor t = Tensor::allocate(dtype, shape);
  if (!fortran) {
    std::memcpy(t.data(), bytes.data() + dataStart, need);
    out = t;
    return true;
  }
  // Fortran order: the same bytes with column-major strides, made contiguous.
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = 1; d < shape.size(); ++d)
    strides[d] = strides[d - 1] * shape[d - 1];
  std::memcpy(t.data(), bytes.data() + dataStart, need);
  // copy(), not contiguous(): the view does not own t's buffer.
  out = Tensor::view(dtype, shape, strides, t.data(), nullptr).copy();
  return true;
}

bool mlx::rt::writeNpy(const std::string &path, const Tensor &tensor,
                       std::string &error) {
  Tensor t = tensor.contiguous();
  const char *descr = "";
  switch (t.dtype()) {
  case DType::f32:
    descr = "<f4";
    break;
  case DType::f64:
    descr = "<f8";
    break;
  case DType::i32:
    descr = "<i4";
    break;
  case DType::i64:
    descr = "<i8";
    break;
  case DType::boolean:
    descr = "|b1";
    break;
  }
  std::string shape = "(";
  for (int64_t d : t.shape())
    shape += std::to_string(d) + ",";
  if (t.rank() > 1)
    shape.pop_back();
  shape += ")";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that the data starts on a 64-byte boundary; end with '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream os(tmp, std::ios::binary);
    if (!os) {
      error = "cannot write '" + path + "'";
      return false;
    }
    os.write("\x93NUMPY\x01\x00", 8);
    char len[2] = {(char)(header.size() & 0xff), (char)(header.size() >> 8)};
    os.write(len, 2);
    os.write(header.data(), (std::streamsize)header.size());
    os.write(static_cast<const char *>(t.data()),
             (std::streamsize)(t.numElements() * dtypeSize(t.dtype())));
    if (!os) {
      std::remove(tmp.c_str());
      error = "cannot write '" + path + "'";
      return false;
    }
  }
  return commitFile(tmp, path, error);
}

bool mlx::rt::commitFile(const std::string &tmp, const std::string &path,
                         std::string &error) {
  if (const char *fault = std::getenv("MLX_FAULT_INJECT"))
    if (std::string(fault) == "kill-before-rename")
      std::raise(SIGKILL);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    error = "cannot write '" + path + "': " + std::strerror(errno);
    return false;
  }
  return true;
}
