/* Calls functions compiled by `mlxc build` from stdlib/linalg.mlx. */
#include "liblinalg.h"

#include <stdio.h>
#include <stdlib.h>

static mlx_f32_1d vec(float *data, int64_t n) {
  mlx_f32_1d d = {data, data, 0, {n}, {1}};
  return d;
}

int main(void) {
  float x[3] = {1, 2, 3}, y[3] = {4, 5, 6};
  mlx_f32_1d dx = vec(x, 3), dy = vec(y, 3);
  dot_results r;
  _mlir_ciface_dot(&r, &dx, &dy);
  printf("dot = %g\n", r.result.aligned[r.result.offset]);
  free(r.result.allocated);

  float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
  mlx_f32_2d da = {a, a, 0, {2, 2}, {2, 1}}, db = {b, b, 0, {2, 2}, {2, 1}};
  matmul_results m;
  _mlir_ciface_matmul(&m, &da, &db);
  printf("matmul =");
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      printf(" %g", m.C.aligned[m.C.offset + i * m.C.strides[0] + j * m.C.strides[1]]);
  printf("\n");
  free(m.C.allocated);

  void *args[3] = {&r, &dx, &dy};
  mlx_call_dot(args);
  printf("packed dot = %g\n", r.result.aligned[r.result.offset]);
  free(r.result.allocated);

  /* Shapes are checked before a call: N of y must equal N of x. */
  char message[200];
  printf("check ok = %d\n", mlx_check_dot(&dx, &dy, message, sizeof message));
  mlx_f32_1d short_y = vec(y, 2);
  if (mlx_check_dot(&dx, &short_y, message, sizeof message))
    printf("check: %s\n", message);
  /* The checked entry point: the same check, then the call. */
  printf("run = %d\n", mlx_run_dot(&r, &dx, &short_y, message, sizeof message));
  if (mlx_run_dot(&r, &dx, &dy, message, sizeof message) == 0) {
    printf("run dot = %g\n", r.result.aligned[r.result.offset]);
    free(r.result.allocated);
  }
  return 0;
}
