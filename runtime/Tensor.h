//===- Tensor.h - the runtime's tensor type ---------------------*- C++ -*-===//
//
// The one tensor type every entry point takes and returns (JIT, AOT, CLI):
// dtype, shape, strides (in elements) and data, owned or borrowed. Also the
// readers and writers that move tensors in and out of the process: CLI
// literals, .npy files, JSON and text printing. No MLIR dependency.
//
// Threading: a Tensor is a value; copies share the data buffer, so concurrent
// writes to one buffer need outside synchronization.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_RUNTIME_TENSOR_H
#define MLX_RUNTIME_TENSOR_H

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlx::rt {

/// Element types of the language.
enum class DType { f32, f64, i32, i64, boolean };

/// Bytes per element.
size_t dtypeSize(DType dtype);
/// The language's spelling: "f32", "f64", "i32", "i64", "bool".
const char *dtypeName(DType dtype);
/// Parses the language's spelling.
std::optional<DType> parseDType(const std::string &name);
/// True for f32 and f64.
bool isFloat(DType dtype);
/// The float-type rule: a declared `f32` stands for the float type an
/// instance runs in (f32, or f64 when f64 arguments ask for it); every other
/// declared type is itself.
inline DType instanceDType(DType declared, DType floatType) {
  return declared == DType::f32 ? floatType : declared;
}

/// A strided n-dimensional array.
class Tensor {
public:
  Tensor() = default;
  /// A new zero-filled, contiguous (C order) tensor that owns its data.
  static Tensor allocate(DType dtype, std::vector<int64_t> shape);
  /// A tensor over `data` that someone else keeps alive (`owner` may hold it).
  static Tensor view(DType dtype, std::vector<int64_t> shape,
                     std::vector<int64_t> strides, void *data,
                     std::shared_ptr<void> owner = nullptr);

  DType dtype() const { return elementType; }
  const std::vector<int64_t> &shape() const { return dims; }
  const std::vector<int64_t> &strides() const { return elementStrides; }
  int64_t rank() const { return (int64_t)dims.size(); }
  int64_t numElements() const;
  void *data() const { return base; }
  bool isContiguous() const;
  /// A contiguous copy (or this tensor when it already is contiguous).
  Tensor contiguous() const;
  /// A contiguous copy that owns its data.
  Tensor copy() const;
  /// This tensor's values converted to `dtype`, contiguous.
  Tensor convertTo(DType dtype) const;
  /// Element at row-major position `flat`, as a double.
  double getDouble(int64_t flat) const;
  /// Integer (or bool) element at row-major position `flat`, exactly.
  int64_t getInt(int64_t flat) const;
  /// Sets element at row-major position `flat` (contiguous tensors only).
  void setDouble(int64_t flat, double value);

private:
  Tensor copyAs(DType dtype) const;
  DType elementType = DType::f32;
  std::vector<int64_t> dims, elementStrides;
  void *base = nullptr;
  std::shared_ptr<void> owner;
};

/// Parses a CLI literal: `3.5`, `-inf`, `true`, `[[1,2],[3,4]]`. Integer
/// literals convert to a float `dtype`; a float literal for an integer dtype
/// is an error. Returns false and sets `error` on bad input.
bool parseLiteral(const std::string &text, DType dtype, Tensor &out,
                  std::string &error);

/// Reads a NumPy .npy file (format 1.0/2.0/3.0, little-endian f32, f64, i32,
/// i64 or bool, C or Fortran order).
bool readNpy(const std::string &path, Tensor &out, std::string &error);
/// Parses the bytes of a .npy file (`name` is used in messages).
bool parseNpy(const std::string &bytes, const std::string &name, Tensor &out,
              std::string &error);
/// Writes a .npy file (format 1.0, C order) atomically: a temporary file
/// renamed into place, so no truncated file is ever left behind.
bool writeNpy(const std::string &path, const Tensor &tensor,
              std::string &error);

/// Renames a fully written temporary file onto `path` (atomic on one file
/// system), removing the temporary on failure. For tests, the environment
/// variable MLX_FAULT_INJECT=kill-before-rename kills the process just
/// before the rename, as a crash mid-write would.
bool commitFile(const std::string &tmp, const std::string &path,
                std::string &error);

/// Nested-list text of the values: `[[1, 2], [3, 4]]`; scalars bare.
/// `precise` prints round-trippable digits (%.9g / %.17g); else %.6g.
std::string formatValues(const Tensor &tensor, bool precise);
/// Shape text: `[2, 3]`.
std::string formatShape(const std::vector<int64_t> &shape);

} // namespace mlx::rt

#endif // MLX_RUNTIME_TENSOR_H
