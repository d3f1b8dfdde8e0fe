//===- CpuCodegen.cpp - the CPU backend -------------------------*- C++ -*-===//
//
// The last stage for the CPU: bufferization, buffer deallocation, loops,
// conversion to the LLVM dialect, LLVM IR, and then the JIT or an object file.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/CpuCodegen.h"
#include "dialects/mlx/MlxDialect.h"
#include "passes/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Transforms/BufferDeallocationOpInterfaceImpl.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/FuncBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotAnalysis.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/ControlFlow/Transforms/BufferDeallocationOpInterfaceImpl.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Linalg/Transforms/TilingInterfaceImpl.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/AllocationOpInterfaceImpl.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/BufferDeallocationOpInterfaceImpl.h"
#include "mlir/Dialect/SCF/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

#include <functional>

using namespace mlir;

void mlx::registerCpuTargetDialects(DialectRegistry &registry) {
  registry
      .insert<memref::MemRefDialect, bufferization::BufferizationDialect,
              cf::ControlFlowDialect, affine::AffineDialect, LLVM::LLVMDialect,
              omp::OpenMPDialect, vector::VectorDialect>();
  arith::registerBufferizableOpInterfaceExternalModels(registry);
  arith::registerBufferDeallocationOpInterfaceExternalModels(registry);
  linalg::registerBufferizableOpInterfaceExternalModels(registry);
  linalg::registerTilingInterfaceExternalModels(registry);
  tensor::registerBufferizableOpInterfaceExternalModels(registry);
  scf::registerBufferizableOpInterfaceExternalModels(registry);
  scf::registerBufferDeallocationOpInterfaceExternalModels(registry);
  cf::registerBufferDeallocationOpInterfaceExternalModels(registry);
  bufferization::func_ext::registerBufferizableOpInterfaceExternalModels(
      registry);
  memref::registerAllocationOpInterfaceExternalModels(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
}

namespace {
/// Marks every tensor argument `bufferization.writable = false`: arguments
/// are the caller's memory, so an update (`Q[s, a] = …`, an
/// insert_slice) copies before it writes instead of writing into them.
struct ReadOnlyArgumentsPass
    : public PassWrapper<ReadOnlyArgumentsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ReadOnlyArgumentsPass)
  void runOnOperation() override {
    auto readOnly = BoolAttr::get(&getContext(), false);
    for (auto f : getOperation().getOps<func::FuncOp>())
      for (unsigned k = 0; !f.isExternal() && k < f.getNumArguments(); ++k)
        if (isa<TensorType>(f.getArgument(k).getType()))
          f.setArgAttr(k,
                       bufferization::BufferizationDialect::kWritableAttrName,
                       readOnly);
  }
};
} // namespace

/// `mlx-sequential-inner-loops`: keeps parallel only the first dim of the
/// parallel loops no other parallel loop encloses (one parallel level: a
/// loop nested in another runs where its enclosing iteration runs, while
/// one in a sequential loop, such as a recurrence's steps, forks a team per
/// step where its work pays for it; and a team shares out rows, keeping
/// each row's loop whole, where collapsing the dims would cost a division
/// per element and the row's vectorization), and makes the rest scf.for
/// nests in the same order.
struct SequentialInnerLoopsPass
    : public PassWrapper<SequentialInnerLoopsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(SequentialInnerLoopsPass)
  void runOnOperation() override {
    SmallVector<std::pair<scf::ParallelOp, bool>> loops; // (loop, outermost)
    getOperation().walk([&](scf::ParallelOp loop) {
      bool outermost = true;
      for (Operation *parent = loop->getParentOp();
           parent && !isa<func::FuncOp>(parent); parent = parent->getParentOp())
        if (isa<scf::ParallelOp>(parent))
          outermost = false;
      if (!outermost || loop.getNumLoops() > 1)
        loops.push_back({loop, outermost});
    });
    // Innermost first (post-order walk): each is rewritten in place.
    for (auto [loop, outermost] : loops) {
      if (!loop.getInitVals().empty())
        continue; // (linalg's parallel loops carry no reductions)
      OpBuilder b(loop);
      IRMapping mapping;
      Location loc = loop.getLoc();
      for (unsigned k = 0; k < loop.getNumLoops(); ++k) {
        Value lb = loop.getLowerBound()[k], ub = loop.getUpperBound()[k],
              step = loop.getStep()[k];
        Operation *nest;
        if (k == 0 && outermost) {
          auto team = b.create<scf::ParallelOp>(
              loc, ValueRange{lb}, ValueRange{ub}, ValueRange{step});
          mapping.map(loop.getInductionVars()[k], team.getInductionVars()[0]);
          nest = team;
        } else {
          auto sequential = b.create<scf::ForOp>(loc, lb, ub, step);
          mapping.map(loop.getInductionVars()[k], sequential.getInductionVar());
          nest = sequential;
        }
        b.setInsertionPoint(nest->getRegion(0).front().getTerminator());
      }
      for (Operation &op : loop.getBody()->without_terminator())
        b.clone(op, mapping);
      loop.erase();
    }
  }
};

/// The work below which a parallel loop runs on the calling thread alone:
/// iterations of its whole nest. Forking a team whose workers still spin
/// (KMP_BLOCKTIME) costs 0.5–0.8 µs with libomp 19 (a serialized region
/// 0.4); at 2^16 the first row blocks of attention's gradient (128 × 128
/// after the causal cut) ran on one thread while the other waited:
/// T = 1024 forward+backward 3.85 → 3.58 ms at 2^13 (3.55 at 2^12, 3.63 at
/// 2^14), an LSTM of 128 steps 184 → 180 ms, MLP unchanged (Zen 4, A/B of
/// .so files in one process).
constexpr int64_t kMinParallelWork = 1 << 13;

/// `mlx-parallel-threshold`: gives every omp.parallel (from an outermost
/// scf.parallel) the condition that its nest does enough work to pay for
/// the threads. A loop's work is its trip count (where its bounds are known
/// before the parallel op; else 1) times what its `mlx.work` attribute says
/// an iteration stands for, times its body's work; a body's work is the sum
/// of its loops' (1 where it has none), the larger of an scf.if's branches
/// (versions of one loop, as from mlx-cpu-reciprocal-divisors).
struct ParallelThresholdPass
    : public PassWrapper<ParallelThresholdPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ParallelThresholdPass)
  StringRef getArgument() const final { return "mlx-parallel-threshold"; }
  StringRef getDescription() const final {
    return "an OpenMP team only for nests with enough work";
  }
  void runOnOperation() override {
    getOperation().walk([&](omp::ParallelOp parallel) {
      OpBuilder b(parallel);
      Location loc = parallel.getLoc();
      auto outside = [&](Value v) {
        return !parallel.getRegion().isAncestor(v.getParentRegion());
      };
      auto constant = [&](int64_t v) -> Value {
        return b.create<arith::ConstantIndexOp>(loc, v);
      };
      // ⌈(ub − lb) / step⌉ for step > 0, as ArithToLLVM can lower it
      // (arith.ceildivsi needs arith-expand, whose max/min expansions stop
      // LLVM vectorizing max reductions); 1 where not known before.
      auto trips = [&](Value lb, Value ub, Value step) -> Value {
        if (!outside(lb) || !outside(ub) || !outside(step))
          return constant(1);
        Value span = b.create<arith::MaxSIOp>(
            loc, b.create<arith::SubIOp>(loc, ub, lb), constant(0));
        return b.create<arith::DivSIOp>(
            loc,
            b.create<arith::SubIOp>(
                loc, b.create<arith::AddIOp>(loc, span, step), constant(1)),
            step);
      };
      // The work of the loops in `region` (null where it has none).
      std::function<Value(Region &)> loopsWork = [&](Region &region) {
        Value sum;
        auto add = [&](Value w) {
          if (w)
            sum = sum ? b.create<arith::AddIOp>(loc, sum, w) : w;
        };
        auto bodyWork = [&](Region &body) {
          Value w = loopsWork(body);
          return w ? w : constant(1);
        };
        region.walk<WalkOrder::PreOrder>([&](Operation *op) {
          if (auto nest = dyn_cast<omp::LoopNestOp>(op)) {
            Value w = bodyWork(nest.getRegion());
            for (auto [lb, ub, step] :
                 llvm::zip(nest.getLowerBound(), nest.getUpperBound(),
                           nest.getStep()))
              w = b.create<arith::MulIOp>(loc, w, trips(lb, ub, step));
            add(w);
            return WalkResult::skip();
          }
          if (auto loop = dyn_cast<scf::ForOp>(op)) {
            Value w = b.create<arith::MulIOp>(loc, bodyWork(loop.getRegion()),
                                              trips(loop.getLowerBound(),
                                                    loop.getUpperBound(),
                                                    loop.getStep()));
            if (auto hint =
                    loop->getAttrOfType<IntegerAttr>(mlx::kLoopWorkAttr))
              w = b.create<arith::MulIOp>(loc, w, constant(hint.getInt()));
            add(w);
            return WalkResult::skip();
          }
          if (auto branch = dyn_cast<scf::IfOp>(op)) {
            Value then = loopsWork(branch.getThenRegion());
            Value otherwise = loopsWork(branch.getElseRegion());
            add(then && otherwise
                    ? b.create<arith::MaxSIOp>(loc, then, otherwise)
                    : (then ? then : otherwise));
            return WalkResult::skip();
          }
          return WalkResult::advance();
        });
        return sum;
      };
      Value work = loopsWork(parallel.getRegion());
      Value enough = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::sge,
                                             work ? work : constant(1),
                                             constant(kMinParallelWork));
      parallel.getIfExprMutable().assign(enough);
    });
    // scf-to-openmp wraps each loop body in a memref.alloca_scope, which
    // must stay one block and so cannot hold the loops scf-to-cf makes of
    // the nested scf.for. Nothing allocates on the stack in these bodies
    // (buffers come from memref.alloc): the scopes are inlined.
    SmallVector<memref::AllocaScopeOp> scopes;
    getOperation().walk([&](memref::AllocaScopeOp scope) {
      bool stack = false;
      scope.walk([&](memref::AllocaOp) { stack = true; });
      if (!stack)
        scopes.push_back(scope);
    });
    for (memref::AllocaScopeOp scope : scopes) {
      Block &body = scope.getBodyRegion().front();
      Operation *yield = body.getTerminator();
      scope->replaceAllUsesWith(yield->getOperands());
      yield->erase();
      scope->getBlock()->getOperations().splice(Block::iterator(scope),
                                                body.getOperations());
      scope.erase();
    }
  }
};

void mlx::buildBufferizePipeline(OpPassManager &pm) {
  // Tensors → buffers across function boundaries; exported functions take
  // and return plain (identity-layout) strided memrefs.
  bufferization::OneShotBufferizationOptions bufferization;
  bufferization.bufferizeFunctionBoundaries = true;
  // A loop step may carry a fresh buffer out (`h = tanh(...)` is a new
  // tensor, not written over the carried one); the deallocation pipeline
  // frees the previous step's.
  bufferization.allowReturnAllocsFromLoops = true;
  bufferization.setFunctionBoundaryTypeConversion(
      bufferization::LayoutMapOption::IdentityLayoutMap);
  // Copies become linalg.copy, so they lower to plain loops (memref.copy of
  // strided views would need a runtime library function).
  bufferization.memCpyFn = [](OpBuilder &b, Location loc, Value from,
                              Value to) {
    b.create<linalg::CopyOp>(loc, from, to);
    return success();
  };
  pm.addPass(std::make_unique<ReadOnlyArgumentsPass>());
  pm.addPass(bufferization::createOneShotBufferizePass(bufferization));
  pm.addPass(createCanonicalizerPass());
  // Free every temporary; results are returned owned (cloned if needed), so
  // the caller frees each result's allocation exactly once.
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  // The clones that hand out owned results (e.g. an argument returned as a
  // gradient) become alloc + copy.
  pm.addPass(createBufferizationToMemRefPass());
}

void mlx::buildLinalgToLLVMPipeline(OpPassManager &pm, unsigned vectorBits) {
  buildBufferizePipeline(pm);
  // mlx-cpu-fuse-rows's blocks of rows: the loop the threads share.
  pm.addPass(createForallToParallelLoopPass());
  if (vectorBits)
    pm.addPass(createCpuContractionsPass(vectorBits));
  // Column sums: a parallel loop over blocks of columns, not one per row.
  pm.addPass(createCpuColumnBlocksPass());
  // Threads: each nest's outermost parallel loops are shared out over an
  // OpenMP team (static schedule: every element is computed the same way
  // whatever the thread count, so results are bit-identical), when the nest
  // is big enough; loops inside run sequentially within an iteration.
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  pm.addPass(std::make_unique<SequentialInnerLoopsPass>());
  // Divisions by a row's sum or a constant as products by its reciprocal.
  pm.addPass(createCpuReciprocalDivisorsPass());
  pm.addPass(createConvertSCFToOpenMPPass());
  pm.addPass(std::make_unique<ParallelThresholdPass>());
  buildHostToLLVMPipeline(pm);
}

void mlx::buildHostToLLVMPipeline(OpPassManager &pm, bool alignedAlloc) {
  // Subviews from slices carry strided metadata that LLVM lowering expands.
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertSCFToCFPass());
  // f32 exp/log/tanh/erf as vectorizable arithmetic; then math with an
  // LLVM intrinsic; the rest (f64 tanh, erf) calls libm.
  pm.addPass(createApproximateMathPass());
  // log1p goes to libm: MathToLLVM's log(1 + x) loses small x.
  pm.addPass(createConvertMathToLLVMPass({/*approximateLog1p=*/false}));
  pm.addPass(createConvertMathToLibmPass());
  // The contraction kernels' vector ops (FMAs, masked loads and stores).
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  FinalizeMemRefToLLVMConversionPassOptions memrefOptions;
  memrefOptions.useAlignedAlloc = alignedAlloc;
  pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefOptions));
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void mlx::buildLinalgToCpuPipeline(OpPassManager &pm, unsigned vectorBits,
                                   bool rowBlocks) {
  // A convolution's patches: evaluated by the contraction's packer from
  // the input itself, not written out (then ordered with the rest).
  pm.addNestedPass<func::FuncOp>(createCpuFuseGathersPass());
  // A convolution's gradient: its padding mask out of the sum over o.
  pm.addNestedPass<func::FuncOp>(createCpuMaskedSumsPass());
  // A CPU concern: contiguous innermost loops (reductions are listed last
  // in index notation, which would make matmul-like loops stride).
  pm.addPass(createLoopOrderPass());
  // Attention's gradient: its score matrices a block of rows at a time.
  if (rowBlocks)
    pm.addNestedPass<func::FuncOp>(createCpuRowBlocksPass());
  pm.addNestedPass<func::FuncOp>(createCpuFuseRowsPass());
  // A mean's division out of its sum (in its block of rows).
  pm.addNestedPass<func::FuncOp>(createCpuDividedSumsPass());
  // A producer two fused ops read is fused twice (softmax's exp, read by
  // the sum and the division): one copy is left.
  pm.addNestedPass<func::FuncOp>(createCSEPass());
  buildLinalgToLLVMPipeline(pm, vectorBits);
}

void mlx::buildMlxToCpuPipeline(OpPassManager &pm, bool checkNumerics) {
  buildMlxToLinalgPipeline(pm, checkNumerics, 0, /*onlineSoftmax=*/true);
  buildLinalgToCpuPipeline(pm, vectorBitsOf("host"));
}

void mlx::registerCpuPipelines() {
  registerPass([] { return createApproximateMathPass(); });
  PassRegistration<ParallelThresholdPass>();
  // (upstream's, for tests of the pass above)
  registerPass([] { return createConvertSCFToOpenMPPass(); });
  PassPipelineRegistration<>(
      "mlx-to-cpu-pipeline", "mlx dialect to the LLVM dialect for the CPU",
      [](OpPassManager &pm) { buildMlxToCpuPipeline(pm); });
  PassPipelineRegistration<>(
      "linalg-to-cpu-pipeline",
      "linalg on tensors to the LLVM dialect for the host CPU",
      [](OpPassManager &pm) {
        buildLinalgToCpuPipeline(pm, vectorBitsOf("host"));
      });
  registerCpuContractionsPass();
  registerCpuColumnBlocksPass();
  registerCpuReciprocalDivisorsPass();
  registerCpuFuseGathersPass();
  registerCpuFuseRowsPass();
  registerCpuRowBlocksPass();
  registerCpuMaskedSumsPass();
}

/// Adds `mlx_call_NAME(void **args)` for each `_mlir_ciface_NAME`: loads each
/// pointer argument from `args` and calls the C interface function.
static void addPackedEntryPoints(llvm::Module &module) {
  llvm::StringRef prefix = "_mlir_ciface_";
  SmallVector<llvm::Function *> cifaces;
  for (llvm::Function &fn : module)
    if (!fn.isDeclaration() && fn.getName().starts_with(prefix))
      cifaces.push_back(&fn);
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptrType = llvm::PointerType::getUnqual(ctx);
  auto *entryType =
      llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptrType}, false);
  for (llvm::Function *fn : cifaces) {
    if (llvm::any_of(fn->args(), [](llvm::Argument &arg) {
          return !arg.getType()->isPointerTy();
        }))
      continue;
    auto *entry = llvm::Function::Create(
        entryType, llvm::GlobalValue::ExternalLinkage,
        "mlx_call_" + fn->getName().drop_front(prefix.size()), module);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", entry));
    SmallVector<llvm::Value *> args;
    for (unsigned i = 0; i < fn->arg_size(); ++i)
      args.push_back(b.CreateLoad(
          ptrType, b.CreateConstGEP1_64(ptrType, entry->getArg(0), i)));
    b.CreateCall(fn, args);
    b.CreateRetVoid();
  }
}

/// A library has no driver to report to: unless its user defines
/// mlx_report_out_of_bounds, an out-of-range subscript aborts (weak default).
static void addDefaultBoundsReport(llvm::Module &module) {
  llvm::Function *report = module.getFunction(mlx::kOutOfBoundsReport);
  if (!report || !report->isDeclaration())
    return;
  report->setLinkage(llvm::GlobalValue::WeakAnyLinkage);
  llvm::LLVMContext &ctx = module.getContext();
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", report));
  llvm::FunctionCallee abortFn = module.getOrInsertFunction(
      "abort", llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), false));
  b.CreateCall(abortFn);
  b.CreateUnreachable();
}

std::unique_ptr<llvm::Module> mlx::translateToLLVMIR(ModuleOp module,
                                                     llvm::LLVMContext &ctx,
                                                     std::string &error) {
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, ctx, "mlx");
  if (!llvmModule) {
    error = "cannot translate the module to LLVM IR";
    return nullptr;
  }
  addPackedEntryPoints(*llvmModule);
  return llvmModule;
}

std::string mlx::printLLVMIR(ModuleOp module, llvm::raw_ostream &os) {
  llvm::LLVMContext ctx;
  std::string error;
  std::unique_ptr<llvm::Module> llvmModule =
      translateToLLVMIR(module, ctx, error);
  if (llvmModule)
    llvmModule->print(os, nullptr);
  return error;
}

void mlx::initializeNativeTarget() {
  static bool initialized = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialized;
}

/// A target machine for `options.cpu` on the host's architecture: the host
/// CPU with its features detected at run time, or a named CPU with its
/// default features.
static llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
targetMachine(std::optional<llvm::Reloc::Model> relocation, unsigned optLevel,
              const std::string &cpu) {
  mlx::initializeNativeTarget();
  llvm::orc::JITTargetMachineBuilder builder{
      llvm::Triple(llvm::sys::getProcessTriple())};
  if (cpu == "host") {
    auto host = llvm::orc::JITTargetMachineBuilder::detectHost();
    if (!host)
      return host.takeError();
    builder = std::move(*host);
  } else {
    builder.setCPU(cpu);
  }
  static const llvm::CodeGenOptLevel levels[] = {
      llvm::CodeGenOptLevel::None, llvm::CodeGenOptLevel::Less,
      llvm::CodeGenOptLevel::Default, llvm::CodeGenOptLevel::Aggressive};
  builder.setCodeGenOptLevel(levels[std::min(optLevel, 3u)]);
  builder.setRelocationModel(relocation);
  // A JIT target machine defaults to the large code model on x86-64: every
  // constant is a 64-bit movabs plus a load (86 in row softmax's loop
  // nest, a register each). The object is small and PIC, for a shared
  // library or for ORC's JITLink, which links it in one allocation.
  builder.setCodeModel(llvm::CodeModel::Small);
  return builder.createTargetMachine();
}

/// The subtarget of `cpu` with `features` on the host's architecture; null
/// (and `error`) where LLVM has no target for it.
static std::unique_ptr<llvm::MCSubtargetInfo>
subtargetInfo(llvm::StringRef cpu, llvm::StringRef features,
              std::string &error) {
  mlx::initializeNativeTarget();
  std::string triple = llvm::sys::getProcessTriple();
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return nullptr;
  return std::unique_ptr<llvm::MCSubtargetInfo>(
      target->createMCSubtargetInfo(triple, cpu, features));
}

unsigned mlx::vectorBitsOf(const std::string &cpu) {
  std::string name = cpu, features, error;
  if (cpu == "host") {
    name = llvm::sys::getHostCPUName().str();
    for (const auto &[feature, enabled] : llvm::sys::getHostCPUFeatures())
      features += (enabled ? ",+" : ",-") + feature.str();
  }
  std::unique_ptr<llvm::MCSubtargetInfo> info =
      subtargetInfo(name, features, error);
  if (!info)
    return 128;
  // (Where LLVM tunes for 256-bit vectors, Skylake-AVX512 to Rocket Lake,
  // targetModule asks for 512-bit registers: its vectorizers keep 256.)
  if (info->checkFeatures("+avx512f"))
    return 512;
  return info->checkFeatures("+avx") ? 256 : 128;
}

std::string mlx::checkCodegenOptions(unsigned optLevel,
                                     const std::string &cpu) {
  if (optLevel > 3)
    return "the optimisation level must be 0 to 3, got " +
           std::to_string(optLevel);
  if (cpu == "host")
    return "";
  std::string error;
  std::unique_ptr<llvm::MCSubtargetInfo> info = subtargetInfo("", "", error);
  if (!error.empty())
    return error;
  if (info && info->isCPUStringValid(cpu))
    return "";
  return "unknown CPU '" + cpu + "' for " + llvm::sys::getProcessTriple() +
         " (host, or an LLVM CPU name such as x86-64, x86-64-v2, x86-64-v3, "
         "x86-64-v4, znver4)";
}

/// Tells LLVM the module is for `machine`: its triple and data layout, and
/// on every function the CPU and its features, so that the optimizer's cost
/// model and the code generator use the host's vector units. With AVX-512
/// every function uses 512-bit registers: where LLVM tunes the CPU for
/// 256-bit vectors (Intel's, Skylake-AVX512 on) it would otherwise split
/// the kernels' 16-lane vectors in two and run half the FMAs per cycle
/// (matmul 2048³ on a 2-FMA-port Xeon: 84 → 55 ms), and its vectorizers
/// would fill half a register (same Xeon: row softmax 4096² 12.1 → 9.5 ms,
/// GELU 16 M 9.4 → 6.4; no case slower). The tuning guards against the
/// clock drop of Skylake-SP's 512-bit units, not measured here.
static void targetModule(llvm::Module &module, llvm::TargetMachine &machine) {
  module.setDataLayout(machine.createDataLayout());
  module.setTargetTriple(machine.getTargetTriple().getTriple());
  bool avx512 = machine.getMCSubtargetInfo()->checkFeatures("+avx512f");
  for (llvm::Function &fn : module) {
    if (fn.isDeclaration())
      continue;
    fn.addFnAttr("target-cpu", machine.getTargetCPU());
    fn.addFnAttr("target-features", machine.getTargetFeatureString());
    if (avx512) {
      fn.addFnAttr("min-legal-vector-width", "512");
      fn.addFnAttr("prefer-vector-width", "512");
    }
  }
}

std::optional<std::string> mlx::emitObject(ModuleOp module, bool defaultReports,
                                           unsigned optLevel,
                                           const std::string &cpu,
                                           std::string &error) {
  mlx::initializeNativeTarget();
  llvm::LLVMContext ctx;
  std::unique_ptr<llvm::Module> llvmModule =
      translateToLLVMIR(module, ctx, error);
  if (!llvmModule)
    return std::nullopt;
  if (defaultReports)
    addDefaultBoundsReport(*llvmModule);
  auto machine = targetMachine(llvm::Reloc::PIC_, optLevel, cpu);
  if (!machine) {
    error = llvm::toString(machine.takeError());
    return std::nullopt;
  }
  targetModule(*llvmModule, **machine);
  if (llvm::Error err = makeOptimizingTransformer(optLevel, 0, machine->get())(
          llvmModule.get())) {
    error = llvm::toString(std::move(err));
    return std::nullopt;
  }
  llvm::SmallVector<char, 0> object;
  llvm::raw_svector_ostream os(object);
  llvm::legacy::PassManager passes;
  if ((*machine)->addPassesToEmitFile(passes, os, nullptr,
                                      llvm::CodeGenFileType::ObjectFile)) {
    error = "the target cannot emit object files";
    return std::nullopt;
  }
  passes.run(*llvmModule);
  return std::string(object.begin(), object.end());
}

bool mlx::emitObjectFile(ModuleOp module, llvm::StringRef path,
                         unsigned optLevel, const std::string &cpu,
                         std::string &error) {
  std::optional<std::string> object =
      emitObject(module, /*defaultReports=*/true, optLevel, cpu, error);
  if (!object)
    return false;
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec) {
    error = ec.message();
    return false;
  }
  os << *object;
  return true;
}

std::string mlx::cpuDescription(unsigned optLevel, const std::string &cpu) {
  std::string text =
      llvm::sys::getProcessTriple() + " O" + std::to_string(optLevel) + " ";
  if (cpu != "host")
    return text + cpu;
  text += llvm::sys::getHostCPUName().str();
  for (const auto &[feature, enabled] : llvm::sys::getHostCPUFeatures())
    if (enabled)
      text += " +" + feature.str();
  return text;
}

std::string mlir::mlx::linkSharedLibrary(const std::string &object,
                                         const std::string &output) {
  auto cc = llvm::sys::findProgramByName("cc");
  if (!cc)
    return "linking a shared library needs 'cc' on the PATH";
  // libomp only where parallel loops need it (--as-needed).
  llvm::SmallVector<llvm::StringRef> argv = {*cc,
                                             "-shared",
                                             "-o",
                                             output,
                                             object,
                                             "-lm",
                                             "-Wl,--as-needed",
                                             "-l:libomp.so.5"};
  if (llvm::sys::ExecuteAndWait(*cc, argv) != 0) {
    llvm::sys::fs::remove(output);
    return "linking a shared library failed";
  }
  return "";
}
