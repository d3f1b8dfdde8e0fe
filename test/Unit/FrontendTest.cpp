//===- FrontendTest.cpp - compile strings, JIT them, call them --------===//
//
// The whole pipeline through the C++ API: source text → mlx → LLVM → JIT,
// called on runtime tensors; and diagnostics as values.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"
#include "frontend/Compiler.h"
#include "frontend/DiagnosticPrinter.h"
#include "passes/Passes.h"
#include "runtime/Call.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

using namespace mlx;

namespace {
struct Compiled {
  std::unique_ptr<mlir::mlx::JitModule> jit;
  rt::Signature sig;
  std::string diagnostics;
};

Compiled compile(const std::string &source, const std::string &name) {
  Compiled out;
  mlir::DialectRegistry registry;
  mlir::mlx::registerMlxLevelDialects(registry);
  mlir::mlx::registerCpuTargetDialects(registry);
  mlir::MLIRContext ctx(registry);
  llvm::SourceMgr sm;
  llvm::raw_string_ostream os(out.diagnostics);
  DiagnosticPrinter handler(ctx, sm, os);
  Compiler compiler(ctx, sm, {});
  if (!compiler.loadSource("test.mlx", source))
    return out;
  const ast::Function *fn = compiler.findFunction(name);
  if (!fn)
    return out;
  auto module = compiler.generate({{fn, 0}});
  if (!module || mlir::failed(mlir::verify(*module)))
    return out;
  mlir::PassManager pm(&ctx);
  mlir::mlx::buildMlxToCpuPipeline(pm);
  if (mlir::failed(pm.run(*module)))
    return out;
  std::string error;
  out.jit = mlir::mlx::JitModule::create(*module, error);
  out.sig = compiler.signature(*fn, 0);
  return out;
}
} // namespace

TEST(Frontend, MatmulThroughTheJit) {
  Compiled c = compile(R"(
def mm(A: f32[M, K], B: f32[K, N]) -> f32[M, N] {
  C[i, j] = sum[k] A[i, k] * B[k, j]
  return C
}
)",
                       "mm");
  ASSERT_TRUE(c.jit) << c.diagnostics;
  rt::Tensor A, B;
  std::string error;
  ASSERT_TRUE(rt::parseLiteral("[[1,2,3],[4,5,6]]", rt::DType::f32, A, error));
  ASSERT_TRUE(
      rt::parseLiteral("[[1,0],[0,1],[1,1]]", rt::DType::f32, B, error));
  std::vector<rt::Tensor> args = {A, B};
  ASSERT_TRUE(rt::checkArguments(c.sig, args, error)) << error;
  auto results = rt::callEntry(c.jit->lookupEntry("mm"), c.sig, args);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(rt::formatValues(results[0], false), "[[4, 5], [10, 11]]");
}

TEST(Frontend, TupleResultsAndScalars) {
  Compiled c = compile(R"(
def stats(x: f32[N]) -> (f32, f32) {
  mu = sum[n] x[n] / N
  var = sum[n] (x[n] - mu)^2 / N
  return mu, var
}
)",
                       "stats");
  ASSERT_TRUE(c.jit) << c.diagnostics;
  rt::Tensor x;
  std::string error;
  ASSERT_TRUE(rt::parseLiteral("[1,2,3,4]", rt::DType::f32, x, error));
  std::vector<rt::Tensor> args = {x};
  ASSERT_TRUE(rt::checkArguments(c.sig, args, error));
  auto results = rt::callEntry(c.jit->lookupEntry("stats"), c.sig, args);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FLOAT_EQ(results[0].getDouble(0), 2.5);
  EXPECT_FLOAT_EQ(results[1].getDouble(0), 1.25);
}

TEST(Frontend, ErrorsComeBackAsDiagnostics) {
  Compiled c = compile(R"(
def f(x: f32[N]) -> f32 {
  return sum[n] y[n]
}
)",
                       "f");
  EXPECT_FALSE(c.jit);
  EXPECT_NE(c.diagnostics.find("test.mlx:3:17: error: unknown name 'y'"),
            std::string::npos)
      << c.diagnostics;
}
