//===- CpuCodegen.h - the CPU backend ---------------------------*- C++ -*-===//
//
// linalg on tensors → bufferized loops → LLVM dialect → LLVM IR, then either
// JIT-compiled in-process or written as an object file. Every exported
// function NAME gets a packed entry point `mlx_call_NAME(void **args)`:
// args[0] points at the result descriptors (one strided memref descriptor per
// result, back to back), args[1 + i] at argument i's descriptor; JIT and AOT
// alike. codegen/cpu/CpuTarget.h puts the Target interface on these.
//
//===----------------------------------------------------------------------===//
#ifndef MLX_CODEGEN_CPU_CPUCODEGEN_H
#define MLX_CODEGEN_CPU_CPUCODEGEN_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringRef.h"

#include <memory>
#include <optional>
#include <string>

namespace llvm {
class LLVMContext;
class Module;
class raw_ostream;
} // namespace llvm

namespace mlir {
class DialectRegistry;
class OpPassManager;
class Pass;
namespace mlx {

/// Registers what the CPU target lowers through, from linalg on tensors
/// (bufferization and its interface models, memref, cf, affine, LLVM) and
/// the LLVM IR translation. With registerMlxLevelDialects, everything the
/// CPU compiler uses.
void registerCpuTargetDialects(DialectRegistry &registry);

/// linalg on tensors → LLVM dialect: bufferize, free buffers, loops, LLVM.
/// With `vectorBits` (the target's vector registers), contractions become
/// packed, register-tiled vector kernels (mlx-cpu-contractions) first.
void buildLinalgToLLVMPipeline(OpPassManager &pm, unsigned vectorBits = 0);

/// The first part of it, for every target: tensors → buffers (identity
/// layouts at function boundaries, arguments read-only, copies as
/// linalg.copy), every temporary freed, results returned owned.
void buildBufferizePipeline(OpPassManager &pm);

/// The last part: loops, memrefs, math and arith → the LLVM dialect.
/// `alignedAlloc` allocates through aligned_alloc (else malloc plus
/// padding).
void buildHostToLLVMPipeline(OpPassManager &pm, bool alignedAlloc = false);

/// `mlx-approximate-math`: f32 exp, log, log1p, tanh and erf as polynomial
/// approximations (vectorizable; ApproximateMath.cpp). `strictRounding`:
/// the target evaluates float arithmetic as written (CPUs; not GPU drivers,
/// which reassociate), as mlxc's own exp needs.
std::unique_ptr<Pass> createApproximateMathPass(bool strictRounding = true);

/// The CPU target's pipeline from linalg on tensors: mlx-cpu-fuse-gathers,
/// mlx-cpu-masked-sums, mlx-loop-order, mlx-cpu-row-blocks (where `rowBlocks`),
/// mlx-cpu-fuse-rows, then buildLinalgToLLVMPipeline with the contraction
/// kernels for `vectorBits`.
void buildLinalgToCpuPipeline(OpPassManager &pm, unsigned vectorBits,
                              bool rowBlocks = true);

/// `mlx-cpu-contractions` (Contractions.cpp): contractions on buffers as
/// packed, cache-blocked and register-tiled kernels of `vectorBits`-wide
/// vector FMAs.
std::unique_ptr<Pass> createCpuContractionsPass(unsigned vectorBits);

/// `mlx-cpu-reciprocal-divisors` (ReciprocalDivisors.cpp): x / d as
/// x · (1/d) for constant d and for d invariant in an scf.for or
/// scf.parallel (the loop versioned on d's range), where 1/d is a normal
/// float.
std::unique_ptr<Pass> createCpuReciprocalDivisorsPass();
void registerCpuReciprocalDivisorsPass();

/// `mlx-cpu-column-blocks` (ColumnBlocks.cpp): sums over rows for each
/// column (a bias's gradient) shared out by blocks of columns, each block
/// running every row, instead of one parallel loop per row.
std::unique_ptr<Pass> createCpuColumnBlocksPass();
void registerCpuColumnBlocksPass();

/// `mlx-cpu-fuse-gathers` (FuseGathers.cpp): a gather cheap to recompute
/// (a convolution's patches) fused into the reduction that reads it, so
/// that the contraction packs it from the gathered input itself.
std::unique_ptr<Pass> createCpuFuseGathersPass();
void registerCpuFuseGathersPass();

/// `mlx-cpu-masked-sums` (MaskedSums.cpp): `Σ (m ? p : 0)` with m free of
/// the summed dims as `m ? Σ p : 0` (a guarded read's gradient becomes a
/// contraction).
std::unique_ptr<Pass> createCpuMaskedSumsPass();
/// `mlx-cpu-divided-sums` (MaskedSums.cpp): `Σ p / c` with c free of the
/// summed dims as `(Σ p) / c` (a mean divides once per row); after
/// fuse-rows, so the division stays in its block of rows.
std::unique_ptr<Pass> createCpuDividedSumsPass();
/// Registers both.
void registerCpuMaskedSumsPass();

/// `mlx-cpu-row-blocks` (RowBlocks.cpp): the ops over a matrix that a row
/// reduction reads and a product sums over the rows of (attention's
/// gradient) run a block of its rows at a time, the sums over the rows
/// carried across the blocks: no whole T×T tensor.
std::unique_ptr<Pass> createCpuRowBlocksPass();
void registerCpuRowBlocksPass();

/// `mlx-cpu-fuse-rows` (FuseRows.cpp): a chain of row-wise ops (row
/// reductions and the maps reading them) tiled along the rows and fused, a
/// block of rows at a time, in an scf.forall.
std::unique_ptr<Pass> createCpuFuseRowsPass();
void registerCpuFuseRowsPass();

/// An scf.for's attribute for mlx-parallel-threshold: the work (element
/// operations) one iteration of its body stands for beyond the loops in it
/// (a call to a kernel, a loop whose trip count is not known before the
/// parallel loop around it).
inline constexpr llvm::StringLiteral kLoopWorkAttr = "mlx.work";
void registerCpuContractionsPass();

/// The width of the vector registers of `cpu` ("host": detected now; else an
/// LLVM CPU name): 512 with AVX-512 (the functions then ask for 512-bit
/// registers where LLVM tunes the CPU for 256), 256 with AVX, else 128.
unsigned vectorBitsOf(const std::string &cpu);

/// The whole CPU pipeline from the mlx dialect (`mlx-to-cpu-pipeline`);
/// `checkNumerics` instruments it for `--check-numerics`.
void buildMlxToCpuPipeline(OpPassManager &pm, bool checkNumerics = false);

/// Registers `mlx-to-cpu-pipeline`, `linalg-to-cpu-pipeline` and
/// mlx-cpu-contractions.
void registerCpuPipelines();

/// Translates an LLVM-dialect module to LLVM IR, adds the packed
/// `mlx_call_*` entry points, and optimizes at -O3 for the host CPU.
std::unique_ptr<llvm::Module>
translateToLLVMIR(ModuleOp module, llvm::LLVMContext &ctx, std::string &error);

/// Prints translateToLLVMIR's module (`--stage=llvm`); an error text, or
/// empty.
std::string printLLVMIR(ModuleOp module, llvm::raw_ostream &os);

/// Compiles an LLVM-dialect module (with the packed entry points) to a
/// position-independent object file for `cpu` ("host": the host CPU with
/// its features; or an LLVM CPU name), optimized at `optLevel`: what
/// the JIT loads, the compile cache keeps and `mlxc build` links. With
/// `defaultReports`, an out-of-range subscript aborts unless the program
/// defines mlx_report_out_of_bounds (a library has no driver to report to).
/// Returns nullopt and sets `error` on failure.
std::optional<std::string> emitObject(ModuleOp module, bool defaultReports,
                                      unsigned optLevel, const std::string &cpu,
                                      std::string &error);

/// Writes emitObject's object file to `path`. Returns false and sets
/// `error` on failure.
bool emitObjectFile(ModuleOp module, llvm::StringRef path, unsigned optLevel,
                    const std::string &cpu, std::string &error);

/// Links `object` into the shared library `output` with the system's `cc`
/// (libm; libomp where the code needs it). Returns an error message, empty
/// on success (callers write to a temporary and rename it into place).
std::string linkSharedLibrary(const std::string &object,
                              const std::string &output);

/// Initializes LLVM's code generator and assembly printer for the host
/// (once per process): needed to emit objects and to load them.
void initializeNativeTarget();

/// What objects compiled at `optLevel` for `cpu` are for: the triple, the
/// level, the CPU and (for "host") its features.
std::string cpuDescription(unsigned optLevel, const std::string &cpu);

/// An empty string when `optLevel` and `cpu` are valid, else what is wrong.
std::string checkCodegenOptions(unsigned optLevel, const std::string &cpu);

} // namespace mlx
} // namespace mlir

#endif // MLX_CODEGEN_CPU_CPUCODEGEN_H
