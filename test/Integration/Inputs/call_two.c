/* Includes the headers of two libraries built by `mlxc build` (both
 * define mlx_f32_1d) and calls a function of each. */
#include "liblinalg.h"
#include "libsoftmax.h"

#include <stdio.h>
#include <stdlib.h>

int main(void) {
  float x[3] = {1, 2, 3}, y[3] = {4, 5, 6};
  mlx_f32_1d dx = mlx_f32_1d_of(x, 3), dy = mlx_f32_1d_of(y, 3);
  dot_results d;
  _mlir_ciface_dot(&d, &dx, &dy);
  printf("dot = %g\n", d.result.aligned[d.result.offset]);
  free(d.result.allocated);

  float z[2] = {0, 0};
  mlx_f32_1d dz = mlx_f32_1d_of(z, 2);
  softmax_results s;
  _mlir_ciface_softmax(&s, &dz);
  printf("softmax = %g %g\n", s.p.aligned[0], s.p.aligned[1]);
  free(s.p.allocated);
  return 0;
}
