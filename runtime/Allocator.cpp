//===- Allocator.cpp - the memory of JIT-compiled code -------------------===//
#include "runtime/Allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

namespace {

/// Blocks this large or larger are cached; sizes are rounded up to 64 KiB.
constexpr size_t kCachedFrom = size_t(1) << 20;
constexpr size_t kGranule = size_t(1) << 16;

struct BlockCache {
  std::mutex mutex;
  /// Live large blocks and their (rounded) sizes.
  std::unordered_map<void *, size_t> live;
  /// Freed large blocks by size.
  std::multimap<size_t, void *> idle;
  size_t idleBytes = 0;
  size_t capacity = [] {
    const char *mb = std::getenv("MLX_ALLOC_CACHE_MB");
    return (mb && *mb ? std::strtoull(mb, nullptr, 10) : 1024) << 20;
  }();
};

BlockCache &cache() {
  static BlockCache *blocks = new BlockCache(); // lives as long as code may
  return *blocks;
}

} // namespace

extern "C" void *mlx_alloc(size_t size) {
  if (size < kCachedFrom)
    return std::malloc(size);
  size_t rounded = (size + kGranule - 1) / kGranule * kGranule;
  BlockCache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  // The smallest idle block that fits, if it wastes at most a quarter.
  auto it = c.idle.lower_bound(rounded);
  if (it != c.idle.end() && it->first <= rounded + rounded / 4) {
    void *block = it->second;
    c.live[block] = it->first;
    c.idleBytes -= it->first;
    c.idle.erase(it);
    return block;
  }
  void *block = std::malloc(rounded);
  if (block)
    c.live[block] = rounded;
  return block;
}

extern "C" void mlx_free(void *pointer) {
  if (!pointer)
    return;
  BlockCache &c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.live.find(pointer);
    if (it != c.live.end()) {
      size_t size = it->second;
      c.live.erase(it);
      if (c.idleBytes + size <= c.capacity) {
        c.idle.emplace(size, pointer);
        c.idleBytes += size;
        return;
      }
    }
  }
  std::free(pointer);
}

size_t mlx::rt::cachedAllocationBytes() {
  BlockCache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.idleBytes;
}
