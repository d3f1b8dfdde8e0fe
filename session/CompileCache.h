//===- CompileCache.h - compiled binaries, in memory and on disk -*- C++
//-*-===//
//
// The compile cache: a target's binaries (CPU object files) by key, kept
// for the process in memory and across processes in a directory. A key is a
// hash of everything a binary depends on: the module at the linalg level
// (which holds the source of the function and everything it calls, the
// request: float type, ranks, statics, gradients), the compile options, the
// target and the CPU it compiles for, and this build of mlxc. An entry on
// disk is written atomically (a temporary file renamed into place) and
// carries its key, size and a checksum: a truncated, corrupt or foreign
// file is ignored (and replaced), never loaded.
//
// The directory: $MLX_CACHE_DIR (empty or "off": memory only), else
// $XDG_CACHE_HOME/mlxc, else $HOME/.cache/mlxc. Nothing evicts entries;
// delete the directory to reclaim the space. MLX_CACHE_TRACE=1 prints a
// line on stderr for each lookup and store.
//
// Threading: all methods may be called from several threads at once.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_SESSION_COMPILECACHE_H
#define MLX_SESSION_COMPILECACHE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace mlx {

/// Where a binary came from.
enum class BinarySource { Compiled, Memory, Disk };

namespace compile_cache {

/// The key of a binary: a hash of `parts` (the module text, the options,
/// the target's description) and of this build of mlxc.
std::string keyOf(llvm::ArrayRef<std::string> parts);

/// The binary stored under `key`, from memory, else from disk (a valid
/// entry only); sets `source` to where it was found.
std::optional<std::string> find(const std::string &key, BinarySource &source);

/// Keeps `binary` under `key` in memory and, when there is a cache
/// directory, on disk (failures to write are ignored: a cache is optional).
void store(const std::string &key, const std::string &binary);

/// Forgets the entries kept in memory (so that the next lookups read the
/// disk, as a new process would: `mlxc bench`'s cached start).
void forgetMemory();

/// The cache directory, or empty when there is none.
std::string directory();

/// The file of `key` in the cache directory (for tests).
std::string entryPath(const std::string &key);

} // namespace compile_cache
} // namespace mlx

#endif // MLX_SESSION_COMPILECACHE_H
