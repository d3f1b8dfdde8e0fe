//===- RaiseToSource.cpp - mlx dialect back to .mlx statements --*- C++ -*-===//
//
// Each op that is not written inline becomes one statement; expressions
// are built by reading an op's elements at given subscripts (exprAt): a
// named tensor is subscripted, an inlined generic substitutes the
// subscripts for its indices in its body. Indices are named afresh per
// statement; one that no subscript on the right ranges over gets a bound
// from its size (`d[k < K] = g`, `sum[u < N] …`).
//
//===----------------------------------------------------------------------===//
#include "frontend/RaiseToSource.h"
#include "frontend/SourcePrinter.h"

#include "dialects/mlx/Adjoints.h"
#include "dialects/mlx/MlxDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineExpr.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/CastInterfaces.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

using namespace mlir;
using namespace mlir::mlx;
namespace ast = ::mlx::ast;
using ast::Expr;
using ast::sourceText;
using ExprPtr = std::unique_ptr<Expr>;

namespace {

//===----------------------------------------------------------------------===//
// Building expressions, with the exact sign algebra
//===----------------------------------------------------------------------===//

ExprPtr make(Expr::Kind kind) {
  return std::make_unique<Expr>(kind, ast::Loc{});
}

ExprPtr nameExpr(llvm::StringRef name) {
  ExprPtr e = make(Expr::Kind::Name);
  e->name = name.str();
  return e;
}

ExprPtr intExpr(int64_t v);
ExprPtr floatExpr(double v);

ExprPtr clone(const Expr &e) {
  ExprPtr c = make(e.kind);
  c->number = e.number;
  c->intValue = e.intValue;
  c->boolValue = e.boolValue;
  c->name = e.name;
  c->op = e.op;
  c->indices = e.indices;
  c->bounded = e.bounded;
  for (const ExprPtr &o : e.operands)
    c->operands.push_back(o ? clone(*o) : nullptr);
  for (const ExprPtr &s : e.subscripts)
    c->subscripts.push_back(s ? clone(*s) : nullptr);
  return c;
}

bool isLiteral(const Expr &e, double v) {
  if (e.kind == Expr::Kind::Float)
    return e.number == v;
  if (e.kind == Expr::Kind::Unary && e.op == "-")
    return isLiteral(*e.operands[0], -v);
  return false;
}

bool isInt(const Expr &e, int64_t v) {
  return e.kind == Expr::Kind::Int && e.intValue == v;
}

bool isNegation(const Expr &e) {
  return e.kind == Expr::Kind::Unary && e.op == "-";
}

ExprPtr unary(llvm::StringRef op, ExprPtr x) {
  if (op == "-" && isNegation(*x)) // −(−x) = x
    return std::move(x->operands[0]);
  ExprPtr e = make(Expr::Kind::Unary);
  e->op = op.str();
  e->operands.push_back(std::move(x));
  return e;
}

ExprPtr select(ExprPtr c, ExprPtr a, ExprPtr b);
ExprPtr unary(llvm::StringRef op, ExprPtr x);

bool isSelect(const Expr &e) { return e.kind == Expr::Kind::Select; }

ExprPtr binary(llvm::StringRef op, ExprPtr a, ExprPtr b) {
  bool arithmetic = op == "+" || op == "-" || op == "*" || op == "/";
  // (c ? a : b) ∘ (c ? d : e) is c ? a ∘ d : b ∘ e (both are computed
  // anyway), and x ± 0 is x (but for the sign of a zero).
  if (arithmetic && isSelect(*a) && isSelect(*b) &&
      sourceText(*a->operands[0]) == sourceText(*b->operands[0]))
    return select(
        std::move(a->operands[0]),
        binary(op, std::move(a->operands[1]), std::move(b->operands[1])),
        binary(op, std::move(a->operands[2]), std::move(b->operands[2])));
  auto isZero = [](const Expr &e) { return isLiteral(e, 0) || isInt(e, 0); };
  if ((op == "+" || op == "-") && isZero(*b))
    return a;
  if (op == "+" && isZero(*a))
    return b;
  if (op == "-" && isLiteral(*a, 0))
    return unary("-", std::move(b));
  if (op == "/" && isLiteral(*b, 1))
    return a;
  // (−a)·b = −(a·b) and a/(−b) = −(a/b), exactly.
  if ((op == "*" || op == "/") && isNegation(*a) != isNegation(*b) &&
      !isLiteral(*a, -1) && !isLiteral(*b, -1)) {
    if (isNegation(*a))
      a = std::move(a->operands[0]);
    else
      b = std::move(b->operands[0]);
    return unary("-", binary(op, std::move(a), std::move(b)));
  }
  if (op == "*") {
    if (isLiteral(*b, 1))
      return a;
    if (isLiteral(*a, 1))
      return b;
    if (isLiteral(*b, -1))
      return unary("-", std::move(a));
    if (isLiteral(*a, -1))
      return unary("-", std::move(b));
    if (isNegation(*a) && isNegation(*b))
      return binary("*", std::move(a->operands[0]), std::move(b->operands[0]));
  }
  if (op == "+" && sourceText(*a) == sourceText(*b)) // exact: a + a = 2a
    return binary("*", floatExpr(2), std::move(a));
  if (op == "+" && isNegation(*b))
    return binary("-", std::move(a), std::move(b->operands[0]));
  if (op == "+" && isNegation(*a))
    return binary("-", std::move(b), std::move(a->operands[0]));
  if (op == "-" && isNegation(*b))
    return binary("+", std::move(a), std::move(b->operands[0]));
  ExprPtr e = make(Expr::Kind::Binary);
  e->op = op.str();
  e->operands.push_back(std::move(a));
  e->operands.push_back(std::move(b));
  return e;
}

/// An integer expression as Σ cₖ·atomₖ + constant: the atoms are its parts
/// other than +, −, negation and products by a literal (names, subscripts,
/// calls, divisions), told apart by their text, in the order they appear.
struct LinearForm {
  std::vector<std::pair<ExprPtr, int64_t>> terms;
  int64_t constant = 0;

  void add(ExprPtr e, int64_t scale) {
    if (e->kind == Expr::Kind::Int) {
      constant += scale * e->intValue;
      return;
    }
    if (e->kind == Expr::Kind::Unary && e->op == "-")
      return add(std::move(e->operands[0]), -scale);
    if (e->kind == Expr::Kind::Binary && (e->op == "+" || e->op == "-")) {
      add(std::move(e->operands[0]), scale);
      return add(std::move(e->operands[1]), e->op == "+" ? scale : -scale);
    }
    if (e->kind == Expr::Kind::Binary && e->op == "*")
      for (int side : {0, 1})
        if (e->operands[side]->kind == Expr::Kind::Int)
          return add(std::move(e->operands[1 - side]),
                     scale * e->operands[side]->intValue);
    std::string text = sourceText(*e);
    for (auto &[atom, c] : terms)
      if (sourceText(*atom) == text) {
        c += scale;
        return;
      }
    terms.push_back({std::move(e), scale});
  }

  /// The sum written shortest: a positive term (or the constant) first,
  /// the others added or subtracted after it, the constant last.
  ExprPtr expr() {
    llvm::erase_if(terms, [](const auto &t) { return t.second == 0; });
    auto term = [](ExprPtr atom, int64_t c) {
      return c == 1 ? std::move(atom)
                    : binary("*", intExpr(c), std::move(atom));
    };
    ExprPtr sum;
    auto first =
        llvm::find_if(terms, [](const auto &t) { return t.second > 0; });
    if (first != terms.end()) {
      sum = term(std::move(first->first), first->second);
      terms.erase(first);
    } else if (constant > 0 || terms.empty()) {
      sum = intExpr(constant);
      constant = 0;
    }
    for (auto &[atom, c] : terms) {
      ExprPtr t = term(std::move(atom), c < 0 ? -c : c);
      sum = !sum ? unary("-", std::move(t))
                 : binary(c < 0 ? "-" : "+", std::move(sum), std::move(t));
    }
    if (constant != 0)
      sum = binary(constant < 0 ? "-" : "+", std::move(sum),
                   intExpr(constant < 0 ? -constant : constant));
    return sum;
  }
};

/// `e`, an integer expression, with its sums collected (exact for integers:
/// `N - (N - back - 1 + 1)` is `back`).
ExprPtr collectIntegerSum(ExprPtr e) {
  LinearForm form;
  form.add(std::move(e), 1);
  return form.expr();
}

ExprPtr call(llvm::StringRef name, ExprPtr a, ExprPtr b = nullptr);
ExprPtr call(llvm::StringRef name, ExprPtr a, ExprPtr b) {
  ExprPtr e = make(Expr::Kind::Call);
  e->name = name.str();
  e->operands.push_back(std::move(a));
  if (b)
    e->operands.push_back(std::move(b));
  return e;
}

/// `x >= 0.0`'s x, or null.
const Expr *nonNegativeTest(const Expr &c) {
  return c.kind == Expr::Kind::Binary && c.op == ">=" &&
                 isLiteral(*c.operands[1], 0)
             ? c.operands[0].get()
             : nullptr;
}

/// `e` where `test` is known to be `holds`: the selects on it decided.
ExprPtr decide(ExprPtr e, const std::string &test, bool holds) {
  for (ExprPtr &o : e->operands)
    if (o)
      o = decide(std::move(o), test, holds);
  for (ExprPtr &s : e->subscripts)
    if (s)
      s = decide(std::move(s), test, holds);
  if (isSelect(*e) && sourceText(*e->operands[0]) == test)
    return std::move(e->operands[holds ? 1 : 2]);
  // What changed below may simplify here.
  if (e->kind == Expr::Kind::Binary)
    return binary(e->op, std::move(e->operands[0]), std::move(e->operands[1]));
  if (e->kind == Expr::Kind::Unary)
    return unary(e->op, std::move(e->operands[0]));
  if (isSelect(*e))
    return select(std::move(e->operands[0]), std::move(e->operands[1]),
                  std::move(e->operands[2]));
  return e;
}

ExprPtr select(ExprPtr c, ExprPtr a, ExprPtr b) {
  std::string test = sourceText(*c);
  a = decide(std::move(a), test, true);
  b = decide(std::move(b), test, false);
  if (sourceText(*a) == sourceText(*b))
    return a;
  // The front end's forms of −|x| and σ(x) (frontend/MLIRGen.cpp), read
  // back: x >= 0 ? −x : x is −abs(x) (exp(−|x|) is the same, also at ±0),
  // x >= 0 ? 1 / (e + 1) : e / (e + 1) with e = exp(−abs(x)) is sigmoid(x).
  if (const Expr *x = nonNegativeTest(*c)) {
    std::string xs = sourceText(*x);
    if (isNegation(*a) && sourceText(*a->operands[0]) == xs &&
        sourceText(*b) == xs)
      return unary("-", call("abs", std::move(b)));
    std::string e = "exp(-abs(" + xs + "))";
    if (sourceText(*a) == "1.0 / (" + e + " + 1.0)" &&
        sourceText(*b) == e + " / (" + e + " + 1.0)")
      return call("sigmoid", clone(*x));
  }
  ExprPtr e = make(Expr::Kind::Select);
  e->operands.push_back(std::move(c));
  e->operands.push_back(std::move(a));
  e->operands.push_back(std::move(b));
  return e;
}

ExprPtr intExpr(int64_t v) {
  if (v == std::numeric_limits<int64_t>::min()) // −2⁶³ has no positive twin
    return binary("-", intExpr(v + 1), intExpr(1));
  if (v < 0)
    return unary("-", intExpr(-v));
  ExprPtr e = make(Expr::Kind::Int);
  e->intValue = v;
  return e;
}

ExprPtr floatExpr(double v) {
  if (std::isnan(v))
    return binary("/", floatExpr(0), floatExpr(0));
  if (v < 0 || (v == 0 && std::signbit(v)))
    return unary("-", floatExpr(-v));
  if (std::isinf(v))
    return make(Expr::Kind::Inf);
  ExprPtr e = make(Expr::Kind::Float);
  e->number = v;
  return e;
}

/// A reduction `op[indices] body`; `sum` of a negation is the negated sum.
ExprPtr reduce(llvm::StringRef op, std::vector<std::string> indices,
               ExprPtr body) {
  if (op == "sum" && isNegation(*body))
    return unary("-", reduce(op, indices, std::move(body->operands[0])));
  ExprPtr e = make(Expr::Kind::Reduce);
  e->op = op.str();
  e->indices = std::move(indices);
  e->operands.push_back(std::move(body));
  return e;
}

/// `op[index < size] body`, as the parser builds it (the else branch, the
/// identity, is not printed).
ExprPtr boundedReduce(llvm::StringRef op, const std::string &index,
                      ExprPtr size, ExprPtr body) {
  ExprPtr test = binary("<", nameExpr(index), std::move(size));
  ExprPtr e = reduce(op, {index},
                     select(std::move(test), std::move(body), floatExpr(0)));
  e->bounded = true;
  return e;
}

/// The index names that stand alone as a subscript somewhere in `e`: those
/// the language gets a range for.
void subscriptIndices(const Expr &e, std::set<std::string> &out) {
  if (e.kind == Expr::Kind::Subscript)
    for (const ExprPtr &s : e.subscripts)
      if (s && s->kind == Expr::Kind::Name)
        out.insert(s->name);
  for (const ExprPtr &o : e.operands)
    if (o)
      subscriptIndices(*o, out);
  for (const ExprPtr &s : e.subscripts)
    if (s)
      subscriptIndices(*s, out);
}

ExprPtr dimExpr(const ast::DimExpr &d) {
  switch (d.kind) {
  case ast::DimExpr::Kind::Int:
    return intExpr(d.value);
  case ast::DimExpr::Kind::Sym:
    return nameExpr(d.name);
  case ast::DimExpr::Kind::Ellipsis:
    return nullptr;
  case ast::DimExpr::Kind::Add:
  case ast::DimExpr::Kind::Sub:
  case ast::DimExpr::Kind::Mul:
  case ast::DimExpr::Kind::Div: {
    ExprPtr a = dimExpr(*d.lhs), b = dimExpr(*d.rhs);
    if (!a || !b)
      return nullptr;
    const char *op = d.kind == ast::DimExpr::Kind::Add   ? "+"
                     : d.kind == ast::DimExpr::Kind::Sub ? "-"
                     : d.kind == ast::DimExpr::Kind::Mul ? "*"
                                                         : "/";
    return binary(op, std::move(a), std::move(b));
  }
  }
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Where an op comes from
//===----------------------------------------------------------------------===//

/// The source line an op's location names (the innermost callee's, for an
/// inlined op) and whether the reverse sweep made it.
struct Provenance {
  std::string file;
  unsigned line = 0;
  bool adjoint = false;
  bool operator<(const Provenance &o) const {
    return std::tie(adjoint, file, line) < std::tie(o.adjoint, o.file, o.line);
  }
};

std::optional<Provenance> provenanceOf(Location loc) {
  while (auto site = dyn_cast<CallSiteLoc>(loc))
    loc = site.getCallee();
  Provenance p;
  while (auto name = dyn_cast<NameLoc>(loc)) {
    p.adjoint |= name.getName() == kAdjointLocName;
    loc = name.getChildLoc();
  }
  auto file = dyn_cast<FileLineColLoc>(loc);
  if (!file)
    return std::nullopt;
  p.file = file.getFilename().str();
  p.line = file.getLine();
  return p;
}

/// `e` with each part written `text` (an integer expression) replaced by
/// `by`, and the sums around a replaced part collected again. Whether
/// anything was replaced.
bool replaceText(ExprPtr &e, const std::string &text, const Expr &by) {
  if (!e)
    return false;
  if (sourceText(*e) == text) {
    e = clone(by);
    return true;
  }
  bool replaced = false;
  for (ExprPtr &o : e->operands)
    replaced |= replaceText(o, text, by);
  for (ExprPtr &s : e->subscripts)
    replaced |= replaceText(s, text, by);
  // A sum with an integer part is an integer sum; an integer part stops
  // at a subscript, call, select or reduction.
  bool arithmetic = (e->kind == Expr::Kind::Binary &&
                     (e->op == "+" || e->op == "-" || e->op == "*")) ||
                    (e->kind == Expr::Kind::Unary && e->op == "-");
  if (!replaced || !arithmetic)
    return false;
  e = collectIntegerSum(std::move(e));
  return true;
}

/// `stmt` (and the statements in its body) with each expression part
/// written `text` replaced by `by`.
void replaceText(ast::Stmt &stmt, const std::string &text, const Expr &by) {
  for (ExprPtr &v : stmt.values)
    replaceText(v, text, by);
  for (ExprPtr &b : stmt.lhsBounds)
    replaceText(b, text, by);
  for (ast::Stmt &inner : stmt.body)
    replaceText(inner, text, by);
}

/// Whether `loc` marks the op computing a reverse loop's forward step.
bool isForwardStep(Location loc) {
  while (auto site = dyn_cast<CallSiteLoc>(loc))
    loc = site.getCallee();
  for (auto name = dyn_cast<NameLoc>(loc); name;
       name = dyn_cast<NameLoc>(name.getChildLoc()))
    if (name.getName() == kForwardStepLocName)
      return true;
  return false;
}

/// Source files' lines, read once.
class SourceLines {
public:
  llvm::StringRef line(const std::string &file, unsigned n) {
    auto [it, fresh] = files.try_emplace(file);
    if (fresh) {
      if (auto buffer = llvm::MemoryBuffer::getFile(file)) {
        it->second.text = (*buffer)->getBuffer().str();
        llvm::StringRef(it->second.text).split(it->second.lines, '\n');
      }
    }
    const auto &lines = it->second.lines;
    return n >= 1 && n <= lines.size() ? lines[n - 1].trim()
                                       : llvm::StringRef();
  }

private:
  struct File {
    std::string text;
    llvm::SmallVector<llvm::StringRef> lines;
  };
  std::map<std::string, File> files;
};

/// The name a definition on `line` defines (`m = …`, `e[k] = …`), or "".
std::string definedName(llvm::StringRef line) {
  size_t n = 0;
  auto isIdent = [](unsigned char c) {
    return c >= 0x80 || std::isalnum(c) || c == '_';
  };
  while (n < line.size() && isIdent(line[n]))
    ++n;
  if (n == 0 || std::isdigit((unsigned char)line[0]))
    return "";
  llvm::StringRef name = line.take_front(n), rest = line.drop_front(n).ltrim();
  if (name == "return" || name == "for" || name == "def" || name == "check")
    return "";
  if (rest.starts_with("[") || rest.starts_with(",") ||
      (rest.starts_with("=") && !rest.starts_with("==")))
    return name.str();
  return "";
}

//===----------------------------------------------------------------------===//
// The raiser
//===----------------------------------------------------------------------===//

const char *const kIndexNames[] = {"i", "j", "k", "l", "n", "m", "p",
                                   "q", "r", "s", "t", "u", "v", "w"};

class Raiser {
public:
  Raiser(func::FuncOp func, ast::Function &fn) : func(func), fn(fn) {}

  llvm::Error run(llvm::ArrayRef<std::string> resultNames);

private:
  /// One statement being written: its index names and the ops it reads.
  struct Statement {
    std::set<std::string> indices;
    llvm::SetVector<Operation *> ops;
  };

  ExprPtr fail(Operation *op, const llvm::Twine &why) {
    if (failure.empty()) {
      std::string where;
      if (auto p = provenanceOf(op->getLoc()))
        where = " (from " + llvm::sys::path::filename(p->file).str() + ":" +
                std::to_string(p->line) + ")";
      failure = why.str() + where;
    }
    return intExpr(0);
  }

  std::string freshIndex() {
    for (int round = 1;; ++round)
      for (const char *base : kIndexNames) {
        std::string name =
            round == 1 ? std::string(base) : base + std::to_string(round);
        if (!taken.contains(name) && !current->indices.count(name)) {
          current->indices.insert(name);
          return name;
        }
      }
  }

  std::string uniqueName(const std::string &base) {
    std::string name = base;
    for (int n = 2; taken.contains(name); ++n)
      name = base + std::to_string(n);
    taken.insert(name);
    return name;
  }

  bool shouldInline(Operation *op);
  ExprPtr exprAt(Value tensor, std::vector<ExprPtr> at);
  ExprPtr genericExpr(GenericOp g, std::vector<ExprPtr> at);
  ExprPtr gatherExpr(GatherOp g, std::vector<ExprPtr> at);
  ExprPtr scatterExpr(ScatterAddOp s, const std::vector<ExprPtr> &at);
  ExprPtr scalarExpr(Value v);
  ExprPtr sizeOf(Value tensor, unsigned dim);
  ExprPtr affineExpr(AffineExpr e, const std::vector<ExprPtr> &dims);
  ExprPtr opExpr(Operation *op, const std::function<ExprPtr(Value)> &operand,
                 const std::vector<ExprPtr> &dims);
  void statement(Operation *op, Value result, const std::string &name);
  void emitBlock(Block &block);
  void emitLoop(LoopOp loop);
  void mergeCopies(std::vector<ast::Stmt> &body, size_t firstCopy);
  bool isSize(const Expr &e, bool minus = false) const;
  Operation *ret = nullptr;
  llvm::DenseMap<Value, std::string> returnedAs;
  /// Where statements go: the function's body or a loop's.
  std::vector<ast::Stmt> *out = nullptr;
  /// Loop variables.
  llvm::DenseMap<Value, std::string> scalarNames;
  /// The names of the parameters' sizes.
  llvm::StringSet<> sizeNames;
  std::string nameFor(Operation *op);
  std::string comment(const Statement &s);

  func::FuncOp func;
  ast::Function &fn;
  llvm::DenseMap<Value, std::string> names;
  llvm::StringSet<> taken;
  llvm::DenseSet<Operation *> inlined;
  Statement *current = nullptr;
  std::string failure;
  unsigned temporaries = 0, gradients = 0;
  /// In a reverse loop's body: the variable of the forward loop it undoes,
  /// then the text of its value and the name given to it.
  std::string forwardVar;
  std::pair<std::string, std::string> forwardStep;
  SourceLines sources;
};

/// Reads of elements (what an inlined expression can stand for).
bool readsElements(OpOperand &use) {
  Operation *user = use.getOwner();
  if (isa<tensor::DimOp>(user)) // sizeOf reads the sizes of any op
    return true;
  if (auto check = dyn_cast<AssertOp>(user))
    return check.getCondition().getType().getRank() == 0;
  if (auto g = dyn_cast<GenericOp>(user))
    return use.getOperandNumber() < g.getInputs().size();
  return isa<GatherOp, ScatterAddOp, tensor::ExtractOp, TakeOp, PutOp,
             CheckIndexOp>(user) &&
         !(isa<ScatterAddOp>(user) && use.getOperandNumber() == 1);
}

/// A tensor of one constant (zeros, the seed's ones): written as the
/// constant wherever it is read.
bool isConstantTensor(Operation *op) {
  auto g = dyn_cast<GenericOp>(op);
  if (!g || !g.getInputs().empty() || g.getCombiner() != Combiner::none)
    return false;
  Value v = g.getYield().getValue();
  return v.getDefiningOp() &&
         v.getDefiningOp()->getBlock() != &g.getBody().front() &&
         matchPattern(v, m_Constant());
}

bool Raiser::shouldInline(Operation *op) {
  if (isConstantTensor(op))
    return true;
  if (!isa<GenericOp, GatherOp>(op) || op->getResult(0).use_empty() ||
      !llvm::all_of(op->getResult(0).getUses(), readsElements))
    return false;
  auto g = dyn_cast<GenericOp>(op);
  if (op->getResult(0).hasOneUse())
    // A reduction over a tensor stays a statement of its own.
    return !g || g.getCombiner() == Combiner::none ||
           g.getResult().getType().getRank() == 0;
  // Cheap element-wise ops of parameters are repeated where they are read.
  if (!g || g.getCombiner() != Combiner::none)
    return false;
  unsigned ops = 0;
  for (Operation &inner : g.getBody().front().without_terminator()) {
    if (isa<math::MathDialect>(inner.getDialect()) ||
        isa<StopGradientOp>(inner))
      return false;
    ops += !isa<CastOpInterface>(inner);
  }
  return ops <= 2 && llvm::all_of(g.getInputs(), [](Value v) {
           return isa<BlockArgument>(v);
         });
}

ExprPtr Raiser::exprAt(Value tensor, std::vector<ExprPtr> at) {
  if (auto it = names.find(tensor); it != names.end()) {
    if (at.empty())
      return nameExpr(it->second);
    ExprPtr e = make(Expr::Kind::Subscript);
    e->operands.push_back(nameExpr(it->second));
    e->subscripts = std::move(at);
    return e;
  }
  Operation *op = tensor.getDefiningOp();
  if (!op)
    return intExpr(0); // an argument without a name: reported by run()
  if (auto cast = dyn_cast<tensor::CastOp>(op))
    return exprAt(cast.getSource(), std::move(at));
  if (auto scalar = dyn_cast<tensor::FromElementsOp>(op);
      scalar && scalar.getType().getRank() == 0)
    return scalarExpr(scalar.getElements()[0]);
  // A constant subscript's check: the subscript printed checks itself.
  if (auto check = dyn_cast<CheckIndexOp>(op))
    return exprAt(check.getInput(), std::move(at));
  if (auto take = dyn_cast<TakeOp>(op)) { // xs[t, :]
    at.insert(at.begin() + take.getDim(), scalarExpr(take.getIndex()));
    return exprAt(take.getInput(), std::move(at));
  }
  if (auto put = dyn_cast<PutOp>(op)) { // hs with row t replaced by h
    std::vector<ExprPtr> valueAt, inputAt;
    for (auto [d, a] : llvm::enumerate(at)) {
      inputAt.push_back(clone(*a));
      if (d != put.getDim())
        valueAt.push_back(clone(*a));
    }
    ExprPtr here =
        binary("==", clone(*at[put.getDim()]), scalarExpr(put.getIndex()));
    return select(std::move(here), exprAt(put.getValue(), std::move(valueAt)),
                  exprAt(put.getInput(), std::move(inputAt)));
  }
  if (auto constant = dyn_cast<arith::ConstantOp>(op)) {
    auto dense = dyn_cast<SplatElementsAttr>(constant.getValue());
    if (!dense)
      return fail(op, "a constant tensor that is not one value repeated");
    Attribute v = dense.getSplatValue<Attribute>();
    if (auto f = dyn_cast<FloatAttr>(v))
      return floatExpr(f.getValueAsDouble());
    return intExpr(cast<IntegerAttr>(v).getInt());
  }
  if (!inlined.contains(op))
    return fail(op, "'" + op->getName().getStringRef() +
                        "' cannot be written in the language yet");
  if (auto g = dyn_cast<GenericOp>(op))
    return genericExpr(g, std::move(at));
  return gatherExpr(cast<GatherOp>(op), std::move(at));
}

ExprPtr Raiser::genericExpr(GenericOp g, std::vector<ExprPtr> at) {
  current->ops.insert(g);
  std::vector<ExprPtr> dims = std::move(at);
  std::vector<std::string> reduced;
  for (unsigned d = g.getNumParallelLoops(); d < g.getNumLoops(); ++d) {
    reduced.push_back(freshIndex());
    dims.push_back(nameExpr(reduced.back()));
  }
  Block &body = g.getBody().front();
  std::function<ExprPtr(Value)> element = [&](Value v) -> ExprPtr {
    if (auto arg = dyn_cast<BlockArgument>(v); arg && arg.getOwner() == &body) {
      unsigned k = arg.getArgNumber();
      std::vector<ExprPtr> subscripts;
      for (AffineExpr e :
           cast<AffineMapAttr>(g.getIndexingMaps()[k]).getValue().getResults())
        subscripts.push_back(affineExpr(e, dims));
      return exprAt(g.getInputs()[k], std::move(subscripts));
    }
    Operation *op = v.getDefiningOp();
    if (op && op->getBlock() == &body)
      return opExpr(op, element, dims);
    return scalarExpr(v);
  };
  ExprPtr value = element(g.getYield().getValue());
  if (g.getCombiner() == Combiner::none)
    return value;
  const char *op = g.getCombiner() == Combiner::add   ? "sum"
                   : g.getCombiner() == Combiner::mul ? "prod"
                   : g.getCombiner() == Combiner::max ? "max"
                                                      : "min";
  // Indices no subscript ranges over are reduced with a bound, innermost.
  std::set<std::string> covered;
  subscriptIndices(*value, covered);
  std::vector<std::string> free;
  for (auto [k, name] : llvm::enumerate(reduced)) {
    if (covered.count(name)) {
      free.push_back(name);
      continue;
    }
    unsigned d = g.getNumParallelLoops() + k;
    value =
        boundedReduce(op, name, scalarExpr(g.getSizes()[d]), std::move(value));
  }
  return free.empty() ? std::move(value)
                      : reduce(op, std::move(free), std::move(value));
}

ExprPtr Raiser::gatherExpr(GatherOp g, std::vector<ExprPtr> at) {
  current->ops.insert(g);
  int64_t gatherRank = g.getGatherRank();
  std::vector<ExprPtr> subscripts;
  unsigned nextIndices = 0, nextKept = gatherRank;
  for (int64_t d : g.getDims()) {
    if (d >= 0) {
      subscripts.push_back(clone(*at[d]));
    } else if (d == -1) {
      std::vector<ExprPtr> where;
      for (int64_t j = 0; j < gatherRank; ++j)
        where.push_back(clone(*at[j]));
      ExprPtr index = exprAt(g.getIndices()[nextIndices++], std::move(where));
      // A bare index would range over the input's dim; `i + 0` stays a
      // computed subscript, read over the gather's own range.
      if (index->kind == Expr::Kind::Name) { // (unsimplified)
        ExprPtr plus = make(Expr::Kind::Binary);
        plus->op = "+";
        plus->operands.push_back(std::move(index));
        plus->operands.push_back(intExpr(0));
        index = std::move(plus);
      }
      subscripts.push_back(std::move(index));
    } else {
      subscripts.push_back(clone(*at[nextKept++]));
    }
  }
  return exprAt(g.getInput(), std::move(subscripts));
}

/// Element `at` of `input` plus the values scattered onto it: the sum over
/// the gather points whose subscripts are `at`.
ExprPtr Raiser::scatterExpr(ScatterAddOp s, const std::vector<ExprPtr> &at) {
  auto valueType = cast<RankedTensorType>(s.getValue().getType());
  auto indices = s.getIndices();
  int64_t gatherRank =
      indices.empty() ? 0
                      : cast<RankedTensorType>(indices[0].getType()).getRank();
  std::vector<ExprPtr> gatherAt(gatherRank);
  std::vector<std::string> summed;
  ArrayRef<int64_t> dims = s.getDims();
  for (auto [d, j] : llvm::enumerate(dims))
    if (j >= 0 && !gatherAt[j])
      gatherAt[j] = clone(*at[d]);
  for (auto &g : gatherAt)
    if (!g) {
      summed.push_back(freshIndex());
      g = nameExpr(summed.back());
    }
  std::vector<ExprPtr> valueAt;
  for (auto &g : gatherAt)
    valueAt.push_back(clone(*g));
  ExprPtr condition;
  unsigned nextIndices = 0;
  for (auto [d, j] : llvm::enumerate(dims)) {
    ExprPtr test;
    if (j == -1) {
      std::vector<ExprPtr> where;
      for (auto &g : gatherAt)
        where.push_back(clone(*g));
      test = binary("==", exprAt(indices[nextIndices++], std::move(where)),
                    clone(*at[d]));
    } else if (j == -2) {
      valueAt.push_back(clone(*at[d]));
    } else if (!(gatherAt[j]->kind == Expr::Kind::Name &&
                 at[d]->kind == Expr::Kind::Name &&
                 gatherAt[j]->name == at[d]->name)) {
      test = binary("==", clone(*gatherAt[j]), clone(*at[d]));
    }
    if (test)
      condition = condition
                      ? binary("&&", std::move(condition), std::move(test))
                      : std::move(test);
  }
  if ((int64_t)valueAt.size() != valueType.getRank())
    return fail(s, "a scatter whose value does not match its subscripts");
  ExprPtr value = exprAt(s.getValue(), std::move(valueAt));
  if (condition)
    value = select(std::move(condition), std::move(value), floatExpr(0));
  if (!summed.empty())
    value = reduce("sum", summed, std::move(value));
  // Scattered onto zeros: the sum alone.
  auto zeros = s.getInput().getDefiningOp<GenericOp>();
  bool ontoZeros = zeros && zeros.getInputs().empty() &&
                   zeros.getCombiner() == Combiner::none &&
                   matchPattern(zeros.getYield().getValue(), m_AnyZeroFloat());
  if (ontoZeros)
    return value;
  std::vector<ExprPtr> inputAt;
  for (const ExprPtr &a : at)
    inputAt.push_back(clone(*a));
  return binary("+", exprAt(s.getInput(), std::move(inputAt)),
                std::move(value));
}

ExprPtr Raiser::scalarExpr(Value v) {
  if (auto it = scalarNames.find(v); it != scalarNames.end())
    return nameExpr(it->second);
  Operation *op = v.getDefiningOp();
  if (!op)
    return fail(func, "a scalar argument");
  if (auto dim = dyn_cast<tensor::DimOp>(op)) {
    std::optional<int64_t> d = dim.getConstantIndex();
    if (!d)
      return fail(op, "a size of an unknown dimension");
    return sizeOf(dim.getSource(), *d);
  }
  if (auto extract = dyn_cast<tensor::ExtractOp>(op)) {
    std::vector<ExprPtr> at;
    for (Value i : extract.getIndices())
      at.push_back(scalarExpr(i));
    return exprAt(extract.getTensor(), std::move(at));
  }
  return opExpr(op, [&](Value x) { return scalarExpr(x); }, {});
}

ExprPtr Raiser::sizeOf(Value tensor, unsigned dim) {
  auto type = cast<RankedTensorType>(tensor.getType());
  if (!type.isDynamicDim(dim))
    return intExpr(type.getDimSize(dim));
  if (auto arg = dyn_cast<BlockArgument>(tensor);
      arg && arg.getArgNumber() > 0 &&
      isa<LoopOp>(arg.getOwner()->getParentOp())) // a carried value
    return sizeOf(cast<LoopOp>(arg.getOwner()->getParentOp())
                      .getInits()[arg.getArgNumber() - 1],
                  dim);
  if (auto arg = dyn_cast<BlockArgument>(tensor)) {
    const ast::TypeSpec &t = fn.params[arg.getArgNumber()].type;
    if (dim < t.dims.size())
      if (ExprPtr e = dimExpr(*t.dims[dim]))
        return e;
    return fail(func, "a parameter whose sizes have no names");
  }
  Operation *op = tensor.getDefiningOp();
  if (auto g = dyn_cast<GenericOp>(op))
    return scalarExpr(g.getSizes()[dim]);
  if (auto loop = dyn_cast<LoopOp>(op))
    return sizeOf(loop.getInits()[cast<OpResult>(tensor).getResultNumber()],
                  dim);
  if (auto s = dyn_cast<ScatterAddOp>(op))
    return sizeOf(s.getInput(), dim);
  if (auto cast = dyn_cast<tensor::CastOp>(op))
    return sizeOf(cast.getSource(), dim);
  if (auto check = dyn_cast<CheckIndexOp>(op))
    return sizeOf(check.getInput(), dim);
  if (auto put = dyn_cast<PutOp>(op))
    return sizeOf(put.getInput(), dim);
  if (auto take = dyn_cast<TakeOp>(op))
    return sizeOf(take.getInput(), dim < take.getDim() ? dim : dim + 1);
  if (auto g = dyn_cast<GatherOp>(op)) {
    int64_t gatherRank = g.getGatherRank();
    if ((int64_t)dim < gatherRank)
      return sizeOf(g.getIndices()[0], dim);
    int64_t kept = gatherRank;
    for (auto [d, j] : llvm::enumerate(g.getDims()))
      if (j == -2 && kept++ == (int64_t)dim)
        return sizeOf(g.getInput(), d);
  }
  return fail(op, "the size of '" + op->getName().getStringRef() + "'");
}

ExprPtr Raiser::affineExpr(AffineExpr e, const std::vector<ExprPtr> &dims) {
  if (auto d = dyn_cast<AffineDimExpr>(e))
    return clone(*dims[d.getPosition()]);
  if (auto c = dyn_cast<AffineConstantExpr>(e))
    return intExpr(c.getValue());
  auto bin = cast<AffineBinaryOpExpr>(e);
  ExprPtr lhs = affineExpr(bin.getLHS(), dims);
  ExprPtr rhs = affineExpr(bin.getRHS(), dims);
  LinearForm sum;
  switch (e.getKind()) {
  case AffineExprKind::Add:
    sum.add(std::move(lhs), 1);
    sum.add(std::move(rhs), 1);
    return sum.expr();
  case AffineExprKind::Mul:
    sum.add(binary("*", std::move(lhs), std::move(rhs)), 1);
    return sum.expr();
  case AffineExprKind::FloorDiv:
    return binary("/", std::move(lhs), std::move(rhs));
  case AffineExprKind::Mod:
    return binary("%", std::move(lhs), std::move(rhs));
  default:
    return fail(func, "a subscript rounded up (ceildiv)");
  }
}

const char *typeName(Type t) {
  if (t.isF32())
    return "f32";
  if (t.isF64())
    return "f64";
  if (t.isInteger(32))
    return "i32";
  if (t.isInteger(1))
    return "bool";
  return "i64"; // i64 and index
}

ExprPtr Raiser::opExpr(Operation *op,
                       const std::function<ExprPtr(Value)> &operand,
                       const std::vector<ExprPtr> &dims) {
  auto x = [&](unsigned k) { return operand(op->getOperand(k)); };
  auto bin = [&](llvm::StringRef o) { return binary(o, x(0), x(1)); };
  auto fn1 = [&](llvm::StringRef name) { return call(name, x(0)); };
  return llvm::TypeSwitch<Operation *, ExprPtr>(op)
      .Case([&](arith::ConstantOp c) -> ExprPtr {
        if (auto f = dyn_cast<FloatAttr>(c.getValue()))
          return floatExpr(f.getValueAsDouble());
        if (auto i = dyn_cast<IntegerAttr>(c.getValue())) {
          if (i.getType().isInteger(1)) {
            ExprPtr b = make(Expr::Kind::Bool);
            b->boolValue = i.getValue().getBoolValue();
            return b;
          }
          return intExpr(i.getValue().getSExtValue());
        }
        return fail(op, "a constant of this kind");
      })
      .Case([&](arith::AddFOp) { return bin("+"); })
      .Case([&](arith::AddIOp) {
        LinearForm sum;
        sum.add(x(0), 1);
        sum.add(x(1), 1);
        return sum.expr();
      })
      .Case([&](arith::SubFOp) { return bin("-"); })
      .Case([&](arith::SubIOp) {
        // a − (a / b)·b is the language's a % b.
        ExprPtr e = bin("-");
        if (e->kind != Expr::Kind::Binary || e->op != "-")
          return collectIntegerSum(std::move(e));
        const Expr &a = *e->operands[0], &p = *e->operands[1];
        if (p.kind == Expr::Kind::Binary && p.op == "*" &&
            p.operands[0]->kind == Expr::Kind::Binary &&
            p.operands[0]->op == "/" &&
            sourceText(*p.operands[0]->operands[0]) == sourceText(a) &&
            sourceText(*p.operands[0]->operands[1]) ==
                sourceText(*p.operands[1]))
          return binary("%", std::move(e->operands[0]),
                        std::move(e->operands[1]->operands[1]));
        return collectIntegerSum(std::move(e));
      })
      .Case([&](arith::MulFOp) { return bin("*"); })
      .Case([&](arith::MulIOp) {
        ExprPtr a = x(0), b = x(1);
        if (a->kind != Expr::Kind::Int && b->kind != Expr::Kind::Int)
          return binary("*", std::move(a), std::move(b));
        LinearForm product;
        product.add(binary("*", std::move(a), std::move(b)), 1);
        return product.expr();
      })
      .Case<arith::DivFOp, arith::DivSIOp>([&](auto) { return bin("/"); })
      .Case<arith::RemSIOp>([&](auto) { return bin("%"); })
      .Case([&](arith::NegFOp) { return unary("-", x(0)); })
      .Case([&](arith::MaximumFOp) { return call("max", x(0), x(1)); })
      .Case([&](arith::MaxSIOp) {
        // max(N, 0) of a size N (a trip count) is N.
        ExprPtr a = x(0), b = x(1);
        // (A negative count, N - 1 for N = 0, is no tensor the
        // program had: its bounds are checked before it runs.)
        if (isInt(*b, 0) && isSize(*a, true))
          return a;
        return call("max", std::move(a), std::move(b));
      })
      .Case<arith::MinimumFOp, arith::MinSIOp>(
          [&](auto) { return call("min", x(0), x(1)); })
      .Case([&](arith::SelectOp) {
        // The language's integer x / y, guarded against y = 0 and overflow
        // (frontend/MLIRGen.cpp's truncatingDivide), is x / y again.
        ExprPtr e = select(x(0), x(1), x(2));
        if (e->kind != Expr::Kind::Select)
          return e;
        const Expr &test = *e->operands[0], &divide = *e->operands[2];
        if (test.kind == Expr::Kind::Binary && test.op == "==" &&
            isInt(*test.operands[1], 0) && isInt(*e->operands[1], 0) &&
            divide.kind == Expr::Kind::Binary && divide.op == "/" &&
            divide.operands[1]->kind == Expr::Kind::Select &&
            isInt(*divide.operands[1]->operands[1], 1) &&
            sourceText(*divide.operands[1]->operands[2]) ==
                sourceText(*test.operands[0]))
          return binary("/", std::move(e->operands[2]->operands[0]),
                        std::move(e->operands[0]->operands[0]));
        return e;
      })
      .Case([&](arith::CmpFOp c) -> ExprPtr {
        using P = arith::CmpFPredicate;
        switch (c.getPredicate()) {
        case P::OLT:
          return bin("<");
        case P::OLE:
          return bin("<=");
        case P::OGT:
          return bin(">");
        case P::OGE:
          return bin(">=");
        case P::OEQ:
          return bin("==");
        case P::UNE:
          return bin("!=");
        case P::UGE: // the negations of the ordered ones
          return unary("!", bin("<"));
        case P::UGT:
          return unary("!", bin("<="));
        case P::ULE:
          return unary("!", bin(">"));
        case P::ULT:
          return unary("!", bin(">="));
        case P::ONE: // ordered and unequal
          return binary("||", bin("<"), bin(">"));
        case P::UEQ:
          return unary("!", binary("||", bin("<"), bin(">")));
        case P::ORD: // neither is NaN
          return binary("&&", binary("==", x(0), x(0)),
                        binary("==", x(1), x(1)));
        case P::UNO:
          return binary("||", binary("!=", x(0), x(0)),
                        binary("!=", x(1), x(1)));
        default:
          return fail(op, "this float comparison");
        }
      })
      .Case([&](arith::CmpIOp c) -> ExprPtr {
        using P = arith::CmpIPredicate;
        switch (c.getPredicate()) {
        case P::slt:
        case P::ult: // on indices, which are not negative
          return bin("<");
        case P::sle:
        case P::ule:
          return bin("<=");
        case P::sgt:
        case P::ugt:
          return bin(">");
        case P::sge:
        case P::uge:
          return bin(">=");
        case P::eq:
          return bin("==");
        case P::ne:
          return bin("!=");
        }
        return fail(op, "this integer comparison");
      })
      .Case<arith::AndIOp, arith::OrIOp, arith::XOrIOp>([&](auto) -> ExprPtr {
        if (!op->getResult(0).getType().isInteger(1))
          return fail(op, "bitwise integer arithmetic");
        if (isa<arith::AndIOp>(op))
          return bin("&&");
        if (isa<arith::OrIOp>(op))
          return bin("||");
        if (matchPattern(op->getOperand(1), m_One()))
          return unary("!", x(0));
        return bin("!=");
      })
      .Case<arith::SIToFPOp, arith::ExtFOp, arith::TruncFOp, arith::FPToSIOp>(
          [&](auto) { return fn1(typeName(op->getResult(0).getType())); })
      .Case<arith::IndexCastOp, arith::ExtSIOp, arith::ExtUIOp,
            arith::TruncIOp>([&](auto) -> ExprPtr {
        Type to = op->getResult(0).getType(),
             from = op->getOperand(0).getType();
        // Indices are i64 to the language.
        if (to.isIndex() || from.isIndex() && to.isInteger(64))
          return x(0);
        return fn1(typeName(to));
      })
      .Case([&](math::ExpOp) { return fn1("exp"); })
      .Case([&](math::LogOp) { return fn1("log"); })
      .Case([&](math::Log1pOp) { return fn1("log1p"); })
      .Case([&](math::SqrtOp) { return fn1("sqrt"); })
      .Case([&](math::TanhOp) { return fn1("tanh"); })
      .Case([&](math::ErfOp) { return fn1("erf"); })
      .Case([&](math::AbsFOp) { return fn1("abs"); })
      .Case([&](math::SinOp) { return fn1("sin"); })
      .Case([&](math::CosOp) { return fn1("cos"); })
      .Case([&](math::PowFOp) { return bin("^"); })
      .Case([&](StopGradientOp) { return fn1("stop_gradient"); })
      .Case([&](SigmoidOp) { return fn1("sigmoid"); })
      .Case([&](IndexOp i) -> ExprPtr {
        if (i.getDim() >= dims.size())
          return fail(op, "an index outside an equation");
        return clone(*dims[i.getDim()]);
      })
      .Default([&](Operation *) {
        return fail(op, "'" + op->getName().getStringRef() +
                            "' cannot be written in the language yet");
      });
}

std::string Raiser::nameFor(Operation *op) {
  std::optional<Provenance> p = provenanceOf(op->getLoc());
  if (p && p->adjoint)
    return uniqueName("g" + std::to_string(++gradients));
  // The name a source line defines goes to the value it defines, not to
  // the parts of its right-hand side (read by an op of the same line).
  auto sameLine = [&](Operation *user) {
    std::optional<Provenance> u = provenanceOf(user->getLoc());
    return u && !u->adjoint && u->file == p->file && u->line == p->line;
  };
  if (p && llvm::none_of(op->getUsers(), sameLine)) {
    std::string defined = definedName(sources.line(p->file, p->line));
    if (!defined.empty())
      return uniqueName(defined);
  }
  return uniqueName("t" + std::to_string(++temporaries));
}

std::string Raiser::comment(const Statement &s) {
  std::set<Provenance> from;
  for (Operation *op : s.ops)
    if (auto p = provenanceOf(op->getLoc()))
      from.insert(*p);
  // One line per source line: the chain rule's steps, else the forward
  // equations the statement recomputes.
  bool adjoint =
      llvm::any_of(from, [](const Provenance &p) { return p.adjoint; });
  std::string text = adjoint ? "the chain rule through" : "as in";
  std::set<std::pair<std::string, unsigned>> listed;
  for (const Provenance &p : from) {
    llvm::StringRef line = sources.line(p.file, p.line);
    // (A function's own line: the sum of a value's cotangents over uses.)
    if (line.empty() || line.starts_with("def ") || p.adjoint != adjoint ||
        !listed.insert({p.file, p.line}).second)
      continue;
    text += "\n  " + llvm::sys::path::filename(p.file).str() + ":" +
            std::to_string(p.line) + "  " + line.str();
  }
  return listed.empty() ? "" : text;
}

void Raiser::statement(Operation *op, Value result, const std::string &name) {
  Statement s;
  current = &s;
  auto type = cast<RankedTensorType>(result.getType());
  std::vector<std::string> indices;
  std::vector<ExprPtr> at;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    indices.push_back(freshIndex());
    at.push_back(nameExpr(indices.back()));
  }
  s.ops.insert(op);
  ExprPtr value;
  if (auto g = dyn_cast<GenericOp>(op))
    value = genericExpr(g, std::move(at));
  else if (auto g = dyn_cast<GatherOp>(op))
    value = gatherExpr(g, std::move(at));
  else if (auto sc = dyn_cast<ScatterAddOp>(op))
    value = scatterExpr(sc, at);
  else
    value = exprAt(result, std::move(at)); // a copy
  ast::Stmt stmt{ast::Stmt::Kind::Def, ast::Loc{}};
  stmt.targets.push_back(name);
  stmt.hasIndices = !indices.empty();
  std::set<std::string> covered;
  subscriptIndices(*value, covered);
  for (auto [d, index] : llvm::enumerate(indices)) {
    stmt.lhsIndices.push_back(index);
    ExprPtr bound = covered.count(index) ? nullptr : sizeOf(result, d);
    // A bound by a run-time value (the steps a loop records) is that value
    // where it is not negative, and nothing else: max(n, 0) is n there.
    if (bound && bound->kind == Expr::Kind::Call && bound->name == "max" &&
        isInt(*bound->operands[1], 0))
      bound = std::move(bound->operands[0]);
    stmt.lhsBounds.push_back(std::move(bound));
  }
  stmt.values.push_back(std::move(value));
  bool copy = op == ret || isa<LoopOp, LoopYieldOp>(op);
  if (!copy)
    stmt.comment = comment(s);
  out->push_back(std::move(stmt));
  if (op != ret &&
      !isa<LoopOp, LoopYieldOp>(op)) // a copy: the value keeps its name
    names[result] = name;
  current = nullptr;
}

void Raiser::emitBlock(Block &block) {
  for (Operation &op : block.without_terminator()) {
    if (!failure.empty())
      return;
    if (!forwardVar.empty() && op.getNumResults() == 1 &&
        isForwardStep(op.getLoc())) {
      // `j = N - 1 - back`: the forward step, named as in the source.
      ast::Stmt stmt{ast::Stmt::Kind::Def, ast::Loc{}};
      stmt.targets.push_back(uniqueName(forwardVar));
      Statement s;
      current = &s;
      s.ops.insert(&op);
      stmt.values.push_back(scalarExpr(op.getResult(0)));
      current = nullptr;
      scalarNames[op.getResult(0)] = stmt.targets[0];
      forwardStep = {sourceText(*stmt.values[0]), stmt.targets[0]};
      out->push_back(std::move(stmt));
      forwardVar.clear();
      continue;
    }
    if (inlined.contains(&op) ||
        isa<arith::ConstantOp, tensor::DimOp, tensor::ExtractOp, tensor::CastOp,
            tensor::FromElementsOp, CheckIndexOp, TakeOp, PutOp>(op) ||
        (op.getNumResults() == 1 &&
         op.getResult(0).getType().isIntOrIndexOrFloat() &&
         isa<arith::ArithDialect>(op.getDialect())))
      continue; // written where it is used
    if (auto check = dyn_cast<AssertOp>(op)) {
      Statement s;
      current = &s;
      s.ops.insert(&op);
      ast::Stmt stmt{ast::Stmt::Kind::Check, ast::Loc{}};
      stmt.values.push_back(exprAt(check.getCondition(), {}));
      stmt.text = ast::sourceText(*stmt.values[0]);
      stmt.comment = comment(s);
      out->push_back(std::move(stmt));
      current = nullptr;
      continue;
    }
    if (auto loop = dyn_cast<LoopOp>(op)) {
      emitLoop(loop);
      continue;
    }
    if (!isa<GenericOp, GatherOp, ScatterAddOp>(op) ||
        op.getNumResults() != 1) {
      Statement s;
      current = &s;
      fail(&op, "'" + op.getName().getStringRef() +
                    "' cannot be written in the language yet");
      return;
    }
    Value result = op.getResult(0);
    auto it = returnedAs.find(result);
    statement(&op, result, it != returnedAs.end() ? it->second : nameFor(&op));
  }
}

/// `for k in lo..hi { … }`: each carried value gets a name of its own,
/// copied from its initial value before the loop and from the value the
/// step yields at the end of the body (through temporaries where a yield is
/// not a statement of its own, so that no copy reads a value already
/// replaced); after the loop the names hold the results.
void Raiser::emitLoop(LoopOp loop) {
  Block &body = loop.getBody().front();
  std::optional<Provenance> p = provenanceOf(loop.getLoc());
  bool adjoint = p && p->adjoint;
  std::vector<std::string> carried;
  for (auto [k, init] : llvm::enumerate(loop.getInits())) {
    // An initial value the loop alone reads lends it its name.
    auto named = names.find(init);
    if (named != names.end() && init.hasOneUse() && !isa<BlockArgument>(init) &&
        init.getParentBlock() == loop->getBlock()) {
      carried.push_back(named->second);
      continue;
    }
    std::string base = named != names.end() ? named->second : "c";
    carried.push_back(
        uniqueName(adjoint ? "g" + std::to_string(++gradients) : base));
    statement(loop, init, carried.back());
  }
  std::string var = "step";
  if (p) {
    llvm::StringRef line = sources.line(p->file, p->line);
    if (line.consume_front("for "))
      var = line.take_until([](char c) { return c == ' '; }).str();
  }
  // A reverse loop's step k undoes the forward loop's step var.
  std::string outerForwardVar = forwardVar;
  auto outerForwardStep = std::exchange(forwardStep, {});
  forwardVar = adjoint ? var : "";
  var = uniqueName(adjoint ? "back" : var);
  ast::Stmt loopStmt{ast::Stmt::Kind::For, ast::Loc{}};
  loopStmt.targets.push_back(var);
  Statement s;
  current = &s;
  s.ops.insert(loop);
  loopStmt.values.push_back(scalarExpr(loop.getLower()));
  loopStmt.values.push_back(scalarExpr(loop.getUpper()));
  loopStmt.comment = comment(s);
  current = nullptr;
  if (adjoint)
    loopStmt.comment += " (its steps from the last to the first)";
  scalarNames[body.getArgument(0)] = var;
  for (auto [k, arg] : llvm::enumerate(body.getArguments().drop_front()))
    names[arg] = carried[k];
  std::vector<ast::Stmt> *outer = out;
  out = &loopStmt.body;
  emitBlock(body);
  forwardVar = outerForwardVar;
  if (!forwardStep.second.empty()) {
    // The same step computed elsewhere (the rows a record is read at) is
    // that name too.
    ExprPtr name = nameExpr(forwardStep.second);
    for (size_t k = 1; k < loopStmt.body.size(); ++k)
      replaceText(loopStmt.body[k], forwardStep.first, *name);
  }
  // `for k in 0..max(n, 0)` runs as `0..n`, and max(n, 0) is n in its body.
  Expr &upper = *loopStmt.values[1];
  if (isInt(*loopStmt.values[0], 0) && upper.kind == Expr::Kind::Call &&
      upper.name == "max" && isInt(*upper.operands[1], 0)) {
    std::string text = sourceText(upper);
    ExprPtr n = std::move(upper.operands[0]);
    for (ast::Stmt &inner : loopStmt.body)
      replaceText(inner, text, *n);
    loopStmt.values[1] = std::move(n);
  }
  forwardStep = std::move(outerForwardStep);
  auto yield = cast<LoopYieldOp>(body.getTerminator());
  std::vector<std::string> sources;
  for (auto [k, v] : llvm::enumerate(yield.getValues())) {
    if (v == body.getArgument(k + 1)) {
      sources.push_back(""); // carried unchanged
      continue;
    }
    auto named = names.find(v);
    bool stable = named != names.end() && !isa<BlockArgument>(v);
    if (stable) {
      sources.push_back(named->second);
      continue;
    }
    sources.push_back(uniqueName("t" + std::to_string(++temporaries)));
    statement(yield, v, sources.back());
  }
  size_t firstCopy = loopStmt.body.size();
  for (auto [k, source] : llvm::enumerate(sources))
    if (!source.empty() && failure.empty()) {
      names[yield.getValues()[k]] = source;
      statement(yield, yield.getValues()[k], carried[k]);
    }
  mergeCopies(loopStmt.body, firstCopy);
  out = outer;
  out->push_back(std::move(loopStmt));
  for (auto [k, r] : llvm::enumerate(loop.getResults()))
    names[r] = carried[k];
}

/// Calls `f` on every name `e` reads.
void forEachName(Expr &e, const std::function<void(Expr &)> &f) {
  if (e.kind == Expr::Kind::Name)
    f(e);
  for (ExprPtr &o : e.operands)
    if (o)
      forEachName(*o, f);
  for (ExprPtr &s : e.subscripts)
    if (s)
      forEachName(*s, f);
}

/// Calls `f` on every name `s` reads (its values, bounds and body).
void forEachName(ast::Stmt &s, const std::function<void(Expr &)> &f) {
  for (ExprPtr &v : s.values)
    if (v)
      forEachName(*v, f);
  for (ExprPtr &b : s.lhsBounds)
    if (b)
      forEachName(*b, f);
  for (ast::Stmt &inner : s.body)
    forEachName(inner, f);
}

bool reads(ast::Stmt &s, const std::string &name) {
  bool found = false;
  forEachName(s, [&](Expr &e) { found |= e.name == name; });
  return found;
}

/// Renames a variable: where it is read and where it is (re)defined.
void rename(ast::Stmt &s, const std::string &from, const std::string &to) {
  forEachName(s, [&](Expr &e) {
    if (e.name == from)
      e.name = to;
  });
  std::function<void(ast::Stmt &)> targets = [&](ast::Stmt &t) {
    for (std::string &target : t.targets)
      if (target == from)
        target = to;
    for (ast::Stmt &inner : t.body)
      targets(inner);
  };
  targets(s);
}

/// Whether `e` is a size the language can declare (a bound): sizes of the
/// parameters and integers, added, multiplied and divided (never negative).
/// With `minus`, also differences (N - 1: a size too where it is not
/// negative, which the compiled program checks).
bool Raiser::isSize(const Expr &e, bool minus) const {
  if (e.kind == Expr::Kind::Int)
    return e.intValue >= 0;
  if (e.kind == Expr::Kind::Name)
    return sizeNames.contains(e.name);
  return e.kind == Expr::Kind::Binary &&
         (e.op == "+" || e.op == "*" || e.op == "/" ||
          (minus && e.op == "-")) &&
         isSize(*e.operands[0], minus) && isSize(*e.operands[1], minus);
}

/// The copies `c = t` that end a loop body (from `firstCopy` on) go where
/// no later statement reads c's old value: t's statement defines c itself.
void Raiser::mergeCopies(std::vector<ast::Stmt> &body, size_t firstCopy) {
  for (size_t c = firstCopy; c < body.size();) {
    ast::Stmt &copy = body[c];
    const Expr &value = *copy.values[0];
    const Expr *source =
        value.kind == Expr::Kind::Subscript ? value.operands[0].get() : &value;
    const std::string &carried = copy.targets[0];
    auto def = llvm::find_if(body, [&](const ast::Stmt &s) {
      return s.kind == ast::Stmt::Kind::Def && s.targets[0] == source->name;
    });
    size_t d = def - body.begin();
    bool merge = source->kind == Expr::Kind::Name && d < firstCopy;
    for (size_t k = d + 1; merge && k < body.size(); ++k)
      merge = k == c || !reads(body[k], carried);
    if (!merge) {
      ++c;
      continue;
    }
    std::string temp = source->name;
    for (size_t k = d; k < body.size(); ++k)
      rename(body[k], temp, carried);
    body.erase(body.begin() + c);
  }
  // What is left of copies of a variable into itself.
  llvm::erase_if(body, [](const ast::Stmt &s) {
    if (s.kind != ast::Stmt::Kind::Def || s.targets.size() != 1)
      return false;
    std::string self = s.targets[0];
    if (s.hasIndices) {
      self += "[";
      for (auto [k, index] : llvm::enumerate(s.lhsIndices))
        self += (k ? ", " : "") + index.value_or(":");
      self += "]";
    }
    return sourceText(*s.values[0]) == self;
  });
}

llvm::Error Raiser::run(llvm::ArrayRef<std::string> resultNames) {
  Block &entry = func.getBody().front();
  if (entry.getNumArguments() != fn.params.size())
    return llvm::createStringError("the function's parameters do not match");
  for (const ast::Param &p : fn.params) {
    taken.insert(p.name);
    for (const auto &d : p.type.dims) {
      std::function<void(const ast::DimExpr &)> walk =
          [&](const ast::DimExpr &e) {
            if (e.kind == ast::DimExpr::Kind::Sym) {
              taken.insert(e.name);
              sizeNames.insert(e.name);
            }
            if (e.lhs)
              walk(*e.lhs);
            if (e.rhs)
              walk(*e.rhs);
          };
      walk(*d);
    }
  }
  for (auto [arg, p] : llvm::zip(entry.getArguments(), fn.params))
    names[arg] = p.name;
  for (const std::string &r : resultNames)
    taken.insert(r);

  ret = entry.getTerminator();
  // A returned value defined here takes its result's name (the first time).
  for (auto [k, v] : llvm::enumerate(ret->getOperands()))
    if (v.getDefiningOp() && !isa<BlockArgument>(v))
      returnedAs.try_emplace(v, resultNames[k]);

  // The forward sweep and each VJP check the same conditions: once is
  // enough.
  llvm::DenseSet<Value> checked;
  func.walk([&](AssertOp check) {
    if (!checked.insert(check.getCondition()).second)
      check.erase();
  });
  func.walk([&](Operation *op) {
    if (!op->getParentOfType<GenericOp>() && shouldInline(op))
      inlined.insert(op);
  });
  out = &fn.body;
  emitBlock(entry);
  // Results that are arguments, constants or other results are copied into
  // their names.
  ast::Stmt stmt{ast::Stmt::Kind::Return, ast::Loc{}};
  for (auto [k, v] : llvm::enumerate(ret->getOperands())) {
    if (failure.empty() && names.lookup(v) != resultNames[k])
      statement(ret, v, resultNames[k]);
    stmt.values.push_back(nameExpr(resultNames[k]));
  }
  out->push_back(std::move(stmt));
  if (!failure.empty())
    return llvm::createStringError(failure);
  return llvm::Error::success();
}

} // namespace

namespace mlx {
llvm::Error raiseToSource(func::FuncOp func, ast::Function &fn,
                          llvm::ArrayRef<std::string> resultNames) {
  return Raiser(func, fn).run(resultNames);
}
} // namespace mlx
