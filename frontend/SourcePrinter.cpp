//===- SourcePrinter.cpp - the AST as .mlx source ---------------*- C++ -*-===//
//
// Precedence levels follow grammar/MLX.g4: ternary 1, || 2, && 3,
// comparisons 4, + - 5, * / % 6, unary - ! and reductions 7, ^ 8, postfix
// and primaries 9. A reduction's body is a mulExpr that extends as far
// right as it can, so a reduction is parenthesized everywhere but where a
// whole expression stands.
//
//===----------------------------------------------------------------------===//
#include "frontend/SourcePrinter.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <cstdlib>

using namespace mlx::ast;

static int binaryPrecedence(const std::string &op) {
  if (op == "||")
    return 2;
  if (op == "&&")
    return 3;
  if (op == "<" || op == "<=" || op == ">" || op == ">=" || op == "==" ||
      op == "!=")
    return 4;
  if (op == "+" || op == "-")
    return 5;
  if (op == "^")
    return 8;
  return 6; // * / %
}

static int precedence(const Expr &e) {
  switch (e.kind) {
  case Expr::Kind::Select:
    return 1;
  case Expr::Kind::Binary:
    return binaryPrecedence(e.op);
  case Expr::Kind::Unary:
    return 7;
  case Expr::Kind::Reduce:
    return 0; // see the file comment
  default:
    return 9;
  }
}

/// The shortest decimal that reads back as `v`: as a float where `v` is
/// one (an f32 constant), else as a double; always with a '.' or an
/// exponent, so that it is a float literal.
static std::string floatText(double v) {
  if (std::isinf(v))
    return "inf";
  bool single = (double)(float)v == v;
  std::string text;
  for (int digits = 1; digits <= 17; ++digits) {
    text = llvm::formatv("{0}", llvm::format("%.*g", digits, v)).str();
    double back = std::strtod(text.c_str(), nullptr);
    if (single ? (float)back == (float)v : back == v)
      break;
  }
  if (text.find_first_of(".en") == std::string::npos)
    text += ".0";
  return text;
}

static void print(const Expr &e, llvm::raw_ostream &os);

static void printAt(const Expr &e, int minPrecedence, llvm::raw_ostream &os) {
  bool paren = precedence(e) < minPrecedence;
  if (paren)
    os << "(";
  print(e, os);
  if (paren)
    os << ")";
}

static void printList(const std::vector<std::unique_ptr<Expr>> &list,
                      llvm::raw_ostream &os) {
  for (auto [k, e] : llvm::enumerate(list)) {
    if (k)
      os << ", ";
    if (e)
      printAt(*e, 0, os);
    else
      os << ":";
  }
}

static void print(const Expr &e, llvm::raw_ostream &os) {
  switch (e.kind) {
  case Expr::Kind::Float:
    os << floatText(e.number);
    return;
  case Expr::Kind::Int:
    os << e.intValue;
    return;
  case Expr::Kind::Inf:
    os << "inf";
    return;
  case Expr::Kind::Bool:
    os << (e.boolValue ? "true" : "false");
    return;
  case Expr::Kind::Name:
    os << e.name;
    return;
  case Expr::Kind::Unary:
    os << e.op;
    printAt(*e.operands[0], 7, os);
    return;
  case Expr::Kind::Binary: {
    int p = binaryPrecedence(e.op);
    if (e.op == "^") {
      printAt(*e.operands[0], 9, os);
      os << "^";
      printAt(*e.operands[1], 7, os);
      return;
    }
    // Comparisons do not chain; the others associate to the left.
    printAt(*e.operands[0], p == 4 ? 5 : p, os);
    os << " " << e.op << " ";
    printAt(*e.operands[1], p + 1, os);
    return;
  }
  case Expr::Kind::Select:
    printAt(*e.operands[0], 2, os);
    os << " ? ";
    printAt(*e.operands[1], 0, os);
    os << " : ";
    printAt(*e.operands[2], 0, os);
    return;
  case Expr::Kind::Reduce: {
    os << e.op << "[" << llvm::join(e.indices, ", ");
    const Expr *body = e.operands[0].get();
    if (e.bounded) {
      // (j < limit) ? body : identity, as the parser builds it.
      const Expr &test = *body->operands[0];
      os << " " << test.op << " ";
      printAt(*test.operands[1], 5, os);
      body = body->operands[1].get();
    }
    os << "] ";
    printAt(*body, 6, os);
    return;
  }
  case Expr::Kind::Subscript:
    printAt(*e.operands[0], 9, os);
    os << "[";
    printList(e.subscripts, os);
    os << "]";
    return;
  case Expr::Kind::Call:
    os << e.name << "(";
    printList(e.operands, os);
    os << ")";
    return;
  }
}

std::string mlx::ast::sourceText(const Expr &e, int minPrecedence) {
  std::string text;
  llvm::raw_string_ostream os(text);
  printAt(e, minPrecedence, os);
  return text;
}

static void printDim(const DimExpr &d, int minPrecedence,
                     llvm::raw_ostream &os) {
  switch (d.kind) {
  case DimExpr::Kind::Int:
    os << d.value;
    return;
  case DimExpr::Kind::Sym:
    os << d.name;
    return;
  case DimExpr::Kind::Ellipsis:
    os << "...";
    return;
  default:
    break;
  }
  bool additive = d.kind == DimExpr::Kind::Add || d.kind == DimExpr::Kind::Sub;
  int p = additive ? 5 : 6;
  if (p < minPrecedence)
    os << "(";
  printDim(*d.lhs, p, os);
  os << (d.kind == DimExpr::Kind::Add   ? " + "
         : d.kind == DimExpr::Kind::Sub ? " - "
         : d.kind == DimExpr::Kind::Mul ? " * "
                                        : " / ");
  printDim(*d.rhs, p + 1, os);
  if (p < minPrecedence)
    os << ")";
}

static void printType(const TypeSpec &t, llvm::raw_ostream &os) {
  os << mlx::rt::dtypeName(t.dtype);
  if (t.dims.empty())
    return;
  os << "[";
  for (auto [k, d] : llvm::enumerate(t.dims)) {
    os << (k ? ", " : "");
    printDim(*d, 0, os);
  }
  os << "]";
}

static void printStmts(const std::vector<Stmt> &stmts, unsigned indent,
                       llvm::raw_ostream &os) {
  std::string pad(indent, ' ');
  for (const Stmt &s : stmts) {
    if (!s.comment.empty()) {
      llvm::SmallVector<llvm::StringRef> lines;
      llvm::StringRef(s.comment).split(lines, '\n');
      for (llvm::StringRef line : lines)
        os << pad << "# " << line << "\n";
    }
    os << pad;
    switch (s.kind) {
    case Stmt::Kind::Return:
      os << "return ";
      printList(s.values, os);
      os << "\n";
      continue;
    case Stmt::Kind::Check:
      os << "check ";
      printAt(*s.values[0], 0, os);
      os << "\n";
      continue;
    case Stmt::Kind::For:
      os << "for " << s.targets[0] << " in ";
      printAt(*s.values[0], 5, os);
      os << "..";
      printAt(*s.values[1], 5, os);
      os << " {\n";
      printStmts(s.body, indent + 2, os);
      os << pad << "}\n";
      continue;
    case Stmt::Kind::Def:
    case Stmt::Kind::TupleDef:
      break;
    }
    os << llvm::join(s.targets, ", ");
    if (s.hasIndices) {
      os << "[";
      for (auto [k, index] : llvm::enumerate(s.lhsIndices)) {
        os << (k ? ", " : "") << (index ? *index : ":");
        if (k < s.lhsBounds.size() && s.lhsBounds[k]) {
          os << " < ";
          printAt(*s.lhsBounds[k], 5, os);
        }
      }
      os << "]";
    }
    os << " = ";
    printAt(*s.values[0], 0, os);
    os << "\n";
  }
}

void mlx::ast::printSource(const Function &fn, llvm::raw_ostream &os) {
  os << "def " << fn.name << "(";
  for (auto [k, p] : llvm::enumerate(fn.params)) {
    os << (k ? ", " : "") << p.name << ": " << (p.isStatic ? "static " : "");
    printType(p.type, os);
  }
  os << ") -> ";
  if (fn.results.size() != 1)
    os << "(";
  for (auto [k, t] : llvm::enumerate(fn.results)) {
    os << (k ? ", " : "");
    printType(t, os);
  }
  if (fn.results.size() != 1)
    os << ")";
  os << " {\n";
  printStmts(fn.body, 2, os);
  os << "}\n";
}
