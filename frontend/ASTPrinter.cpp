//===- ASTPrinter.cpp - text dump of the AST --------------------*- C++ -*-===//
#include "frontend/ASTPrinter.h"

#include "llvm/Support/Format.h"

using namespace mlx::ast;

static void printLoc(const Loc &loc, llvm::raw_ostream &os) {
  os << "@" << loc.line << ":" << loc.col;
}

static void printDim(const DimExpr &d, llvm::raw_ostream &os) {
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
  const char *op = d.kind == DimExpr::Kind::Add   ? "+"
                   : d.kind == DimExpr::Kind::Sub ? "-"
                   : d.kind == DimExpr::Kind::Mul ? "*"
                                                  : "/";
  os << "(" << op << " ";
  printDim(*d.lhs, os);
  os << " ";
  printDim(*d.rhs, os);
  os << ")";
}

static void printType(const TypeSpec &t, llvm::raw_ostream &os) {
  os << mlx::rt::dtypeName(t.dtype);
  if (t.dims.empty())
    return;
  os << "[";
  for (size_t i = 0; i < t.dims.size(); ++i) {
    if (i)
      os << ", ";
    printDim(*t.dims[i], os);
  }
  os << "]";
}

static void printExpr(const Expr &e, llvm::raw_ostream &os) {
  switch (e.kind) {
  case Expr::Kind::Float:
    os << llvm::format("%g", e.number);
    break;
  case Expr::Kind::Int:
    os << e.intValue;
    break;
  case Expr::Kind::Inf:
    os << "inf";
    break;
  case Expr::Kind::Bool:
    os << (e.boolValue ? "true" : "false");
    break;
  case Expr::Kind::Name:
    os << e.name;
    break;
  case Expr::Kind::Unary:
  case Expr::Kind::Binary:
    os << "(" << e.op;
    for (auto &op : e.operands) {
      os << " ";
      printExpr(*op, os);
    }
    os << ")";
    break;
  case Expr::Kind::Select:
    os << "(?: ";
    printExpr(*e.operands[0], os);
    os << " ";
    printExpr(*e.operands[1], os);
    os << " ";
    printExpr(*e.operands[2], os);
    os << ")";
    break;
  case Expr::Kind::Reduce:
    os << "(" << e.op << "[";
    for (size_t i = 0; i < e.indices.size(); ++i)
      os << (i ? ", " : "") << e.indices[i];
    os << "] ";
    printExpr(*e.operands[0], os);
    os << ")";
    break;
  case Expr::Kind::Subscript:
    os << "(index ";
    printExpr(*e.operands[0], os);
    for (auto &sub : e.subscripts) {
      os << " ";
      if (sub)
        printExpr(*sub, os);
      else
        os << ":";
    }
    os << ")";
    break;
  case Expr::Kind::Call:
    os << "(call " << (e.name.empty() ? "<expr>" : e.name);
    for (auto &op : e.operands) {
      os << " ";
      printExpr(*op, os);
    }
    os << ")";
    break;
  }
}

/// One statement per line, indented by `depth`; a loop's body below it.
static void printStmts(const std::vector<Stmt> &stmts, unsigned depth,
                       llvm::raw_ostream &os) {
  for (const Stmt &s : stmts) {
    os.indent(2 * depth);
    if (s.kind == Stmt::Kind::Return) {
      os << "return";
    } else if (s.kind == Stmt::Kind::For) {
      os << "for " << s.targets[0] << " in";
    } else if (s.kind == Stmt::Kind::Check) {
      os << "check";
    } else {
      for (size_t i = 0; i < s.targets.size(); ++i)
        os << (i ? ", " : "") << s.targets[i];
      if (s.hasIndices) {
        os << "[";
        for (size_t i = 0; i < s.lhsIndices.size(); ++i) {
          os << (i ? ", " : "") << (s.lhsIndices[i] ? *s.lhsIndices[i] : ":");
          if (i < s.lhsBounds.size() && s.lhsBounds[i]) {
            os << " < ";
            printExpr(*s.lhsBounds[i], os);
          }
        }
        os << "]";
      }
      os << " =";
    }
    for (auto &v : s.values) {
      os << " ";
      printExpr(*v, os);
    }
    os << " ";
    printLoc(s.loc, os);
    os << "\n";
    printStmts(s.body, depth + 1, os);
  }
}

void mlx::ast::printModule(const Module &module, llvm::raw_ostream &os) {
  for (const Import &imp : module.imports) {
    os << "import " << imp.name << " ";
    printLoc(imp.loc, os);
    os << "\n";
  }
  for (const auto &fn : module.functions) {
    os << "def " << fn->name << " ";
    printLoc(fn->loc, os);
    os << "\n";
    for (const Param &p : fn->params) {
      os << "  param " << p.name << ": " << (p.isStatic ? "static " : "");
      printType(p.type, os);
      os << " ";
      printLoc(p.loc, os);
      os << "\n";
    }
    for (const TypeSpec &t : fn->results) {
      os << "  result ";
      printType(t, os);
      os << "\n";
    }
    printStmts(fn->body, 1, os);
  }
}
