//===- MLIRGen.cpp - checked AST → mlx dialect ------------------*- C++ -*-===//
//
// One FunctionGen per function instance, generating from what Sema checked
// (names resolved, index ranges inferred, dtypes and shapes computed; no
// errors are left to find here):
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
#include "dialects/mlx/Adjoints.h"
#include "dialects/mlx/MlxDialect.h"
#include "frontend/Random.h"
#include "frontend/Sema.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

#include <cmath>
#include <deque>
#include <functional>

using namespace mlx;
using namespace mlx::ast;
using mlir::Value;

mlir::Location mlx::toLocation(mlir::MLIRContext &ctx, const Loc &loc) {
  if (!loc.file)
    return mlir::UnknownLoc::get(&ctx);
  return mlir::FileLineColLoc::get(&ctx, *loc.file, loc.line, loc.col);
}

namespace {

/// A value of the function being generated.
struct TVal {
  Value value;
  DType dtype = DType::f32;
  Shape shape;
  /// A value computed from literals and indices only is weakly typed (as in
  /// JAX): it converts to the dtype its use asks for.
  EType::Kind weak = EType::Concrete;
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

/// The tensor type of a value of `shape` and `dtype` (symbolic dims dynamic).
static mlir::RankedTensorType tensorType(mlir::OpBuilder &b, const Shape &shape,
                                         DType dtype) {
  llvm::SmallVector<int64_t> dims;
  for (const SDim &d : shape)
    dims.push_back(d.constant ? *d.constant : mlir::ShapedType::kDynamic);
  return mlir::RankedTensorType::get(dims, scalarType(b, dtype));
}

/// The type of `tensor` without dimension `dim`.
static mlir::RankedTensorType withoutDim(Value tensor, int64_t dim) {
  auto type = mlir::cast<mlir::RankedTensorType>(tensor.getType());
  llvm::SmallVector<int64_t> shape(type.getShape());
  shape.erase(shape.begin() + dim);
  return mlir::RankedTensorType::get(shape, type.getElementType());
}

//===----------------------------------------------------------------------===//
// Module-level state
//===----------------------------------------------------------------------===//

class ModuleGen;

/// Generates one checked function instance; reports nothing (every user
/// error was found by Sema).
class FunctionGen {
public:
  FunctionGen(ModuleGen &mod, const CheckedFunction &checked,
              mlir::func::FuncOp func, bool trace = false);
  void generate();

private:
  mlir::Location loc(const Loc &l);
  Value dimValue(const SDim &dim);

  struct Frame;
  TVal emitGeneric(const std::vector<Slot> &slots, const Expr &e,
                   std::optional<DType> preferred, const Shape &implicitShape);
  Value emitElem(const Expr &e, Frame &frame, DType want);
  Value addOperand(Frame &frame, const TVal &tensor,
                   llvm::ArrayRef<mlir::AffineExpr> exprs, const Loc &at);
  Value materializeLeaf(const Expr &e, Frame &frame);
  Value emitGather(const Expr &e, const TVal &t, Frame &frame);
  /// A computed subscript that no index value can take out of [0, size):
  /// a sum of indices and sizes times constants (`i + 2 * H` into a dim
  /// of 4 * H, i < H), so its gather needs no run-time check.
  bool provablyInRange(const Expr &sub, const SDim &size) const;
  /// The least and greatest value of such a sum over its indices' ranges,
  /// adding to `nonEmpty` each range symbol that must be ≥ 1 for a read to
  /// happen at all; nullopt for any other expression.
  std::optional<std::pair<SDim, SDim>>
  subscriptBounds(const Expr &e, std::vector<std::string> &nonEmpty) const;
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

  void emitStmt(const Stmt &s);
  void emitIndexedDef(const Stmt &s);
  void emitUpdate(const Stmt &s, const StmtInfo &stmt);
  void emitFor(const Stmt &s);
  /// An integer scalar expression (a position, a loop bound) as an index.
  Value emitIndex(const Expr &e);
  void emitReturn(const Stmt &s);
  /// Sema's type for a named value is what generation made.
  void define(const std::string &name, TVal value);

  DType resolve(EType t, std::optional<DType> preferred = std::nullopt) const {
    return checked.resolve(t, preferred);
  }
  void freeVars(const Expr &e, std::vector<IndexVar *> &out) const {
    checked.freeVars(e, out);
  }

  ModuleGen &mod;
  const CheckedFunction &checked;
  const Function &fn;
  mlir::func::FuncOp func;
  /// A trace instance (`mlxc trace`) also returns the value each top-level
  /// statement defines, in source order: (name, line, value).
  bool trace;
  std::vector<std::tuple<std::string, int64_t, TVal>> traced;
  mlir::OpBuilder b;
  std::map<std::string, TVal> locals;
  const std::map<std::string, SDim> &dims;
  /// The run-time sizes of the dimension symbols (tensor.dim at entry).
  std::map<std::string, Value> dimValues;
  const std::map<const Expr *, ExprInfo> &infos;
  const std::map<const Expr *, IndexVar *> &indexUses;
  const std::map<const Expr *, std::vector<IndexVar *>> &reduceVars;
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
      auto func = getOrDeclare(*r.function, r.anyShapeRank, r.floatType,
                               r.statics, r.trace);
      if (!r.wrt.empty()) {
        exportGradient(func, r.wrt, exportName(r));
        continue;
      }
      func.setPublic();
      func->setAttr("llvm.emit_c_interface", builder.getUnitAttr());
    }
    while (!pending.empty()) {
      auto [fn, rank, floatType, statics, func, trace] = pending.front();
      pending.pop_front();
      std::unique_ptr<CheckedFunction> checked =
          Sema(ctx, functions).check(*fn, rank, floatType, statics);
      // The instances it calls are checked too, also after its errors.
      for (const CalleeInstance &c : checked->callees)
        getOrDeclare(*c.function, c.anyShapeRank, c.floatType, c.statics);
      if (checked->ok)
        FunctionGen(*this, *checked, func, trace).generate();
      else
        func.setPrivate(); // a declaration; the module is dropped
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

  /// The func.func of an instance, declared now and generated later.
  mlir::func::FuncOp getOrDeclare(const Function &fn, int64_t rank,
                                  DType floatType, const StaticValues &statics,
                                  bool trace = false) {
    std::string name =
        instanceName(fn, rank, floatType, statics) + (trace ? "_trace" : "");
    if (auto existing = module->lookupSymbol<mlir::func::FuncOp>(name))
      return existing;
    mlir::OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPointToEnd(module->getBody());
    llvm::SmallVector<mlir::Type> inputs, results;
    for (const Param &p : fn.params)
      inputs.push_back(tensorTypeOf(p.type, rank, floatType, statics));
    for (const TypeSpec &t : fn.results)
      results.push_back(tensorTypeOf(t, rank, floatType, statics));
    auto func = builder.create<mlir::func::FuncOp>(
        toLocation(ctx, fn.loc), name,
        builder.getFunctionType(inputs, results));
    func.setPrivate();
    pending.push_back({&fn, rank, floatType, statics, func, trace});
    return func;
  }

  /// The tensor type of a parameter or result: literal dims (and those
  /// of static parameters) static, the others dynamic.
  mlir::RankedTensorType tensorTypeOf(const TypeSpec &t, int64_t rank,
                                      DType floatType,
                                      const StaticValues &statics) {
    llvm::SmallVector<int64_t> shape;
    if (t.isAnyShape())
      shape.assign(rank, mlir::ShapedType::kDynamic);
    else
      for (auto &d : t.dims) {
        std::string ignored;
        std::optional<int64_t> size = evaluateDim(
            *d,
            [&](const std::string &name) -> std::optional<int64_t> {
              auto it = statics.find(name);
              if (it == statics.end())
                return std::nullopt;
              return it->second;
            },
            ignored);
        shape.push_back(size && *size >= 0 ? *size
                                           : mlir::ShapedType::kDynamic);
      }
    DType dtype = rt::instanceDType(t.dtype, floatType);
    return mlir::RankedTensorType::get(shape, scalarType(builder, dtype));
  }

  mlir::MLIRContext &ctx;
  const std::map<std::string, const Function *> &functions;
  mlir::OpBuilder builder;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::deque<std::tuple<const Function *, int64_t, DType, StaticValues,
                        mlir::func::FuncOp, bool>>
      pending;
  unsigned errors = 0;
};

//===----------------------------------------------------------------------===//
// FunctionGen: set-up and diagnostics
//===----------------------------------------------------------------------===//

FunctionGen::FunctionGen(ModuleGen &mod, const CheckedFunction &checked,
                         mlir::func::FuncOp func, bool trace)
    : mod(mod), checked(checked), fn(*checked.fn), func(func), trace(trace),
      b(&mod.ctx), dims(checked.dims), infos(checked.infos),
      indexUses(checked.indexUses), reduceVars(checked.reduceVars) {}

mlir::Location FunctionGen::loc(const Loc &l) { return toLocation(mod.ctx, l); }

Value FunctionGen::dimValue(const SDim &dim) {
  mlir::Location l = func.getLoc();
  if (dim.constant)
    return b.create<mlir::arith::ConstantIndexOp>(l, *dim.constant);
  if (auto it = dimValues.find(dim.symbol); it != dimValues.end())
    return it->second;
  assert(dim.isArith() && "dimension without a runtime value");
  // Arithmetic of sizes (H + M, N / block): computed where it is needed.
  Value x = dimValue(*dim.lhs), y = dimValue(*dim.rhs);
  switch (dim.op) {
  case '+':
    return b.create<mlir::arith::AddIOp>(l, x, y);
  case '-':
    return b.create<mlir::arith::SubIOp>(l, x, y);
  case '*':
    return b.create<mlir::arith::MulIOp>(l, x, y);
  default:
    return b.create<mlir::arith::DivSIOp>(l, x, y); // sizes: floor = trunc
  }
}

void FunctionGen::generate() {
  mlir::Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  // Each dimension symbol's size: tensor.dim of its first parameter.
  for (auto [k, p] : llvm::enumerate(fn.params)) {
    Value arg = entry->getArgument(k);
    const Shape &shape = checked.paramShapes[k];
    for (auto [d, dim] : llvm::enumerate(shape))
      if (!dim.constant && !dimValues.count(dim.symbol))
        dimValues[dim.symbol] =
            b.create<mlir::tensor::DimOp>(loc(p.loc), arg, d);
    // A static parameter is a dim of known size, not a value.
    if (!p.isStatic)
      locals[p.name] = TVal{arg, checked.declared(p.type.dtype), shape};
  }
  for (const Stmt &s : fn.body) {
    emitStmt(s);
    if (!trace || s.kind == Stmt::Kind::Return || s.kind == Stmt::Kind::Check)
      continue;
    // For a loop, the states it leaves (its carried values), else the
    // names the statement defines.
    std::vector<std::string> names;
    if (s.kind == Stmt::Kind::For)
      for (const auto &[name, t] : checked.loops.at(&s).carried)
        names.push_back(name);
    else
      names = s.targets;
    for (const std::string &name : names)
      traced.push_back({name, (int64_t)s.loc.line, locals.at(name)});
  }
}

void FunctionGen::define(const std::string &name, TVal value) {
  assert(checked.locals.count(name) == 0 ||
         (checked.locals.at(name).dtype == value.dtype &&
          sameShape(checked.locals.at(name).shape, value.shape)) ||
         !"Sema's type of a value differs from the generated one");
  locals[name] = std::move(value);
}

//===----------------------------------------------------------------------===//
// Emission of expressions
//===----------------------------------------------------------------------===//

/// The mlx.generic being built: its iteration dims and its detached body.
struct FunctionGen::Frame {
  std::map<IndexVar *, unsigned> varDims;
  std::vector<unsigned> implicitDims;
  unsigned numLoops = 0;
  /// The loops of the result's dims (the first ones; reductions follow).
  unsigned numResultDims = 0;
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
    for (IndexVar *v : reduceVars.at(body))
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
    f.numResultDims = slots.size();
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
  return emitGeneric(slotsOver(vars, shape.size()), e, preferred, shape);
}

/// Integer division truncating toward zero, defined everywhere (the same on
/// every backend, never a trap): a / 0 = 0, and MIN / −1 = MIN (wraps).
static Value truncatingDivide(mlir::OpBuilder &bb, mlir::Location l, Value x,
                              Value y) {
  namespace arith = mlir::arith;
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

std::optional<std::pair<SDim, SDim>>
FunctionGen::subscriptBounds(const Expr &e,
                             std::vector<std::string> &nonEmpty) const {
  using Bounds = std::pair<SDim, SDim>;
  auto arith = [](char op, const SDim &a, const SDim &b) {
    return SDim::arith(op, a, b);
  };
  switch (e.kind) {
  case Expr::Kind::Int:
    return Bounds{SDim::of(e.intValue), SDim::of(e.intValue)};
  case Expr::Kind::Name: {
    if (auto it = indexUses.find(&e); it != indexUses.end()) {
      const std::optional<SDim> &range = it->second->range;
      if (!range)
        return std::nullopt;
      if (!range->constant && !range->isArith())
        nonEmpty.push_back(range->symbol);
      std::optional<SDim> last = arith('-', *range, SDim::of(1));
      if (!last)
        return std::nullopt;
      return Bounds{SDim::of(0), *last};
    }
    auto it = dims.find(e.name);
    if (locals.count(e.name) || it == dims.end())
      return std::nullopt;
    return Bounds{it->second, it->second};
  }
  case Expr::Kind::Unary: {
    if (e.op != "-")
      return std::nullopt;
    auto x = subscriptBounds(*e.operands[0], nonEmpty);
    if (!x)
      return std::nullopt;
    auto lo = arith('-', SDim::of(0), x->second),
         hi = arith('-', SDim::of(0), x->first);
    if (!lo || !hi)
      return std::nullopt;
    return Bounds{*lo, *hi};
  }
  case Expr::Kind::Binary: {
    if (e.op != "+" && e.op != "-" && e.op != "*")
      return std::nullopt;
    auto a = subscriptBounds(*e.operands[0], nonEmpty);
    auto b = subscriptBounds(*e.operands[1], nonEmpty);
    if (!a || !b)
      return std::nullopt;
    std::optional<SDim> lo, hi;
    if (e.op == "+") {
      lo = arith('+', a->first, b->first);
      hi = arith('+', a->second, b->second);
    } else if (e.op == "-") {
      lo = arith('-', a->first, b->second);
      hi = arith('-', a->second, b->first);
    } else {
      // A constant factor (of either side) scales, flipping when negative.
      const Bounds *k = &*a, *x = &*b;
      if (!k->first.constant || !k->second.constant)
        std::swap(k, x);
      if (!k->first.constant || !k->second.constant ||
          *k->first.constant != *k->second.constant)
        return std::nullopt;
      lo = arith('*', k->first, x->first);
      hi = arith('*', k->first, x->second);
      if (*k->first.constant < 0)
        std::swap(lo, hi);
    }
    if (!lo || !hi)
      return std::nullopt;
    return Bounds{*lo, *hi};
  }
  default:
    return std::nullopt;
  }
}

bool FunctionGen::provablyInRange(const Expr &sub, const SDim &size) const {
  std::vector<std::string> nonEmpty;
  auto bounds = subscriptBounds(sub, nonEmpty);
  std::optional<SDim> last = SDim::arith('-', size, SDim::of(1));
  return bounds && last &&
         SDim::of(0).provablyAtMost(bounds->first, nonEmpty) &&
         bounds->second.provablyAtMost(*last, nonEmpty);
}

/// `z[t, c[t]]`: an mlx.gather over the indices the subscripts use (the
/// gather space), the computed subscripts materialized over that space (as
/// i64), read back as an operand at those indices and the ':' dims.
/// Positions by value were taken from `t` already.
Value FunctionGen::emitGather(const Expr &e, const TVal &t, Frame &f) {
  mlir::Location l = loc(e.loc);
  const std::string &name = e.operands[0]->name;
  std::vector<IndexVar *> space;
  freeVars(e, space);
  // The summed indices outermost, the result's innermost (each in order of
  // first use): a convolution's patches are P[c, u, v, y, x], contiguous
  // along the output's x, where first use gave P[c, y, u, x, v] (its
  // gradient dP then walked x at stride 3, the sum over o innermost).
  auto isResultDim = [&](IndexVar *v) {
    auto it = f.varDims.find(v);
    return it != f.varDims.end() && it->second < f.numResultDims;
  };
  std::stable_partition(space.begin(), space.end(),
                        [&](IndexVar *v) { return !isResultDim(v); });
  Shape shape;
  llvm::SmallVector<Value> spaceSizes;
  for (IndexVar *v : space) {
    shape.push_back(*v->range);
    spaceSizes.push_back(dimValue(*v->range));
  }
  auto i64Space = tensorType(b, shape, DType::i64);
  llvm::SmallVector<Value> indices;
  llvm::SmallVector<int64_t> dims;
  llvm::SmallVector<mlir::Attribute> sizeNames;
  llvm::SmallVector<bool> inRange;
  llvm::SmallVector<mlir::AffineExpr> exprs;
  for (IndexVar *v : space)
    exprs.push_back(b.getAffineDimExpr(f.varDims.at(v)));
  unsigned implicit = 0;
  for (auto [d, sub] : llvm::enumerate(e.subscripts)) {
    if (!sub) {
      dims.push_back(-2);
      shape.push_back(t.shape[d]);
      exprs.push_back(b.getAffineDimExpr(f.implicitDims.at(implicit++)));
      continue;
    }
    if (auto it = indexUses.find(sub.get()); it != indexUses.end()) {
      dims.push_back(llvm::find(space, it->second) - space.begin());
      continue;
    }
    std::vector<IndexVar *> vars;
    if (sub->kind != Expr::Kind::Int)
      freeVars(*sub, vars);
    if (sub->kind != Expr::Kind::Int && vars.empty())
      continue; // taken by value already
    dims.push_back(-1);
    sizeNames.push_back(b.getStringAttr(t.shape[d].str()));
    inRange.push_back(provablyInRange(*sub, t.shape[d]));
    if (sub->kind == Expr::Kind::Int) {
      int64_t value = sub->intValue;
      indices.push_back(b.create<mlir::mlx::GenericOp>(
          l, i64Space, mlir::ValueRange{}, spaceSizes,
          llvm::ArrayRef<mlir::AffineMap>{}, space.size(),
          mlir::mlx::Combiner::none,
          [&](mlir::OpBuilder &bb, mlir::Location ll, mlir::ValueRange) {
            return constant(bb, ll, (double)value, DType::i64);
          }));
      continue;
    }
    TVal index = materialize(*sub, space, DType::i64);
    indices.push_back(castTo(index, tensorType(b, shape, index.dtype)).value);
  }
  auto gathered = b.create<mlir::mlx::GatherOp>(
      l, tensorType(b, shape, t.dtype), t.value, indices, dims, name,
      b.getArrayAttr(sizeNames),
      llvm::is_contained(inRange, true) ? b.getDenseBoolArrayAttr(inRange)
                                        : nullptr);
  return addOperand(f, TVal{gathered, t.dtype, shape}, exprs, e.loc);
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
    // (Sema rejected finite literals beyond the range of `want`.)
    return constant(bb, l, e.number, want);
  case Expr::Kind::Inf:
    return constant(bb, l, INFINITY, want);
  case Expr::Kind::Int:
    if (!isFloat && want != DType::boolean) // exactly, also beyond 2^53
      return bb.create<mlir::arith::ConstantOp>(
          l, bb.getIntegerAttr(scalarType(bb, want), e.intValue));
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
    return convert(bb, l, dimValue(dims.at(e.name)), info.type, want);
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
    // A position computed from values selects a slice first (last dim
    // first, so the others keep their numbers); a subscript computed from
    // indices makes the read a gather.
    auto byValue = [&](const std::unique_ptr<Expr> &sub) {
      std::vector<IndexVar *> vars;
      if (sub && sub->kind != Expr::Kind::Int && !indexUses.count(sub.get()))
        freeVars(*sub, vars);
      return sub && sub->kind != Expr::Kind::Int &&
             !indexUses.count(sub.get()) && vars.empty();
    };
    auto gathered = [&](const std::unique_ptr<Expr> &sub) {
      return sub && sub->kind != Expr::Kind::Int &&
             !indexUses.count(sub.get()) && !byValue(sub);
    };
    for (int64_t d = (int64_t)e.subscripts.size() - 1; d >= 0; --d)
      if (byValue(e.subscripts[d])) {
        const Expr &sub = *e.subscripts[d];
        t.value = b.create<mlir::mlx::TakeOp>(
            loc(sub.loc), withoutDim(t.value, d), t.value, emitIndex(sub), d,
            name, t.shape[d].str());
      }
    if (llvm::any_of(e.subscripts, gathered))
      return convert(bb, l, emitGather(e, t, f), info.type, want);
    llvm::SmallVector<mlir::AffineExpr> exprs;
    unsigned implicit = 0;
    for (auto &sub : e.subscripts) {
      if (byValue(sub))
        continue;
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
      assert(isFloat && "Sema allows integer powers of literals only");
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
    if (op == "%") {
      // The integer remainder, in integers also where a float is wanted:
      // a % b = a − (a / b)·b, the sign of a (as C), a % 0 = a.
      DType it = isFloat ? DType::i64 : want;
      Value x = emitElem(*e.operands[0], f, it);
      Value y = emitElem(*e.operands[1], f, it);
      Value q = truncatingDivide(bb, l, x, y);
      Value r =
          bb.create<arith::SubIOp>(l, x, bb.create<arith::MulIOp>(l, q, y));
      return convert(bb, l, r, EType::of(it), want);
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
    return truncatingDivide(bb, l, x, y);
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
    if (name == "one_hot") {
      // Element (…, k): the class at (…) equals k. The classes' dims are the
      // enclosing op's first implicit dims, k the next one.
      Value c = emitElem(*e.operands[0], f, DType::i64);
      Value k = bb.create<mlir::mlx::IndexOp>(
          l, bb.getIndexType(),
          (uint64_t)f.implicitDims.at(info.shape.size() - 1));
      Value hit = bb.create<arith::CmpIOp>(
          l, arith::CmpIPredicate::eq, c,
          bb.create<arith::IndexCastOp>(l, bb.getI64Type(), k));
      DType dtype = info.type.dtype;
      Value value = bb.create<arith::SelectOp>(
          l, hit, constant(bb, l, 1, dtype), constant(bb, l, 0, dtype));
      return convert(bb, l, value, info.type, want);
    }
    if (isRandomBuiltin(name)) {
      // Element (i₀, …) of the call's shape, which is the enclosing op's
      // implicit dims: its row-major linear index is Philox's counter.
      Value seed = emitElem(*e.operands[0], f, DType::i64);
      Value linear = bb.create<mlir::arith::ConstantIndexOp>(l, 0);
      for (auto [k, dim] : llvm::enumerate(info.shape)) {
        Value at = bb.create<mlir::mlx::IndexOp>(
            l, bb.getIndexType(), (uint64_t)f.implicitDims.at(k));
        linear = bb.create<arith::AddIOp>(
            l, bb.create<arith::MulIOp>(l, linear, dimValue(dim)), at);
      }
      Value index = bb.create<arith::IndexCastOp>(l, bb.getI64Type(), linear);
      DType dtype = info.type.dtype;
      Value value =
          buildRandom(bb, l, name == "normal", seed, index,
                      mlir::cast<mlir::FloatType>(scalarType(bb, dtype)));
      return convert(bb, l, value, info.type, want);
    }
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
    if (name == "sigmoid")
      return bb.create<mlir::mlx::SigmoidOp>(l, x);
    // softplus and log_sigmoid go through e = e^−|x| ≤ 1 (as mlx.sigmoid
    // does), so nothing overflows in the value or the derivative; the
    // derivative is each branch's own, also at x = 0: softplus'(0) = ½
    // (with |x| and abs'(0) = 0 it would be 0).
    Value zero = constant(bb, l, 0, want);
    auto [nonNegative, e] = mlir::mlx::SigmoidOp::buildExpNegAbs(bb, l, x);
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

  assert(!(ci.isGrad && !vars.empty() && callee.isShapePolymorphic()) &&
         "Sema rejects mapped gradients of [...] functions");
  if (callee.isShapePolymorphic()) {
    // Element-wise over `[...]`: call the instance whose rank covers both the
    // mapped indices and the element shape.
    Shape full = mapped;
    full.insert(full.end(), ci.anyShape->begin(), ci.anyShape->end());
    auto target = mod.getOrDeclare(callee, (int64_t)full.size(), ci.floatType,
                                   ci.statics);
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

  auto target = mod.getOrDeclare(callee, 0, ci.floatType, ci.statics);
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
  assert(ci.resultShapes.size() == 1 &&
         "Sema rejects mapped calls with several results");
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
  switch (s.kind) {
  case Stmt::Kind::Return:
    emitReturn(s);
    return;
  case Stmt::Kind::TupleDef: {
    std::vector<TVal> results = emitCall(*s.values[0], {});
    for (auto [name, v] : llvm::zip(s.targets, results))
      define(name, v);
    return;
  }
  case Stmt::Kind::Def:
    if (s.hasIndices)
      emitIndexedDef(s);
    else
      define(s.targets[0], emitWhole(*s.values[0], std::nullopt));
    return;
  case Stmt::Kind::For:
    emitFor(s);
    return;
  case Stmt::Kind::Check:
    if (!checked.provenChecks.count(&s))
      b.create<mlir::mlx::AssertOp>(
          loc(s.loc), emitWhole(*s.values[0], DType::boolean).value, s.text);
    return;
  }
}

Value FunctionGen::emitIndex(const Expr &e) {
  mlir::Location l = loc(e.loc);
  TVal v = emitWhole(e, DType::i64);
  Value scalar = b.create<mlir::tensor::ExtractOp>(l, v.value);
  return b.create<mlir::arith::IndexCastOp>(l, b.getIndexType(), scalar);
}

void FunctionGen::emitUpdate(const Stmt &s, const StmtInfo &stmt) {
  const std::string &name = s.targets[0];
  const Expr &value = *s.values[0];
  TVal target = locals.at(name);
  TVal v = emitGeneric(stmt.slots, value, target.dtype, infos.at(&value).shape);
  mlir::Location l = loc(s.loc);
  // The positions, outermost first; a later one is a position in the slice
  // an earlier one selects.
  std::vector<std::pair<int64_t, Value>> positions;
  int64_t taken = 0;
  for (auto [k, index] : llvm::enumerate(s.lhsIndices))
    if (stmt.computed[k]) {
      Value at = b.create<mlir::arith::IndexCastOp>(
          l, b.getIndexType(),
          b.create<mlir::tensor::ExtractOp>(l, locals.at(*index).value));
      positions.push_back({(int64_t)k - taken++, at});
    }
  std::function<Value(Value, size_t)> put = [&](Value into, size_t p) -> Value {
    auto [dim, at] = positions[p];
    std::string sizeName = target.shape[dim + p].str();
    Value part = v.value;
    if (p + 1 < positions.size())
      part = put(b.create<mlir::mlx::TakeOp>(l, withoutDim(into, dim), into, at,
                                             dim, name, sizeName),
                 p + 1);
    part = castTo(TVal{part, v.dtype, {}}, withoutDim(into, dim)).value;
    return b.create<mlir::mlx::PutOp>(l, part, into, at, dim, name, sizeName);
  };
  target.value = put(target.value, 0);
  define(name, target);
}

void FunctionGen::emitFor(const Stmt &s) {
  const LoopInfo &info = checked.loops.at(&s);
  mlir::Location l = loc(s.loc);
  Value lower = emitIndex(*s.values[0]), upper = emitIndex(*s.values[1]);
  llvm::SmallVector<Value> inits;
  llvm::SmallVector<mlir::Type> types;
  for (const auto &[name, t] : info.carried) {
    mlir::RankedTensorType type = tensorType(b, t.shape, t.dtype);
    types.push_back(type);
    if (info.created.count(name)) {
      llvm::SmallVector<Value> sizes;
      for (const SDim &d : t.shape)
        sizes.push_back(dimValue(d));
      inits.push_back(mlir::mlx::buildZeros(b, l, type, sizes));
    } else {
      inits.push_back(castTo(locals.at(name), type).value);
    }
  }
  auto loop = b.create<mlir::mlx::LoopOp>(l, types, lower, upper, inits);
  mlir::Block *block = new mlir::Block();
  loop.getBody().push_back(block);
  Value step = block->addArgument(b.getIndexType(), loc(s.targetLocs[0]));
  std::map<std::string, TVal> outside = locals;
  {
    mlir::OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(block);
    for (auto [k, carried] : llvm::enumerate(info.carried)) {
      const auto &[name, t] = carried;
      locals[name] = TVal{block->addArgument(types[k], l), t.dtype, t.shape};
    }
    // The loop variable as a value: an i64 scalar, weakly typed.
    Value t64 = b.create<mlir::arith::IndexCastOp>(l, b.getI64Type(), step);
    locals[s.targets[0]] =
        TVal{b.create<mlir::tensor::FromElementsOp>(
                 l, mlir::RankedTensorType::get({}, b.getI64Type()), t64),
             DType::i64,
             {},
             EType::Index};
    for (const Stmt &inner : s.body)
      emitStmt(inner);
    llvm::SmallVector<Value> next;
    for (auto [k, carried] : llvm::enumerate(info.carried))
      next.push_back(castTo(locals.at(carried.first), types[k]).value);
    b.create<mlir::mlx::LoopYieldOp>(l, next);
  }
  // After the loop: the carried values' last states; the body's own names
  // go out of scope.
  locals = std::move(outside);
  for (auto [k, carried] : llvm::enumerate(info.carried))
    locals[carried.first] =
        TVal{loop.getResult(k), carried.second.dtype, carried.second.shape};
}

void FunctionGen::emitIndexedDef(const Stmt &s) {
  const StmtInfo &stmt = checked.stmts.at(&s);
  const Expr &value = *s.values[0];
  // A bound by a run-time value sizes its index here: max(value, 0).
  for (const auto &[bound, size] : stmt.valueBounds) {
    mlir::Location l = loc(bound->loc);
    dimValues[size.symbol] = b.create<mlir::arith::MaxSIOp>(
        l, emitIndex(*bound), b.create<mlir::arith::ConstantIndexOp>(l, 0));
  }
  if (!stmt.computed.empty()) {
    emitUpdate(s, stmt);
    return;
  }
  if (stmt.mappedCall) {
    define(s.targets[0], emitCall(value, stmt.lhsVars)[0]);
    return;
  }
  define(s.targets[0],
         emitGeneric(stmt.slots, value, std::nullopt, infos.at(&value).shape));
}

void FunctionGen::emitReturn(const Stmt &s) {
  std::vector<TVal> values;
  if (s.values.size() == 1 && fn.results.size() > 1)
    values = emitCall(*s.values[0], {});
  else
    for (auto [k, v] : llvm::enumerate(s.values))
      values.push_back(emitWhole(*v, checked.declared(fn.results[k].dtype)));
  llvm::SmallVector<Value> results;
  for (auto [k, v] : llvm::enumerate(values)) {
    assert(v.dtype == checked.declared(fn.results[k].dtype) &&
           sameShape(v.shape, checked.resultShapes[k]) &&
           "Sema checked the returned types");
    results.push_back(castTo(v, func.getFunctionType().getResult(k)).value);
  }
  if (trace) {
    // The traced values follow the results; their names and lines go on
    // the function (`mlx.trace_names`, `mlx.trace_lines`).
    llvm::SmallVector<mlir::Type> types(func.getFunctionType().getResults());
    llvm::SmallVector<mlir::Attribute> names;
    llvm::SmallVector<int64_t> lines;
    for (const auto &[name, line, v] : traced) {
      results.push_back(v.value);
      types.push_back(v.value.getType());
      names.push_back(b.getStringAttr(name));
      lines.push_back(line);
    }
    func.setType(b.getFunctionType(func.getFunctionType().getInputs(), types));
    func->setAttr("mlx.trace_names", b.getArrayAttr(names));
    func->setAttr("mlx.trace_lines", b.getDenseI64ArrayAttr(lines));
  }
  b.create<mlir::func::ReturnOp>(loc(s.loc), results);
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
