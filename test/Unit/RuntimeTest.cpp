//===- RuntimeTest.cpp - tensors, literals, .npy, argument checks -----===//
#include "runtime/Allocator.h"
#include "runtime/Call.h"
#include "runtime/Tensor.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <gtest/gtest.h>

using namespace mlx::rt;

static std::string tmpPath(const std::string &name) {
  return std::string(MLX_TEST_TMP) + "/" + name;
}

TEST(Literal, NestedListsAndScalars) {
  Tensor t;
  std::string error;
  ASSERT_TRUE(parseLiteral("[[1,2],[3,4.5]]", DType::f32, t, error)) << error;
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_FLOAT_EQ(t.getDouble(3), 4.5);
  ASSERT_TRUE(parseLiteral("-inf", DType::f64, t, error));
  EXPECT_EQ(t.rank(), 0);
  EXPECT_TRUE(std::isinf(t.getDouble(0)) && t.getDouble(0) < 0);
  ASSERT_TRUE(parseLiteral("[]", DType::f32, t, error));
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{0}));
}

TEST(Literal, Errors) {
  Tensor t;
  std::string error;
  EXPECT_FALSE(parseLiteral("[[1,2],[3]]", DType::f32, t, error));
  EXPECT_NE(error.find("ragged"), std::string::npos);
  EXPECT_FALSE(parseLiteral("[1,2", DType::f32, t, error));
  EXPECT_FALSE(parseLiteral("abc", DType::f32, t, error));
  EXPECT_FALSE(parseLiteral("1.5", DType::i32, t, error));
  EXPECT_NE(error.find("integer"), std::string::npos);
}

TEST(Npy, RoundTripAllDTypes) {
  for (DType d :
       {DType::f32, DType::f64, DType::i32, DType::i64, DType::boolean}) {
    Tensor t = Tensor::allocate(d, {2, 3});
    for (int64_t i = 0; i < 6; ++i)
      t.setDouble(i, d == DType::boolean ? i % 2 : i * 1.5 - 2);
    std::string path = tmpPath(std::string("rt_") + dtypeName(d) + ".npy"),
                error;
    ASSERT_TRUE(writeNpy(path, t, error)) << error;
    Tensor back;
    ASSERT_TRUE(readNpy(path, back, error)) << error;
    EXPECT_EQ(back.dtype(), d);
    EXPECT_EQ(back.shape(), t.shape());
    for (int64_t i = 0; i < 6; ++i)
      EXPECT_EQ(back.getDouble(i), t.getDouble(i));
  }
}

TEST(Npy, FortranOrderAndVersion2) {
  // A 2x3 float64 array in Fortran order, format version 2.0, written by hand.
  std::string header =
      "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
  header.append(64 - (12 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string path = tmpPath("fortran.npy");
  std::ofstream os(path, std::ios::binary);
  os.write("\x93NUMPY\x02\x00", 8);
  uint32_t len = (uint32_t)header.size();
  os.write(reinterpret_cast<char *>(&len), 4);
  os << header;
  double colMajor[6] = {0, 3, 1, 4, 2, 5}; // row-major values 0..5
  os.write(reinterpret_cast<char *>(colMajor), sizeof colMajor);
  os.close();
  Tensor t;
  std::string error;
  ASSERT_TRUE(readNpy(path, t, error)) << error;
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_EQ(t.getDouble(i), (double)i);
}

TEST(Npy, BadFiles) {
  std::string error;
  Tensor t;
  std::string path = tmpPath("bad.npy");
  std::ofstream(path) << "not numpy";
  EXPECT_FALSE(readNpy(path, t, error));
  EXPECT_NE(error.find("magic"), std::string::npos);
  std::ofstream(path, std::ios::binary)
      << std::string("\x93NUMPY\x01\x00\x40\x00", 10)
      << "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }";
  EXPECT_FALSE(readNpy(path, t, error));
  EXPECT_FALSE(readNpy(tmpPath("missing.npy"), t, error));
  EXPECT_NE(error.find("cannot open"), std::string::npos);
}

TEST(Call, ArgumentChecksNameTheDim) {
  Signature sig;
  sig.name = "dot";
  sig.params = {{"x", DType::f32, {{-1, "N"}}}, {"y", DType::f32, {{-1, "N"}}}};
  std::vector<Tensor> args = {Tensor::allocate(DType::f32, {3}),
                              Tensor::allocate(DType::f32, {4})};
  std::string error;
  EXPECT_FALSE(checkArguments(sig, args, error));
  EXPECT_NE(error.find(
                "argument 'y' dimension 0 (N) is 4 but argument 'x' has N = 3"),
            std::string::npos)
      << error;
  args = {Tensor::allocate(DType::f64, {3}), Tensor::allocate(DType::f32, {3})};
  EXPECT_FALSE(checkArguments(sig, args, error));
  EXPECT_NE(error.find("must be f32 but is f64"), std::string::npos);
}

// Signatures as text (a Vulkan artefact's manifest) read back the same:
// literal, symbolic and formula dims, a static value; the formula keeps its
// arithmetic and its text; bad lines fail.
TEST(Call, SignatureTextRoundTrip) {
  auto leaf = [](std::string symbol) {
    auto f = std::make_shared<DimFormula>();
    f->symbol = std::move(symbol);
    return f;
  };
  auto sum = std::make_shared<DimFormula>();
  sum->op = '+';
  sum->lhs = leaf("H");
  sum->rhs = leaf("M");
  Signature sig;
  sig.name = "cell";
  sig.params = {{"x", DType::f32, {{-1, "H"}, {3, ""}}},
                {"W", DType::f64, {{-1, "H + M", sum}}},
                {"n", DType::i32, {}, 4}};
  sig.results = {{"h", DType::f32, 2}, {"ok", DType::boolean, 0}};
  std::stringstream text;
  writeSignature(text, sig);
  std::string first, error;
  std::getline(text, first);
  EXPECT_EQ(first, "function cell");
  Signature back;
  ASSERT_TRUE(readSignature(text, "cell", back, error)) << error;
  ASSERT_EQ(back.params.size(), 3u);
  EXPECT_EQ(back.params[0].dims[0].symbol, "H");
  EXPECT_EQ(back.params[0].dims[1].size, 3);
  EXPECT_EQ(back.params[1].dtype, DType::f64);
  EXPECT_EQ(back.params[1].dims[0].symbol, "H + M");
  EXPECT_EQ(back.params[2].staticValue, std::optional<int64_t>(4));
  ASSERT_EQ(back.results.size(), 2u);
  EXPECT_EQ(back.results[0].rank, 2);
  EXPECT_EQ(back.results[1].dtype, DType::boolean);
  ASSERT_TRUE(back.params[1].dims[0].formula);
  EXPECT_EQ(back.params[1].dims[0].formula->evaluate({{"H", 2}, {"M", 3}}),
            std::optional<int64_t>(5));
  std::stringstream bad("param x q32 N\nend\n");
  EXPECT_FALSE(readSignature(bad, "f", back, error));
  EXPECT_NE(error.find("bad signature line"), std::string::npos) << error;
  std::stringstream open("param x f32 (+ N\n");
  EXPECT_FALSE(readSignature(open, "f", back, error));
}

// The allocator of compiled code reuses large blocks (mapped pages) and
// leaves small ones to malloc.
TEST(Allocator, ReusesLargeBlocks) {
  size_t before = mlx::rt::cachedAllocationBytes();
  void *big = mlx_alloc(3 << 20);
  ASSERT_NE(big, nullptr);
  static_cast<char *>(big)[(3 << 20) - 1] = 1; // writable to the end
  mlx_free(big);
  EXPECT_EQ(mlx::rt::cachedAllocationBytes(), before + (3 << 20));
  // A request of about that size gets the same block back.
  void *again = mlx_alloc((3 << 20) - 100);
  EXPECT_EQ(again, big);
  EXPECT_EQ(mlx::rt::cachedAllocationBytes(), before);
  // One much smaller than the idle block does not take it.
  mlx_free(again);
  void *smaller = mlx_alloc(1 << 20);
  EXPECT_NE(smaller, big);
  mlx_free(smaller);
  void *small = mlx_alloc(100);
  size_t idle = mlx::rt::cachedAllocationBytes();
  mlx_free(small); // small blocks are not kept
  EXPECT_EQ(mlx::rt::cachedAllocationBytes(), idle);
  mlx_free(nullptr);
}
