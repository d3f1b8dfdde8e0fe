// MLX.g4 — the grammar of the .mlx language: equation-like definitions in
// index notation. First stage of the pipeline (grammar/ → frontend/).
// Precedence, loosest first: ?: , || , && , comparisons, + - , * / ,
// unary - ! and reductions, ^ (right-assoc), postfix [..] (..).
// `for t in lo..hi { ... }` runs its body for t = lo, ..., hi − 1 in order.
// A reduction `sum[j] e` takes a multiplicative term as its body, as Σ does
// on paper: `sum[d] X[n,d] * w[d] - y[n]` is (Σ_d X w) − y. A bound on its
// index makes a scan: `c[i] = sum[j <= i] x[j]` (cumulative sum).
grammar MLX;

module_ : (importStmt | funcDef)* EOF ;

importStmt : IMPORT ID ;

funcDef : DEF name=ID '(' paramList? ')' ARROW retType block ;

paramList : param (',' param)* ;
param : ID (':' STATIC? type)? ;

retType : type | '(' type (',' type)* ')' ;

type : DTYPE ('[' dimList? ']')? ;
dimList : dim (',' dim)* ;
dim : ELLIPSIS | dimExpr ;
dimExpr
  : '(' dimExpr ')'                          # dimParen
  | dimExpr op=('*' | '/') dimExpr           # dimMul
  | dimExpr op=('+' | '-') dimExpr           # dimAdd
  | INT                                      # dimInt
  | ID                                       # dimSym
  ;

block : '{' stmt* '}' ;

stmt
  : RETURN expr (',' expr)*                          # returnStmt
  | FOR ID IN loopRange block                        # forStmt
  | CHECK expr                                       # checkStmt
  | ID '[' lhsIndex (',' lhsIndex)* ']' '=' expr     # indexedDef
  | ID (',' ID)+ '=' expr                            # tupleDef
  | ID '=' expr                                      # plainDef
  ;

lhsIndex : ID ('<' bound=addExpr)? | ':' ;

loopRange : lo=addExpr DOTDOT hi=addExpr ;

expr : ternary ;
ternary : orExpr ('?' expr ':' expr)? ;
orExpr : andExpr ('||' andExpr)* ;
andExpr : cmpExpr ('&&' cmpExpr)* ;
cmpExpr : addExpr (op=('<' | '<=' | '>' | '>=' | '==' | '!=') addExpr)? ;
addExpr : mulExpr (ops+=('+' | '-') mulExpr)* ;
mulExpr : unaryExpr (ops+=('*' | '/' | '%') unaryExpr)* ;
unaryExpr
  : op=('-' | '!') unaryExpr                          # negate
  | red=(SUM | PROD | MAX | MIN | ARGMAX | ARGMIN)
      '[' ID (',' ID)* (bound=('<' | '<=' | '>' | '>=') limit=addExpr)? ']'
      mulExpr                                        # reduction
  | powExpr                                          # powerLevel
  ;
powExpr : postfixExpr ('^' unaryExpr)? ;
postfixExpr : primary suffix* ;
suffix
  : '[' indexArg (',' indexArg)* ']'                 # subscript
  | '(' argList? ')'                                 # callArgs
  ;
indexArg : ':' | expr ;
argList : expr (',' expr)* ;
primary
  : FLOAT                                            # floatLit
  | INT                                              # intLit
  | INF                                              # infLit
  | (TRUE | FALSE)                                   # boolLit
  | ID                                               # name
  | fn=(MAX | MIN) '(' argList ')'                   # minMaxCall
  | DTYPE '(' argList ')'                            # castCall
  | '(' expr ')'                                     # paren
  ;

IMPORT : 'import' ;
DEF : 'def' ;
RETURN : 'return' ;
FOR : 'for' ;
STATIC : 'static' ;
CHECK : 'check' ;
IN : 'in' ;
SUM : 'sum' ;
PROD : 'prod' ;
MAX : 'max' ;
MIN : 'min' ;
ARGMAX : 'argmax' ;
ARGMIN : 'argmin' ;
INF : 'inf' ;
TRUE : 'true' ;
FALSE : 'false' ;
DTYPE : 'f32' | 'f64' | 'i32' | 'i64' | 'bool' ;
ARROW : '->' ;
ELLIPSIS : '...' ;
DOTDOT : '..' ;

// `1.` is a float, but in `0..T` the `0` is an integer before `..`.
FLOAT
  : DIGITS '.' {_input->LA(1) != '.'}? DIGITS? EXPONENT?
  | '.' DIGITS EXPONENT?
  | DIGITS EXPONENT
  ;
INT : DIGITS ;
fragment DIGITS : [0-9]+ ;
fragment EXPONENT : [eE] [+-]? DIGITS ;

// Letters of any script (Greek included), digits and '_'.
ID : [\p{L}_] [\p{L}\p{N}_]* ;

COMMENT : '#' ~[\r\n]* -> skip ;
WS : [ \t\r\n]+ -> skip ;
// Any other character is a token of its own, so the parser reports it with
// its location instead of the lexer dropping it.
ERRCHAR : . ;
