//===- Explain.cpp - what an explain page shows, gathered ------*- C++ -*-===//
//
// The training loop of a traced function, found on its AST, and its runs:
// one compiled call per learning rate and step count, the loss at each
// point and over the points' range by calls of the compiled loss.
//
//===----------------------------------------------------------------------===//
#include "tools/mlxc/Explain.h"

#include <algorithm>
#include <cmath>
#include <functional>

using namespace mlx;

namespace {

/// A training loop in `fn`: `for s in 0..P` over an integer parameter P
/// whose body steps along grad(F, x)(args...) (times a float parameter,
/// the rate), F a function of this file and its arguments the returned
/// value (the parameters trained) and parameters of `fn`. Null if none.
struct TrainingLoop {
  int64_t steps = -1, rate = -1;
  const ast::Function *loss = nullptr;
  /// Per argument of the loss: -1 for the trained value, else the
  /// parameter of `fn` passed.
  std::vector<int64_t> lossArgs;
};

int64_t paramIndex(const ast::Function &fn, const ast::Expr &e) {
  if (e.kind != ast::Expr::Kind::Name)
    return -1;
  auto it = llvm::find_if(
      fn.params, [&](const ast::Param &p) { return p.name == e.name; });
  return it == fn.params.end() ? -1 : it - fn.params.begin();
}

std::optional<TrainingLoop> findTrainingLoop(Session &session,
                                             const ast::Function &fn) {
  const ast::Expr *returned = nullptr;
  for (const ast::Stmt &s : fn.body)
    if (s.kind == ast::Stmt::Kind::Return && s.values.size() == 1 &&
        s.values[0]->kind == ast::Expr::Kind::Name)
      returned = s.values[0].get();
  if (!returned)
    return std::nullopt;
  for (const ast::Stmt &loop : fn.body) {
    if (loop.kind != ast::Stmt::Kind::For)
      continue;
    TrainingLoop found;
    found.steps = paramIndex(fn, *loop.values[1]);
    if (found.steps < 0 || fn.params[found.steps].isStatic ||
        rt::isFloat(fn.params[found.steps].type.dtype) ||
        !fn.params[found.steps].type.dims.empty())
      continue;
    // The step: grad(F, x)(args), times the rate somewhere above it.
    std::function<bool(const ast::Expr &, const ast::Expr *)> visit =
        [&](const ast::Expr &e, const ast::Expr *product) -> bool {
      if (e.kind == ast::Expr::Kind::Call && e.name.empty() &&
          e.operands[0]->kind == ast::Expr::Kind::Call &&
          e.operands[0]->name == "grad" &&
          e.operands[0]->operands[0]->kind == ast::Expr::Kind::Name) {
        auto loss = session.function(e.operands[0]->operands[0]->name);
        if (!loss) {
          llvm::consumeError(loss.takeError());
          return false;
        }
        found.loss = *loss;
        for (const auto &arg : llvm::drop_begin(e.operands)) {
          bool trained =
              arg->kind == ast::Expr::Kind::Name && arg->name == returned->name;
          int64_t k = trained ? -1 : paramIndex(fn, *arg);
          if (!trained && k < 0)
            return false;
          found.lossArgs.push_back(k);
        }
        if (product)
          for (const auto &o : product->operands) {
            int64_t k = paramIndex(fn, *o);
            if (k >= 0 && rt::isFloat(fn.params[k].type.dtype) &&
                fn.params[k].type.dims.empty())
              found.rate = k;
          }
        return true;
      }
      bool isProduct = e.kind == ast::Expr::Kind::Binary && e.op == "*";
      for (const auto &o : e.operands)
        if (o && visit(*o, isProduct ? &e : product))
          return true;
      return false;
    };
    bool hit = false;
    ast::forEachStmt(loop.body, [&](const ast::Stmt &s) {
      for (const auto &v : s.values)
        hit = hit || (v && visit(*v, nullptr));
    });
    if (hit && found.loss->params.size() == found.lossArgs.size())
      return found;
  }
  return std::nullopt;
}

} // namespace

llvm::Error mlx::addTraining(Session &session, const Trace &trace,
                             llvm::ArrayRef<double> rates,
                             const CompileOptions &options, ExplainData &data) {
  const ast::Function &fn = *trace.function;
  std::optional<TrainingLoop> loop = findTrainingLoop(session, fn);
  if (!loop) {
    if (!rates.empty())
      return llvm::createStringError(
          "--rates: '" + fn.name +
          "' has no training loop (for … in 0..STEPS stepping "
          "along grad(LOSS, x)(…) times a rate parameter)");
    return llvm::Error::success();
  }
  if (!rates.empty() && loop->rate < 0)
    return llvm::createStringError(
        "--rates: the training loop of '" + fn.name +
        "' has no rate parameter (a float scalar times grad(…))");
  const ast::Function &lossFn = *loop->loss;
  for (const ast::Stmt &s : fn.body)
    if (s.kind == ast::Stmt::Kind::Return)
      data.parameter = s.values[0]->name;
  data.loss = lossFn.name;
  data.steps = fn.params[loop->steps].name;
  data.rate = loop->rate >= 0 ? fn.params[loop->rate].name : "rate";
  // The loss's arguments at a point of the path.
  auto lossArgs = [&](const rt::Tensor &point) {
    std::vector<rt::Tensor> args;
    for (int64_t k : loop->lossArgs)
      args.push_back(k < 0 ? point : trace.args[k]);
    return args;
  };
  rt::Tensor start = trace.results[0].value;
  auto lossRequest = session.requestFor(lossFn, lossArgs(start));
  if (!lossRequest)
    return lossRequest.takeError();
  std::vector<ExportRequest> requests = {trace.request, *lossRequest};
  auto module = session.compile(requests, options);
  if (!module)
    return module.takeError();
  std::string fnName = exportName(requests[0]),
              lossName = exportName(requests[1]);
  auto lossAt = [&](const rt::Tensor &point) -> double {
    auto r = (*module)->call(lossName, lossArgs(point));
    if (!r) {
      llvm::consumeError(r.takeError());
      return NAN;
    }
    return (*r)[0].getDouble(0);
  };
  std::vector<double> rateValues(rates.begin(), rates.end());
  double given = loop->rate >= 0 ? trace.args[loop->rate].getDouble(0) : 0.0;
  if (rateValues.empty())
    rateValues = loop->rate >= 0 ? std::vector<double>{given / 2, given,
                                                       2 * given, 4 * given}
                                 : std::vector<double>{given};
  int64_t steps = std::min<int64_t>(200, trace.args[loop->steps].getInt(0));
  for (double rate : rateValues) {
    ExplainData::Run run;
    run.rate = rate;
    std::vector<rt::Tensor> args = trace.args; // (sharing their data)
    args[loop->steps] = args[loop->steps].copy();
    if (loop->rate >= 0) {
      args[loop->rate] = args[loop->rate].copy();
      args[loop->rate].setDouble(0, rate);
    }
    for (int64_t k = 0; k <= steps; ++k) {
      args[loop->steps].setDouble(0, (double)k);
      auto r = (*module)->call(fnName, args);
      if (!r)
        return r.takeError();
      const rt::Tensor &point = (*r)[0];
      std::vector<double> values;
      for (int64_t i = 0; i < point.numElements(); ++i)
        values.push_back(point.getDouble(i));
      run.path.push_back(values);
      run.loss.push_back(lossAt(point));
    }
    data.runs.push_back(std::move(run));
  }
  // The surface over the first run's path and the others' first steps.
  int64_t dims = start.numElements();
  if (dims != 1 && dims != 2)
    return llvm::Error::success();
  std::vector<double> lo(dims, INFINITY), hi(dims, -INFINITY);
  for (auto [r, run] : llvm::enumerate(data.runs))
    for (auto [k, p] : llvm::enumerate(run.path))
      if (r == 0 || k <= 3)
        for (int64_t d = 0; d < dims; ++d)
          if (std::isfinite(p[d])) {
            lo[d] = std::min(lo[d], p[d]);
            hi[d] = std::max(hi[d], p[d]);
          }
  for (int64_t d = 0; d < dims; ++d) {
    if (!std::isfinite(lo[d]))
      return llvm::Error::success();
    double pad = std::max(0.15 * (hi[d] - lo[d]), 0.5);
    lo[d] -= pad;
    hi[d] += pad;
  }
  int64_t n = dims == 1 ? 81 : 41;
  auto axis = [&](int64_t d) {
    std::vector<double> xs;
    for (int64_t i = 0; i < n; ++i)
      xs.push_back(lo[d] + (hi[d] - lo[d]) * i / (n - 1));
    return xs;
  };
  data.surfaceX = axis(0);
  if (dims == 2)
    data.surfaceY = axis(1);
  rt::Tensor point = start.copy();
  for (int64_t j = 0; j < (dims == 2 ? n : 1); ++j)
    for (double x : data.surfaceX) {
      point.setDouble(0, x);
      if (dims == 2)
        point.setDouble(1, data.surfaceY[j]);
      data.surface.push_back(lossAt(point));
    }
  return llvm::Error::success();
}
