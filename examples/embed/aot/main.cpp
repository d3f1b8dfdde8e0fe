// Calls functions that `mlxc build` compiled ahead of time, through the C
// header it wrote: shapes checked first, then the calls; checks the numbers.
extern "C" {
#include "libsoftmax.h"
}

#include <cmath>
#include <cstdio>
#include <cstdlib>

int main() {
  float z[6] = {1, 2, 3, 0, 0, 1000};
  mlx_f32_2d Z = {z, z, 0, {2, 3}, {3, 1}};
  char message[256];
  row_softmax_results p;
  // mlx_run_NAME checks the shapes, then calls (1 and a message on a
  // mismatch, nothing called).
  if (mlx_run_row_softmax(&p, &Z, message, sizeof message)) {
    std::printf("check: %s\n", message);
    return 1;
  }
  auto P = [&](int b, int k) {
    return p.P.aligned[p.P.offset + b * p.P.strides[0] + k * p.P.strides[1]];
  };
  std::printf("softmax([1, 2, 3]) = [%.4f, %.4f, %.4f]\n", P(0, 0), P(0, 1), P(0, 2));
  std::printf("softmax([0, 0, 1000]) = [%g, %g, %g]\n", P(1, 0), P(1, 1), P(1, 2));
  double e = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  bool ok = std::fabs(P(0, 2) - std::exp(3.0) / e) < 1e-6 && P(1, 2) == 1.0f;

  float zz[3] = {1, 2, 3}, y[3] = {0, 1, 0};
  mlx_f32_1d dz = {zz, zz, 0, {3}, {1}}, dy = {y, y, 0, {3}, {1}};
  xent_grad_results g;
  mlx_f32_1d short_y = {y, y, 0, {2}, {1}};
  if (mlx_run_xent_grad(&g, &dz, &short_y, message, sizeof message))
    std::printf("check: %s\n", message);
  _mlir_ciface_xent_grad(&g, &dz, &dy);
  double g1 = g.result.aligned[g.result.offset + g.result.strides[0]];
  std::printf("d/dz1 = %.4f (softmax - y: %.4f)\n", g1, std::exp(2.0) / e - 1);
  ok = ok && std::fabs(g1 - (std::exp(2.0) / e - 1)) < 1e-6;
  std::free(p.P.allocated);
  std::free(g.result.allocated);
  std::printf(ok ? "ok\n" : "MISMATCH\n");
  return ok ? 0 : 1;
}
