//===- MlxBase.td - the mlx dialect and its attributes ------*- tablegen -*-===//
//
// The mlx dialect is the level where a program still reads like the
// equations: index-notation ops with value semantics.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_BASE_TD
#define MLX_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Mlx_Dialect : Dialect {
  let name = "mlx";
  let summary = "Index-notation ML math, as written in .mlx files";
  let description = [{
    Ops that keep the structure of the source equations: an index-notation
    op (`mlx.generic`) with index maps, iterator kinds and a reduction
    combiner; calls of a function mapped over slices (`mlx.map_call`).
    All ops take and return tensors (value semantics); bufferization happens
    after lowering to linalg.
  }];
  let cppNamespace = "::mlir::mlx";
  let useDefaultAttributePrinterParser = 1;
  // Canonicalization materializes arith constants in generic bodies.
  let dependentDialects = ["arith::ArithDialect"];
}

def Mlx_Combiner : I32EnumAttr<"Combiner", "how a reduction combines values", [
    I32EnumAttrCase<"none", 0>, I32EnumAttrCase<"add", 1>,
    I32EnumAttrCase<"mul", 2>, I32EnumAttrCase<"max", 3>,
    I32EnumAttrCase<"min", 4>]> {
  let cppNamespace = "::mlir::mlx";
  let genSpecializedAttr = 0;
}
def Mlx_CombinerAttr : EnumAttr<Mlx_Dialect, Mlx_Combiner, "combiner"> {
  let assemblyFormat = "`<` $value `>`";
}

def Mlx_IteratorKind : I32EnumAttr<"IteratorKind", "kind of an index", [
    I32EnumAttrCase<"parallel", 0>, I32EnumAttrCase<"reduction", 1>]> {
  let cppNamespace = "::mlir::mlx";
  let genSpecializedAttr = 0;
}
def Mlx_IteratorKindAttr : EnumAttr<Mlx_Dialect, Mlx_IteratorKind, "iterator"> {
  let assemblyFormat = "`<` $value `>`";
}

class Mlx_Op<string mnemonic, list<Trait> traits = []>
    : Op<Mlx_Dialect, mnemonic, traits>;

#endif // MLX_BASE_TD
