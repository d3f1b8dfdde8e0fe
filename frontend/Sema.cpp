//===- Sema.cpp - semantic checks on the AST --------------------------===//
#include "frontend/Sema.h"
#include "frontend/DiagnosticPrinter.h"
#include "frontend/MLIRGen.h"
#include "frontend/SourcePrinter.h"

#include "mlir/IR/Diagnostics.h"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <functional>

using namespace mlx;
using namespace mlx::ast;
using rt::DType;

/// An integer scalar's element type: an integer literal, an index, i32 or
/// i64.
static bool isIntegerType(const EType &t) {
  return t.kind == EType::LitInt || t.kind == EType::Index ||
         (t.kind == EType::Concrete &&
          (t.dtype == DType::i32 || t.dtype == DType::i64));
}

const std::set<std::string> &mlx::unaryFloatBuiltins() {
  static const std::set<std::string> names = {
      "exp", "log", "log1p", "sqrt",          "tanh",     "sigmoid",    "erf",
      "abs", "sin", "cos",   "stop_gradient", "softplus", "log_sigmoid"};
  return names;
}

const std::set<std::string> &mlx::castBuiltins() {
  static const std::set<std::string> names = {"f32", "f64", "i32", "i64"};
  return names;
}

bool mlx::isRandomBuiltin(llvm::StringRef name) {
  return name == "uniform" || name == "normal";
}

bool mlx::isBuiltin(llvm::StringRef name) {
  return unaryFloatBuiltins().count(name.str()) ||
         castBuiltins().count(name.str()) || name == "max" || name == "min" ||
         name == "grad" || name == "value_and_grad" || name == "one_hot" ||
         isRandomBuiltin(name);
}

void Sema::error(const ast::Loc &loc, const llvm::Twine &message) {
  mlir::emitError(toLocation(ctx, loc)) << message.str();
}

std::optional<std::vector<int64_t>>
Sema::gradientParameters(const ast::Function &fn,
                         llvm::ArrayRef<std::string> names) {
  std::vector<int64_t> wrt;
  for (const std::string &name : names) {
    auto it = llvm::find_if(
        fn.params, [&](const ast::Param &p) { return p.name == name; });
    if (it == fn.params.end()) {
      std::vector<std::string> params;
      for (const ast::Param &p : fn.params)
        params.push_back(p.name);
      error(fn.loc, "'" + fn.name + "' has no parameter '" + name + "'" +
                        didYouMean(name, params));
      return std::nullopt;
    }
    if (!rt::isFloat(it->type.dtype)) {
      error(it->loc, "cannot differentiate with respect to '" + name +
                         "', it is " + rt::dtypeName(it->type.dtype));
      return std::nullopt;
    }
    if (llvm::is_contained(wrt, it - fn.params.begin())) {
      error(it->loc,
            "'" + name + "' is given twice as a parameter to differentiate");
      return std::nullopt;
    }
    wrt.push_back(it - fn.params.begin());
  }
  if (!wrt.empty() && llvm::none_of(fn.results, [](const ast::TypeSpec &t) {
        return rt::isFloat(t.dtype);
      })) {
    error(fn.loc, "'" + fn.name +
                      "' has no float result to differentiate (the "
                      "gradient is of the sum of its float results)");
    return std::nullopt;
  }
  return wrt;
}

std::optional<rt::DType>
Sema::floatType(const ast::Function &fn,
                llvm::ArrayRef<std::optional<rt::DType>> argumentDTypes) {
  size_t first = 0;
  if (callFloatType(fn, argumentDTypes, rt::DType::f32, &first) ==
      rt::DType::f32)
    return rt::DType::f32;
  const ast::Param &f64Param = fn.params[first];
  for (auto [k, p] : llvm::enumerate(fn.params))
    if (k < argumentDTypes.size() && argumentDTypes[k] == rt::DType::f32 &&
        p.type.dtype == rt::DType::f32) {
      error(p.loc, "argument '" + p.name + "' is an f32 .npy but '" +
                       f64Param.name + "' is f64: a parameter declared f32 " +
                       "runs in the float type of the arguments (f64 .npy " +
                       "files run the function in f64), so all of them must " +
                       "agree; save '" + p.name + "' as f64 or '" +
                       f64Param.name + "' as f32");
      return std::nullopt;
    }
  return rt::DType::f64;
}

/// A dimension given by arithmetic of symbols, for the runtime's check: its
/// formula (static parameters substituted) and its text.
static rt::DimSpec formulaSpec(const DimExpr &d, const StaticValues &statics) {
  std::function<std::shared_ptr<rt::DimFormula>(const DimExpr &)> build =
      [&](const DimExpr &e) {
        auto f = std::make_shared<rt::DimFormula>();
        if (e.kind == DimExpr::Kind::Int) {
          f->value = e.value;
        } else if (e.kind == DimExpr::Kind::Sym) {
          if (auto it = statics.find(e.name); it != statics.end())
            f->value = it->second;
          else
            f->symbol = e.name;
        } else {
          f->op = e.kind == DimExpr::Kind::Add   ? '+'
                  : e.kind == DimExpr::Kind::Sub ? '-'
                  : e.kind == DimExpr::Kind::Mul ? '*'
                                                 : '/';
          f->lhs = build(*e.lhs);
          f->rhs = build(*e.rhs);
        }
        return f;
      };
  std::string ignored;
  std::optional<SDim> text = dimOf(
      d,
      [&](const std::string &name) -> std::optional<SDim> {
        if (auto it = statics.find(name); it != statics.end())
          return SDim::of(it->second);
        return SDim::named(name);
      },
      ignored);
  return rt::DimSpec{-1, text ? text->str() : "?", build(d)};
}

rt::Signature mlx::signatureOf(const ExportRequest &request) {
  const Function &fn = *request.function;
  int64_t anyShapeRank = request.anyShapeRank;
  DType floatType = request.floatType;
  auto declared = [&](DType d) { return rt::instanceDType(d, floatType); };
  rt::Signature sig;
  sig.name = exportName(request);
  // Static parameters' values are sizes: dims named by them (or
  // arithmetic of them and literals) are literal dims.
  auto staticSize = [&](const DimExpr &d) {
    std::string ignored;
    return evaluateDim(
        d,
        [&](const std::string &name) -> std::optional<int64_t> {
          auto it = request.statics.find(name);
          if (it == request.statics.end())
            return std::nullopt;
          return it->second;
        },
        ignored);
  };
  for (const Param &p : fn.params) {
    rt::ParamSpec spec;
    spec.name = p.name;
    spec.dtype = declared(p.type.dtype);
    if (p.isStatic)
      if (auto it = request.statics.find(p.name); it != request.statics.end())
        spec.staticValue = it->second;
    if (p.type.isAnyShape())
      for (int64_t d = 0; d < anyShapeRank; ++d)
        spec.dims.push_back({-1, "..." + std::to_string(d)});
    else
      for (auto &d : p.type.dims) {
        std::optional<int64_t> size = staticSize(*d);
        if (size)
          spec.dims.push_back(rt::DimSpec{*size, "", nullptr});
        else if (d->kind == DimExpr::Kind::Sym)
          spec.dims.push_back(rt::DimSpec{-1, d->name, nullptr});
        else
          spec.dims.push_back(formulaSpec(*d, request.statics));
      }
    sig.params.push_back(spec);
  }
  for (const TypeSpec &t : fn.results) {
    rt::ResultSpec r;
    r.dtype = declared(t.dtype);
    r.rank = t.isAnyShape() ? anyShapeRank : (int64_t)t.dims.size();
    sig.results.push_back(r);
  }
  // Results are named after what is returned, where it has a name.
  const Stmt *ret = nullptr;
  for (const Stmt &s : fn.body)
    if (s.kind == Stmt::Kind::Return)
      ret = &s;
  for (size_t k = 0; k < sig.results.size(); ++k) {
    std::string name =
        sig.results.size() == 1 ? "result" : "result" + std::to_string(k);
    if (ret && ret->values.size() == sig.results.size() &&
        ret->values[k]->kind == Expr::Kind::Name)
      name = ret->values[k]->name;
    sig.results[k].name = name;
  }
  // A gradient entry adds d<param> per differentiated parameter.
  for (int64_t k : request.wrt) {
    const rt::ParamSpec &p = sig.params[k];
    sig.results.push_back({"d" + p.name, p.dtype, (int64_t)p.dims.size()});
  }
  return sig;
}

/// Adds the user functions `e` calls (or differentiates) to `out`, with
/// the location of each call.
static void
collectCalls(const ast::Expr &e,
             const std::map<std::string, const ast::Function *> &functions,
             std::vector<std::pair<const ast::Function *, ast::Loc>> &out) {
  if (e.kind == ast::Expr::Kind::Call) {
    const ast::Expr *callee = &e;
    // grad(f, x)(args): f is called (and differentiated).
    if (e.name.empty() && !e.operands.empty() &&
        e.operands[0]->kind == ast::Expr::Kind::Call &&
        !e.operands[0]->operands.empty())
      callee = e.operands[0]->operands[0].get();
    auto it = functions.find(callee->name);
    if ((callee != &e || !isBuiltin(e.name)) && it != functions.end())
      out.push_back({it->second, e.loc});
  }
  for (const auto &operand : e.operands)
    collectCalls(*operand, functions, out);
  for (const auto &subscript : e.subscripts)
    if (subscript)
      collectCalls(*subscript, functions, out);
}

bool Sema::checkNoRecursion(llvm::ArrayRef<const ast::Function *> roots) {
  std::map<const ast::Function *, int> state; // 0 new, 1 on the stack, 2 done
  std::vector<const ast::Function *> stack;
  std::function<bool(const ast::Function *)> visit =
      [&](const ast::Function *f) {
        state[f] = 1;
        stack.push_back(f);
        std::vector<std::pair<const ast::Function *, ast::Loc>> calls;
        ast::forEachStmt(f->body, [&](const ast::Stmt &s) {
          for (const auto &value : s.values)
            collectCalls(*value, functions, calls);
        });
        for (auto &[callee, loc] : calls) {
          if (state[callee] == 1) {
            std::string cycle;
            for (auto it = llvm::find(stack, callee); it != stack.end(); ++it)
              cycle += (*it)->name + " → ";
            error(loc, "recursive call: " + cycle + callee->name +
                           " (recursion is not supported)");
            return false;
          }
          if (state[callee] == 0 && !visit(callee))
            return false;
        }
        stack.pop_back();
        state[f] = 2;
        return true;
      };
  for (const ast::Function *f : roots)
    if (state[f] == 0 && !visit(f))
      return false;
  return true;
}

//===----------------------------------------------------------------------===//
// Checking one function instance
//===----------------------------------------------------------------------===//

llvm::ArrayRef<std::unique_ptr<Expr>> mlx::callArgs(const Expr &e) {
  llvm::ArrayRef<std::unique_ptr<Expr>> all = e.operands;
  return e.name.empty() ? all.drop_front() : all;
}

void CheckedFunction::freeVars(const Expr &e,
                               std::vector<IndexVar *> &out) const {
  std::vector<IndexVar *> inner;
  if (auto it = indexUses.find(&e); it != indexUses.end())
    inner.push_back(it->second);
  for (auto &op : e.operands)
    freeVars(*op, inner);
  for (auto &sub : e.subscripts)
    if (sub)
      freeVars(*sub, inner);
  auto own = reduceVars.find(&e);
  for (IndexVar *v : inner) {
    bool bound = own != reduceVars.end() && llvm::is_contained(own->second, v);
    if (!bound && !llvm::is_contained(out, v))
      out.push_back(v);
  }
}

std::vector<Slot> mlx::slotsOver(const std::vector<IndexVar *> &vars,
                                 size_t implicitRank) {
  std::vector<Slot> slots;
  for (IndexVar *v : vars)
    slots.push_back(Slot{v, 0});
  for (unsigned k = 0; k < implicitRank; ++k)
    slots.push_back(Slot{nullptr, k});
  return slots;
}

namespace {

/// The element type of a named value: its dtype, or literal-like when weak.
EType typeOf(const LocalType &v) {
  return v.weak == EType::Concrete ? EType::of(v.dtype) : EType::lit(v.weak);
}

/// Checks one function instance into a CheckedFunction: names, index
/// ranges, dtypes and shapes of each statement in order (a failed
/// definition poisons its names, so their uses fail silently), then what
/// generating the statement would meet (the dtype each literal is made in,
/// the instances called), so that generation cannot fail.
class FunctionSema {
public:
  FunctionSema(mlir::MLIRContext &ctx,
               const std::map<std::string, const Function *> &functions,
               CheckedFunction &out)
      : ctx(ctx), functions(functions), out(out), fn(*out.fn),
        anyShapeRank(out.anyShapeRank), dims(out.dims), infos(out.infos),
        indexUses(out.indexUses), reduceVars(out.reduceVars),
        indexVars(out.indexVars), locals(out.locals) {}

  void run();

private:
  using Scope = std::vector<IndexVar *>;
  mlir::Location loc(const Loc &l) { return toLocation(ctx, l); }
  mlir::InFlightDiagnostic error(const Loc &l, const llvm::Twine &msg) {
    failedStmt = true;
    return mlir::emitError(loc(l), msg);
  }
  const Function *lookup(const std::string &name) const {
    auto it = functions.find(name);
    return it == functions.end() ? nullptr : it->second;
  }
  std::string unknownFunction(const std::string &name) const;
  DType declared(DType d) const { return out.declared(d); }
  DType resolve(EType t, std::optional<DType> preferred = std::nullopt) const {
    return out.resolve(t, preferred);
  }
  void freeVars(const Expr &e, std::vector<IndexVar *> &vars) const {
    out.freeVars(e, vars);
  }

  // --- types and expressions
  Shape shapeOfType(const TypeSpec &type, const Loc &at);
  const ExprInfo &analyze(const Expr &e, Scope &scope);
  ExprInfo analyzeUncached(const Expr &e, Scope &scope);
  ExprInfo analyzeCall(const Expr &e, Scope &scope);
  ExprInfo analyzeSubscript(const Expr &e, Scope &scope);
  IndexVar *lookupIndex(const std::string &name, Scope &scope);
  /// The names of the tensors and dims in scope (for "did you mean").
  std::vector<std::string> knownNames() const {
    std::vector<std::string> names;
    for (auto &entry : locals)
      names.push_back(entry.first);
    for (auto &entry : dims)
      names.push_back(entry.first);
    return names;
  }
  EType unify(EType a, EType b, const Loc &at, const char *what);
  bool unifyShape(Shape &into, const Shape &other, const Loc &at);
  void bindRange(IndexVar *var, const SDim &dim, const Loc &at);

  // --- statements
  /// Checks `stmts` in order; false when any failed (its names are then
  /// poisoned).
  bool checkStmts(const std::vector<Stmt> &stmts);
  void checkStmt(const Stmt &s);
  void checkIndexedDef(const Stmt &s);
  void checkUpdate(const Stmt &s, std::vector<bool> computed);
  const ExprInfo *checkRightSide(const Stmt &s,
                                 const std::vector<bool> &computed,
                                 StmtInfo &stmt, Scope &scope);
  void checkFor(const Stmt &s);
  void checkReturn(const Stmt &s);
  /// Whether `name` is a scalar integer value (a loop variable, an i32 or
  /// i64 scalar): a subscript or left-hand side position by value.
  bool isScalarInteger(const std::string &name) const;
  /// Checks a computed subscript: a position by value (`xs[t, :]`,
  /// `Q[s, a]`) or, when it depends on indices, a gather (`z[t, c[t]]`).
  bool checkComputedSubscript(const Expr &sub, Scope &scope);
  /// "unknown name", or where a name defined only in a loop body was.
  void unknownName(const std::string &name, const Loc &at);
  /// The value of an integer expression known when compiling: literals,
  /// static parameters and literal dims, with + - * / %; else nullopt.
  std::optional<int64_t> constantValue(const Expr &e) const;
  /// The value of a comparison (or && / || of them) of values known when
  /// compiling; nullopt otherwise.
  std::optional<bool> constantCondition(const Expr &e) const;
  /// The size an integer expression of dims, static parameters and
  /// literals stands for (`N / block`, `T - 1`); nullopt if it is not one.
  std::optional<SDim> symbolicDim(const Expr &e) const;

  // --- what generation meets: these follow MLIRGen's emitWhole,
  // materialize, emitGeneric, emitElem and emitCall, and give the type of
  // what each of them makes.
  LocalType whole(const Expr &e, std::optional<DType> preferred);
  LocalType materialized(const Expr &e, const std::vector<IndexVar *> &vars,
                         std::optional<DType> preferred,
                         std::optional<Shape> implicitShape = std::nullopt);
  LocalType generic(const std::vector<Slot> &slots, const Expr &e,
                    std::optional<DType> preferred, const Shape &implicitShape);
  void element(const Expr &e, DType want);
  std::vector<LocalType> call(const Expr &e,
                              const std::vector<IndexVar *> &vars);

  mlir::MLIRContext &ctx;
  const std::map<std::string, const Function *> &functions;
  CheckedFunction &out;
  const Function &fn;
  int64_t anyShapeRank;
  std::map<std::string, SDim> &dims;
  std::map<const Expr *, ExprInfo> &infos;
  std::map<const Expr *, IndexVar *> &indexUses;
  std::map<const Expr *, std::vector<IndexVar *>> &reduceVars;
  std::deque<IndexVar> &indexVars;
  std::map<std::string, LocalType> &locals;
  /// Names whose definition failed: their uses fail silently (no cascade).
  std::set<std::string> poisoned;
  /// The loops around the statement being checked, outermost first.
  struct LoopFrame {
    LoopInfo *info;
    std::string var;
    std::optional<SDim> extent; ///< N of a range `0..N`.
  };
  std::vector<LoopFrame> loopStack;
  /// Names defined only inside a loop body, and where that loop is.
  std::map<std::string, Loc> loopLocals;
  bool returned = false;
  bool failedStmt = false;
};

} // namespace

/// "unknown function 'NAME'" with a hint: the closest function or
/// builtin, or what the language does not have yet.
std::string FunctionSema::unknownFunction(const std::string &name) const {
  static const std::set<std::string> randomNames = {"rand", "randn", "random",
                                                    "randint"};
  if (randomNames.count(name))
    return "unknown function '" + name +
           "': random numbers are uniform(seed, dims...) and normal(seed, "
           "dims...), e.g. eps = normal(seed, N, D)";
  std::vector<std::string> names = {
      "max", "min", "grad", "uniform", "normal", "one_hot", "value_and_grad"};
  for (auto &[n, fn] : functions)
    names.push_back(n);
  names.insert(names.end(), unaryFloatBuiltins().begin(),
               unaryFloatBuiltins().end());
  names.insert(names.end(), castBuiltins().begin(), castBuiltins().end());
  return "unknown function '" + name + "'" + didYouMean(name, names);
}

void FunctionSema::run() {
  std::set<std::string> names;
  // Static parameters are dimensions of known size: usable in types, loop
  // ranges and expressions (as integers).
  for (const Param &p : fn.params) {
    if (!p.isStatic)
      continue;
    if (p.type.dims.size() ||
        (p.type.dtype != DType::i32 && p.type.dtype != DType::i64)) {
      error(p.loc, "a static parameter is an integer scalar: write '" + p.name +
                       ": static i32'");
      continue;
    }
    if (auto it = out.statics.find(p.name); it != out.statics.end())
      dims[p.name] = SDim::of(it->second);
    else if (out.symbolicStatics)
      dims[p.name] = SDim::named(p.name);
    else
      error(p.loc,
            "no value was given for the static parameter '" + p.name + "'");
  }
  // Every dimension symbol is bound at its first use among the parameters
  // (as a dimension of its own: arithmetic such as `H + M` binds nothing).
  for (const Param &p : fn.params) {
    if (!names.insert(p.name).second)
      error(p.loc, "duplicate parameter '" + p.name + "'");
    if (p.isStatic)
      continue;
    if (p.type.isAnyShape()) {
      for (int64_t d = 0; d < anyShapeRank; ++d) {
        std::string sym = "..." + std::to_string(d);
        if (!dims.count(sym))
          dims[sym] = SDim::named(sym);
      }
      continue;
    }
    for (auto &dim : p.type.dims)
      if (dim->kind == DimExpr::Kind::Sym && !dims.count(dim->name)) {
        if (llvm::any_of(fn.params,
                         [&](const Param &q) { return q.name == dim->name; }))
          error(dim->loc,
                "'" + dim->name + "' is both a parameter and a dimension");
        dims[dim->name] = SDim::named(dim->name);
      }
  }
  for (const Param &p : fn.params) {
    if (p.isStatic) {
      out.paramShapes.push_back({});
      continue;
    }
    Shape shape = shapeOfType(p.type, p.loc);
    out.paramShapes.push_back(shape);
    locals[p.name] = LocalType{declared(p.type.dtype), shape};
  }
  std::function<void(const DimExpr &)> checkBound = [&](const DimExpr &d) {
    if (d.kind == DimExpr::Kind::Sym && !dims.count(d.name))
      error(d.loc, "result dimension '" + d.name +
                       "' is not the dimension of any parameter");
    if (d.lhs)
      checkBound(*d.lhs);
    if (d.rhs)
      checkBound(*d.rhs);
  };
  for (const TypeSpec &t : fn.results)
    for (auto &d : t.dims)
      checkBound(*d);
  bool anyError = failedStmt;
  anyError |= !checkStmts(fn.body);
  if (!returned && !anyError)
    error(fn.loc, "function '" + fn.name + "' does not return a value");
  out.ok = returned && !anyError && !failedStmt;
}

bool FunctionSema::checkStmts(const std::vector<Stmt> &stmts) {
  bool ok = true;
  for (const Stmt &s : stmts) {
    if (returned) {
      error(s.loc, "statement after 'return'");
      return false;
    }
    failedStmt = false;
    checkStmt(s);
    // A definition that failed silently (on a poisoned name) poisons too.
    if (s.kind == Stmt::Kind::Def || s.kind == Stmt::Kind::TupleDef)
      for (const std::string &name : s.targets)
        failedStmt |= !locals.count(name);
    if (failedStmt) {
      std::vector<std::string> names = s.targets;
      forEachStmt(s.body, [&](const Stmt &inner) {
        llvm::append_range(names, inner.targets);
      });
      for (const std::string &name : names) {
        poisoned.insert(name);
        locals.erase(name);
      }
    }
    ok &= !failedStmt;
  }
  return ok;
}

/// The shape of a parameter or result type, in this function's dims.
Shape FunctionSema::shapeOfType(const TypeSpec &type, const Loc &at) {
  Shape shape;
  if (type.isAnyShape()) {
    for (int64_t d = 0; d < anyShapeRank; ++d) {
      std::string sym = "..." + std::to_string(d);
      shape.push_back(dims.count(sym) ? dims[sym] : SDim::named(sym));
    }
    return shape;
  }
  for (auto &d : type.dims) {
    switch (d->kind) {
    case DimExpr::Kind::Int:
      shape.push_back(SDim::of(d->value));
      break;
    case DimExpr::Kind::Sym:
      shape.push_back(dims.count(d->name) ? dims[d->name]
                                          : SDim::named(d->name));
      break;
    default: {
      // Arithmetic of dimensions, static parameters and literals.
      std::string problem;
      std::optional<SDim> size = dimOf(
          *d,
          [&](const std::string &name) -> std::optional<SDim> {
            auto it = dims.find(name);
            if (it == dims.end())
              return std::nullopt;
            return it->second;
          },
          problem);
      if (!size) {
        error(d->loc, problem);
        size = SDim::of(1);
      }
      shape.push_back(*size);
      break;
    }
    }
  }
  (void)at;
  return shape;
}

IndexVar *FunctionSema::lookupIndex(const std::string &name, Scope &scope) {
  for (auto it = scope.rbegin(); it != scope.rend(); ++it)
    if ((*it)->name == name)
      return *it;
  return nullptr;
}

void FunctionSema::bindRange(IndexVar *var, const SDim &dim, const Loc &at) {
  if (!var->range) {
    var->range = dim;
    var->rangeLoc = at;
    return;
  }
  if (!var->range->sameAs(dim)) {
    error(at, "index '" + var->name + "' ranges over " + dim.str() +
                  " here but over " + var->range->str() + " elsewhere")
            .attachNote(loc(var->rangeLoc))
        << "'" << var->name << "' ranges over " << var->range->str() << " here";
  }
}

EType FunctionSema::unify(EType a, EType b, const Loc &at, const char *what) {
  std::string mismatch;
  EType t = unifyTypes(a, b, what, mismatch);
  if (!mismatch.empty())
    error(at, mismatch);
  return t;
}

bool FunctionSema::unifyShape(Shape &into, const Shape &other, const Loc &at) {
  if (other.empty())
    return true;
  if (into.empty()) {
    into = other;
    return true;
  }
  if (!sameShape(into, other)) {
    error(at, "shape mismatch: " + shapeStr(into) + " and " + shapeStr(other));
    return false;
  }
  return true;
}

const ExprInfo &FunctionSema::analyze(const Expr &e, Scope &scope) {
  auto it = infos.find(&e);
  if (it != infos.end())
    return it->second;
  ExprInfo info = analyzeUncached(e, scope);
  // A call with several results can only be named (a, b = f(..)) or returned.
  for (auto &op : e.operands) {
    auto it = infos.find(op.get());
    if (info.ok && it != infos.end() && it->second.call &&
        it->second.call->resultShapes.size() > 1) {
      error(op->loc, "'" + it->second.call->callee->name + "' returns " +
                         std::to_string(it->second.call->resultShapes.size()) +
                         " values; name them first: a, b = " +
                         it->second.call->callee->name + "(...)");
      info.ok = false;
      info.type = EType::lit(EType::Error);
    }
  }
  return infos[&e] = std::move(info);
}

ExprInfo FunctionSema::analyzeUncached(const Expr &e, Scope &scope) {
  using K = EType::Kind;
  ExprInfo info;
  auto fail = [&]() {
    info.ok = false;
    info.type = EType::lit(K::Error);
    return info;
  };
  switch (e.kind) {
  case Expr::Kind::Float:
  case Expr::Kind::Inf:
    info.type = EType::lit(K::LitFloat);
    return info;
  case Expr::Kind::Int:
    info.type = EType::lit(K::LitInt);
    return info;
  case Expr::Kind::Bool:
    info.type = EType::of(DType::boolean);
    return info;
  case Expr::Kind::Name: {
    if (IndexVar *var = lookupIndex(e.name, scope)) {
      indexUses[&e] = var;
      info.type = EType::lit(K::Index);
      return info;
    }
    if (auto it = locals.find(e.name); it != locals.end()) {
      info.type = typeOf(it->second);
      info.shape = it->second.shape;
      return info;
    }
    if (dims.count(e.name)) {
      info.type = EType::lit(K::Index);
      return info;
    }
    if (poisoned.count(e.name))
      return fail();
    if (lookup(e.name)) {
      error(e.loc, "'" + e.name + "' is a function; call it with (...)");
      return fail();
    }
    unknownName(e.name, e.loc);
    return fail();
  }
  case Expr::Kind::Unary: {
    const ExprInfo &x = analyze(*e.operands[0], scope);
    if (!x.ok)
      return fail();
    info = x;
    info.call = nullptr;
    if (e.op == "!" && !x.type.isBool()) {
      error(e.loc, "'!' needs a bool operand, got " + x.type.str());
      return fail();
    }
    if (e.op == "-" && x.type.isBool()) {
      error(e.loc, "cannot negate a bool");
      return fail();
    }
    return info;
  }
  case Expr::Kind::Binary: {
    const ExprInfo &l = analyze(*e.operands[0], scope);
    const ExprInfo &r = analyze(*e.operands[1], scope);
    if (!l.ok || !r.ok)
      return fail();
    info.shape = l.shape;
    if (!unifyShape(info.shape, r.shape, e.loc))
      return fail();
    const std::string &op = e.op;
    if (op == "&&" || op == "||") {
      if (!l.type.isBool() || !r.type.isBool()) {
        error(e.loc, "'" + op + "' needs bool operands, got " + l.type.str() +
                         " and " + r.type.str());
        return fail();
      }
      info.type = EType::of(DType::boolean);
      return info;
    }
    bool compare = op == "<" || op == "<=" || op == ">" || op == ">=" ||
                   op == "==" || op == "!=";
    if (op == "^") {
      // x^n with an integer literal n is repeated multiplication; otherwise
      // a float power.
      info.type = l.type;
      if (e.operands[1]->kind != Expr::Kind::Int) {
        info.type = unify(l.type, r.type, e.loc, "'^'");
        if (info.type.kind == K::LitInt || info.type.kind == K::Index)
          info.type = EType::lit(K::LitFloat);
        if (info.type.kind == K::Concrete && !rt::isFloat(info.type.dtype)) {
          error(e.loc, "'^' with a non-literal exponent needs float operands");
          return fail();
        }
      }
      if (info.type.isBool()) {
        error(e.loc, "'^' needs numbers, got bool");
        return fail();
      }
      return info.type.kind == K::Error ? fail() : info;
    }
    EType t = unify(l.type, r.type, e.loc, ("'" + op + "'").c_str());
    if (t.kind == K::Error)
      return fail();
    if (!compare && t.isBool()) {
      error(e.loc, "'" + op + "' needs numbers, got bool");
      return fail();
    }
    if (op == "%" && t.isFloatLike()) {
      error(e.loc, "'%' is the integer remainder: it needs integer operands, "
                   "got " +
                       l.type.str() + " and " + r.type.str());
      return fail();
    }
    info.type = compare ? EType::of(DType::boolean) : t;
    return info;
  }
  case Expr::Kind::Select: {
    const ExprInfo &c = analyze(*e.operands[0], scope);
    const ExprInfo &x = analyze(*e.operands[1], scope);
    const ExprInfo &y = analyze(*e.operands[2], scope);
    if (!c.ok || !x.ok || !y.ok)
      return fail();
    if (!c.type.isBool()) {
      error(e.operands[0]->loc,
            "the condition of '?:' must be bool, got " + c.type.str());
      return fail();
    }
    info.type = unify(x.type, y.type, e.loc, "'?:'");
    info.shape = c.shape;
    if (info.type.kind == K::Error || !unifyShape(info.shape, x.shape, e.loc) ||
        !unifyShape(info.shape, y.shape, e.loc))
      return fail();
    return info;
  }
  case Expr::Kind::Reduce: {
    bool isArg = e.op == "argmax" || e.op == "argmin";
    if (isArg && e.indices.size() != 1) {
      error(e.loc, "'" + e.op + "' takes exactly one index");
      return fail();
    }
    size_t depth = scope.size();
    for (auto [name, at] : llvm::zip(e.indices, e.indexLocs)) {
      if (lookupIndex(name, scope)) {
        error(at, "index '" + name + "' is already bound");
        scope.resize(depth);
        return fail();
      }
      indexVars.push_back(IndexVar{name, at, std::nullopt, {}});
      scope.push_back(&indexVars.back());
    }
    std::vector<IndexVar *> reduced(scope.begin() + depth, scope.end());
    reduceVars[&e] = reduced;
    const ExprInfo &body = analyze(*e.operands[0], scope);
    scope.resize(depth);
    if (!body.ok)
      return fail();
    // A scan's bound by an index (`sum[j <= i]`) gives that index j's range;
    // a bound by a size (`max[u < size]`) gives the reduced index its own.
    if (e.bounded) {
      const Expr &test = *e.operands[0]->operands[0];
      const Expr &limit = *test.operands[1];
      auto it = indexUses.find(&limit);
      if (it != indexUses.end() && !it->second->range && reduced[0]->range)
        bindRange(it->second, *reduced[0]->range, limit.loc);
      std::optional<SDim> size = symbolicDim(limit);
      if (!reduced[0]->range && size && (test.op == "<" || test.op == "<=")) {
        if (test.op == "<=")
          size = SDim::arith('+', *size, SDim::of(1));
        if (size)
          bindRange(reduced[0], *size, limit.loc);
      }
    }
    for (IndexVar *var : reduced)
      if (!var->range) {
        error(var->loc, "reduction index '" + var->name +
                            "' is not used to subscript anything, so its "
                            "range is unknown");
        return fail();
      }
    if (body.type.isBool()) {
      error(e.loc, "cannot '" + e.op + "' bool values");
      return fail();
    }
    // argmax/argmin give the (first) index of the extreme value, as i32.
    info.type = isArg ? EType::of(DType::i32) : body.type;
    info.shape = body.shape;
    return info;
  }
  case Expr::Kind::Subscript:
    return analyzeSubscript(e, scope);
  case Expr::Kind::Call:
    return analyzeCall(e, scope);
  }
  return fail();
}

ExprInfo FunctionSema::analyzeSubscript(const Expr &e, Scope &scope) {
  ExprInfo info;
  info.ok = false;
  info.type = EType::lit(EType::Error);
  const Expr &base = *e.operands[0];
  if (base.kind != Expr::Kind::Name) {
    error(e.loc, "only named tensors can be subscripted");
    return info;
  }
  auto it = locals.find(base.name);
  if (it == locals.end()) {
    if (poisoned.count(base.name))
      return info;
    if (lookupIndex(base.name, scope) || dims.count(base.name))
      error(base.loc, "'" + base.name + "' is an index, not a tensor");
    else
      unknownName(base.name, base.loc);
    return info;
  }
  const LocalType &tensor = it->second;
  if (e.subscripts.size() != tensor.shape.size()) {
    error(e.loc, "'" + base.name + "' has rank " +
                     std::to_string(tensor.shape.size()) + " (shape " +
                     shapeStr(tensor.shape) + ") but is subscripted with " +
                     std::to_string(e.subscripts.size()) + " indices");
    return info;
  }
  for (auto [d, sub] : llvm::enumerate(e.subscripts)) {
    if (!sub) {
      info.shape.push_back(tensor.shape[d]);
      continue;
    }
    if (sub->kind == Expr::Kind::Int) {
      const SDim &dim = tensor.shape[d];
      if (sub->intValue < 0 ||
          (dim.constant && sub->intValue >= *dim.constant)) {
        error(sub->loc, "index " + std::to_string(sub->intValue) +
                            " is out of range for dimension " +
                            std::to_string(d) + " of '" + base.name +
                            "' (size " + dim.str() + ")");
        return info;
      }
      continue;
    }
    if (sub->kind == Expr::Kind::Name) {
      if (IndexVar *var = lookupIndex(sub->name, scope)) {
        indexUses[sub.get()] = var;
        bindRange(var, tensor.shape[d], sub->loc);
        continue;
      }
      if (!locals.count(sub->name) && !dims.count(sub->name) &&
          !poisoned.count(sub->name)) {
        error(sub->loc, "index '" + sub->name +
                            "' is not bound: put it on the left-hand side or "
                            "reduce over it (e.g. sum[" +
                            sub->name + "] ...)");
        return info;
      }
    }
    // A position computed from values: bounds-checked at run time.
    if (!checkComputedSubscript(*sub, scope))
      return info;
  }
  if (failedStmt)
    return info;
  info.ok = true;
  info.type = typeOf(tensor);
  return info;
}

bool FunctionSema::checkComputedSubscript(const Expr &sub, Scope &scope) {
  const ExprInfo &si = analyze(sub, scope);
  if (!si.ok)
    return false;
  // A subscript that depends on indices (`targets[t]`) is a gather per
  // element; one that does not is a position by value.
  if (!si.shape.empty() || !isIntegerType(si.type)) {
    error(sub.loc, "a computed subscript must be an integer scalar, got " +
                       si.type.str() +
                       (si.shape.empty() ? "" : shapeStr(si.shape)));
    return false;
  }
  return true;
}

bool FunctionSema::isScalarInteger(const std::string &name) const {
  auto it = locals.find(name);
  if (it == locals.end() || !it->second.shape.empty())
    return false;
  const LocalType &t = it->second;
  return t.weak == EType::Index || t.weak == EType::LitInt ||
         (t.weak == EType::Concrete &&
          (t.dtype == DType::i32 || t.dtype == DType::i64));
}

std::optional<int64_t> FunctionSema::constantValue(const Expr &e) const {
  switch (e.kind) {
  case Expr::Kind::Int:
    return e.intValue;
  case Expr::Kind::Name: {
    auto it = dims.find(e.name);
    if (locals.count(e.name) || it == dims.end())
      return std::nullopt;
    return it->second.constant;
  }
  case Expr::Kind::Unary: {
    std::optional<int64_t> x = constantValue(*e.operands[0]);
    return x && e.op == "-" ? std::optional<int64_t>(-*x) : std::nullopt;
  }
  case Expr::Kind::Binary: {
    std::optional<int64_t> a = constantValue(*e.operands[0]);
    std::optional<int64_t> b = constantValue(*e.operands[1]);
    if (!a || !b)
      return std::nullopt;
    if (e.op == "+")
      return *a + *b;
    if (e.op == "-")
      return *a - *b;
    if (e.op == "*")
      return *a * *b;
    if ((e.op == "/" || e.op == "%") && *b != 0)
      return e.op == "/" ? *a / *b : *a % *b;
    return std::nullopt;
  }
  default:
    return std::nullopt;
  }
}

std::optional<bool> FunctionSema::constantCondition(const Expr &e) const {
  if (e.kind == Expr::Kind::Bool)
    return e.boolValue;
  if (e.kind == Expr::Kind::Unary && e.op == "!") {
    std::optional<bool> x = constantCondition(*e.operands[0]);
    return x ? std::optional<bool>(!*x) : std::nullopt;
  }
  if (e.kind != Expr::Kind::Binary)
    return std::nullopt;
  if (e.op == "&&" || e.op == "||") {
    std::optional<bool> a = constantCondition(*e.operands[0]);
    std::optional<bool> b = constantCondition(*e.operands[1]);
    if (!a || !b)
      return std::nullopt;
    return e.op == "&&" ? *a && *b : *a || *b;
  }
  std::optional<int64_t> a = constantValue(*e.operands[0]);
  std::optional<int64_t> b = constantValue(*e.operands[1]);
  if (!a || !b)
    return std::nullopt;
  if (e.op == "<")
    return *a < *b;
  if (e.op == "<=")
    return *a <= *b;
  if (e.op == ">")
    return *a > *b;
  if (e.op == ">=")
    return *a >= *b;
  if (e.op == "==")
    return *a == *b;
  if (e.op == "!=")
    return *a != *b;
  return std::nullopt;
}

std::optional<SDim> FunctionSema::symbolicDim(const Expr &e) const {
  if (std::optional<int64_t> v = constantValue(e))
    return *v >= 0 ? std::optional<SDim>(SDim::of(*v)) : std::nullopt;
  if (e.kind == Expr::Kind::Name) {
    auto it = dims.find(e.name);
    if (locals.count(e.name) || indexUses.count(&e) || it == dims.end())
      return std::nullopt;
    return it->second;
  }
  if (e.kind != Expr::Kind::Binary ||
      (e.op != "+" && e.op != "-" && e.op != "*" && e.op != "/"))
    return std::nullopt;
  std::optional<SDim> a = symbolicDim(*e.operands[0]);
  std::optional<SDim> b = symbolicDim(*e.operands[1]);
  if (!a || !b)
    return std::nullopt;
  return SDim::arith(e.op[0], *a, *b);
}

void FunctionSema::unknownName(const std::string &name, const Loc &at) {
  if (auto it = loopLocals.find(name); it != loopLocals.end()) {
    error(at, "'" + name +
                  "' is defined only inside the loop body; define it before "
                  "the loop to carry its last value out")
            .attachNote(loc(it->second))
        << "the loop";
    return;
  }
  error(at, "unknown name '" + name + "'" + didYouMean(name, knownNames()));
}

ExprInfo FunctionSema::analyzeCall(const Expr &e, Scope &scope) {
  using K = EType::Kind;
  ExprInfo info;
  auto fail = [&]() {
    info.ok = false;
    info.type = EType::lit(K::Error);
    return info;
  };
  // grad(f, x, ...)(args) and value_and_grad(f, x, ...)(args).
  const Function *gradOf = nullptr;
  std::vector<int64_t> wrt;
  bool withValue = false;
  if (e.name.empty()) {
    const Expr &callee = *e.operands[0];
    if (callee.kind != Expr::Kind::Call ||
        (callee.name != "grad" && callee.name != "value_and_grad")) {
      error(e.loc, "only named functions, grad(...) and value_and_grad(...) "
                   "can be called");
      return fail();
    }
    withValue = callee.name == "value_and_grad";
    if (callee.operands.size() < 2 ||
        callee.operands[0]->kind != Expr::Kind::Name) {
      error(callee.loc, "'" + callee.name +
                            "' takes a function and the names of the "
                            "parameters to differentiate: " +
                            callee.name + "(f, x, ...)");
      return fail();
    }
    gradOf = lookup(callee.operands[0]->name);
    if (!gradOf) {
      error(callee.operands[0]->loc, unknownFunction(callee.operands[0]->name));
      return fail();
    }
    for (auto &name : llvm::drop_begin(callee.operands)) {
      auto it = name->kind != Expr::Kind::Name
                    ? gradOf->params.end()
                    : llvm::find_if(gradOf->params, [&](const Param &p) {
                        return p.name == name->name;
                      });
      if (it == gradOf->params.end()) {
        error(name->loc,
              "'" +
                  (name->kind == Expr::Kind::Name ? name->name
                                                  : std::string("?")) +
                  "' is not a parameter of '" + gradOf->name + "'");
        return fail();
      }
      if (!rt::isFloat(declared(it->type.dtype))) {
        error(name->loc, "cannot differentiate with respect to '" + it->name +
                             "': it is " + rt::dtypeName(it->type.dtype) +
                             ", not a float");
        return fail();
      }
      wrt.push_back(it - gradOf->params.begin());
    }
  } else if (e.name == "grad" || e.name == "value_and_grad") {
    error(e.loc, "'" + e.name +
                     "(f, ...)' is a function: call it with f's "
                     "arguments, " +
                     e.name + "(f, x)(args)");
    return fail();
  }
  std::vector<const ExprInfo *> args;
  for (auto &arg : callArgs(e)) {
    args.push_back(&analyze(*arg, scope));
    if (!args.back()->ok)
      return fail();
  }
  auto expectArgs = [&](size_t n) {
    if (args.size() == n)
      return true;
    error(e.loc, "'" + e.name + "' takes " + std::to_string(n) + " argument" +
                     (n == 1 ? "" : "s") + " but " +
                     std::to_string(args.size()) + " were given");
    return false;
  };
  if (unaryFloatBuiltins().count(e.name)) {
    if (!expectArgs(1))
      return fail();
    EType t = args[0]->type;
    if (t.kind == K::Concrete && !rt::isFloat(t.dtype)) {
      error(e.loc, "'" + e.name + "' needs a float argument, got " + t.str());
      return fail();
    }
    info.type = t.kind == K::Concrete ? t : EType::lit(K::LitFloat);
    info.shape = args[0]->shape;
    return info;
  }
  if (castBuiltins().count(e.name)) {
    if (!expectArgs(1))
      return fail();
    info.type = EType::of(declared(*rt::parseDType(e.name)));
    info.shape = args[0]->shape;
    return info;
  }
  if (e.name == "max" || e.name == "min") {
    if (args.size() == 1) {
      error(e.loc, "'" + e.name + "(a, b)' is the element-wise " +
                       (e.name == "max" ? "larger" : "smaller") +
                       " of two values; for the " +
                       (e.name == "max" ? "largest" : "smallest") +
                       " element write " + e.name + "[k] x[k]");
      return fail();
    }
    if (!expectArgs(2))
      return fail();
    info.type = unify(args[0]->type, args[1]->type, e.loc, e.name.c_str());
    info.shape = args[0]->shape;
    if (info.type.kind == K::Error || info.type.isBool() ||
        !unifyShape(info.shape, args[1]->shape, e.loc))
      return fail();
    return info;
  }
  if (e.name == "one_hot") {
    // one_hot(c, K): [c's shape..., K], 1 where k == c, else 0.
    if (args.size() != 2) {
      error(e.loc, "'one_hot(c, K)' takes the class indices and the number "
                   "of classes");
      return fail();
    }
    EType classType = args[0]->type;
    if (classType.isFloatLike() || classType.isBool()) {
      error(callArgs(e)[0]->loc,
            "the classes of 'one_hot(c, K)' must be integers, got " +
                classType.str());
      return fail();
    }
    const Expr &count = *callArgs(e)[1];
    info.shape = args[0]->shape;
    if (std::optional<SDim> classes = symbolicDim(count))
      info.shape.push_back(*classes);
    else {
      error(count.loc, "the number of classes of 'one_hot(c, K)' must be a "
                       "dimension name (such as K) or a non-negative integer");
      return fail();
    }
    info.type = EType::of(declared(DType::f32));
    return info;
  }
  if (isRandomBuiltin(e.name)) {
    // uniform(seed, dims...), normal(seed, dims...): a tensor of those
    // dims in the instance's float type, a pure function of the seed.
    std::string usage = "'" + e.name + "(seed, dims...)'";
    if (args.empty()) {
      error(e.loc, usage +
                       " takes an integer seed and the result's "
                       "dimensions, e.g. " +
                       e.name + "(seed, N, D)");
      return fail();
    }
    const Expr &seed = *callArgs(e)[0];
    EType seedType = args[0]->type;
    if (!args[0]->shape.empty() || seedType.isFloatLike() ||
        seedType.isBool()) {
      error(seed.loc, "the seed of " + usage +
                          " must be an integer scalar, got " + seedType.str() +
                          (args[0]->shape.empty()
                               ? std::string()
                               : " of shape " + shapeStr(args[0]->shape)));
      return fail();
    }
    std::vector<IndexVar *> seedVars;
    freeVars(seed, seedVars);
    if (!seedVars.empty()) {
      error(seed.loc, "the seed of " + usage + " cannot depend on the index '" +
                          seedVars.front()->name +
                          "': each element's numbers already differ");
      return fail();
    }
    for (const auto &dim : llvm::drop_begin(callArgs(e))) {
      if (std::optional<SDim> size = symbolicDim(*dim)) {
        info.shape.push_back(*size);
        continue;
      }
      error(dim->loc, "a dimension of " + usage +
                          " must be a dimension name (such as N) or a "
                          "non-negative integer");
      return fail();
    }
    info.type = EType::of(declared(DType::f32));
    return info;
  }
  const Function *callee = gradOf ? gradOf : lookup(e.name);
  if (!callee) {
    error(e.loc, unknownFunction(e.name));
    return fail();
  }
  if (!expectArgs(callee->params.size()))
    return fail();
  auto call = std::make_shared<CallInfo>();
  call->callee = callee;
  // `f32` in the callee's signature means f64 when f64 values are passed.
  std::vector<std::optional<DType>> argTypes;
  for (const ExprInfo *arg : args)
    argTypes.push_back(arg->type.kind == K::Concrete
                           ? std::optional<DType>(arg->type.dtype)
                           : std::nullopt);
  call->floatType = callFloatType(*callee, argTypes, out.floatType);
  auto paramType = [&](DType d) {
    return rt::instanceDType(d, call->floatType);
  };
  std::map<std::string, std::pair<SDim, std::string>> bound;
  // Static parameters take values known now; they size the callee's dims.
  for (auto [k, p] : llvm::enumerate(callee->params)) {
    if (!p.isStatic)
      continue;
    std::optional<int64_t> value = constantValue(*callArgs(e)[k]);
    const Expr &arg = *callArgs(e)[k];
    if (!value && out.symbolicStatics && arg.kind == Expr::Kind::Name &&
        dims.count(arg.name) && llvm::any_of(fn.params, [&](const Param &q) {
          return q.isStatic && q.name == arg.name;
        })) {
      // One of this function's own (symbolic) statics: the callee's dims
      // follow it; the instance is checked where it gets a value.
      call->unknownStatics = true;
      bound.try_emplace(p.name, dims.at(arg.name), p.name);
      continue;
    }
    if (!value) {
      error(callArgs(e)[k]->loc,
            "'" + p.name + "' is a static parameter of '" + callee->name +
                "': pass a value known when compiling (an integer literal, a "
                "static parameter or a literal dimension)")
              .attachNote(loc(p.loc))
          << "'" << p.name << "' is declared here";
      return fail();
    }
    call->statics[p.name] = *value;
    bound.try_emplace(p.name, SDim::of(*value), p.name);
  }
  // A dim of the callee as arithmetic, in the caller's sizes.
  auto calleeDim = [&](const DimExpr &dim) {
    std::string ignored;
    return dimOf(
        dim,
        [&](const std::string &name) -> std::optional<SDim> {
          auto it = bound.find(name);
          if (it == bound.end())
            return std::nullopt;
          return it->second.first;
        },
        ignored);
  };
  // Arithmetic dims are checked once every symbol is bound.
  std::vector<std::tuple<size_t, size_t, const DimExpr *>> arithmetic;
  for (auto [k, p] : llvm::enumerate(callee->params)) {
    const ExprInfo &arg = *args[k];
    const Loc &at = callArgs(e)[k]->loc;
    // dtype: literals convert to the parameter's dtype.
    DType want = paramType(p.type.dtype);
    if (arg.type.kind == K::Concrete
            ? arg.type.dtype != want
            : (arg.type.kind == K::LitFloat && !rt::isFloat(want))) {
      error(at, "argument '" + p.name + "' of '" + callee->name + "' must be " +
                    rt::dtypeName(want) + ", got " + arg.type.str())
              .attachNote(loc(p.loc))
          << "'" << p.name << "' is declared here";
      return fail();
    }
    if (p.type.isAnyShape()) {
      if (!call->anyShape) {
        call->anyShape = arg.shape;
      } else if (!sameShape(*call->anyShape, arg.shape) && !arg.shape.empty()) {
        if (call->anyShape->empty()) {
          call->anyShape = arg.shape;
        } else {
          error(at, "argument '" + p.name + "' of '" + callee->name +
                        "' has shape " + shapeStr(arg.shape) +
                        " but an earlier '[...]' argument has shape " +
                        shapeStr(*call->anyShape));
          return fail();
        }
      }
      continue;
    }
    if (arg.shape.size() != p.type.dims.size()) {
      error(at, "argument '" + p.name + "' of '" + callee->name +
                    "' must have rank " + std::to_string(p.type.dims.size()) +
                    " but has shape " + shapeStr(arg.shape))
              .attachNote(loc(p.loc))
          << "'" << p.name << "' is declared here";
      return fail();
    }
    for (auto [d, dim] : llvm::enumerate(p.type.dims)) {
      const SDim &actual = arg.shape[d];
      if (dim->kind == DimExpr::Kind::Int) {
        if (actual.constant && *actual.constant != dim->value) {
          error(at, "argument '" + p.name + "' of '" + callee->name +
                        "' must have size " + std::to_string(dim->value) +
                        " in dimension " + std::to_string(d) + ", got " +
                        actual.str());
          return fail();
        }
        continue;
      }
      if (dim->kind != DimExpr::Kind::Sym) {
        arithmetic.push_back({k, d, dim.get()});
        continue;
      }
      auto [it, inserted] = bound.try_emplace(dim->name, actual, p.name);
      if (!inserted && !it->second.first.sameAs(actual)) {
        error(at, "conflicting sizes for dimension '" + dim->name + "' of '" +
                      callee->name + "': argument '" + p.name + "' has " +
                      actual.str() + " but argument '" + it->second.second +
                      "' has " + it->second.first.str())
                .attachNote(loc(dim->loc))
            << "'" << dim->name << "' is used here";
        return fail();
      }
    }
  }
  for (auto [k, d, dim] : arithmetic) {
    const Param &p = callee->params[k];
    const SDim &actual = args[k]->shape[d];
    std::optional<SDim> size = calleeDim(*dim);
    if (!size || !size->sameAs(actual)) {
      error(callArgs(e)[k]->loc,
            "argument '" + p.name + "' of '" + callee->name +
                "' must have size " + (size ? size->str() : "?") +
                " in dimension " + std::to_string(d) + ", got " + actual.str())
              .attachNote(loc(dim->loc))
          << "the size is declared here";
      return fail();
    }
  }
  for (auto &[name, value] : bound)
    call->binding[name] = value.first;
  // Results in the caller's dims.
  for (const TypeSpec &t : callee->results) {
    Shape shape;
    if (t.isAnyShape()) {
      shape = call->anyShape ? *call->anyShape : Shape{};
    } else {
      for (auto &dim : t.dims) {
        if (dim->kind == DimExpr::Kind::Int)
          shape.push_back(SDim::of(dim->value));
        else if (dim->kind == DimExpr::Kind::Sym &&
                 call->binding.count(dim->name))
          shape.push_back(call->binding[dim->name]);
        else if (std::optional<SDim> size = calleeDim(*dim))
          shape.push_back(*size);
        else {
          error(dim->loc, "result dimension of '" + callee->name +
                              "' is not bound by its parameters");
          return fail();
        }
      }
    }
    call->resultShapes.push_back(shape);
    call->resultTypes.push_back(paramType(t.dtype));
  }
  if (gradOf) {
    call->isGrad = true;
    call->withValue = withValue;
    call->wrt = wrt;
    if (!withValue) {
      call->resultShapes.clear();
      call->resultTypes.clear();
    }
    for (int64_t k : wrt) {
      call->resultShapes.push_back(args[k]->shape);
      call->resultTypes.push_back(paramType(callee->params[k].type.dtype));
    }
  }
  info.call = call;
  if (call->resultShapes.size() == 1) {
    info.type = EType::of(call->resultTypes[0]);
    info.shape = call->resultShapes[0];
  } else {
    info.type = EType::of(call->resultTypes[0]);
  }
  return info;
}

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

void FunctionSema::checkStmt(const Stmt &s) {
  Scope scope;
  switch (s.kind) {
  case Stmt::Kind::Return:
    if (!loopStack.empty()) {
      error(s.loc, "'return' inside a loop body; return after the loop");
      return;
    }
    checkReturn(s);
    return;
  case Stmt::Kind::For:
    checkFor(s);
    return;
  case Stmt::Kind::Check: {
    // A condition on values (every element must hold), checked at run time
    // unless it is known now: then a failing one is an error here.
    const Expr &cond = *s.values[0];
    const ExprInfo &info = analyze(cond, scope);
    if (!info.ok)
      return;
    if (!info.type.isBool()) {
      error(cond.loc, "a check needs a bool condition, got " + info.type.str());
      return;
    }
    if (std::optional<bool> known = constantCondition(cond)) {
      if (!*known)
        error(s.loc, "check failed: " + s.text);
      else
        out.provenChecks.insert(&s);
      return;
    }
    whole(cond, DType::boolean);
    return;
  }
  case Stmt::Kind::TupleDef: {
    const Expr &value = *s.values[0];
    const ExprInfo &info = analyze(value, scope);
    if (!info.ok)
      return;
    if (!info.call || info.call->resultShapes.size() != s.targets.size()) {
      error(s.loc,
            "the right-hand side gives " +
                std::to_string(info.call ? info.call->resultShapes.size() : 1) +
                " values for " + std::to_string(s.targets.size()) + " names");
      return;
    }
    std::vector<LocalType> results = call(value, {});
    for (auto [name, t] : llvm::zip(s.targets, results))
      locals[name] = t;
    return;
  }
  case Stmt::Kind::Def:
    if (s.hasIndices) {
      checkIndexedDef(s);
      return;
    }
    const ExprInfo &info = analyze(*s.values[0], scope);
    if (!info.ok)
      return;
    if (info.call && info.call->resultShapes.size() != 1) {
      error(s.loc, "'" + info.call->callee->name + "' returns " +
                       std::to_string(info.call->resultShapes.size()) +
                       " values; name each: a, b = ...");
      return;
    }
    LocalType t = whole(*s.values[0], std::nullopt);
    if (!failedStmt)
      locals[s.targets[0]] = t;
    return;
  }
}

/// The left-hand side's indices (the entries not `computed`) and ':'s as
/// `stmt`'s slots and `scope`, then the right side analysed over them: each
/// index must get a range, a call one value, and the ':'s the right side's
/// element shape. Null after a diagnostic.
const ExprInfo *FunctionSema::checkRightSide(const Stmt &s,
                                             const std::vector<bool> &computed,
                                             StmtInfo &stmt, Scope &scope) {
  unsigned colons = 0;
  for (auto [k, index, at] : llvm::enumerate(s.lhsIndices, s.lhsIndexLocs)) {
    if (computed[k])
      continue;
    if (!index) {
      stmt.slots.push_back(Slot{nullptr, colons++});
      continue;
    }
    if (lookupIndex(*index, scope)) {
      error(at, "index '" + *index + "' appears twice on the left-hand side");
      return nullptr;
    }
    indexVars.push_back(IndexVar{*index, at, std::nullopt, {}});
    scope.push_back(&indexVars.back());
    stmt.slots.push_back(Slot{&indexVars.back(), 0});
    // `ones[k < K] = 1`: the bound gives k its range.
    if (const Expr *bound =
            k < s.lhsBounds.size() ? s.lhsBounds[k].get() : nullptr) {
      std::optional<SDim> size = symbolicDim(*bound);
      if (!size) {
        // A run-time integer value: a size of its own.
        Scope none;
        const ExprInfo &bi = analyze(*bound, none);
        if (!bi.ok)
          return nullptr;
        if (!bi.shape.empty() || !isIntegerType(bi.type)) {
          error(bound->loc,
                "the bound of index '" + *index +
                    "' must be a size or an integer scalar value, got " +
                    bi.type.str() +
                    (bi.shape.empty() ? "" : shapeStr(bi.shape)));
          return nullptr;
        }
        whole(*bound, DType::i64);
        size = SDim::named(sourceText(*bound) + " (the bound at " +
                           std::to_string(bound->loc.line) + ":" +
                           std::to_string(bound->loc.col) + ")");
        stmt.valueBounds.push_back({bound, *size});
      }
      bindRange(&indexVars.back(), *size, bound->loc);
    }
  }
  for (auto [k, bound] : llvm::enumerate(s.lhsBounds))
    if (bound && computed[k]) {
      error(bound->loc, "'" + *s.lhsIndices[k] +
                            "' is a position, not an index: it takes no bound");
      return nullptr;
    }
  stmt.lhsVars = scope;
  const Expr &value = *s.values[0];
  const ExprInfo &info = analyze(value, scope);
  if (!info.ok)
    return nullptr;
  for (IndexVar *var : scope)
    if (!var->range) {
      error(var->loc, "index '" + var->name +
                          "' on the left-hand side is never used to subscript "
                          "a tensor on the right, so its range is unknown");
      return nullptr;
    }
  if (info.call && info.call->resultShapes.size() != 1) {
    error(value.loc,
          "'" + info.call->callee->name + "' returns several values");
    return nullptr;
  }
  if (colons != info.shape.size()) {
    error(s.loc, "the left-hand side has " + std::to_string(colons) +
                     " ':' but the right-hand side has shape " +
                     shapeStr(info.shape));
    return nullptr;
  }
  return &info;
}

void FunctionSema::checkIndexedDef(const Stmt &s) {
  std::vector<bool> computed;
  for (const auto &index : s.lhsIndices)
    computed.push_back(index && isScalarInteger(*index));
  if (llvm::is_contained(computed, true))
    return checkUpdate(s, std::move(computed));
  Scope scope;
  StmtInfo stmt;
  const ExprInfo *checked = checkRightSide(s, computed, stmt, scope);
  if (!checked)
    return;
  const ExprInfo &info = *checked;
  const Expr &value = *s.values[0];
  // A mapped call whose result already has the left-hand side's layout
  // (indices first, then ':') needs no copy.
  std::vector<IndexVar *> used;
  freeVars(value, used);
  bool indicesFirst = true;
  for (size_t k = 0; k < stmt.slots.size(); ++k)
    indicesFirst &= (k < scope.size()) == (stmt.slots[k].var != nullptr);
  stmt.mappedCall = info.call && indicesFirst && used.size() == scope.size();
  LocalType t = stmt.mappedCall
                    ? call(value, scope)[0]
                    : generic(stmt.slots, value, std::nullopt, info.shape);
  out.stmts[&s] = std::move(stmt);
  if (!failedStmt)
    locals[s.targets[0]] = t;
}

/// `hs[t, :] = h`, `Q[s, a] = q`: the entries that name values are
/// positions in an existing tensor (or, in a loop, one the loop creates);
/// the others are the right-hand side's indices and ':' as in a
/// definition.
void FunctionSema::checkUpdate(const Stmt &s, std::vector<bool> computed) {
  const std::string &name = s.targets[0];
  Scope scope;
  StmtInfo stmt;
  stmt.computed = computed;
  const ExprInfo *checked = checkRightSide(s, computed, stmt, scope);
  if (!checked)
    return;
  const ExprInfo &info = *checked;
  const Expr &value = *s.values[0];
  Shape valueShape;
  for (const Slot &slot : stmt.slots)
    valueShape.push_back(slot.var ? *slot.var->range
                                  : info.shape[slot.implicit]);
  // The tensor updated: defined before, or created by the enclosing loops.
  LocalType target;
  bool create = false;
  if (auto it = locals.find(name); it != locals.end()) {
    target = it->second;
    if (target.shape.size() != s.lhsIndices.size()) {
      error(s.targetLocs[0],
            "'" + name + "' has rank " + std::to_string(target.shape.size()) +
                " (shape " + shapeStr(target.shape) + ") but is updated with " +
                std::to_string(s.lhsIndices.size()) + " positions");
      return;
    }
    Shape rest;
    for (size_t k = 0; k < computed.size(); ++k)
      if (!computed[k])
        rest.push_back(target.shape[k]);
    if (!sameShape(rest, valueShape)) {
      error(s.loc, "the part of '" + name + "' updated here has shape " +
                       shapeStr(rest) + " but the right-hand side has shape " +
                       shapeStr(valueShape));
      return;
    }
    std::string mismatch;
    unifyTypes(typeOf(target), info.type, "an update", mismatch);
    if (!mismatch.empty() && target.weak == EType::Concrete) {
      error(s.loc, mismatch + " ('" + name + "' is " +
                       rt::dtypeName(target.dtype) + ")");
      return;
    }
  } else {
    if (poisoned.count(name))
      return;
    // A row written in a loop over 0..N creates the tensor, zero-filled.
    size_t nextValueDim = 0;
    for (auto [k, index] : llvm::enumerate(s.lhsIndices)) {
      if (!computed[k]) {
        target.shape.push_back(valueShape[nextValueDim++]);
        continue;
      }
      auto frame = llvm::find_if(
          loopStack, [&](const LoopFrame &f) { return f.var == *index; });
      if (frame == loopStack.end() || !frame->extent) {
        error(s.targetLocs[0],
              "'" + name + "' is not defined: an update at position '" +
                  *index +
                  "' needs an existing tensor (a row written in a loop "
                  "over 0..N creates one)");
        return;
      }
      target.shape.push_back(*frame->extent);
    }
    target.dtype = resolve(info.type);
    create = true;
  }
  generic(stmt.slots, value, target.dtype, info.shape);
  if (failedStmt)
    return;
  out.stmts[&s] = std::move(stmt);
  target.weak = EType::Concrete;
  locals[name] = target;
  if (create) {
    loopStack.front().info->created.insert(name);
    for (LoopFrame &frame : loopStack)
      frame.info->carried.push_back({name, target});
  }
}

/// `for t in lo..hi { body }`: the bounds are integer scalars; the names
/// defined before the loop and assigned in the body are carried (a weakly
/// typed one takes its dtype for good) and keep their types; names first
/// defined in the body are local to it.
void FunctionSema::checkFor(const Stmt &s) {
  Scope scope;
  const std::string &var = s.targets[0];
  for (auto &bound : s.values) {
    const ExprInfo &bi = analyze(*bound, scope);
    if (!bi.ok)
      return;
    if (!bi.shape.empty() || !isIntegerType(bi.type)) {
      error(bound->loc, "a loop bound must be an integer scalar (a literal, "
                        "a dimension or an i32/i64 value), got " +
                            bi.type.str() +
                            (bi.shape.empty() ? "" : shapeStr(bi.shape)));
      return;
    }
    whole(*bound, DType::i64);
  }
  if (locals.count(var) || dims.count(var) || lookupIndex(var, scope)) {
    error(s.targetLocs[0],
          "loop variable '" + var + "' hides the value of the same name");
    return;
  }
  std::set<std::string> assigned;
  bool assignsVar = false;
  forEachStmt(s.body, [&](const Stmt &inner) {
    if (inner.kind == Stmt::Kind::For)
      return;
    for (const std::string &name : inner.targets) {
      assigned.insert(name);
      assignsVar |= name == var;
    }
  });
  if (assignsVar) {
    error(s.targetLocs[0], "loop variable '" + var +
                               "' is assigned in the loop body; it takes "
                               "the values lo, ..., hi - 1 by itself");
    return;
  }
  LoopInfo &info = out.loops[&s];
  for (const std::string &name : assigned)
    if (auto it = locals.find(name); it != locals.end()) {
      it->second.weak = EType::Concrete;
      info.carried.push_back({name, it->second});
    }
  std::optional<SDim> extent;
  const Expr &lo = *s.values[0], &hi = *s.values[1];
  if (constantValue(lo) == 0)
    extent = symbolicDim(hi);
  std::set<std::string> before;
  for (auto &entry : locals)
    before.insert(entry.first);
  loopStack.push_back(LoopFrame{&info, var, extent});
  locals[var] = LocalType{DType::i64, {}, EType::Index};
  bool ok = checkStmts(s.body);
  loopStack.pop_back();
  locals.erase(var);
  // What the body defined for itself goes out of scope.
  for (auto it = locals.begin(); it != locals.end();) {
    bool carried = llvm::any_of(
        info.carried, [&](const auto &c) { return c.first == it->first; });
    if (!before.count(it->first) && !carried) {
      loopLocals[it->first] = s.loc;
      it = locals.erase(it);
    } else {
      ++it;
    }
  }
  if (!ok) {
    failedStmt = true;
    return;
  }
  for (auto &[name, t] : info.carried) {
    const LocalType &after = locals.at(name);
    if (after.dtype != t.dtype || !sameShape(after.shape, t.shape)) {
      auto typeStr = [](const LocalType &v) {
        return rt::dtypeName(v.dtype) +
               (v.shape.empty() ? "" : shapeStr(v.shape));
      };
      error(s.loc, "'" + name + "' is " + typeStr(t) + " before the loop but " +
                       typeStr(after) +
                       " after its body: a value carried from step to step "
                       "keeps its dtype and shape");
      return;
    }
    locals[name].weak = EType::Concrete;
  }
}

void FunctionSema::checkReturn(const Stmt &s) {
  Scope scope;
  std::vector<LocalType> values;
  if (s.values.size() == 1 && fn.results.size() > 1) {
    const ExprInfo &info = analyze(*s.values[0], scope);
    if (!info.ok)
      return;
    if (!info.call || info.call->resultShapes.size() != fn.results.size()) {
      error(s.loc, "'" + fn.name + "' returns " +
                       std::to_string(fn.results.size()) +
                       " values but this returns 1");
      return;
    }
    values = call(*s.values[0], {});
  } else {
    if (s.values.size() != fn.results.size()) {
      error(s.loc,
            "'" + fn.name + "' returns " + std::to_string(fn.results.size()) +
                " values but this returns " + std::to_string(s.values.size()));
      return;
    }
    for (auto [k, v] : llvm::enumerate(s.values)) {
      const ExprInfo &info = analyze(*v, scope);
      if (!info.ok)
        return;
      values.push_back(whole(*v, declared(fn.results[k].dtype)));
    }
  }
  if (failedStmt)
    return;
  out.resultShapes.clear();
  for (auto [k, v] : llvm::enumerate(values)) {
    const TypeSpec &resultType = fn.results[k];
    const Loc &at = s.values[std::min(k, s.values.size() - 1)]->loc;
    if (v.dtype != declared(resultType.dtype)) {
      error(at, std::string("returns ") + rt::dtypeName(v.dtype) +
                    " but the declared result is " +
                    rt::dtypeName(declared(resultType.dtype)))
              .attachNote(loc(resultType.loc))
          << "declared here";
      return;
    }
    Shape expected = shapeOfType(resultType, resultType.loc);
    if (!sameShape(v.shape, expected)) {
      error(at, "returns shape " + shapeStr(v.shape) +
                    " but the declared result has shape " + shapeStr(expected))
              .attachNote(loc(resultType.loc))
          << "declared here";
      return;
    }
    out.resultShapes.push_back(expected);
  }
  returned = true;
}

//===----------------------------------------------------------------------===//
// What generation meets
//===----------------------------------------------------------------------===//

LocalType FunctionSema::whole(const Expr &e, std::optional<DType> preferred) {
  const ExprInfo &info = infos.at(&e);
  if (e.kind == Expr::Kind::Name && locals.count(e.name) &&
      !indexUses.count(&e)) {
    const LocalType &v = locals[e.name];
    if (v.weak == EType::Concrete || !preferred || v.dtype == *preferred)
      return v;
  }
  if (e.kind == Expr::Kind::Call && info.call)
    return call(e, {})[0];
  return materialized(e, {}, preferred);
}

LocalType FunctionSema::materialized(const Expr &e,
                                     const std::vector<IndexVar *> &vars,
                                     std::optional<DType> preferred,
                                     std::optional<Shape> implicitShape) {
  const ExprInfo &info = infos.at(&e);
  if (e.kind == Expr::Kind::Call && info.call && !implicitShape)
    return call(e, vars)[0];
  Shape shape = implicitShape ? *implicitShape : info.shape;
  return generic(slotsOver(vars, shape.size()), e, preferred, shape);
}

LocalType FunctionSema::generic(const std::vector<Slot> &slots, const Expr &e,
                                std::optional<DType> preferred,
                                const Shape &implicitShape) {
  // The root reductions that share one combiner are one op.
  const Expr *body = &e;
  std::string reduceOp;
  while (body->kind == Expr::Kind::Reduce &&
         (reduceOp.empty() || reduceOp == body->op) && reduceOp != "argmax" &&
         reduceOp != "argmin") {
    reduceOp = body->op;
    body = body->operands[0].get();
  }
  LocalType result;
  for (const Slot &slot : slots)
    result.shape.push_back(slot.var ? *slot.var->range
                                    : implicitShape[slot.implicit]);
  if (reduceOp == "argmax" || reduceOp == "argmin") {
    element(*body, resolve(infos.at(body).type));
    result.dtype = DType::i32;
    return result;
  }
  EType type = infos.at(&e).type;
  result.dtype = resolve(type, preferred);
  result.weak = type.kind;
  element(*body, result.dtype);
  return result;
}

void FunctionSema::element(const Expr &e, DType want) {
  const ExprInfo &info = infos.at(&e);
  switch (e.kind) {
  case Expr::Kind::Float:
    // One rule with the CLI's literals: a finite number beyond the type's
    // range is an error, not an infinity.
    if (want == DType::f32 && std::fabs(e.number) > (double)FLT_MAX) {
      char shown[32];
      std::snprintf(shown, sizeof shown, "%g", e.number);
      error(e.loc, std::string("number ") + shown +
                       " is out of range for f32 (write inf for infinity)");
    }
    return;
  case Expr::Kind::Inf:
  case Expr::Kind::Int:
  case Expr::Kind::Bool:
  case Expr::Kind::Name:
    return;
  case Expr::Kind::Subscript: {
    // Positions by value are computed whole, as i64, before the op; the
    // subscripts of a gather over the indices the subscript uses.
    std::vector<IndexVar *> space;
    freeVars(e, space);
    for (auto &sub : e.subscripts) {
      if (!sub || sub->kind == Expr::Kind::Int || indexUses.count(sub.get()))
        continue;
      std::vector<IndexVar *> vars;
      freeVars(*sub, vars);
      if (vars.empty())
        whole(*sub, DType::i64);
      else
        materialized(*sub, space, DType::i64);
    }
    return;
  }
  case Expr::Kind::Unary:
    element(*e.operands[0], e.op == "!" ? DType::boolean : want);
    return;
  case Expr::Kind::Binary: {
    const std::string &op = e.op;
    if (op == "&&" || op == "||") {
      element(*e.operands[0], DType::boolean);
      element(*e.operands[1], DType::boolean);
      return;
    }
    if (op == "^") {
      const Expr &exponent = *e.operands[1];
      element(*e.operands[0], want);
      if (exponent.kind == Expr::Kind::Int && exponent.intValue <= 64)
        return;
      if (!rt::isFloat(want)) {
        error(e.loc, "integer powers need a literal exponent");
        return;
      }
      element(exponent, want);
      return;
    }
    if (op == "<" || op == "<=" || op == ">" || op == ">=" || op == "==" ||
        op == "!=") {
      // Both sides in the dtype of the concrete one; literals compare as
      // floats if either is a float literal, else as indices.
      const ExprInfo &li = infos.at(e.operands[0].get());
      const ExprInfo &ri = infos.at(e.operands[1].get());
      EType joined = li.type.kind == EType::Concrete ? li.type : ri.type;
      if (li.type.kind != EType::Concrete && ri.type.kind != EType::Concrete)
        joined =
            (li.type.kind == EType::LitFloat || ri.type.kind == EType::LitFloat)
                ? EType::lit(EType::LitFloat)
                : EType::lit(EType::Index);
      DType ct = resolve(joined);
      element(*e.operands[0], ct);
      element(*e.operands[1], ct);
      return;
    }
    // The remainder is computed in integers (i64 where a float is wanted).
    DType operandType = op == "%" && rt::isFloat(want) ? DType::i64 : want;
    element(*e.operands[0], operandType);
    element(*e.operands[1], operandType);
    return;
  }
  case Expr::Kind::Select:
    element(*e.operands[0], DType::boolean);
    element(*e.operands[1], want);
    element(*e.operands[2], want);
    return;
  case Expr::Kind::Reduce:
  case Expr::Kind::Call: {
    if (e.kind == Expr::Kind::Reduce || info.call) {
      // Hoisted into an op of its own over the indices it depends on.
      std::vector<IndexVar *> vars;
      freeVars(e, vars);
      materialized(e, vars, std::nullopt);
      return;
    }
    if (castBuiltins().count(e.name)) {
      element(*e.operands[0], resolve(infos.at(e.operands[0].get()).type));
      return;
    }
    if (isRandomBuiltin(e.name) || e.name == "one_hot") {
      element(*e.operands[0], DType::i64);
      return;
    }
    for (auto &operand : e.operands)
      element(*operand, want);
    return;
  }
  }
}

std::vector<LocalType> FunctionSema::call(const Expr &e,
                                          const std::vector<IndexVar *> &vars) {
  const CallInfo &ci = *infos.at(&e).call;
  const Function &callee = *ci.callee;
  auto paramType = [&](DType d) { return rt::instanceDType(d, ci.floatType); };
  Shape mapped;
  for (IndexVar *v : vars)
    mapped.push_back(*v->range);
  std::vector<LocalType> results;
  for (auto [t, shape] : llvm::zip(ci.resultTypes, ci.resultShapes))
    results.push_back(LocalType{t, shape});

  if (ci.isGrad && !vars.empty() && callee.isShapePolymorphic()) {
    error(e.loc, "a gradient of a function of '[...]' parameters cannot be "
                 "mapped over indices yet");
    return results;
  }
  if (callee.isShapePolymorphic()) {
    // Element-wise over `[...]`: the instance whose rank covers both the
    // mapped indices and the element shape.
    Shape full = mapped;
    full.insert(full.end(), ci.anyShape->begin(), ci.anyShape->end());
    if (!ci.unknownStatics)
      out.callees.push_back(
          {&callee, (int64_t)full.size(), ci.floatType, ci.statics});
    for (auto [k, p] : llvm::enumerate(callee.params)) {
      const Expr &arg = *callArgs(e)[k];
      if (!p.type.isAnyShape())
        whole(arg, paramType(p.type.dtype));
      else if (!(vars.empty() && arg.kind == Expr::Kind::Name &&
                 locals.count(arg.name) &&
                 sameShape(locals[arg.name].shape, full)))
        materialized(arg, vars, paramType(p.type.dtype), *ci.anyShape);
    }
    if (!ci.isGrad)
      for (auto [k, t] : llvm::enumerate(callee.results))
        if (t.isAnyShape())
          results[k].shape = full;
    return results;
  }
  if (!ci.unknownStatics)
    out.callees.push_back({&callee, 0, ci.floatType, ci.statics});
  if (vars.empty()) {
    for (auto [k, p] : llvm::enumerate(callee.params))
      whole(*callArgs(e)[k], paramType(p.type.dtype));
    return results;
  }
  // Mapped over `vars`: mlx.map_call on slices of the arguments.
  if (ci.resultShapes.size() != 1) {
    error(e.loc, "a function with several results cannot be mapped over "
                 "indices yet");
    return results;
  }
  for (auto [k, p] : llvm::enumerate(callee.params)) {
    const Expr &arg = *callArgs(e)[k];
    std::vector<IndexVar *> argVars;
    freeVars(arg, argVars);
    bool direct = arg.kind == Expr::Kind::Subscript &&
                  llvm::all_of(arg.subscripts, [&](auto &sub) {
                    return !sub || (sub->kind == Expr::Kind::Name &&
                                    indexUses.count(sub.get()));
                  });
    if (argVars.empty())
      whole(arg, paramType(p.type.dtype));
    else if (!direct)
      materialized(arg, argVars, paramType(p.type.dtype));
  }
  Shape full = mapped;
  full.insert(full.end(), ci.resultShapes[0].begin(), ci.resultShapes[0].end());
  return {LocalType{ci.resultTypes[0], full}};
}

std::unique_ptr<CheckedFunction>
Sema::check(const Function &fn, int64_t anyShapeRank, DType floatType,
            const StaticValues &statics, bool symbolicStatics) {
  auto out = std::make_unique<CheckedFunction>();
  out->fn = &fn;
  out->anyShapeRank = anyShapeRank;
  out->floatType = floatType;
  out->statics = statics;
  out->symbolicStatics = symbolicStatics;
  FunctionSema(ctx, functions, *out).run();
  return out;
}
