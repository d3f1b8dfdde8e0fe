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
#include "codegen/cpu/CpuCodegen.h"
#include "frontend/Compiler.h"
#include "frontend/DiagnosticPrinter.h"
#include "passes/Passes.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mlir::DialectRegistry *registry = [] {
    auto *r = new mlir::DialectRegistry();
    mlir::mlx::registerMlxLevelDialects(*r);
    mlir::mlx::registerCpuTargetDialects(*r);
    return r;
  }();
  static bool fullPipeline = std::getenv("MLX_FUZZ_PIPELINE") != nullptr;
  mlir::MLIRContext ctx(*registry, mlir::MLIRContext::Threading::DISABLED);
  llvm::SourceMgr sm;
  std::string diagnostics;
  llvm::raw_string_ostream os(diagnostics);
  mlx::DiagnosticPrinter printer(ctx, sm, os);
  // No imports from the file system beyond the stdlib.
  mlx::Compiler compiler(ctx, sm, {});
  std::string source(reinterpret_cast<const char *>(data), size);
  if (!compiler.loadSource("fuzz.mlx", source))
    return 0;
  std::vector<mlx::ExportRequest> exports = compiler.allExports();
  if (fullPipeline)
    for (mlx::ExportRequest &r : exports)
      for (auto [k, p] : llvm::enumerate(r.function->params))
        if (mlx::rt::isFloat(p.type.dtype))
          r.wrt.push_back((int64_t)k);
  auto module = compiler.generate(exports);
  if (!module || mlir::failed(mlir::verify(*module)))
    return 0;
  if (fullPipeline) {
    mlir::PassManager pm(&ctx);
    mlir::mlx::buildMlxToCpuPipeline(pm);
    (void)pm.run(*module);
  }
  return 0;
}
