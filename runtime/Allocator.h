//===- Allocator.h - the memory of JIT-compiled code ------------*- C++ -*-===//
//
// JIT-compiled code allocates through mlx_alloc and frees through mlx_free
// (the JIT binds its malloc and free to them; results handed to callers are
// released through mlx_free too). Blocks of 1 MiB or more are kept when
// freed and handed out again for a request of about their size, so a
// function called again gets memory that is already mapped: a fresh 64 MiB
// buffer costs ~15-35 ms of page faults, more than a row softmax over it.
// What is kept is capped (MLX_ALLOC_CACHE_MB, default 1024); smaller blocks
// go straight to malloc. Libraries from `mlxc build` keep plain malloc and
// free (their callers free results with free()).
//
// Threading: both functions may be called from several threads at once.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_RUNTIME_ALLOCATOR_H
#define MLX_RUNTIME_ALLOCATOR_H

#include <cstddef>

extern "C" {
/// malloc for compiled code: large blocks come from the cache when one fits.
void *mlx_alloc(size_t size);
/// free for compiled code and its results: large blocks go back to the
/// cache (up to its cap).
void mlx_free(void *pointer);
}

namespace mlx::rt {
/// Bytes held in the cache now (for tests).
size_t cachedAllocationBytes();
} // namespace mlx::rt

#endif // MLX_RUNTIME_ALLOCATOR_H
