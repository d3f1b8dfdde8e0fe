//===- CompileCache.cpp - compiled binaries, in memory and on disk -------===//
#include "session/CompileCache.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <cstdlib>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <unistd.h>

using namespace mlx;

namespace {

/// The first line of an entry: magic, key, payload size, payload checksum.
constexpr llvm::StringLiteral kMagic = "mlxc-compile-cache-1";

std::mutex memoryMutex;
std::map<std::string, std::string> &memory() {
  static std::map<std::string, std::string> entries;
  return entries;
}

/// This build of mlxc: its version, and the size and time of the file that
/// holds this code (the mlxc executable or libmlxc.so), so that a rebuilt
/// compiler never reads a binary an older one wrote.
const std::string &buildIdentity() {
  static const std::string identity = [] {
    std::string text = "mlxc " MLX_VERSION " LLVM " LLVM_VERSION_STRING;
    Dl_info self;
    llvm::sys::fs::file_status status;
    if (dladdr((void *)&buildIdentity, &self) && self.dli_fname &&
        !llvm::sys::fs::status(self.dli_fname, status))
      text += " " + std::string(self.dli_fname) + " " +
              std::to_string(status.getSize()) + " " +
              std::to_string(
                  status.getLastModificationTime().time_since_epoch().count());
    return text;
  }();
  return identity;
}

/// With MLX_CACHE_TRACE set, one line on stderr per lookup and store.
void trace(const llvm::Twine &what) {
  static const bool enabled = std::getenv("MLX_CACHE_TRACE") != nullptr;
  if (enabled)
    llvm::errs() << "mlxc: compile cache: " << what << "\n";
}

std::string checksum(llvm::StringRef bytes) {
  return llvm::utohexstr(llvm::xxh3_64bits(llvm::arrayRefFromStringRef(bytes)),
                         /*LowerCase=*/true);
}

} // namespace

std::string compile_cache::keyOf(llvm::ArrayRef<std::string> parts) {
  llvm::SHA256 hash;
  hash.update(buildIdentity());
  for (const std::string &part : parts) {
    // Each part with its length: no two lists hash the same text.
    hash.update(std::to_string(part.size()) + ":");
    hash.update(part);
  }
  return llvm::toHex(hash.final(), /*LowerCase=*/true);
}

std::string compile_cache::directory() {
  if (const char *dir = std::getenv("MLX_CACHE_DIR"))
    return llvm::StringRef(dir) == "off" ? "" : dir;
  llvm::SmallString<256> dir;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    dir = xdg;
  else if (const char *home = std::getenv("HOME"); home && *home)
    llvm::sys::path::append(dir, home, ".cache");
  else
    return "";
  llvm::sys::path::append(dir, "mlxc");
  return std::string(dir);
}

std::string compile_cache::entryPath(const std::string &key) {
  std::string dir = directory();
  if (dir.empty())
    return "";
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, key + ".o");
  return std::string(path);
}

std::optional<std::string> compile_cache::find(const std::string &key,
                                               BinarySource &source) {
  {
    std::lock_guard<std::mutex> lock(memoryMutex);
    auto it = memory().find(key);
    if (it != memory().end()) {
      source = BinarySource::Memory;
      trace("memory hit " + key);
      return it->second;
    }
  }
  std::string path = entryPath(key);
  if (path.empty()) {
    trace("miss " + key + " (no cache directory)");
    return std::nullopt;
  }
  auto file = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                          /*RequiresNullTerminator=*/false);
  if (!file) {
    trace("miss " + key);
    return std::nullopt;
  }
  llvm::StringRef contents = (*file)->getBuffer();
  auto [header, payload] = contents.split('\n');
  llvm::SmallVector<llvm::StringRef> fields;
  header.split(fields, ' ');
  uint64_t size = 0;
  if (fields.size() != 4 || fields[0] != kMagic || fields[1] != key ||
      fields[2].getAsInteger(10, size) || size != payload.size() ||
      fields[3] != checksum(payload)) {
    // Foreign, truncated or corrupt: compiled again and replaced.
    trace("ignored " + path + " (not a valid entry for its key)");
    return std::nullopt;
  }
  std::string binary = payload.str();
  {
    std::lock_guard<std::mutex> lock(memoryMutex);
    memory()[key] = binary;
  }
  source = BinarySource::Disk;
  trace("disk hit " + key);
  return binary;
}

void compile_cache::store(const std::string &key, const std::string &binary) {
  {
    std::lock_guard<std::mutex> lock(memoryMutex);
    memory()[key] = binary;
  }
  std::string path = entryPath(key);
  if (path.empty() ||
      llvm::sys::fs::create_directories(llvm::sys::path::parent_path(path)))
    return;
  std::string temporary = path + ".part." + std::to_string(getpid()) + "." +
                          std::to_string((uintptr_t)&binary);
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(temporary, ec, llvm::sys::fs::OF_None);
    if (ec)
      return;
    os << kMagic << " " << key << " " << binary.size() << " "
       << checksum(binary) << "\n"
       << binary;
    os.close();
    if (os.has_error()) {
      os.clear_error();
      llvm::sys::fs::remove(temporary);
      return;
    }
  }
  if (llvm::sys::fs::rename(temporary, path)) {
    llvm::sys::fs::remove(temporary);
    return;
  }
  trace("stored " + path);
}

void compile_cache::forgetMemory() {
  std::lock_guard<std::mutex> lock(memoryMutex);
  memory().clear();
}
