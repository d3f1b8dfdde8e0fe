//===- Compiler.cpp - loading .mlx files and generating MLIR ----*- C++ -*-===//
#include "frontend/Compiler.h"
#include "frontend/ASTBuilder.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <cstdlib>
#include <dlfcn.h>

using namespace mlx;

std::vector<std::string> mlx::stdlibDirectories() {
  std::vector<std::string> dirs;
  // Next to the installed file holding this code, <prefix>/bin/mlxc or
  // <prefix>/lib/libmlxc.so (the embedding API), and next to the program
  // → <prefix>/share/mlxc/stdlib.
  auto besideInstalled = [&](llvm::StringRef file) {
    if (file.empty())
      return;
    llvm::SmallString<256> dir(
        llvm::sys::path::parent_path(llvm::sys::path::parent_path(file)));
    llvm::sys::path::append(dir, "share", "mlxc", "stdlib");
    if (llvm::find(dirs, std::string(dir)) == dirs.end())
      dirs.push_back(std::string(dir));
  };
  Dl_info self;
  if (dladdr((void *)&mlx::stdlibDirectories, &self) && self.dli_fname)
    besideInstalled(self.dli_fname);
  besideInstalled(llvm::sys::fs::getMainExecutable(nullptr, nullptr));
  dirs.push_back(MLX_STDLIB_INSTALL_DIR);
  dirs.push_back(MLX_STDLIB_BUILD_DIR);
  return dirs;
}

Compiler::Compiler(mlir::MLIRContext &ctx, llvm::SourceMgr &sourceMgr,
                   std::vector<std::string> paths)
    : ctx(ctx), sourceMgr(sourceMgr), importPaths(std::move(paths)) {
  if (const char *env = std::getenv("MLX_PATH")) {
    llvm::SmallVector<llvm::StringRef> parts;
    llvm::StringRef(env).split(parts, ':', -1, false);
    for (llvm::StringRef p : parts)
      importPaths.push_back(p.str());
  }
  for (const std::string &dir : stdlibDirectories())
    importPaths.push_back(dir);
}

bool Compiler::loadFile(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer) {
    mlir::emitError(mlir::UnknownLoc::get(&ctx))
        << "cannot read '" << path << "': " << buffer.getError().message();
    return false;
  }
  std::string source = (*buffer)->getBuffer().str();
  return loadModule(path, source, /*isMain=*/true);
}

bool Compiler::loadSource(const std::string &name, const std::string &source) {
  return loadModule(name, source, /*isMain=*/true);
}

std::string Compiler::findImport(const std::string &name,
                                 const std::string &from) {
  std::vector<std::string> dirs;
  dirs.push_back(std::string(llvm::sys::path::parent_path(from)));
  dirs.insert(dirs.end(), importPaths.begin(), importPaths.end());
  for (const std::string &dir : dirs) {
    llvm::SmallString<256> candidate(dir.empty() ? "." : dir);
    llvm::sys::path::append(candidate, name + ".mlx");
    if (llvm::sys::fs::is_regular_file(candidate))
      return std::string(candidate);
  }
  return "";
}

bool Compiler::loadModule(const std::string &path, const std::string &source,
                          bool isMain) {
  llvm::SmallString<256> real;
  if (llvm::sys::fs::real_path(path, real))
    real = path;
  if (!loaded.insert(std::string(real)).second)
    return true; // already loaded (a diamond; cycles are caught below)
  importStack.push_back(std::string(real));
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(source, path), llvm::SMLoc());
  auto onError = [&](const ast::Loc &loc, const std::string &msg) {
    mlir::emitError(toLocation(ctx, loc)) << msg;
  };
  std::unique_ptr<ast::Module> module = ast::parseModule(path, source, onError);
  if (!module) {
    importStack.pop_back();
    return false;
  }
  const ast::Module *m = module.get();
  if (isMain)
    modules.insert(modules.begin(), std::move(module));
  else
    modules.push_back(std::move(module));
  bool ok = true;
  for (const auto &fn : m->functions) {
    auto [it, inserted] = functions.try_emplace(fn->name, fn.get());
    if (!inserted) {
      // Point at the user's own file: the main module loads first.
      const ast::Function *first = it->second, *second = fn.get();
      bool firstIsMain = !isMain && !modules.empty() &&
                         llvm::any_of(modules.front()->functions, [&](auto &f) {
                           return f.get() == first;
                         });
      mlir::InFlightDiagnostic diag =
          mlir::emitError(
              toLocation(ctx, firstIsMain ? first->loc : second->loc))
          << "function '" << fn->name << "' is defined twice";
      diag.attachNote(toLocation(ctx, firstIsMain ? second->loc : first->loc))
          << (firstIsMain ? "also defined here" : "first defined here");
      ok = false;
    }
  }
  for (const ast::Import &imp : m->imports) {
    std::string file = findImport(imp.name, path);
    if (file.empty()) {
      mlir::emitError(toLocation(ctx, imp.loc))
          << "cannot find module '" << imp.name << "' (searched the file's "
          << "directory, -I paths, $MLX_PATH and the stdlib)";
      ok = false;
      continue;
    }
    llvm::SmallString<256> realFile;
    if (llvm::sys::fs::real_path(file, realFile))
      realFile = file;
    if (llvm::is_contained(importStack, std::string(realFile))) {
      std::string cycle;
      for (const std::string &m : importStack)
        cycle += llvm::sys::path::stem(m).str() + " → ";
      mlir::emitError(toLocation(ctx, imp.loc))
          << "import cycle: " << cycle << imp.name;
      ok = false;
      continue;
    }
    if (importStack.size() >= kMaxImportDepth) {
      mlir::emitError(toLocation(ctx, imp.loc))
          << "imports nested deeper than " << kMaxImportDepth;
      ok = false;
      continue;
    }
    auto buffer = llvm::MemoryBuffer::getFile(file, /*IsText=*/true);
    if (!buffer) {
      mlir::emitError(toLocation(ctx, imp.loc))
          << "cannot read module '" << file << "'";
      ok = false;
      continue;
    }
    ok &= loadModule(file, (*buffer)->getBuffer().str(), /*isMain=*/false);
  }
  importStack.pop_back();
  return ok;
}

const ast::Function *Compiler::findFunction(const std::string &name) const {
  for (const auto &fn : mainModule().functions)
    if (fn->name == name)
      return fn.get();
  return nullptr;
}

mlir::OwningOpRef<mlir::ModuleOp>
Compiler::generate(const std::vector<ExportRequest> &exports) {
  return generateModule(ctx, functions, exports);
}

std::vector<ExportRequest> Compiler::allExports() const {
  std::vector<ExportRequest> exports;
  // A function with static parameters is an instance per value: it is
  // checked where it is called (or exported with values).
  for (const auto &fn : mainModule().functions)
    if (llvm::none_of(fn->params,
                      [](const ast::Param &p) { return p.isStatic; }))
      exports.push_back({fn.get(), fn->isShapePolymorphic() ? 1 : 0});
  return exports;
}

rt::Signature Compiler::signature(const ExportRequest &request) const {
  return signatureOf(request);
}
