//===- frontend.cpp - fuzz .mlx source through the front end ----------===//
//
// Source text → lexer, parser, AST, semantic analysis, MLIR generation and
// the verifier; with MLX_FUZZ_PIPELINE=1 each function is exported with its
// gradient with respect to all of its float parameters (mlx-autodiff) and
// goes through the whole CPU pipeline to the LLVM dialect. Any crash, sanitizer
// report, timeout or OOM is a bug: every input must end in a module or in
// diagnostics.
//
//===----------------------------------------------------------------------===//
#include "session/Session.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool fullPipeline = std::getenv("MLX_FUZZ_PIPELINE") != nullptr;
  // No imports from the file system beyond the stdlib.
  auto session = mlx::Session::create();
  if (!session)
    abort();
  std::string source(reinterpret_cast<const char *>(data), size);
  if (llvm::Error err = (*session)->loadSource("fuzz.mlx", source)) {
    llvm::consumeError(std::move(err));
    return 0;
  }
  std::vector<mlx::ExportRequest> exports = (*session)->allExports();
  if (fullPipeline)
    for (mlx::ExportRequest &r : exports)
      for (auto [k, p] : llvm::enumerate(r.function->params))
        if (mlx::rt::isFloat(p.type.dtype))
          r.wrt.push_back((int64_t)k);
  auto module = (*session)->lower(exports, fullPipeline ? mlx::Stage::Target
                                                        : mlx::Stage::Mlx);
  if (!module)
    llvm::consumeError(module.takeError());
  return 0;
}
