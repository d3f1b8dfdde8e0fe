// Compiles causal attention (from the stdlib) and its gradient from a source
// string at run time, runs the seed's two-token example and checks the
// numbers: weights 0.413 / 0.587 for the second query, and a gradient that
// matches central differences of the compiled function itself.
#include <mlxc/mlxc.h>

#include <cmath>
#include <cstdio>

static const char *source = R"(import transformer
def attend(Q: f32[T, D], K: f32[T, D], V: f32[T, E]) -> f32[T, E] {
  return causal_attention(Q, K, V)
}
)";

int main() {
  auto compiler = mlxc::Compiler::create();
  if (!compiler) {
    std::fprintf(stderr, "%s", compiler.error().c_str());
    return 1;
  }
  auto module = compiler->compileSource(source, "attend.mlx");
  if (!module) {
    std::fprintf(stderr, "%s", module.error().c_str());
    return 1;
  }
  auto attend = module->function("attend");
  auto grad = module->grad("attend", {"Q", "K", "V"});
  if (!attend || !grad) {
    std::fprintf(stderr, "%s%s", attend.error().c_str(), grad.error().c_str());
    return 1;
  }
  // The seed's example: two tokens, the second query attends to both keys.
  float Q[4] = {1, 0, 1, 0}, K[4] = {0.5f, 0.5f, 1, -1}, V[4] = {1, 0, 0, 1};
  using mlxc::DType;
  using mlxc::Tensor;
  auto view = [](float *data) { return Tensor::view(DType::f32, {2, 2}, data); };
  auto out = (*attend)({view(Q), view(K), view(V)});
  if (!out) {
    std::fprintf(stderr, "%s", out.error().c_str());
    return 1;
  }
  const Tensor &o = (*out)[0];
  std::printf("output row 1 = [%.3f, %.3f]\n", o.at(2), o.at(3));
  bool ok = std::fabs(o.at(2) - 0.413) < 1e-3 && std::fabs(o.at(3) - 0.587) < 1e-3;

  // The gradient of the sum of the outputs, for values whose rows differ
  // (with V = I each output row sums to 1 and the gradient is 0).
  float W[4] = {1, 0, 0, 3};
  auto grads = (*grad)({view(Q), view(K), view(W)});
  if (!grads) {
    std::fprintf(stderr, "%s", grads.error().c_str());
    return 1;
  }
  // d(sum of outputs)/dK[1][0] by central differences of `attend`.
  auto total = [&](float *k) {
    auto r = (*attend)({view(Q), view(k), view(W)});
    double s = 0;
    for (int i = 0; i < 4; ++i)
      s += (*r)[0].at(i);
    return s;
  };
  float plus[4] = {0.5f, 0.5f, 1.01f, -1}, minus[4] = {0.5f, 0.5f, 0.99f, -1};
  double numeric = (total(plus) - total(minus)) / 0.02;
  double exact = (*grads)[1].at(2);
  std::printf("dK[1][0] = %.5f (central differences %.5f)\n", exact, numeric);
  ok = ok && std::fabs(exact - numeric) < 1e-3;
  std::printf(ok ? "ok\n" : "MISMATCH\n");
  return ok ? 0 : 1;
}
