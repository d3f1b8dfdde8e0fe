//===- FrontendTest.cpp - compile strings, JIT them, call them --------===//
//
// The whole pipeline through the session: source text → mlx → LLVM → JIT,
// called on runtime tensors; diagnostics as values; results that are
// always owned.
//
//===----------------------------------------------------------------------===//
#include "session/Session.h"

#include <gtest/gtest.h>

using namespace mlx;

namespace {
/// A session holding one compiled function, or the diagnostics.
struct Compiled {
  std::unique_ptr<Session> session;
  std::unique_ptr<Module> module;
  std::string name, diagnostics;

  std::vector<rt::Tensor> call(std::vector<rt::Tensor> args) {
    auto results = module->call(name, std::move(args));
    if (!results) {
      ADD_FAILURE() << llvm::toString(results.takeError());
      return {};
    }
    return *results;
  }
};

Compiled compile(const std::string &source, const std::string &name) {
  Compiled out;
  out.name = name;
  auto session = Session::create();
  if (!session) {
    out.diagnostics = llvm::toString(session.takeError());
    return out;
  }
  out.session = std::move(*session);
  auto fail = [&](llvm::Error err) {
    out.diagnostics = llvm::toString(std::move(err));
    return std::move(out);
  };
  if (llvm::Error err = out.session->loadSource("test.mlx", source))
    return fail(std::move(err));
  auto fn = out.session->function(name);
  if (!fn)
    return fail(fn.takeError());
  auto module = out.session->compile({{*fn, 0}});
  if (!module)
    return fail(module.takeError());
  out.module = std::move(*module);
  return out;
}

rt::Tensor literal(const std::string &text) {
  rt::Tensor t;
  std::string error;
  EXPECT_TRUE(rt::parseLiteral(text, rt::DType::f32, t, error)) << error;
  return t;
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
  ASSERT_TRUE(c.module) << c.diagnostics;
  auto results =
      c.call({literal("[[1,2,3],[4,5,6]]"), literal("[[1,0],[0,1],[1,1]]")});
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
  ASSERT_TRUE(c.module) << c.diagnostics;
  auto results = c.call({literal("[1,2,3,4]")});
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
  EXPECT_FALSE(c.module);
  EXPECT_NE(c.diagnostics.find("test.mlx:3:17: error: unknown name 'y'"),
            std::string::npos)
      << c.diagnostics;
}

TEST(Frontend, ArgumentMismatchIsADiagnostic) {
  Compiled c = compile("def f(x: f32[N], y: f32[N]) -> f32[N] {\n"
                       "  z[n] = x[n] + y[n]\n  return z\n}\n",
                       "f");
  ASSERT_TRUE(c.module) << c.diagnostics;
  auto results = c.module->call("f", {literal("[1,2]"), literal("[1,2,3]")});
  ASSERT_FALSE(results);
  std::string text = llvm::toString(results.takeError());
  EXPECT_NE(text.find("test.mlx:1:5: error: argument 'y' dimension 0 (N) is 3 "
                      "but argument 'x' has N = 2"),
            std::string::npos)
      << text;
}

// Results never alias an argument or a constant: the caller owns each one
// (the buffer deallocation pipeline clones what a function would otherwise
// return borrowed). Mutating a result leaves the argument alone, and every
// result is freed once (LeakSanitizer and ASan check this under
// scripts/sanitize.sh).
TEST(Frontend, ResultsAreOwned) {
  Compiled c = compile(R"(
def f(x: f32[N]) -> (f32[N], f32[N], f32, f32[N]) {
  c = 2.0
  y[n] = x[n] * 1.0
  return x, x, c, y
}
)",
                       "f");
  ASSERT_TRUE(c.module) << c.diagnostics;
  rt::Tensor x = literal("[1,2]");
  auto results = c.call({x});
  ASSERT_EQ(results.size(), 4u);
  for (const rt::Tensor &r : results)
    EXPECT_NE(r.data(), x.data());
  results[0].setDouble(0, 7);
  EXPECT_EQ(x.getDouble(0), 1);
  EXPECT_EQ(results[2].getDouble(0), 2);
  EXPECT_EQ(rt::formatValues(results[3], false), "[1, 2]");
}

// An update (`x[k] = …`, a tensor.insert_slice once lowered) copies the
// caller's argument instead of writing into it: the second call sees the
// same input (found by the grad check of q_learning_update, whose finite
// differences drifted as each call changed Q).
TEST(Frontend, UpdatesLeaveArgumentsAlone) {
  Compiled c = compile(R"(
def bump(x: f32[N], k: i32) -> f32[N] {
  x[k] = x[k] + 10
  for t in 0..N {
    x[t] = x[t] + 1
  }
  return x
}
)",
                       "bump");
  ASSERT_TRUE(c.module) << c.diagnostics;
  rt::Tensor x = literal("[1,2,3]");
  rt::Tensor k = rt::Tensor::allocate(rt::DType::i32, {});
  k.setDouble(0, 1);
  for (int call = 0; call < 2; ++call) {
    auto results = c.call({x, k});
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(rt::formatValues(results[0], false), "[2, 13, 4]");
    EXPECT_EQ(rt::formatValues(x, false), "[1, 2, 3]");
  }
}

// A static parameter's value is part of the instance: the request gives
// it, the name carries it, and a call must pass the same value.
TEST(Frontend, StaticParametersAreCompiledIn) {
  auto session = Session::create();
  ASSERT_TRUE(bool(session)) << llvm::toString(session.takeError());
  ASSERT_FALSE(bool((*session)->loadSource("test.mlx", R"(
def first(x: f32[N], k: static i32) -> f32[k] {
  for j in 0..k {
    y[j] = x[j]
  }
  return y
}
)")));
  auto fn = (*session)->function("first");
  ASSERT_TRUE(bool(fn));
  ExportRequest request{*fn};
  request.statics["k"] = 2;
  EXPECT_EQ((*session)->signature(request).name, "first_k2");
  auto module = (*session)->compile({request});
  ASSERT_TRUE(bool(module)) << llvm::toString(module.takeError());
  rt::Tensor k = rt::Tensor::allocate(rt::DType::i32, {});
  k.setDouble(0, 2);
  auto results = (*module)->call("first_k2", {literal("[5,6,7]"), k});
  ASSERT_TRUE(bool(results)) << llvm::toString(results.takeError());
  EXPECT_EQ(rt::formatValues((*results)[0], false), "[5, 6]");
  k.setDouble(0, 3);
  auto wrong = (*module)->call("first_k2", {literal("[5,6,7]"), k});
  ASSERT_FALSE(bool(wrong));
  EXPECT_NE(llvm::toString(wrong.takeError())
                .find("static parameter 'k' was compiled for 2 but the call "
                      "passes 3"),
            std::string::npos);
}
