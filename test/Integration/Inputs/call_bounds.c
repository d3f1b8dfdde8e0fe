/* Calls a library built from bounds.mlx with an out-of-range subscript and
 * handles the report itself (overriding the weak default, which aborts). */
#include "libbounds.h"

#include <stdio.h>
#include <stdlib.h>

void mlx_report_out_of_bounds(int64_t id, int64_t index, int64_t size) {
  printf("report %lld: index %lld, size %lld\n", (long long)id,
         (long long)index, (long long)size);
}

int main(void) {
  float x[4] = {1, 2, 3, 4};
  mlx_f32_1d ok = mlx_f32_1d_of(x, 4), shortx = mlx_f32_1d_of(x, 2);
  fourth_results r;
  _mlir_ciface_fourth(&r, &ok);
  printf("fourth = %g\n", r.result.aligned[r.result.offset]);
  free(r.result.allocated);
  _mlir_ciface_fourth(&r, &shortx);
  free(r.result.allocated);
  return 0;
}
