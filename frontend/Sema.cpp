//===- Sema.cpp - semantic checks on the AST --------------------------===//
#include "frontend/Sema.h"
#include "frontend/DiagnosticPrinter.h"
#include "frontend/MLIRGen.h"

#include "mlir/IR/Diagnostics.h"

#include <functional>

using namespace mlx;

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

bool mlx::isBuiltin(llvm::StringRef name) {
  return unaryFloatBuiltins().count(name.str()) ||
         castBuiltins().count(name.str()) || name == "max" || name == "min" ||
         name == "grad" || name == "value_and_grad";
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
      error(fn.loc, "--grad " + name + ": '" + fn.name +
                        "' has no parameter '" + name + "'" +
                        didYouMean(name, params));
      return std::nullopt;
    }
    if (!rt::isFloat(it->type.dtype)) {
      error(it->loc, "--grad " + name +
                         ": cannot differentiate with respect to '" + name +
                         "', it is " + rt::dtypeName(it->type.dtype));
      return std::nullopt;
    }
    if (llvm::is_contained(wrt, it - fn.params.begin())) {
      error(it->loc, "--grad " + name + ": '" + name + "' is given twice");
      return std::nullopt;
    }
    wrt.push_back(it - fn.params.begin());
  }
  if (!wrt.empty() && llvm::none_of(fn.results, [](const ast::TypeSpec &t) {
        return rt::isFloat(t.dtype);
      })) {
    error(fn.loc, "--grad: '" + fn.name +
                      "' has no float result to differentiate (the "
                      "gradient is of the sum of its float results)");
    return std::nullopt;
  }
  return wrt;
}

std::optional<rt::DType>
Sema::floatType(const ast::Function &fn,
                llvm::ArrayRef<std::optional<rt::DType>> argumentDTypes) {
  auto passedAs = [&](size_t k, rt::DType dtype) {
    return k < argumentDTypes.size() && argumentDTypes[k] == dtype &&
           fn.params[k].type.dtype == rt::DType::f32;
  };
  const ast::Param *f64Param = nullptr;
  for (auto [k, p] : llvm::enumerate(fn.params))
    if (passedAs(k, rt::DType::f64) && !f64Param)
      f64Param = &p;
  if (!f64Param)
    return rt::DType::f32;
  for (auto [k, p] : llvm::enumerate(fn.params))
    if (passedAs(k, rt::DType::f32)) {
      error(p.loc, "argument '" + p.name + "' is an f32 .npy but '" +
                       f64Param->name + "' is f64: a parameter declared f32 " +
                       "runs in the float type of the arguments (f64 .npy " +
                       "files run the function in f64), so all of them must " +
                       "agree; save '" + p.name + "' as f64 or '" +
                       f64Param->name + "' as f32");
      return std::nullopt;
    }
  return rt::DType::f64;
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
        for (const ast::Stmt &s : f->body)
          for (const auto &value : s.values)
            collectCalls(*value, functions, calls);
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
