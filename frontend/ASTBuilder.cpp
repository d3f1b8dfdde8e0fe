//===- ASTBuilder.cpp - .mlx text → AST -------------------------*- C++ -*-===//
//
// Walks ANTLR's parse tree with typed functions (ANTLR's visitor returns
// std::any, which cannot hold unique_ptr nodes). ANTLR columns count code
// points from 0; diagnostics use 1-based byte columns, as clang does.
//
//===----------------------------------------------------------------------===//
#include "frontend/ASTBuilder.h"

#include "MLXLexer.h"
#include "MLXParser.h"
#include "antlr4-runtime.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>

#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/thread.h"

using namespace mlx::ast;
using mlxgrammar::MLXLexer;
using mlxgrammar::MLXParser;

/// Limits that turn pathological input into diagnostics instead of stack
/// overflows: the parser runs on a 1 GiB stack, enough for any nesting
/// within kMaxTokens tokens.
static constexpr size_t kMaxTokens = 200000;
static constexpr unsigned kMaxExprDepth = 1000;
static constexpr unsigned kParserStackBytes = 1u << 30;
static constexpr size_t kMaxRank = 16;
static constexpr int64_t kMaxDimSize = int64_t(1) << 40;

namespace {

/// Maps ANTLR (line, code-point column) to a Loc with a byte column.
class LocMaker {
public:
  LocMaker(const std::string &path, const std::string &source)
      : file(std::make_shared<std::string>(path)) {
    lineStarts.push_back(0);
    for (size_t i = 0; i < source.size(); ++i)
      if (source[i] == '\n')
        lineStarts.push_back(i + 1);
    text = &source;
  }
  Loc at(size_t line, size_t codePointCol) const {
    Loc loc;
    loc.file = file;
    loc.line = (unsigned)line;
    size_t byte = line >= 1 && line <= lineStarts.size() ? lineStarts[line - 1]
                                                         : text->size();
    size_t start = byte;
    for (size_t cp = 0; cp < codePointCol && byte < text->size(); ++cp) {
      ++byte; // skip UTF-8 continuation bytes
      while (byte < text->size() &&
             ((unsigned char)(*text)[byte] & 0xC0) == 0x80)
        ++byte;
    }
    loc.col = (unsigned)(byte - start + 1);
    return loc;
  }
  Loc at(antlr4::Token *token) const {
    return at(token->getLine(), token->getCharPositionInLine());
  }
  Loc at(antlr4::ParserRuleContext *ctx) const { return at(ctx->getStart()); }
  Loc at(antlr4::tree::TerminalNode *node) const {
    return at(node->getSymbol());
  }

private:
  std::shared_ptr<std::string> file;
  std::vector<size_t> lineStarts;
  const std::string *text;
};

/// Sends ANTLR's syntax errors to the diagnostic callback: the first one
/// only (ANTLR's recovery makes the rest a cascade of it), in words that
/// name what the user wrote, and "not supported yet" for the constructs the
/// language does not have yet.
class ErrorListener : public antlr4::BaseErrorListener {
public:
  ErrorListener(const LocMaker &locs, const ErrorFn &onError)
      : locs(locs), onError(onError) {}
  void syntaxError(antlr4::Recognizer *recognizer, antlr4::Token *offending,
                   size_t line, size_t col, const std::string &msg,
                   std::exception_ptr) override {
    if (count++)
      return;
    auto *parser = dynamic_cast<antlr4::Parser *>(recognizer);
    if (parser && offending) {
      if (antlr4::Token *start = statementStart(*parser, offending)) {
        std::string word = start->getText();
        if (word == "while")
          return onError(locs.at(start),
                         "'while' loops are not supported: loops are "
                         "'for t in lo..hi { ... }'");
        if (word == "if")
          return onError(locs.at(start), "'if' statements are not supported: "
                                         "write c ? a : b");
      }
      if (offending->getText() == ":" && insideBrackets(*parser, offending))
        return onError(locs.at(offending),
                       "ranges in subscripts (a:b) are not supported yet; "
                       "':' alone keeps a whole dimension");
    }
    std::string text = msg;
    // ANTLR glues the tokens of the failed alternative ("fort" for
    // "for t"): name the token where it failed instead.
    if (offending && text.rfind("no viable alternative at input", 0) == 0)
      text = "unexpected " + shown(offending);
    onError(locs.at(line, col), "syntax error: " + text);
  }
  unsigned count = 0;

private:
  static std::string shown(antlr4::Token *token) {
    return token->getType() == antlr4::Token::EOF
               ? std::string("end of file")
               : "'" + token->getText() + "'";
  }
  /// The first token on the offending token's line.
  static antlr4::Token *statementStart(antlr4::Parser &parser,
                                       antlr4::Token *offending) {
    antlr4::TokenStream *tokens = parser.getTokenStream();
    ssize_t i = (ssize_t)offending->getTokenIndex();
    if (offending->getType() == antlr4::Token::EOF || i < 0)
      return nullptr;
    while (i > 0 && tokens->get(i - 1)->getLine() == offending->getLine())
      --i;
    return tokens->get(i);
  }
  /// True when an unclosed '[' comes before `offending` on its line.
  static bool insideBrackets(antlr4::Parser &parser, antlr4::Token *offending) {
    antlr4::TokenStream *tokens = parser.getTokenStream();
    int depth = 0;
    for (ssize_t i = (ssize_t)offending->getTokenIndex() - 1; i >= 0; --i) {
      antlr4::Token *t = tokens->get(i);
      if (t->getLine() != offending->getLine())
        break;
      depth += t->getText() == "]" ? -1 : t->getText() == "[" ? 1 : 0;
      if (depth > 0) {
        std::string before =
            tokens->get(offending->getTokenIndex() - 1)->getText();
        return before != "[" && before != ",";
      }
    }
    return false;
  }

  const LocMaker &locs;
  const ErrorFn &onError;
};

class Builder {
public:
  Builder(const LocMaker &locs, const ErrorFn &onError)
      : locs(locs), onError(onError) {}

  /// Number of errors reported while building.
  unsigned errors = 0;

  std::unique_ptr<Module> module(MLXParser::Module_Context *ctx,
                                 const std::string &path) {
    auto m = std::make_unique<Module>();
    m->path = path;
    for (auto *imp : ctx->importStmt())
      m->imports.push_back({locs.at(imp->ID()), imp->ID()->getText()});
    for (auto *fn : ctx->funcDef())
      m->functions.push_back(function(fn));
    return m;
  }

private:
  std::unique_ptr<Function> function(MLXParser::FuncDefContext *ctx) {
    auto fn = std::make_unique<Function>();
    fn->loc = locs.at(ctx->name);
    fn->name = ctx->name->getText();
    if (auto *params = ctx->paramList())
      for (auto *p : params->param()) {
        Param param;
        param.loc = locs.at(p->ID());
        param.name = p->ID()->getText();
        param.isStatic = p->STATIC() != nullptr;
        if (p->type())
          param.type = type(p->type());
        else
          param.type.loc = param.loc; // untyped: an f32 scalar
        fn->params.push_back(std::move(param));
      }
    for (auto *t : ctx->retType()->type())
      fn->results.push_back(type(t));
    for (auto *s : ctx->block()->stmt())
      fn->body.push_back(stmt(s));
    return fn;
  }

  TypeSpec type(MLXParser::TypeContext *ctx) {
    TypeSpec t;
    t.loc = locs.at(ctx);
    t.dtype = *mlx::rt::parseDType(ctx->DTYPE()->getText());
    if (auto *dims = ctx->dimList())
      for (auto *d : dims->dim()) {
        if (d->ELLIPSIS()) {
          auto e = std::make_unique<DimExpr>();
          e->kind = DimExpr::Kind::Ellipsis;
          e->loc = locs.at(d);
          t.dims.push_back(std::move(e));
        } else {
          t.dims.push_back(dimExpr(d->dimExpr()));
        }
      }
    if (t.dims.size() > kMaxRank)
      error(t.loc, "rank " + std::to_string(t.dims.size()) +
                       " exceeds the "
                       "limit of " +
                       std::to_string(kMaxRank));
    // The literal dims' product must stay far from int64 overflow.
    double elements = 1;
    for (auto &d : t.dims)
      if (d->kind == DimExpr::Kind::Int)
        elements *= (double)d->value;
    if (elements > (double)kMaxDimSize)
      error(t.loc, "type has " + llvm::formatv("{0:e}", elements).str() +
                       " elements, more than the limit of 2^40");
    return t;
  }

  std::unique_ptr<DimExpr> dimExpr(MLXParser::DimExprContext *ctx) {
    auto e = std::make_unique<DimExpr>();
    e->loc = locs.at(ctx);
    if (auto *p = dynamic_cast<MLXParser::DimParenContext *>(ctx))
      return dimExpr(p->dimExpr());
    if (auto *i = dynamic_cast<MLXParser::DimIntContext *>(ctx)) {
      e->kind = DimExpr::Kind::Int;
      errno = 0;
      e->value = std::strtoll(i->INT()->getText().c_str(), nullptr, 10);
      if (errno == ERANGE || e->value > kMaxDimSize) {
        error(e->loc, "dimension " + i->INT()->getText() +
                          " is too large (the limit is 2^40)");
        e->value = 1;
      }
    } else if (auto *s = dynamic_cast<MLXParser::DimSymContext *>(ctx)) {
      e->kind = DimExpr::Kind::Sym;
      e->name = s->ID()->getText();
    } else if (auto *m = dynamic_cast<MLXParser::DimMulContext *>(ctx)) {
      e->kind =
          m->op->getText() == "*" ? DimExpr::Kind::Mul : DimExpr::Kind::Div;
      e->loc = locs.at(m->op);
      e->lhs = dimExpr(m->dimExpr(0));
      e->rhs = dimExpr(m->dimExpr(1));
    } else if (auto *a = dynamic_cast<MLXParser::DimAddContext *>(ctx)) {
      e->kind =
          a->op->getText() == "+" ? DimExpr::Kind::Add : DimExpr::Kind::Sub;
      e->loc = locs.at(a->op);
      e->lhs = dimExpr(a->dimExpr(0));
      e->rhs = dimExpr(a->dimExpr(1));
    }
    return e;
  }

  Stmt stmt(MLXParser::StmtContext *ctx) {
    Stmt s;
    s.loc = locs.at(ctx);
    if (auto *r = dynamic_cast<MLXParser::ReturnStmtContext *>(ctx)) {
      s.kind = Stmt::Kind::Return;
      for (auto *e : r->expr())
        s.values.push_back(expr(e));
    } else if (auto *c = dynamic_cast<MLXParser::CheckStmtContext *>(ctx)) {
      s.kind = Stmt::Kind::Check;
      antlr4::Token *first = c->expr()->getStart(),
                    *last = c->expr()->getStop();
      s.text = (first->getInputStream()->getText(antlr4::misc::Interval(
          first->getStartIndex(), last->getStopIndex())));
      s.values.push_back(expr(c->expr()));
    } else if (auto *f = dynamic_cast<MLXParser::ForStmtContext *>(ctx)) {
      s.kind = Stmt::Kind::For;
      s.targets.push_back(f->ID()->getText());
      s.targetLocs.push_back(locs.at(f->ID()));
      MLXParser::LoopRangeContext *range = f->loopRange();
      s.values.push_back(addExpr(range->lo));
      s.values.push_back(addExpr(range->hi));
      for (auto *inner : f->block()->stmt())
        s.body.push_back(stmt(inner));
    } else if (auto *d = dynamic_cast<MLXParser::IndexedDefContext *>(ctx)) {
      s.kind = Stmt::Kind::Def;
      s.targets.push_back(d->ID()->getText());
      s.targetLocs.push_back(locs.at(d->ID()));
      s.hasIndices = true;
      for (auto *idx : d->lhsIndex()) {
        s.lhsIndexLocs.push_back(locs.at(idx));
        if (idx->ID())
          s.lhsIndices.push_back(idx->ID()->getText());
        else
          s.lhsIndices.push_back(std::nullopt);
        s.lhsBounds.push_back(idx->bound ? addExpr(idx->bound) : nullptr);
      }
      s.values.push_back(expr(d->expr()));
    } else if (auto *t = dynamic_cast<MLXParser::TupleDefContext *>(ctx)) {
      s.kind = Stmt::Kind::TupleDef;
      for (auto *id : t->ID()) {
        s.targets.push_back(id->getText());
        s.targetLocs.push_back(locs.at(id));
      }
      s.values.push_back(expr(t->expr()));
    } else if (auto *p = dynamic_cast<MLXParser::PlainDefContext *>(ctx)) {
      s.kind = Stmt::Kind::Def;
      s.targets.push_back(p->ID()->getText());
      s.targetLocs.push_back(locs.at(p->ID()));
      s.values.push_back(expr(p->expr()));
    }
    return s;
  }

  using ExprPtr = std::unique_ptr<Expr>;

  /// An integer literal; one too big for i64 stays a float literal.
  ExprPtr intLiteral(const std::string &digits, const Loc &loc) {
    auto e = make(Expr::Kind::Int, loc);
    errno = 0;
    e->intValue = std::strtoll(digits.c_str(), nullptr, 10);
    if (errno == ERANGE) {
      e->kind = Expr::Kind::Float;
      e->number = std::strtod(digits.c_str(), nullptr);
    }
    return e;
  }

  ExprPtr make(Expr::Kind kind, const Loc &loc) {
    return std::make_unique<Expr>(kind, loc);
  }
  ExprPtr binary(const std::string &op, const Loc &loc, ExprPtr lhs,
                 ExprPtr rhs) {
    auto e = make(Expr::Kind::Binary, loc);
    e->op = op;
    e->operands.push_back(std::move(lhs));
    e->operands.push_back(std::move(rhs));
    return e;
  }

  ExprPtr expr(MLXParser::ExprContext *ctx) { return ternary(ctx->ternary()); }

  ExprPtr ternary(MLXParser::TernaryContext *ctx) {
    ExprPtr cond = orExpr(ctx->orExpr());
    if (ctx->expr().empty())
      return cond;
    auto e = make(Expr::Kind::Select, locs.at(operatorAt(ctx, 1)));
    e->operands.push_back(std::move(cond));
    e->operands.push_back(expr(ctx->expr(0)));
    e->operands.push_back(expr(ctx->expr(1)));
    return e;
  }

  /// Operator token between children k-1 and k+1 of a flat binary rule.
  antlr4::Token *operatorAt(antlr4::ParserRuleContext *ctx, size_t child) {
    return static_cast<antlr4::tree::TerminalNode *>(ctx->children[child])
        ->getSymbol();
  }

  ExprPtr orExpr(MLXParser::OrExprContext *ctx) {
    ExprPtr e = andExpr(ctx->andExpr(0));
    for (size_t i = 1; i < ctx->andExpr().size(); ++i)
      e = binary("||", locs.at(operatorAt(ctx, 2 * i - 1)), std::move(e),
                 andExpr(ctx->andExpr(i)));
    return e;
  }
  ExprPtr andExpr(MLXParser::AndExprContext *ctx) {
    ExprPtr e = cmpExpr(ctx->cmpExpr(0));
    for (size_t i = 1; i < ctx->cmpExpr().size(); ++i)
      e = binary("&&", locs.at(operatorAt(ctx, 2 * i - 1)), std::move(e),
                 cmpExpr(ctx->cmpExpr(i)));
    return e;
  }
  ExprPtr cmpExpr(MLXParser::CmpExprContext *ctx) {
    ExprPtr e = addExpr(ctx->addExpr(0));
    if (ctx->op)
      e = binary(ctx->op->getText(), locs.at(ctx->op), std::move(e),
                 addExpr(ctx->addExpr(1)));
    return e;
  }
  ExprPtr addExpr(MLXParser::AddExprContext *ctx) {
    ExprPtr e = mulExpr(ctx->mulExpr(0));
    for (size_t i = 1; i < ctx->mulExpr().size(); ++i)
      e = binary(ctx->ops[i - 1]->getText(), locs.at(ctx->ops[i - 1]),
                 std::move(e), mulExpr(ctx->mulExpr(i)));
    return e;
  }
  ExprPtr mulExpr(MLXParser::MulExprContext *ctx) {
    ExprPtr e = unaryExpr(ctx->unaryExpr(0));
    for (size_t i = 1; i < ctx->unaryExpr().size(); ++i)
      e = binary(ctx->ops[i - 1]->getText(), locs.at(ctx->ops[i - 1]),
                 std::move(e), unaryExpr(ctx->unaryExpr(i)));
    return e;
  }
  ExprPtr unaryExpr(MLXParser::UnaryExprContext *ctx) {
    if (auto *n = dynamic_cast<MLXParser::NegateContext *>(ctx)) {
      auto e = make(Expr::Kind::Unary, locs.at(n->op));
      e->op = n->op->getText();
      e->operands.push_back(unaryExpr(n->unaryExpr()));
      return e;
    }
    if (auto *r = dynamic_cast<MLXParser::ReductionContext *>(ctx)) {
      auto e = make(Expr::Kind::Reduce, locs.at(r->red));
      e->op = r->red->getText();
      for (auto *id : r->ID()) {
        e->indices.push_back(id->getText());
        e->indexLocs.push_back(locs.at(id));
      }
      ExprPtr body = mulExpr(r->mulExpr());
      if (r->bound) {
        // `sum[j <= i] e` is `sum[j] (j <= i ? e : 0)`: a scan when the
        // bound is an outer index; the identity where the bound fails.
        Loc at = locs.at(r->bound);
        if (e->indices.size() != 1 || e->op == "argmax" || e->op == "argmin") {
          error(at, "a bound ('" + r->bound->getText() +
                        "') needs a sum, prod, max or min over one index");
          return e;
        }
        auto index = make(Expr::Kind::Name, e->indexLocs[0]);
        index->name = e->indices[0];
        ExprPtr inRange = binary(r->bound->getText(), at, std::move(index),
                                 addExpr(r->limit));
        ExprPtr identity;
        if (e->op == "sum" || e->op == "prod") {
          identity = make(Expr::Kind::Int, at);
          identity->intValue = e->op == "prod" ? 1 : 0;
        } else {
          identity = make(Expr::Kind::Inf, at);
          if (e->op == "max") {
            auto negated = make(Expr::Kind::Unary, at);
            negated->op = "-";
            negated->operands.push_back(std::move(identity));
            identity = std::move(negated);
          }
        }
        auto select = make(Expr::Kind::Select, at);
        select->operands.push_back(std::move(inRange));
        select->operands.push_back(std::move(body));
        select->operands.push_back(std::move(identity));
        body = std::move(select);
        e->bounded = true;
      }
      e->operands.push_back(std::move(body));
      return e;
    }
    auto *p = static_cast<MLXParser::PowerLevelContext *>(ctx);
    return powExpr(p->powExpr());
  }
  ExprPtr powExpr(MLXParser::PowExprContext *ctx) {
    ExprPtr base = postfix(ctx->postfixExpr());
    if (!ctx->unaryExpr())
      return base;
    return binary("^", locs.at(operatorAt(ctx, 1)), std::move(base),
                  unaryExpr(ctx->unaryExpr()));
  }
  ExprPtr postfix(MLXParser::PostfixExprContext *ctx) {
    ExprPtr e = primary(ctx->primary());
    for (auto *s : ctx->suffix()) {
      if (auto *sub = dynamic_cast<MLXParser::SubscriptContext *>(s)) {
        auto n = make(Expr::Kind::Subscript, e->loc);
        n->operands.push_back(std::move(e));
        for (auto *arg : sub->indexArg())
          n->subscripts.push_back(arg->expr() ? expr(arg->expr()) : nullptr);
        e = std::move(n);
        continue;
      }
      auto *call = static_cast<MLXParser::CallArgsContext *>(s);
      auto n = make(Expr::Kind::Call, e->loc);
      if (e->kind == Expr::Kind::Name)
        n->name = e->name;
      else
        n->operands.push_back(std::move(e)); // callee expression
      std::vector<ExprPtr> args;
      if (call->argList())
        for (auto *a : call->argList()->expr())
          args.push_back(expr(a));
      if (!n->operands.empty()) {
        // Keep the callee first; the checker reports it as unsupported.
        for (auto &a : args)
          n->operands.push_back(std::move(a));
      } else {
        n->operands = std::move(args);
      }
      e = std::move(n);
    }
    return e;
  }
  ExprPtr primary(MLXParser::PrimaryContext *ctx) {
    Loc loc = locs.at(ctx);
    if (auto *f = dynamic_cast<MLXParser::FloatLitContext *>(ctx)) {
      auto e = make(Expr::Kind::Float, loc);
      e->number = std::strtod(f->FLOAT()->getText().c_str(), nullptr);
      if (std::isinf(e->number))
        error(loc, "number " + f->FLOAT()->getText() +
                       " is out of range (write inf for infinity)");
      return e;
    }
    if (auto *i = dynamic_cast<MLXParser::IntLitContext *>(ctx))
      return intLiteral(i->INT()->getText(), loc);
    if (dynamic_cast<MLXParser::InfLitContext *>(ctx))
      return make(Expr::Kind::Inf, loc);
    if (auto *b = dynamic_cast<MLXParser::BoolLitContext *>(ctx)) {
      auto e = make(Expr::Kind::Bool, loc);
      e->boolValue = b->TRUE() != nullptr;
      return e;
    }
    if (auto *n = dynamic_cast<MLXParser::NameContext *>(ctx)) {
      auto e = make(Expr::Kind::Name, loc);
      e->name = n->ID()->getText();
      return e;
    }
    if (auto *m = dynamic_cast<MLXParser::MinMaxCallContext *>(ctx)) {
      auto e = make(Expr::Kind::Call, loc);
      e->name = m->fn->getText();
      for (auto *a : m->argList()->expr())
        e->operands.push_back(expr(a));
      return e;
    }
    if (auto *c = dynamic_cast<MLXParser::CastCallContext *>(ctx)) {
      auto e = make(Expr::Kind::Call, loc);
      e->name = c->DTYPE()->getText();
      for (auto *a : c->argList()->expr())
        e->operands.push_back(expr(a));
      return e;
    }
    auto *p = static_cast<MLXParser::ParenContext *>(ctx);
    return expr(p->expr());
  }

  void error(const Loc &loc, const std::string &msg) {
    onError(loc, msg);
    ++errors;
  }

  const LocMaker &locs;
  const ErrorFn &onError;
};
} // namespace

/// Depth of the deepest expression of `e`, stopping early past `limit`.
static unsigned exprDepth(const Expr &e, unsigned limit, const Expr *&deepest) {
  if (limit == 0) {
    deepest = &e;
    return 1;
  }
  unsigned depth = 0;
  for (auto &op : e.operands)
    depth = std::max(depth, exprDepth(*op, limit - 1, deepest));
  for (auto &sub : e.subscripts)
    if (sub)
      depth = std::max(depth, exprDepth(*sub, limit - 1, deepest));
  return depth + 1;
}

static std::unique_ptr<Module> parseOnThisThread(const std::string &path,
                                                 const std::string &source,
                                                 const ErrorFn &onError) {
  LocMaker locs(path, source);
  // ANTLR decodes UTF-8 and throws on malformed input: check it first.
  const llvm::UTF8 *at = reinterpret_cast<const llvm::UTF8 *>(source.data());
  const llvm::UTF8 *end = at + source.size();
  if (!llvm::isLegalUTF8String(&at, end)) {
    size_t offset = at - reinterpret_cast<const llvm::UTF8 *>(source.data());
    size_t line = 1 + std::count(source.begin(), source.begin() + offset, '\n');
    size_t lineStart = source.rfind('\n', offset ? offset - 1 : 0);
    lineStart =
        lineStart == std::string::npos || offset == 0 ? 0 : lineStart + 1;
    Loc loc = locs.at(line, 0);
    loc.col = (unsigned)(offset - lineStart + 1);
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", (unsigned char)source[offset]);
    onError(loc, std::string("invalid UTF-8 (byte ") + byte +
                     "): .mlx files are UTF-8 text");
    return nullptr;
  }
  antlr4::ANTLRInputStream input(source);
  MLXLexer lexer(&input);
  antlr4::CommonTokenStream tokens(&lexer);
  ErrorListener listener(locs, onError);
  lexer.removeErrorListeners();
  lexer.addErrorListener(&listener);
  tokens.fill();
  if (tokens.size() > kMaxTokens) {
    onError(locs.at(tokens.get(kMaxTokens)), "file too large: more than " +
                                                 std::to_string(kMaxTokens) +
                                                 " tokens");
    return nullptr;
  }
  MLXParser parser(&tokens);
  parser.removeErrorListeners();
  parser.addErrorListener(&listener);
  MLXParser::Module_Context *tree = parser.module_();
  if (listener.count)
    return nullptr;
  Builder builder(locs, onError);
  std::unique_ptr<Module> module = builder.module(tree, path);
  // Later stages recurse over expressions: bound their depth here.
  bool ok = builder.errors == 0;
  for (const auto &fn : module->functions)
    forEachStmt(fn->body, [&](const Stmt &s) {
      for (const auto &v : s.values) {
        const Expr *deepest = nullptr;
        if (exprDepth(*v, kMaxExprDepth, deepest) > kMaxExprDepth) {
          onError(deepest->loc, "expression nested too deeply (more than " +
                                    std::to_string(kMaxExprDepth) +
                                    " levels); split it into definitions");
          ok = false;
        }
      }
    });
  return ok ? std::move(module) : nullptr;
}

std::unique_ptr<Module> mlx::ast::parseModule(const std::string &path,
                                              const std::string &source,
                                              const ErrorFn &onError) {
  // The recursive-descent parser's depth grows with the input's nesting:
  // parse on a thread whose stack fits the largest accepted file.
  std::unique_ptr<Module> module;
  llvm::thread worker(std::optional<unsigned>(kParserStackBytes), [&] {
    try {
      module = parseOnThisThread(path, source, onError);
    } catch (const std::exception &e) {
      // ANTLR reports problems by exceptions; none may escape as a crash.
      Loc loc;
      loc.file = std::make_shared<std::string>(path);
      loc.line = 1;
      loc.col = 1;
      onError(loc, std::string("cannot parse this file: ") + e.what());
      module = nullptr;
    }
  });
  worker.join();
  return module;
}
