/* Calls shifted_reads.mlx's gate, whose read z[n, i + 2 * H] is unchecked
 * (proven in range for shapes that fit): mlx_run_gate refuses a z whose
 * dimension 1 is not 4 * H, a formula of c's H. */
#include "libshifted.h"

#include <stdio.h>
#include <stdlib.h>

int main(void) {
  float z[8] = {1, 2, 3, 4, 5, 6, 7, 8}, c[2] = {1, 2};
  mlx_f32_2d zd = mlx_f32_2d_of(z, 1, 8), cd = mlx_f32_2d_of(c, 1, 2);
  mlx_f32_2d narrow = mlx_f32_2d_of(z, 1, 7);
  char message[200];
  gate_results r;
  if (mlx_run_gate(&r, &zd, &cd, message, sizeof message) == 0) {
    printf("gate = %g %g\n", r.y.aligned[0], r.y.aligned[1]);
    free(r.y.allocated);
  }
  if (mlx_run_gate(&r, &narrow, &cd, message, sizeof message))
    printf("refused: %s\n", message);
  return 0;
}
