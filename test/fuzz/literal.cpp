//===- literal.cpp - fuzz CLI literal arguments -----------------------===//
#include "runtime/Tensor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  for (mlx::rt::DType d : {mlx::rt::DType::f32, mlx::rt::DType::i32}) {
    mlx::rt::Tensor t;
    std::string error;
    if (mlx::rt::parseLiteral(text, d, t, error))
      (void)mlx::rt::formatValues(t, false);
  }
  return 0;
}
