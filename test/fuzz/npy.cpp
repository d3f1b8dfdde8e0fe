//===- npy.cpp - fuzz the .npy reader ---------------------------------===//
#include "runtime/Tensor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mlx::rt::Tensor t;
  std::string error;
  std::string bytes(reinterpret_cast<const char *>(data), size);
  if (mlx::rt::parseNpy(bytes, "fuzz.npy", t, error))
    (void)mlx::rt::formatValues(t, true);
  return 0;
}
