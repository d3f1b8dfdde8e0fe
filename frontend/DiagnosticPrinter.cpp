//===- DiagnosticPrinter.cpp - clang-style diagnostics ----------*- C++ -*-===//
#include "frontend/DiagnosticPrinter.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace mlx;

DiagnosticPrinter::DiagnosticPrinter(mlir::MLIRContext &ctx,
                                     llvm::SourceMgr &sourceMgr,
                                     llvm::raw_ostream &os)
    : ctx(ctx), sourceMgr(sourceMgr), os(os) {
  id = ctx.getDiagEngine().registerHandler([this](mlir::Diagnostic &diag) {
    print(diag);
    return mlir::success();
  });
}

DiagnosticPrinter::~DiagnosticPrinter() {
  ctx.getDiagEngine().eraseHandler(id);
}

/// The innermost file location of `loc`, if any.
static std::optional<mlir::FileLineColLoc> fileLoc(mlir::Location loc) {
  std::optional<mlir::FileLineColLoc> found;
  loc->walk([&](mlir::Location l) {
    if (auto f = mlir::dyn_cast<mlir::FileLineColLoc>(l)) {
      found = f;
      return mlir::WalkResult::interrupt();
    }
    return mlir::WalkResult::advance();
  });
  return found;
}

std::string DiagnosticPrinter::sourceLine(llvm::StringRef file, unsigned line) {
  const llvm::MemoryBuffer *buffer = nullptr;
  for (unsigned i = 1; i <= sourceMgr.getNumBuffers(); ++i)
    if (sourceMgr.getMemoryBuffer(i)->getBufferIdentifier() == file)
      buffer = sourceMgr.getMemoryBuffer(i);
  if (!buffer)
    return "";
  llvm::StringRef text = buffer->getBuffer();
  for (unsigned l = 1; l < line; ++l) {
    size_t nl = text.find('\n');
    if (nl == llvm::StringRef::npos)
      return "";
    text = text.drop_front(nl + 1);
  }
  return text.take_until([](char c) { return c == '\n' || c == '\r'; }).str();
}

void DiagnosticPrinter::printOne(mlir::Location loc, llvm::StringRef severity,
                                 const std::string &message) {
  auto file = fileLoc(loc);
  if (!file) {
    os << "mlxc: " << severity << ": " << message << "\n";
    return;
  }
  os << file->getFilename().getValue() << ":" << file->getLine() << ":"
     << file->getColumn() << ": " << severity << ": " << message << "\n";
  std::string line =
      sourceLine(file->getFilename().getValue(), file->getLine());
  if (line.empty())
    return;
  os << line << "\n";
  // The caret goes under the column's character: one space per code point
  // before it (tabs kept, so the caret lines up as the line is shown).
  std::string caret;
  unsigned byteCol = std::max(file->getColumn(), 1u) - 1;
  for (unsigned i = 0; i < byteCol && i < line.size(); ++i) {
    unsigned char c = line[i];
    if ((c & 0xC0) == 0x80)
      continue;
    caret += c == '\t' ? '\t' : ' ';
  }
  os << caret << "^\n";
}

/// The call sites of an inlined op's location, innermost first.
static void callSites(mlir::Location loc,
                      llvm::SmallVectorImpl<mlir::Location> &out) {
  if (auto site = mlir::dyn_cast<mlir::CallSiteLoc>(loc)) {
    callSites(site.getCallee(), out);
    out.push_back(site.getCaller());
  }
}

void DiagnosticPrinter::print(mlir::Diagnostic &diag) {
  llvm::StringRef severity = "error";
  switch (diag.getSeverity()) {
  case mlir::DiagnosticSeverity::Error:
    severity = "error";
    break;
  case mlir::DiagnosticSeverity::Warning:
    severity = "warning";
    break;
  case mlir::DiagnosticSeverity::Note:
    severity = "note";
    break;
  case mlir::DiagnosticSeverity::Remark:
    severity = "remark";
    break;
  }
  std::string key;
  llvm::raw_string_ostream keyOs(key);
  keyOs << diag.getLocation() << diag.str();
  if (!seen.insert(key).second)
    return;
  if (diag.getSeverity() == mlir::DiagnosticSeverity::Error)
    ++errors;
  printOne(diag.getLocation(), severity, diag.str());
  // An op inlined from a callee carries the call sites it came through.
  llvm::SmallVector<mlir::Location> callers;
  callSites(diag.getLocation(), callers);
  for (mlir::Location caller : callers)
    printOne(caller, "note", "called from here");
  for (mlir::Diagnostic &note : diag.getNotes())
    printOne(note.getLocation(), "note", note.str());
  os.flush();
}

std::string mlx::didYouMean(llvm::StringRef name,
                            const std::vector<std::string> &candidates) {
  // One edit in two or three letters, two in six, ...; none in one letter.
  unsigned limit = (name.size() + 1) / 3, best = limit + 1;
  const std::string *closest = nullptr;
  for (const std::string &c : candidates) {
    if (c == name)
      continue;
    unsigned d = name.edit_distance(c, /*AllowReplacements=*/true, limit);
    if (d < best) {
      best = d;
      closest = &c;
    }
  }
  if (limit == 0)
    return "";
  return closest ? "; did you mean '" + *closest + "'?" : "";
}
