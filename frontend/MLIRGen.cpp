//===- MLIRGen.cpp - checked AST → mlx dialect ------------------*- C++ -*-===//
//
// One FunctionGen per function instance. Each statement is first analyzed
// (names resolved, index ranges inferred, dtypes and shapes computed, errors
// reported) and then emitted:
//   - an index-notation definition becomes one mlx.generic whose iteration
//     space is the left-hand side's indices, then the element shape of the
//     right side (the implicit `:` dims), then the root reduction's indices;
//   - nested reductions and calls of user functions are hoisted into their
//     own ops over the indices they depend on, and read back as operands;
//   - a call whose arguments depend on indices maps over them: mlx.map_call
//     for ordinary functions, a direct call of a higher-rank instance for
//     element-wise `[...]` functions.
//
//===----------------------------------------------------------------------===//
#include "frontend/MLIRGen.h"
#include "dialects/mlx/MlxDialect.h"
#include "frontend/DiagnosticPrinter.h"
#include "frontend/Sema.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <set>

using namespace mlx;
using namespace mlx::ast;
using mlir::Value;

mlir::Location mlx::toLocation(mlir::MLIRContext &ctx, const Loc &loc) {
  if (!loc.file)
    return mlir::UnknownLoc::get(&ctx);
  return mlir::FileLineColLoc::get(&ctx, *loc.file, loc.line, loc.col);
}

std::string mlx::exportName(const ExportRequest &request) {
  const Function &fn = *request.function;
  std::string name = instanceName(fn, request.anyShapeRank, request.floatType);
  if (request.wrt.empty())
    return name;
  name += "_grad";
  for (int64_t k : request.wrt) {
    const std::string &param = fn.params[k].name;
    bool ascii = llvm::all_of(
        param, [](char c) { return llvm::isAlnum(c) || c == '_'; });
    name += "_" + (ascii ? param : "p" + std::to_string(k));
  }
  return name;
}

namespace {

/// An index bound by a left-hand side or a reduction.
struct IndexVar {
  std::string name;
  Loc loc;
  std::optional<SDim> range;
  Loc rangeLoc; ///< Where the range was inferred.
};

/// A value of the function being generated.
struct TVal {
  Value value;
  DType dtype = DType::f32;
  Shape shape;
  /// A value computed from literals and indices only is weakly typed (as in
  /// JAX): it converts to the dtype its use asks for.
  EType::Kind weak = EType::Concrete;
};

/// The element type of a value: its dtype, or literal-like when weak.
EType typeOf(const TVal &v) {
  return v.weak == EType::Concrete ? EType::of(v.dtype) : EType::lit(v.weak);
}

/// What analysis found out about a call of a user function.
struct CallInfo {
  const Function *callee = nullptr;
  std::map<std::string, SDim> binding;
  std::optional<Shape> anyShape; ///< The shape `[...]` stands for.
  std::vector<Shape> resultShapes;
  std::vector<DType> resultTypes;
  /// What `f32` means in the callee: f64 when called with f64 arguments.
  DType floatType = DType::f32;
  /// `grad(f, ...)(args)` / `value_and_grad`: the differentiated parameters.
  bool isGrad = false, withValue = false;
  std::vector<int64_t> wrt;
};

/// The argument expressions of a call; `grad(f, x)(args)` keeps its callee
/// expression first.
llvm::ArrayRef<std::unique_ptr<Expr>> callArgs(const Expr &e) {
  llvm::ArrayRef<std::unique_ptr<Expr>> all = e.operands;
  return e.name.empty() ? all.drop_front() : all;
}

/// What analysis found out about an expression.
struct ExprInfo {
  EType type;
  Shape shape;
  bool ok = true;
  std::shared_ptr<CallInfo> call;
};

mlir::Type scalarType(mlir::OpBuilder &b, DType d) {
  switch (d) {
  case DType::f32:
    return b.getF32Type();
  case DType::f64:
    return b.getF64Type();
  case DType::i32:
    return b.getI32Type();
  case DType::i64:
    return b.getI64Type();
  case DType::boolean:
    return b.getI1Type();
  }
  return b.getF32Type();
}

//===----------------------------------------------------------------------===//
// Module-level state
//===----------------------------------------------------------------------===//

class ModuleGen;

/// Generates one function instance.
class FunctionGen {
public:
  FunctionGen(ModuleGen &mod, const Function &fn, int64_t anyShapeRank,
              DType floatType, mlir::func::FuncOp func);
  void generate();

private:
  // --- diagnostics
  mlir::Location loc(const Loc &l);
  mlir::InFlightDiagnostic error(const Loc &l, const llvm::Twine &msg);

  // --- shapes of types
  Shape shapeOfType(const TypeSpec &type, const Loc &at);
  Value dimValue(const SDim &dim);

  // --- analysis
  using Scope = std::vector<IndexVar *>;
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
  void freeVars(const Expr &e, std::vector<IndexVar *> &out);

  // --- emission
  /// One result slot of a generic: an index variable or an implicit dim.
  struct Slot {
    IndexVar *var = nullptr;
    unsigned implicit = 0;
  };
  struct Frame;
  TVal emitGeneric(const std::vector<Slot> &slots, const Expr &e,
                   std::optional<DType> preferred, const Shape &implicitShape);
  Value emitElem(const Expr &e, Frame &frame, DType want);
  Value addOperand(Frame &frame, const TVal &tensor,
                   llvm::ArrayRef<mlir::AffineExpr> exprs, const Loc &at);
  Value materializeLeaf(const Expr &e, Frame &frame);
  Value convert(mlir::OpBuilder &b, mlir::Location l, Value v, EType from,
                DType to);
  Value constant(mlir::OpBuilder &b, mlir::Location l, double value,
                 DType type);
  std::vector<TVal> emitCall(const Expr &e,
                             const std::vector<IndexVar *> &vars);
  TVal emitWhole(const Expr &e, std::optional<DType> preferred);
  TVal materialize(const Expr &e, const std::vector<IndexVar *> &vars,
                   std::optional<DType> preferred,
                   std::optional<Shape> implicitShape = std::nullopt);
  TVal castTo(const TVal &v, mlir::Type type);

  // --- statements
  void emitStmt(const Stmt &s);
  void emitIndexedDef(const Stmt &s);
  void emitReturn(const Stmt &s);

  /// The dtype a declared `f32` stands for in this instance.
  DType declared(DType d) const { return rt::instanceDType(d, floatType); }
  /// An element type's dtype, literals defaulting to this instance's float.
  DType resolve(EType t, std::optional<DType> preferred = std::nullopt) const {
    return t.resolve(preferred, floatType);
  }

  ModuleGen &mod;
  const Function &fn;
  int64_t anyShapeRank;
  DType floatType;
  mlir::func::FuncOp func;
  mlir::OpBuilder b;
  std::map<std::string, TVal> locals;
  std::map<std::string, SDim> dims;
  /// The run-time sizes of the dimension symbols (tensor.dim at entry).
  std::map<std::string, Value> dimValues;
  std::map<const Expr *, ExprInfo> infos;
  std::map<const Expr *, IndexVar *> indexUses;
  std::map<const Expr *, std::vector<IndexVar *>> reduceVars;
  std::deque<IndexVar> indexVars;
  /// Names whose definition failed: their uses fail silently (no cascade).
  std::set<std::string> poisoned;
  bool returned = false;
  bool failedStmt = false;
};

class ModuleGen {
public:
  ModuleGen(mlir::MLIRContext &ctx,
            const std::map<std::string, const Function *> &functions)
      : ctx(ctx), functions(functions), builder(&ctx) {
    module = mlir::ModuleOp::create(mlir::UnknownLoc::get(&ctx));
  }

  mlir::OwningOpRef<mlir::ModuleOp>
  run(const std::vector<ExportRequest> &exports) {
    mlir::ScopedDiagnosticHandler counter(&ctx, [&](mlir::Diagnostic &d) {
      if (d.getSeverity() == mlir::DiagnosticSeverity::Error)
        ++errors;
      return mlir::failure(); // let the printing handler see it too
    });
    for (const ExportRequest &r : exports) {
      auto func = getOrDeclare(*r.function, r.anyShapeRank, r.floatType);
      if (!r.wrt.empty()) {
        exportGradient(func, r.wrt, exportName(r));
        continue;
      }
      func.setPublic();
      func->setAttr("llvm.emit_c_interface", builder.getUnitAttr());
    }
    while (!pending.empty()) {
      auto [fn, rank, floatType, func] = pending.front();
      pending.pop_front();
      FunctionGen(*this, *fn, rank, floatType, func).generate();
    }
    if (!errors) {
      std::vector<const Function *> roots;
      for (const ExportRequest &r : exports)
        roots.push_back(r.function);
      Sema(ctx, functions).checkNoRecursion(roots);
    }
    if (errors)
      return nullptr;
    return std::move(module);
  }

  /// `name(args) -> (f's results..., d args[wrt]...)`, exported.
  void exportGradient(mlir::func::FuncOp f, llvm::ArrayRef<int64_t> wrt,
                      const std::string &name) {
    auto wrapper = buildGradFunction(f, wrt, name, /*withValue=*/true);
    wrapper->setAttr("llvm.emit_c_interface", builder.getUnitAttr());
  }

  /// `<f>_d<k>...(args) -> d args[wrt]...`: f's gradient as a function of
  /// its own, private (what a gradient mapped over indices maps).
  mlir::func::FuncOp getOrCreateGradFunction(mlir::func::FuncOp f,
                                             llvm::ArrayRef<int64_t> wrt) {
    std::string name = f.getName().str();
    for (int64_t k : wrt)
      name += "_d" + std::to_string(k);
    if (auto existing = module->lookupSymbol<mlir::func::FuncOp>(name))
      return existing;
    auto func = buildGradFunction(f, wrt, name, /*withValue=*/false);
    func.setPrivate();
    return func;
  }

  /// `name(args)` whose body is `mlx.grad @f(args) wrt [wrt]`.
  mlir::func::FuncOp buildGradFunction(mlir::func::FuncOp f,
                                       llvm::ArrayRef<int64_t> wrt,
                                       const std::string &name,
                                       bool withValue) {
    mlir::OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPointToEnd(module->getBody());
    mlir::FunctionType type = f.getFunctionType();
    llvm::SmallVector<mlir::Type> results;
    if (withValue)
      llvm::append_range(results, type.getResults());
    for (int64_t k : wrt)
      results.push_back(type.getInput(k));
    auto func = builder.create<mlir::func::FuncOp>(
        f.getLoc(), name, builder.getFunctionType(type.getInputs(), results));
    builder.setInsertionPointToStart(func.addEntryBlock());
    auto grad = builder.create<mlir::mlx::GradOp>(
        f.getLoc(), results, f.getName(), func.getArguments(),
        builder.getDenseI64ArrayAttr(wrt), withValue);
    builder.create<mlir::func::ReturnOp>(f.getLoc(), grad.getResults());
    return func;
  }

  const Function *lookup(const std::string &name) const {
    auto it = functions.find(name);
    return it == functions.end() ? nullptr : it->second;
  }

  /// "unknown function 'NAME'" with a hint: the closest function or
  /// builtin, or what the language does not have yet.
  std::string unknownFunction(const std::string &name) const {
    static const std::set<std::string> randomNames = {
        "rand", "randn", "random", "uniform", "normal", "randint"};
    if (randomNames.count(name))
      return "unknown function '" + name +
             "': random numbers are not supported yet";
    std::vector<std::string> names = {"max", "min", "grad", "value_and_grad"};
    for (auto &[n, fn] : functions)
      names.push_back(n);
    names.insert(names.end(), unaryFloatBuiltins().begin(),
                 unaryFloatBuiltins().end());
    names.insert(names.end(), castBuiltins().begin(), castBuiltins().end());
    return "unknown function '" + name + "'" + didYouMean(name, names);
  }

  /// The func.func of an instance, declared now and generated later.
  mlir::func::FuncOp getOrDeclare(const Function &fn, int64_t rank,
                                  DType floatType) {
    std::string name = instanceName(fn, rank, floatType);
    if (auto existing = module->lookupSymbol<mlir::func::FuncOp>(name))
      return existing;
    mlir::OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPointToEnd(module->getBody());
    llvm::SmallVector<mlir::Type> inputs, results;
    for (const Param &p : fn.params)
      inputs.push_back(tensorTypeOf(p.type, rank, floatType));
    for (const TypeSpec &t : fn.results)
      results.push_back(tensorTypeOf(t, rank, floatType));
    auto func = builder.create<mlir::func::FuncOp>(
        toLocation(ctx, fn.loc), name,
        builder.getFunctionType(inputs, results));
    func.setPrivate();
    pending.push_back({&fn, rank, floatType, func});
    return func;
  }

  mlir::RankedTensorType tensorTypeOf(const TypeSpec &t, int64_t rank,
                                      DType floatType) {
    llvm::SmallVector<int64_t> shape;
    if (t.isAnyShape())
      shape.assign(rank, mlir::ShapedType::kDynamic);
    else
      for (auto &d : t.dims)
        shape.push_back(d->kind == DimExpr::Kind::Int
                            ? d->value
                            : mlir::ShapedType::kDynamic);
    DType dtype = rt::instanceDType(t.dtype, floatType);
    return mlir::RankedTensorType::get(shape, scalarType(builder, dtype));
  }

  mlir::MLIRContext &ctx;
  const std::map<std::string, const Function *> &functions;
  mlir::OpBuilder builder;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::deque<std::tuple<const Function *, int64_t, DType, mlir::func::FuncOp>>
      pending;
  unsigned errors = 0;
};

//===----------------------------------------------------------------------===//
// FunctionGen: set-up and diagnostics
//===----------------------------------------------------------------------===//

FunctionGen::FunctionGen(ModuleGen &mod, const Function &fn,
                         int64_t anyShapeRank, DType floatType,
                         mlir::func::FuncOp func)
    : mod(mod), fn(fn), anyShapeRank(anyShapeRank), floatType(floatType),
      func(func), b(&mod.ctx) {}

mlir::Location FunctionGen::loc(const Loc &l) { return toLocation(mod.ctx, l); }

mlir::InFlightDiagnostic FunctionGen::error(const Loc &l,
                                            const llvm::Twine &msg) {
  failedStmt = true;
  return mlir::emitError(loc(l), msg);
}

/// The shape of a parameter or result type, in this function's dims.
Shape FunctionGen::shapeOfType(const TypeSpec &type, const Loc &at) {
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
    case DimExpr::Kind::Ellipsis:
      error(d->loc, "'...' must be the only dimension of a type");
      shape.push_back(SDim::of(1));
      break;
    default:
      error(d->loc, "dimension arithmetic in types is not supported yet");
      shape.push_back(SDim::of(1));
      break;
    }
  }
  (void)at;
  return shape;
}

Value FunctionGen::dimValue(const SDim &dim) {
  if (dim.constant)
    return b.create<mlir::arith::ConstantIndexOp>(func.getLoc(), *dim.constant);
  assert(dimValues.count(dim.symbol) && "dimension without a runtime value");
  return dimValues.at(dim.symbol);
}

void FunctionGen::generate() {
  mlir::Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  std::set<std::string> names;
  // Bind every dimension symbol at its first use among the parameters.
  for (auto [k, p] : llvm::enumerate(fn.params)) {
    if (!names.insert(p.name).second)
      error(p.loc, "duplicate parameter '" + p.name + "'");
    Value arg = entry->getArgument(k);
    Shape shape;
    if (p.type.isAnyShape()) {
      for (int64_t d = 0; d < anyShapeRank; ++d) {
        std::string sym = "..." + std::to_string(d);
        if (!dims.count(sym)) {
          dims[sym] = SDim::named(sym);
          dimValues[sym] = b.create<mlir::tensor::DimOp>(loc(p.loc), arg, d);
        }
        shape.push_back(dims[sym]);
      }
    } else {
      for (auto [d, dim] : llvm::enumerate(p.type.dims)) {
        if (dim->kind == DimExpr::Kind::Sym && !dims.count(dim->name)) {
          if (names.count(dim->name))
            error(dim->loc,
                  "'" + dim->name + "' is both a parameter and a dimension");
          dims[dim->name] = SDim::named(dim->name);
          dimValues[dim->name] =
              b.create<mlir::tensor::DimOp>(loc(p.loc), arg, d);
        }
      }
      shape = shapeOfType(p.type, p.loc);
    }
    locals[p.name] = TVal{arg, declared(p.type.dtype), shape};
  }
  for (const TypeSpec &t : fn.results)
    for (auto &d : t.dims)
      if (d->kind == DimExpr::Kind::Sym && !dims.count(d->name))
        error(d->loc, "result dimension '" + d->name +
                          "' is not the dimension of any parameter");
  bool anyError = failedStmt;
  for (const Stmt &s : fn.body) {
    if (returned) {
      error(s.loc, "statement after 'return'");
      anyError = true;
      break;
    }
    failedStmt = false;
    emitStmt(s);
    if (failedStmt)
      for (const std::string &name : s.targets) {
        poisoned.insert(name);
        locals.erase(name);
      }
    anyError |= failedStmt;
  }
  if (!returned && !anyError)
    error(fn.loc, "function '" + fn.name + "' does not return a value");
  if (!returned || anyError || failedStmt) {
    // The module is dropped because of the errors; leave a declaration.
    func.getBody().getBlocks().clear();
    func.setPrivate();
  }
}

//===----------------------------------------------------------------------===//
// Analysis: names, index ranges, dtypes, shapes
//===----------------------------------------------------------------------===//

IndexVar *FunctionGen::lookupIndex(const std::string &name, Scope &scope) {
  for (auto it = scope.rbegin(); it != scope.rend(); ++it)
    if ((*it)->name == name)
      return *it;
  return nullptr;
}

void FunctionGen::bindRange(IndexVar *var, const SDim &dim, const Loc &at) {
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

EType FunctionGen::unify(EType a, EType b, const Loc &at, const char *what) {
  std::string mismatch;
  EType t = unifyTypes(a, b, what, mismatch);
  if (!mismatch.empty())
    error(at, mismatch);
  return t;
}

bool FunctionGen::unifyShape(Shape &into, const Shape &other, const Loc &at) {
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

const ExprInfo &FunctionGen::analyze(const Expr &e, Scope &scope) {
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

ExprInfo FunctionGen::analyzeUncached(const Expr &e, Scope &scope) {
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
    if (mod.lookup(e.name)) {
      error(e.loc, "'" + e.name + "' is a function; call it with (...)");
      return fail();
    }
    error(e.loc,
          "unknown name '" + e.name + "'" + didYouMean(e.name, knownNames()));
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

ExprInfo FunctionGen::analyzeSubscript(const Expr &e, Scope &scope) {
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
      error(base.loc, "unknown name '" + base.name + "'" +
                          didYouMean(base.name, knownNames()));
    return info;
  }
  const TVal &tensor = it->second;
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
      if (locals.count(sub->name) || dims.count(sub->name)) {
        error(sub->loc, "subscripting by the value of '" + sub->name +
                            "' is not supported yet; use an index name");
        return info;
      }
      error(sub->loc, "index '" + sub->name +
                          "' is not bound: put it on the left-hand side or "
                          "reduce over it (e.g. sum[" +
                          sub->name + "] ...)");
      return info;
    }
    error(sub->loc, "a subscript must be an index name, an integer or ':'");
    return info;
  }
  if (failedStmt)
    return info;
  info.ok = true;
  info.type = typeOf(tensor);
  return info;
}

ExprInfo FunctionGen::analyzeCall(const Expr &e, Scope &scope) {
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
    gradOf = mod.lookup(callee.operands[0]->name);
    if (!gradOf) {
      error(callee.operands[0]->loc,
            mod.unknownFunction(callee.operands[0]->name));
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
  const Function *callee = gradOf ? gradOf : mod.lookup(e.name);
  if (!callee) {
    error(e.loc, mod.unknownFunction(e.name));
    return fail();
  }
  if (!expectArgs(callee->params.size()))
    return fail();
  auto call = std::make_shared<CallInfo>();
  call->callee = callee;
  // `f32` in the callee's signature means f64 when f64 values are passed.
  for (auto [k, p] : llvm::enumerate(callee->params))
    if (p.type.dtype == DType::f32 && args[k]->type.kind == K::Concrete &&
        args[k]->type.dtype == DType::f64)
      call->floatType = DType::f64;
  auto paramType = [&](DType d) {
    return rt::instanceDType(d, call->floatType);
  };
  std::map<std::string, std::pair<SDim, std::string>> bound;
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
        error(dim->loc, "dimension arithmetic in types is not supported yet");
        return fail();
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

void FunctionGen::freeVars(const Expr &e, std::vector<IndexVar *> &out) {
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

//===----------------------------------------------------------------------===//
// Emission of expressions
//===----------------------------------------------------------------------===//

/// The mlx.generic being built: its iteration dims and its detached body.
struct FunctionGen::Frame {
  std::map<IndexVar *, unsigned> varDims;
  std::vector<unsigned> implicitDims;
  unsigned numLoops = 0;
  mlir::Block *block = nullptr;
  std::unique_ptr<mlir::OpBuilder> body;
  llvm::SmallVector<Value> operands;
  llvm::SmallVector<mlir::AffineMap> maps;
};

Value FunctionGen::constant(mlir::OpBuilder &bb, mlir::Location l, double value,
                            DType type) {
  mlir::Type t = scalarType(bb, type);
  if (rt::isFloat(type))
    return bb.create<mlir::arith::ConstantOp>(l, bb.getFloatAttr(t, value));
  return bb.create<mlir::arith::ConstantOp>(
      l, bb.getIntegerAttr(t, (int64_t)value));
}

Value FunctionGen::convert(mlir::OpBuilder &bb, mlir::Location l, Value v,
                           EType from, DType to) {
  namespace arith = mlir::arith;
  mlir::Type target = scalarType(bb, to);
  if (v.getType() == target)
    return v;
  if (v.getType().isIndex()) {
    Value i = bb.create<arith::IndexCastOp>(
        l, rt::isFloat(to) ? bb.getI64Type() : target, v);
    return rt::isFloat(to)
               ? bb.create<arith::SIToFPOp>(l, target, i).getResult()
               : i;
  }
  bool fromFloat = mlir::isa<mlir::FloatType>(v.getType());
  bool fromBool = v.getType().isInteger(1);
  unsigned fromWidth = v.getType().getIntOrFloatBitWidth();
  unsigned toWidth = target.getIntOrFloatBitWidth();
  if (fromFloat && rt::isFloat(to))
    return toWidth > fromWidth
               ? bb.create<arith::ExtFOp>(l, target, v).getResult()
               : bb.create<arith::TruncFOp>(l, target, v).getResult();
  if (fromFloat) {
    if (to == DType::boolean) {
      Value zero =
          bb.create<arith::ConstantOp>(l, bb.getFloatAttr(v.getType(), 0));
      return bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::UNE, v, zero);
    }
    return bb.create<arith::FPToSIOp>(l, target, v);
  }
  if (rt::isFloat(to))
    return fromBool ? bb.create<arith::UIToFPOp>(l, target, v).getResult()
                    : bb.create<arith::SIToFPOp>(l, target, v).getResult();
  if (to == DType::boolean) {
    Value zero =
        bb.create<arith::ConstantOp>(l, bb.getIntegerAttr(v.getType(), 0));
    return bb.create<arith::CmpIOp>(l, arith::CmpIPredicate::ne, v, zero);
  }
  if (toWidth > fromWidth)
    return fromBool ? bb.create<arith::ExtUIOp>(l, target, v).getResult()
                    : bb.create<arith::ExtSIOp>(l, target, v).getResult();
  return bb.create<arith::TruncIOp>(l, target, v);
  (void)from;
}

Value FunctionGen::addOperand(Frame &f, const TVal &tensor,
                              llvm::ArrayRef<mlir::AffineExpr> exprs,
                              const Loc &at) {
  auto map = mlir::AffineMap::get(f.numLoops, 0, exprs, &mod.ctx);
  for (auto [k, operand] : llvm::enumerate(f.operands))
    if (operand == tensor.value && f.maps[k] == map)
      return f.block->getArgument(k);
  f.operands.push_back(tensor.value);
  f.maps.push_back(map);
  return f.block->addArgument(scalarType(b, tensor.dtype), loc(at));
}

TVal FunctionGen::emitGeneric(const std::vector<Slot> &slots, const Expr &e,
                              std::optional<DType> preferred,
                              const Shape &implicitShape) {
  // Peel the root reductions that share one combiner: sum[i] sum[j] x.
  const Expr *body = &e;
  std::vector<IndexVar *> reduced;
  std::string reduceOp;
  while (body->kind == Expr::Kind::Reduce &&
         (reduceOp.empty() || reduceOp == body->op) && reduceOp != "argmax" &&
         reduceOp != "argmin") {
    reduceOp = body->op;
    for (IndexVar *v : reduceVars[body])
      reduced.push_back(v);
    body = body->operands[0].get();
  }
  bool isArg = reduceOp == "argmax" || reduceOp == "argmin";
  // One mlx.generic over slots + reduced with `combiner`; `finish` turns the
  // body's value into what is yielded.
  using Finish = std::function<Value(Frame &, Value)>;
  auto build = [&](mlir::mlx::Combiner combiner, DType bodyType, DType dtype,
                   const Finish &finish) {
    Frame f;
    f.implicitDims.resize(implicitShape.size());
    llvm::SmallVector<Value> sizes;
    Shape resultShape;
    unsigned dim = 0;
    for (const Slot &slot : slots) {
      SDim range = slot.var ? *slot.var->range : implicitShape[slot.implicit];
      if (slot.var)
        f.varDims[slot.var] = dim;
      else
        f.implicitDims[slot.implicit] = dim;
      sizes.push_back(dimValue(range));
      resultShape.push_back(range);
      ++dim;
    }
    for (IndexVar *var : reduced) {
      f.varDims[var] = dim++;
      SDim range = *var->range;
      sizes.push_back(dimValue(range));
    }
    f.numLoops = dim;
    auto block = std::make_unique<mlir::Block>();
    f.block = block.get();
    f.body = std::make_unique<mlir::OpBuilder>(&mod.ctx);
    f.body->setInsertionPointToStart(f.block);
    Value value = emitElem(*body, f, bodyType);
    if (finish)
      value = finish(f, value);
    f.body->create<mlir::mlx::YieldOp>(loc(e.loc), value);

    llvm::SmallVector<int64_t> shape;
    for (const SDim &d : resultShape)
      shape.push_back(d.constant ? *d.constant : mlir::ShapedType::kDynamic);
    auto resultType = mlir::RankedTensorType::get(shape, scalarType(b, dtype));
    llvm::SmallVector<mlir::Attribute> maps, kinds;
    for (mlir::AffineMap m : f.maps)
      maps.push_back(mlir::AffineMapAttr::get(m));
    for (unsigned d = 0; d < f.numLoops; ++d)
      kinds.push_back(mlir::mlx::IteratorKindAttr::get(
          &mod.ctx, d < slots.size() ? mlir::mlx::IteratorKind::parallel
                                     : mlir::mlx::IteratorKind::reduction));
    auto op = b.create<mlir::mlx::GenericOp>(
        loc(e.loc), resultType, f.operands, sizes, b.getArrayAttr(maps),
        b.getArrayAttr(kinds),
        mlir::mlx::CombinerAttr::get(&mod.ctx, combiner));
    op.getBody().push_back(block.release());
    return TVal{op.getResult(), dtype, resultShape};
  };

  using mlir::mlx::Combiner;
  if (isArg) {
    // The extreme value m, then the smallest index whose value equals m:
    // ties go to the first index.
    DType valueType = resolve(infos.at(body).type);
    bool isFloat = rt::isFloat(valueType);
    TVal extreme = build(reduceOp == "argmax" ? Combiner::max : Combiner::min,
                         valueType, valueType, nullptr);
    TVal index = build(
        Combiner::min, valueType, DType::i32, [&](Frame &f, Value v) -> Value {
          mlir::OpBuilder &bb = *f.body;
          mlir::Location l = loc(e.loc);
          llvm::SmallVector<mlir::AffineExpr> exprs;
          for (unsigned d = 0; d < slots.size(); ++d)
            exprs.push_back(bb.getAffineDimExpr(d));
          Value m = addOperand(f, extreme, exprs, e.loc);
          Value hit;
          if (isFloat) {
            // A NaN is the extreme value (max/min propagate it), as in
            // NumPy: the first NaN's index.
            namespace arith = mlir::arith;
            Value same =
                bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OEQ, v, m);
            Value bothNaN = bb.create<arith::AndIOp>(
                l, bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::UNO, v, v),
                bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::UNO, m, m));
            hit = bb.create<arith::OrIOp>(l, same, bothNaN);
          } else {
            hit = bb.create<mlir::arith::CmpIOp>(
                l, mlir::arith::CmpIPredicate::eq, v, m);
          }
          Value at = bb.create<mlir::mlx::IndexOp>(
              l, bb.getIndexType(), (uint64_t)f.varDims.at(reduced.front()));
          Value at32 =
              bb.create<mlir::arith::IndexCastOp>(l, bb.getI32Type(), at);
          Value none = constant(bb, l, 2147483647.0, DType::i32);
          return bb.create<mlir::arith::SelectOp>(l, hit, at32, none);
        });
    // Only an empty dimension leaves no hit: its arg-max is −1.
    llvm::SmallVector<Value> sizes;
    for (const SDim &d : index.shape)
      sizes.push_back(dimValue(d));
    unsigned rank = index.shape.size();
    auto identity = mlir::AffineMap::getMultiDimIdentityMap(rank, &mod.ctx);
    index.value = b.create<mlir::mlx::GenericOp>(
        loc(e.loc), index.value.getType(), Value{index.value}, sizes,
        llvm::ArrayRef<mlir::AffineMap>{identity}, rank, Combiner::none,
        [&](mlir::OpBuilder &bb, mlir::Location l,
            mlir::ValueRange args) -> Value {
          Value none = constant(bb, l, 2147483647.0, DType::i32);
          Value empty = bb.create<mlir::arith::CmpIOp>(
              l, mlir::arith::CmpIPredicate::eq, args[0], none);
          return bb.create<mlir::arith::SelectOp>(
              l, empty, constant(bb, l, -1, DType::i32), args[0]);
        });
    return index;
  }
  Combiner combiner = Combiner::none;
  if (!reduced.empty())
    combiner = reduceOp == "sum"    ? Combiner::add
               : reduceOp == "prod" ? Combiner::mul
               : reduceOp == "max"  ? Combiner::max
                                    : Combiner::min;
  DType dtype = resolve(infos.at(&e).type, preferred);
  TVal result = build(combiner, dtype, dtype, nullptr);
  EType::Kind kind = infos.at(&e).type.kind;
  result.weak = kind == EType::Concrete ? EType::Concrete : kind;
  return result;
}

Value FunctionGen::materializeLeaf(const Expr &e, Frame &f) {
  std::vector<IndexVar *> vars;
  freeVars(e, vars);
  llvm::sort(vars, [&](IndexVar *a, IndexVar *c) {
    return f.varDims.at(a) < f.varDims.at(c);
  });
  TVal t = materialize(e, vars, std::nullopt);
  llvm::SmallVector<mlir::AffineExpr> exprs;
  for (IndexVar *v : vars)
    exprs.push_back(b.getAffineDimExpr(f.varDims.at(v)));
  for (size_t k = vars.size(); k < t.shape.size(); ++k)
    exprs.push_back(b.getAffineDimExpr(f.implicitDims.at(k - vars.size())));
  return addOperand(f, t, exprs, e.loc);
}

TVal FunctionGen::materialize(const Expr &e,
                              const std::vector<IndexVar *> &vars,
                              std::optional<DType> preferred,
                              std::optional<Shape> implicitShape) {
  const ExprInfo &info = infos.at(&e);
  if (e.kind == Expr::Kind::Call && info.call && !implicitShape)
    return emitCall(e, vars)[0];
  Shape shape = implicitShape ? *implicitShape : info.shape;
  std::vector<Slot> slots;
  for (IndexVar *v : vars)
    slots.push_back(Slot{v, 0});
  for (unsigned k = 0; k < shape.size(); ++k)
    slots.push_back(Slot{nullptr, k});
  return emitGeneric(slots, e, preferred, shape);
}

Value FunctionGen::emitElem(const Expr &e, Frame &f, DType want) {
  namespace arith = mlir::arith;
  namespace math = mlir::math;
  mlir::Location l = loc(e.loc);
  mlir::OpBuilder &bb = *f.body;
  const ExprInfo &info = infos.at(&e);
  bool isFloat = rt::isFloat(want);
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
    return constant(bb, l, e.number, want);
  case Expr::Kind::Inf:
    return constant(bb, l, INFINITY, want);
  case Expr::Kind::Int:
    return constant(bb, l, (double)e.intValue, want);
  case Expr::Kind::Bool:
    return constant(bb, l, e.boolValue ? 1 : 0, DType::boolean);
  case Expr::Kind::Name: {
    if (auto it = indexUses.find(&e); it != indexUses.end()) {
      Value index = bb.create<mlir::mlx::IndexOp>(
          l, bb.getIndexType(), (uint64_t)f.varDims.at(it->second));
      return convert(bb, l, index, info.type, want);
    }
    if (auto it = locals.find(e.name); it != locals.end()) {
      llvm::SmallVector<mlir::AffineExpr> exprs;
      for (size_t k = 0; k < it->second.shape.size(); ++k)
        exprs.push_back(bb.getAffineDimExpr(f.implicitDims.at(k)));
      Value v = addOperand(f, it->second, exprs, e.loc);
      return convert(bb, l, v, info.type, want);
    }
    return convert(bb, l, dimValue(dims[e.name]), info.type, want);
  }
  case Expr::Kind::Subscript: {
    const std::string &name = e.operands[0]->name;
    TVal t = locals.at(name);
    // A constant subscript of a symbolic dim is checked at run time (of a
    // literal dim, analysis checked it).
    for (auto [d, sub] : llvm::enumerate(e.subscripts))
      if (sub && sub->kind == Expr::Kind::Int && !t.shape[d].constant)
        t.value = b.create<mlir::mlx::CheckIndexOp>(loc(sub->loc), t.value,
                                                    (int64_t)d, sub->intValue,
                                                    name, t.shape[d].str());
    llvm::SmallVector<mlir::AffineExpr> exprs;
    unsigned implicit = 0;
    for (auto &sub : e.subscripts) {
      if (!sub)
        exprs.push_back(bb.getAffineDimExpr(f.implicitDims.at(implicit++)));
      else if (sub->kind == Expr::Kind::Int)
        exprs.push_back(bb.getAffineConstantExpr(sub->intValue));
      else
        exprs.push_back(
            bb.getAffineDimExpr(f.varDims.at(indexUses.at(sub.get()))));
    }
    return convert(bb, l, addOperand(f, t, exprs, e.loc), info.type, want);
  }
  case Expr::Kind::Unary: {
    if (e.op == "!") {
      Value x = emitElem(*e.operands[0], f, DType::boolean);
      return bb.create<arith::XOrIOp>(l, x, constant(bb, l, 1, DType::boolean));
    }
    Value x = emitElem(*e.operands[0], f, want);
    if (isFloat)
      return bb.create<arith::NegFOp>(l, x);
    return bb.create<arith::SubIOp>(l, constant(bb, l, 0, want), x);
  }
  case Expr::Kind::Binary: {
    const std::string &op = e.op;
    if (op == "&&" || op == "||") {
      Value x = emitElem(*e.operands[0], f, DType::boolean);
      Value y = emitElem(*e.operands[1], f, DType::boolean);
      return op == "&&" ? bb.create<arith::AndIOp>(l, x, y).getResult()
                        : bb.create<arith::OrIOp>(l, x, y).getResult();
    }
    if (op == "^") {
      const Expr &exponent = *e.operands[1];
      Value x = emitElem(*e.operands[0], f, want);
      if (exponent.kind == Expr::Kind::Int && exponent.intValue <= 64) {
        // x^n by repeated squaring: exact, and differentiates cleanly.
        int64_t n = exponent.intValue;
        Value result = constant(bb, l, 1, want), base = x;
        bool first = true;
        for (; n > 0; n >>= 1) {
          if (n & 1) {
            result =
                first ? base
                : isFloat
                    ? bb.create<arith::MulFOp>(l, result, base).getResult()
                    : bb.create<arith::MulIOp>(l, result, base).getResult();
            first = false;
          }
          if (n > 1)
            base = isFloat
                       ? bb.create<arith::MulFOp>(l, base, base).getResult()
                       : bb.create<arith::MulIOp>(l, base, base).getResult();
        }
        return result;
      }
      if (!isFloat) {
        error(e.loc, "integer powers need a literal exponent");
        return x;
      }
      Value y = emitElem(exponent, f, want);
      return bb.create<math::PowFOp>(l, x, y);
    }
    bool compare = op == "<" || op == "<=" || op == ">" || op == ">=" ||
                   op == "==" || op == "!=";
    if (compare) {
      const ExprInfo &li = infos.at(e.operands[0].get());
      const ExprInfo &ri = infos.at(e.operands[1].get());
      EType joined = li.type.kind == EType::Concrete ? li.type : ri.type;
      if (li.type.kind != EType::Concrete && ri.type.kind != EType::Concrete)
        joined =
            (li.type.kind == EType::LitFloat || ri.type.kind == EType::LitFloat)
                ? EType::lit(EType::LitFloat)
                : EType::lit(EType::Index);
      DType ct = resolve(joined);
      Value x = emitElem(*e.operands[0], f, ct);
      Value y = emitElem(*e.operands[1], f, ct);
      if (rt::isFloat(ct)) {
        auto pred = op == "<"    ? arith::CmpFPredicate::OLT
                    : op == "<=" ? arith::CmpFPredicate::OLE
                    : op == ">"  ? arith::CmpFPredicate::OGT
                    : op == ">=" ? arith::CmpFPredicate::OGE
                    : op == "==" ? arith::CmpFPredicate::OEQ
                                 : arith::CmpFPredicate::UNE;
        return bb.create<arith::CmpFOp>(l, pred, x, y);
      }
      auto pred = op == "<"    ? arith::CmpIPredicate::slt
                  : op == "<=" ? arith::CmpIPredicate::sle
                  : op == ">"  ? arith::CmpIPredicate::sgt
                  : op == ">=" ? arith::CmpIPredicate::sge
                  : op == "==" ? arith::CmpIPredicate::eq
                               : arith::CmpIPredicate::ne;
      return bb.create<arith::CmpIOp>(l, pred, x, y);
    }
    Value x = emitElem(*e.operands[0], f, want);
    Value y = emitElem(*e.operands[1], f, want);
    if (isFloat) {
      if (op == "+")
        return bb.create<arith::AddFOp>(l, x, y);
      if (op == "-")
        return bb.create<arith::SubFOp>(l, x, y);
      if (op == "*")
        return bb.create<arith::MulFOp>(l, x, y);
      return bb.create<arith::DivFOp>(l, x, y);
    }
    if (op == "+")
      return bb.create<arith::AddIOp>(l, x, y);
    if (op == "-")
      return bb.create<arith::SubIOp>(l, x, y);
    if (op == "*")
      return bb.create<arith::MulIOp>(l, x, y);
    // Integer division truncates toward zero; defined everywhere (the same
    // on every backend, never a trap): a / 0 = 0, and MIN / −1 = MIN (wraps).
    mlir::Type t = x.getType();
    unsigned width = t.getIntOrFloatBitWidth();
    auto intConst = [&](const llvm::APInt &v) -> Value {
      return bb.create<arith::ConstantOp>(l, bb.getIntegerAttr(t, v));
    };
    Value zero = intConst(llvm::APInt(width, 0));
    Value one = intConst(llvm::APInt(width, 1));
    auto eq = [&](Value a, Value c) {
      return bb.create<arith::CmpIOp>(l, arith::CmpIPredicate::eq, a, c);
    };
    Value byZero = eq(y, zero);
    Value overflows = bb.create<arith::AndIOp>(
        l, eq(x, intConst(llvm::APInt::getSignedMinValue(width))),
        eq(y, intConst(llvm::APInt::getAllOnes(width))));
    Value safe = bb.create<arith::SelectOp>(
        l, bb.create<arith::OrIOp>(l, byZero, overflows), one, y);
    return bb.create<arith::SelectOp>(l, byZero, zero,
                                      bb.create<arith::DivSIOp>(l, x, safe));
  }
  case Expr::Kind::Select: {
    Value c = emitElem(*e.operands[0], f, DType::boolean);
    Value x = emitElem(*e.operands[1], f, want);
    Value y = emitElem(*e.operands[2], f, want);
    return bb.create<arith::SelectOp>(l, c, x, y);
  }
  case Expr::Kind::Reduce:
    return convert(bb, l, materializeLeaf(e, f), info.type, want);
  case Expr::Kind::Call: {
    const std::string &name = e.name;
    if (info.call)
      return convert(bb, l, materializeLeaf(e, f), info.type, want);
    if (castBuiltins().count(name)) {
      const ExprInfo &arg = infos.at(e.operands[0].get());
      Value x = emitElem(*e.operands[0], f, resolve(arg.type));
      return convert(bb, l, x, arg.type, want);
    }
    if (name == "max" || name == "min") {
      Value x = emitElem(*e.operands[0], f, want);
      Value y = emitElem(*e.operands[1], f, want);
      if (isFloat)
        return name == "max"
                   ? bb.create<arith::MaximumFOp>(l, x, y).getResult()
                   : bb.create<arith::MinimumFOp>(l, x, y).getResult();
      return name == "max" ? bb.create<arith::MaxSIOp>(l, x, y).getResult()
                           : bb.create<arith::MinSIOp>(l, x, y).getResult();
    }
    Value x = emitElem(*e.operands[0], f, want);
    if (name == "exp")
      return bb.create<math::ExpOp>(l, x);
    if (name == "log")
      return bb.create<math::LogOp>(l, x);
    if (name == "sqrt")
      return bb.create<math::SqrtOp>(l, x);
    if (name == "tanh")
      return bb.create<math::TanhOp>(l, x);
    if (name == "erf")
      return bb.create<math::ErfOp>(l, x);
    if (name == "abs")
      return bb.create<math::AbsFOp>(l, x);
    if (name == "sin")
      return bb.create<math::SinOp>(l, x);
    if (name == "cos")
      return bb.create<math::CosOp>(l, x);
    if (name == "stop_gradient")
      return bb.create<mlir::mlx::StopGradientOp>(l, x);
    if (name == "log1p")
      return bb.create<math::Log1pOp>(l, x);
    // sigmoid, softplus and log_sigmoid go through e = e^−|x| ≤ 1, so
    // nothing overflows in the value or the derivative. −|x| is written as
    // the select x ≥ 0 ? −x : x, on the same condition as the branches, so
    // the derivative is each branch's own (smooth) one, also at x = 0:
    // σ'(0) = ¼, softplus'(0) = ½ (with |x| and abs'(0) = 0 it would be 0).
    Value zero = constant(bb, l, 0, want), one = constant(bb, l, 1, want);
    Value nonNegative =
        bb.create<arith::CmpFOp>(l, arith::CmpFPredicate::OGE, x, zero);
    Value negAbs = bb.create<arith::SelectOp>(
        l, nonNegative, bb.create<arith::NegFOp>(l, x), x);
    Value e = bb.create<math::ExpOp>(l, negAbs);
    if (name == "sigmoid") {
      // σ(x) = 1/(1 + e^−x) for x ≥ 0, e^x/(1 + e^x) otherwise
      Value denom = bb.create<arith::AddFOp>(l, one, e);
      return bb.create<arith::SelectOp>(l, nonNegative,
                                        bb.create<arith::DivFOp>(l, one, denom),
                                        bb.create<arith::DivFOp>(l, e, denom));
    }
    // softplus(x) = log(1 + e^x) = max(x, 0) + log(1 + e^−|x|);
    // log σ(x) = −softplus(−x) = min(x, 0) − log(1 + e^−|x|)
    Value tail = bb.create<math::Log1pOp>(l, e);
    if (name == "softplus")
      return bb.create<arith::AddFOp>(
          l, bb.create<arith::SelectOp>(l, nonNegative, x, zero), tail);
    assert(name == "log_sigmoid" && "unknown unary builtin");
    return bb.create<arith::SubFOp>(
        l, bb.create<arith::SelectOp>(l, nonNegative, zero, x), tail);
  }
  }
  llvm_unreachable("unknown expression kind");
}

TVal FunctionGen::castTo(const TVal &v, mlir::Type type) {
  if (v.value.getType() == type)
    return v;
  TVal out = v;
  out.value = b.create<mlir::tensor::CastOp>(v.value.getLoc(), type, v.value);
  return out;
}

static mlir::RankedTensorType tensorType(mlir::OpBuilder &b, const Shape &shape,
                                         DType dtype) {
  llvm::SmallVector<int64_t> dims;
  for (const SDim &d : shape)
    dims.push_back(d.constant ? *d.constant : mlir::ShapedType::kDynamic);
  return mlir::RankedTensorType::get(dims, scalarType(b, dtype));
}

std::vector<TVal> FunctionGen::emitCall(const Expr &e,
                                        const std::vector<IndexVar *> &vars) {
  const CallInfo &ci = *infos.at(&e).call;
  const Function &callee = *ci.callee;
  mlir::Location l = loc(e.loc);
  auto paramType = [&](DType d) { return rt::instanceDType(d, ci.floatType); };
  Shape mapped;
  for (IndexVar *v : vars)
    mapped.push_back(*v->range);

  auto callWith = [&](mlir::func::FuncOp target, llvm::ArrayRef<TVal> args,
                      const std::vector<Shape> &resultShapes) {
    llvm::SmallVector<Value> values;
    for (auto [k, a] : llvm::enumerate(args))
      values.push_back(castTo(a, target.getFunctionType().getInput(k)).value);
    auto call = b.create<mlir::func::CallOp>(l, target, values);
    std::vector<TVal> results;
    for (auto [k, r] : llvm::enumerate(call.getResults())) {
      TVal t{r, ci.resultTypes[k], resultShapes[k]};
      results.push_back(castTo(t, tensorType(b, t.shape, t.dtype)));
    }
    return results;
  };
  // mlx.grad: results are shaped like the callee's results (with_value) and
  // like the differentiated arguments.
  auto gradWith = [&](mlir::func::FuncOp target, std::vector<TVal> args) {
    llvm::SmallVector<Value> values;
    for (auto [k, a] : llvm::enumerate(args))
      values.push_back(castTo(a, target.getFunctionType().getInput(k)).value);
    llvm::SmallVector<mlir::Type> types;
    if (ci.withValue)
      llvm::append_range(types, target.getFunctionType().getResults());
    for (int64_t k : ci.wrt)
      types.push_back(target.getFunctionType().getInput(k));
    auto grad = b.create<mlir::mlx::GradOp>(l, types, target.getName(), values,
                                            b.getDenseI64ArrayAttr(ci.wrt),
                                            ci.withValue);
    std::vector<TVal> results;
    for (auto [k, r] : llvm::enumerate(grad.getResults())) {
      TVal t{r, ci.resultTypes[k], ci.resultShapes[k]};
      results.push_back(castTo(t, tensorType(b, t.shape, t.dtype)));
    }
    return results;
  };

  if (ci.isGrad && !vars.empty() && callee.isShapePolymorphic()) {
    error(e.loc, "a gradient of a function of '[...]' parameters cannot be "
                 "mapped over indices yet");
    return std::vector<TVal>(ci.resultShapes.size(), TVal{});
  }
  if (callee.isShapePolymorphic()) {
    // Element-wise over `[...]`: call the instance whose rank covers both the
    // mapped indices and the element shape.
    Shape full = mapped;
    full.insert(full.end(), ci.anyShape->begin(), ci.anyShape->end());
    auto target = mod.getOrDeclare(callee, (int64_t)full.size(), ci.floatType);
    std::vector<TVal> args;
    for (auto [k, p] : llvm::enumerate(callee.params)) {
      const Expr &arg = *callArgs(e)[k];
      if (p.type.isAnyShape())
        args.push_back(vars.empty() && arg.kind == Expr::Kind::Name &&
                               locals.count(arg.name) &&
                               sameShape(locals[arg.name].shape, full)
                           ? locals[arg.name]
                           : materialize(arg, vars, paramType(p.type.dtype),
                                         *ci.anyShape));
      else
        args.push_back(emitWhole(arg, paramType(p.type.dtype)));
    }
    if (ci.isGrad)
      return gradWith(target, args);
    std::vector<Shape> shapes;
    for (auto [k, t] : llvm::enumerate(callee.results))
      shapes.push_back(t.isAnyShape() ? full : ci.resultShapes[k]);
    return callWith(target, args, shapes);
  }

  auto target = mod.getOrDeclare(callee, 0, ci.floatType);
  if (vars.empty()) {
    std::vector<TVal> args;
    for (auto [k, p] : llvm::enumerate(callee.params))
      args.push_back(emitWhole(*callArgs(e)[k], paramType(p.type.dtype)));
    if (ci.isGrad)
      return gradWith(target, args);
    return callWith(target, args, ci.resultShapes);
  }

  // Mapped over `vars`: mlx.map_call on slices of the arguments (of a
  // function computing the gradient, for grad(f, x)(...)).
  if (ci.resultShapes.size() != 1) {
    error(e.loc, "a function with several results cannot be mapped over "
                 "indices yet");
    return std::vector<TVal>(ci.resultShapes.size(), TVal{});
  }
  if (ci.isGrad)
    target = mod.getOrCreateGradFunction(target, ci.wrt);
  llvm::SmallVector<Value> args, sizes;
  llvm::SmallVector<mlir::Attribute> slices;
  for (auto [k, p] : llvm::enumerate(callee.params)) {
    const Expr &arg = *callArgs(e)[k];
    std::vector<IndexVar *> argVars;
    freeVars(arg, argVars);
    llvm::SmallVector<int64_t> spec;
    auto position = [&](IndexVar *v) {
      return (int64_t)(llvm::find(vars, v) - vars.begin());
    };
    bool direct = arg.kind == Expr::Kind::Subscript &&
                  llvm::all_of(arg.subscripts, [&](auto &sub) {
                    return !sub || (sub->kind == Expr::Kind::Name &&
                                    indexUses.count(sub.get()));
                  });
    if (argVars.empty()) {
      TVal t = emitWhole(arg, paramType(p.type.dtype));
      spec.assign(t.shape.size(), -1);
      args.push_back(t.value);
    } else if (direct) {
      for (auto &sub : arg.subscripts)
        spec.push_back(sub ? position(indexUses.at(sub.get())) : -1);
      args.push_back(locals.at(arg.operands[0]->name).value);
    } else {
      llvm::sort(argVars, [&](IndexVar *a, IndexVar *c) {
        return position(a) < position(c);
      });
      TVal t = materialize(arg, argVars, paramType(p.type.dtype));
      for (IndexVar *v : argVars)
        spec.push_back(position(v));
      spec.append(t.shape.size() - argVars.size(), -1);
      args.push_back(t.value);
    }
    slices.push_back(b.getDenseI64ArrayAttr(spec));
  }
  Shape full = mapped;
  full.insert(full.end(), ci.resultShapes[0].begin(), ci.resultShapes[0].end());
  for (SDim d : full)
    sizes.push_back(dimValue(d));
  auto op = b.create<mlir::mlx::MapCallOp>(
      l, tensorType(b, full, ci.resultTypes[0]),
      mlir::FlatSymbolRefAttr::get(&mod.ctx, target.getName()), args, sizes,
      b.getArrayAttr(slices), b.getI64IntegerAttr((int64_t)vars.size()));
  (void)target;
  return {TVal{op.getResult(), ci.resultTypes[0], full}};
}

TVal FunctionGen::emitWhole(const Expr &e, std::optional<DType> preferred) {
  const ExprInfo &info = infos.at(&e);
  if (e.kind == Expr::Kind::Name && locals.count(e.name) &&
      !indexUses.count(&e)) {
    const TVal &v = locals[e.name];
    if (v.weak == EType::Concrete || !preferred || v.dtype == *preferred)
      return v;
  }
  if (e.kind == Expr::Kind::Call && info.call)
    return emitCall(e, {})[0];
  return materialize(e, {}, preferred);
}

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

void FunctionGen::emitStmt(const Stmt &s) {
  Scope scope;
  switch (s.kind) {
  case Stmt::Kind::Return:
    emitReturn(s);
    return;
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
    std::vector<TVal> results = emitCall(value, {});
    for (auto [name, v] : llvm::zip(s.targets, results))
      locals[name] = v;
    return;
  }
  case Stmt::Kind::Def:
    if (s.hasIndices) {
      emitIndexedDef(s);
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
    locals[s.targets[0]] = emitWhole(*s.values[0], std::nullopt);
    return;
  }
}

void FunctionGen::emitIndexedDef(const Stmt &s) {
  Scope scope;
  std::vector<Slot> slots;
  unsigned colons = 0;
  for (auto [index, at] : llvm::zip(s.lhsIndices, s.lhsIndexLocs)) {
    if (!index) {
      slots.push_back(Slot{nullptr, colons++});
      continue;
    }
    if (lookupIndex(*index, scope)) {
      error(at, "index '" + *index + "' appears twice on the left-hand side");
      return;
    }
    indexVars.push_back(IndexVar{*index, at, std::nullopt, {}});
    scope.push_back(&indexVars.back());
    slots.push_back(Slot{&indexVars.back(), 0});
  }
  const Expr &value = *s.values[0];
  const ExprInfo &info = analyze(value, scope);
  if (!info.ok)
    return;
  for (IndexVar *var : scope)
    if (!var->range) {
      error(var->loc, "index '" + var->name +
                          "' on the left-hand side is never used to subscript "
                          "a tensor on the right, so its range is unknown");
      return;
    }
  if (info.call && info.call->resultShapes.size() != 1) {
    error(s.values[0]->loc,
          "'" + info.call->callee->name + "' returns several values");
    return;
  }
  if (colons != info.shape.size()) {
    error(s.loc, "the left-hand side has " + std::to_string(colons) +
                     " ':' but the right-hand side has shape " +
                     shapeStr(info.shape));
    return;
  }
  // A mapped call whose result already has the left-hand side's layout
  // (indices first, then ':') needs no copy.
  std::vector<IndexVar *> used;
  freeVars(value, used);
  bool indicesFirst = true;
  for (size_t k = 0; k < slots.size(); ++k)
    indicesFirst &= (k < scope.size()) == (slots[k].var != nullptr);
  if (info.call && indicesFirst && used.size() == scope.size()) {
    locals[s.targets[0]] =
        emitCall(value, std::vector<IndexVar *>(scope.begin(), scope.end()))[0];
    return;
  }
  locals[s.targets[0]] = emitGeneric(slots, value, std::nullopt, info.shape);
}

void FunctionGen::emitReturn(const Stmt &s) {
  Scope scope;
  std::vector<TVal> values;
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
    values = emitCall(*s.values[0], {});
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
      values.push_back(emitWhole(*v, declared(fn.results[k].dtype)));
    }
  }
  llvm::SmallVector<Value> results;
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
    results.push_back(castTo(v, func.getFunctionType().getResult(k)).value);
  }
  b.create<mlir::func::ReturnOp>(loc(s.loc), results);
  returned = true;
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

mlir::OwningOpRef<mlir::ModuleOp>
mlx::generateModule(mlir::MLIRContext &ctx,
                    const std::map<std::string, const Function *> &functions,
                    const std::vector<ExportRequest> &exports) {
  ctx.loadDialect<mlir::mlx::MlxDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::math::MathDialect,
                  mlir::tensor::TensorDialect>();
  return ModuleGen(ctx, functions).run(exports);
}

rt::Signature mlx::signatureOf(const Function &fn, int64_t anyShapeRank,
                               DType floatType) {
  auto declared = [&](DType d) { return rt::instanceDType(d, floatType); };
  rt::Signature sig;
  sig.name = instanceName(fn, anyShapeRank, floatType);
  for (const Param &p : fn.params) {
    rt::ParamSpec spec;
    spec.name = p.name;
    spec.dtype = declared(p.type.dtype);
    if (p.type.isAnyShape())
      for (int64_t d = 0; d < anyShapeRank; ++d)
        spec.dims.push_back({-1, "..." + std::to_string(d)});
    else
      for (auto &d : p.type.dims)
        spec.dims.push_back(d->kind == DimExpr::Kind::Int
                                ? rt::DimSpec{d->value, ""}
                                : rt::DimSpec{-1, d->name});
    sig.params.push_back(spec);
  }
  for (const TypeSpec &t : fn.results) {
    rt::ResultSpec r;
    r.dtype = declared(t.dtype);
    r.rank = t.isAnyShape() ? anyShapeRank : (int64_t)t.dims.size();
    sig.results.push_back(r);
  }
  return sig;
}
