//===- VulkanCodegen.cpp - the Vulkan backend's passes ----------*- C++ -*-===//
//
// From linalg on tensors to host code in the LLVM dialect that launches
// SPIR-V kernels through runtime/vulkan (VulkanCodegen.h has the plan).
// Upstream does the heavy lifting: bufferization, linalg → parallel loops,
// scf.parallel → gpu.launch, kernel outlining, GPU/arith/math/memref →
// SPIR-V, SPIR-V serialization. Our passes map loop nests to workgroups,
// give kernels plain one-dimensional buffers (SPIR-V has no dynamic
// multi-dimensional arrays), and turn launches into runtime calls.
//
//===----------------------------------------------------------------------===//
#include "codegen/vulkan/VulkanCodegen.h"
#include "codegen/cpu/CpuCodegen.h"
#include "codegen/vulkan/Kernels.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Conversion/GPUToSPIRV/GPUToSPIRVPass.h"
#include "mlir/Conversion/MathToSPIRV/MathToSPIRVPass.h"
#include "mlir/Conversion/Passes.h"
#include "mlir/Conversion/SCFToGPU/SCFToGPUPass.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/Dialect/SPIRV/Transforms/Passes.h"
#include "mlir/IR/AsmState.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/SPIRV/Serialization.h"
#include "mlir/Transforms/Passes.h"
#include "mlir/Transforms/RegionUtils.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using ::mlx::vk::ArgKind;
using namespace mlir::mlx::vulkan;

namespace {

/// The module attribute that lists the kernels.
constexpr llvm::StringLiteral kKernelsAttr = "mlx.vulkan.kernels";

/// Marks the host's stand-in for a call's report buffer.
constexpr llvm::StringLiteral kReportAttr = "mlx.vulkan.report";

/// Marks a launch's parameter block (host memory).
constexpr llvm::StringLiteral kParamsAttr = "mlx.vulkan.params";

bool containsParallelLoop(Operation *op) {
  return op->walk([](scf::ParallelOp) { return WalkResult::interrupt(); })
      .wasInterrupted();
}

bool accessesMemory(Operation *op) {
  return op
      ->walk([](Operation *o) {
        return isa<memref::LoadOp, memref::StoreOp>(o) ? WalkResult::interrupt()
                                                       : WalkResult::advance();
      })
      .wasInterrupted();
}

/// `mlx-vulkan-copies`: memref.copy (what bufferization makes of the clone
/// that hands out an owned result) as linalg.copy, so that it becomes a
/// kernel like every other loop nest.
struct CopiesToLinalgPass
    : public PassWrapper<CopiesToLinalgPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CopiesToLinalgPass)
  void runOnOperation() override {
    SmallVector<memref::CopyOp> copies;
    getOperation().walk([&](memref::CopyOp c) { copies.push_back(c); });
    for (memref::CopyOp c : copies) {
      OpBuilder b(c);
      b.create<linalg::CopyOp>(c.getLoc(), c.getSource(), c.getTarget());
      c.erase();
    }
  }
};

/// `mlx-vulkan-map-loops`: makes every loop nest of the host code that
/// touches memory a kernel-to-be: an scf.parallel whose innermost
/// dimension is tiled by the workgroup size and mapped to invocations
/// (consecutive invocations, consecutive elements), its next two outer
/// dimensions to the workgroup grid's y and z, further ones sequential
/// within an invocation. A sequential nest (a reduction to a scalar, a
/// recurrence) runs whole in a one-invocation kernel. Loops that contain
/// parallel loops (a recurrence's steps), and nests that allocate or make
/// views, stay on the host; kernels are made of the loop nests inside them.
struct MapLoopsPass
    : public PassWrapper<MapLoopsPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(MapLoopsPass)

  void collect(Region &region, SmallVector<scf::ParallelOp> &kernels) {
    for (Block &block : region)
      for (Operation &op : llvm::make_early_inc_range(block)) {
        bool fits = fitsInKernel(&op);
        if (op.hasAttr(kMappedKernelAttr))
          continue; // mapped already
        if (auto loop = dyn_cast<scf::ParallelOp>(op); loop && fits) {
          kernels.push_back(loop);
          continue;
        }
        // A lone store into a buffer (a 0-d fill) too: the host would have
        // to wait for the kernels before it.
        if (auto store = dyn_cast<memref::StoreOp>(op);
            store && fits &&
            !store.getMemRef().getDefiningOp<memref::AllocaOp>()) {
          kernels.push_back(wrap(&op));
          continue;
        }
        if (isa<scf::ForOp, scf::WhileOp>(op) && !containsParallelLoop(&op) &&
            fits) {
          if (op.getNumResults() == 0 && accessesMemory(&op))
            kernels.push_back(wrap(&op));
          continue;
        }
        for (Region &inner : op.getRegions())
          collect(inner, kernels);
      }
  }

  /// `op` inside a one-iteration scf.parallel.
  scf::ParallelOp wrap(Operation *op) {
    OpBuilder b(op);
    Location loc = op->getLoc();
    Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
    Value one = b.create<arith::ConstantIndexOp>(loc, 1);
    auto loop = b.create<scf::ParallelOp>(loc, ValueRange{zero},
                                          ValueRange{one}, ValueRange{one});
    op->moveBefore(loop.getBody()->getTerminator());
    return loop;
  }

  void runOnOperation() override {
    SmallVector<scf::ParallelOp> kernels;
    collect(getOperation().getBody(), kernels);
    MLIRContext *ctx = &getContext();
    auto dim = [&](gpu::Processor p) { return mappingTo(ctx, p); };
    for (scf::ParallelOp loop : kernels) {
      unsigned n = loop.getNumLoops();
      bool single = false;
      if (n == 1)
        if (auto ub = getConstantIntValue(loop.getUpperBound()[0]))
          single = *ub == 1;
      SmallVector<int64_t> tiles(n, 1);
      tiles.back() = single ? 1 : kWorkgroupSize;
      auto [outer, inner] =
          scf::tileParallelLoop(loop, tiles, /*noMinMaxBounds=*/true);
      SmallVector<gpu::ParallelLoopDimMappingAttr> blocks, threads;
      const gpu::Processor grid[] = {gpu::Processor::BlockX,
                                     gpu::Processor::BlockY,
                                     gpu::Processor::BlockZ};
      for (unsigned k = 0; k < n; ++k) {
        unsigned fromInnermost = n - 1 - k;
        blocks.push_back(dim(fromInnermost < 3 ? grid[fromInnermost]
                                               : gpu::Processor::Sequential));
        threads.push_back(dim(fromInnermost == 0 ? gpu::Processor::ThreadX
                                                 : gpu::Processor::Sequential));
      }
      if (failed(gpu::setMappingAttr(outer, blocks)) ||
          failed(gpu::setMappingAttr(inner, threads)))
        return signalPassFailure();
    }
  }
};

/// `mlx-vulkan-flatten-buffers`: gives each gpu.launch one-dimensional
/// buffers. A buffer the kernel uses becomes its base (from
/// memref.extract_strided_metadata on the host) as memref<?xT>, with the
/// offset, sizes and strides as scalars: loads and stores index it at
/// offset + Σ index·stride, memref.dim reads the size. Constants the kernel
/// uses are cloned into it instead of passed.
struct FlattenBuffersPass
    : public PassWrapper<FlattenBuffersPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(FlattenBuffersPass)

  /// A scalar the host computes from buffers just before the launch (from
  /// a reduction's result, say) is computed by the kernel instead, so that
  /// the host does not wait for the kernels before it: arithmetic, and
  /// loads where nothing between the load and the launch writes memory.
  void sinkScalars(gpu::LaunchOp launch) {
    Region &body = launch.getBody();
    for (bool changed = true; changed;) {
      changed = false;
      llvm::SetVector<Value> captured;
      getUsedValuesDefinedAbove(body, captured);
      OpBuilder inside(&body.front(), body.front().begin());
      for (Value v : captured) {
        Operation *def = v.getDefiningOp();
        if (!def || def->getBlock() != launch->getBlock() ||
            def->getNumResults() != 1 || def->getNumRegions())
          continue;
        if (isa<memref::LoadOp>(def)) {
          bool quiet = true;
          for (Operation *op = def->getNextNode(); op && op != launch;
               op = op->getNextNode())
            if (!isMemoryEffectFree(op) && !isa<memref::LoadOp>(op))
              quiet = false;
          if (!quiet)
            continue;
        } else if (!isa<arith::ArithDialect, math::MathDialect>(
                       def->getDialect()) ||
                   !isMemoryEffectFree(def) ||
                   def->hasTrait<OpTrait::ConstantLike>()) {
          continue;
        }
        Value copy = inside.clone(*def)->getResult(0);
        replaceAllUsesInRegionWith(v, copy, body);
        if (def->use_empty())
          def->erase();
        changed = true;
        break;
      }
    }
  }

  LogicalResult flatten(gpu::LaunchOp launch) {
    Region &body = launch.getBody();
    sinkScalars(launch);
    llvm::SetVector<Value> captured;
    getUsedValuesDefinedAbove(body, captured);
    OpBuilder host(launch);
    Location loc = launch.getLoc();
    for (Value v : captured) {
      auto type = dyn_cast<MemRefType>(v.getType());
      if (!type)
        continue;
      if (type.getRank() == 1 && type.getLayout().isIdentity()) {
        // Already plain: only its size comes from the host.
        for (OpOperand &use : llvm::make_early_inc_range(v.getUses()))
          if (auto dimOp = dyn_cast<memref::DimOp>(use.getOwner());
              dimOp && body.isAncestor(dimOp->getParentRegion())) {
            Value size = host.create<memref::DimOp>(loc, v, 0);
            dimOp.replaceAllUsesWith(size);
            dimOp.erase();
          }
        continue;
      }
      auto meta = host.create<memref::ExtractStridedMetadataOp>(loc, v);
      Value zero = host.create<arith::ConstantIndexOp>(loc, 0);
      Value one = host.create<arith::ConstantIndexOp>(loc, 1);
      // The extent the buffer spans: offset + Σ (size − 1)·stride + 1.
      Value extent = host.create<arith::AddIOp>(loc, meta.getOffset(), one);
      for (auto [size, stride] :
           llvm::zip(meta.getSizes(), meta.getStrides())) {
        Value last = host.create<arith::SubIOp>(loc, size, one);
        extent = host.create<arith::AddIOp>(
            loc, extent, host.create<arith::MulIOp>(loc, last, stride));
      }
      extent = host.create<arith::MaxSIOp>(loc, extent, zero);
      auto flatType =
          MemRefType::get({ShapedType::kDynamic}, type.getElementType(),
                          AffineMap(), type.getMemorySpace());
      Value flat = host.create<memref::ReinterpretCastOp>(
          loc, flatType, meta.getBaseBuffer(), zero, ValueRange{extent},
          ValueRange{one});
      auto linear = [&](OpBuilder &b, Location at, ValueRange indices) {
        Value index = meta.getOffset();
        for (auto [i, stride] : llvm::zip(indices, meta.getStrides()))
          index = b.create<arith::AddIOp>(
              at, index, b.create<arith::MulIOp>(at, i, stride));
        return index;
      };
      for (OpOperand &use : llvm::make_early_inc_range(v.getUses())) {
        Operation *user = use.getOwner();
        if (!body.isAncestor(user->getParentRegion()))
          continue;
        OpBuilder b(user);
        if (auto load = dyn_cast<memref::LoadOp>(user)) {
          Value index = linear(b, load.getLoc(), load.getIndices());
          load.replaceAllUsesWith(
              b.create<memref::LoadOp>(load.getLoc(), flat, index).getResult());
          load.erase();
        } else if (auto store = dyn_cast<memref::StoreOp>(user)) {
          Value index = linear(b, store.getLoc(), store.getIndices());
          b.create<memref::StoreOp>(store.getLoc(), store.getValue(), flat,
                                    index);
          store.erase();
        } else if (auto dimOp = dyn_cast<memref::DimOp>(user)) {
          auto k = dimOp.getConstantIndex();
          if (!k)
            return dimOp.emitError("a dimension by a variable index in a "
                                   "Vulkan kernel");
          dimOp.replaceAllUsesWith(meta.getSizes()[*k]);
          dimOp.erase();
        } else {
          return user->emitError("'")
                 << user->getName() << "' on a buffer in a Vulkan kernel is "
                 << "not supported yet";
        }
      }
    }
    if (failed(lowerReports(launch)))
      return failure();
    // Constants are cheaper made inside than passed; the other scalars
    // travel as 32-bit words of one parameter block (ArgKind::Params).
    captured.clear();
    getUsedValuesDefinedAbove(body, captured);
    OpBuilder inside(&body.front(), body.front().begin());
    SmallVector<Value> scalars;
    for (Value v : captured) {
      if (isa<MemRefType>(v.getType()))
        continue;
      Operation *def = v.getDefiningOp();
      if (def && def->hasTrait<OpTrait::ConstantLike>())
        replaceAllUsesInRegionWith(v, inside.clone(*def)->getResult(0), body);
      else
        scalars.push_back(v);
    }
    return packParameters(launch, scalars);
  }

  /// Passes `scalars` to the kernel in a block of 32-bit words that the
  /// host fills before the launch (a 64-bit value takes two, low first;
  /// `index` and narrow integers one, as they are 32 bits in a kernel).
  LogicalResult packParameters(gpu::LaunchOp launch, ArrayRef<Value> scalars) {
    if (scalars.empty())
      return success();
    Location loc = launch.getLoc();
    auto wide = [](Type t) { return t.getIntOrFloatBitWidth() == 64; };
    int64_t words = 0;
    for (Value v : scalars) {
      Type t = v.getType();
      if (!t.isIndex() && !t.isSignlessInteger() && !t.isF32() && !t.isF64())
        return launch.emitError("a Vulkan kernel cannot take a scalar of "
                                "type ")
               << t;
      words += !t.isIndex() && wide(t) ? 2 : 1;
    }
    auto fn = launch->getParentOfType<func::FuncOp>();
    OpBuilder entry(&fn.getBody().front(), fn.getBody().front().begin());
    auto i32 = entry.getI32Type(), i64 = entry.getI64Type();
    auto params =
        entry.create<memref::AllocaOp>(loc, MemRefType::get({words}, i32));
    params->setAttr(kParamsAttr, entry.getUnitAttr());
    OpBuilder host(launch);
    Region &body = launch.getBody();
    OpBuilder inside(&body.front(), body.front().begin());
    auto put = [&](Value word, int64_t k) {
      host.create<memref::StoreOp>(
          loc, word, params,
          ValueRange{host.create<arith::ConstantIndexOp>(loc, k)});
    };
    auto get = [&](int64_t k) -> Value {
      return inside.create<memref::LoadOp>(
          loc, params,
          ValueRange{inside.create<arith::ConstantIndexOp>(loc, k)});
    };
    int64_t at = 0;
    for (Value v : scalars) {
      Type t = v.getType();
      Value copy;
      if (t.isIndex()) {
        put(host.create<arith::IndexCastOp>(loc, i32, v), at);
        copy = inside.create<arith::IndexCastOp>(loc, t, get(at++));
      } else if (!wide(t)) {
        bool isFloat = t.isF32(), narrow = !isFloat && !t.isInteger(32);
        Value word = v;
        if (isFloat)
          word = host.create<arith::BitcastOp>(loc, i32, v);
        else if (narrow)
          word = host.create<arith::ExtUIOp>(loc, i32, v);
        put(word, at);
        copy = get(at++);
        if (isFloat)
          copy = inside.create<arith::BitcastOp>(loc, t, copy);
        else if (narrow)
          copy = inside.create<arith::TruncIOp>(loc, t, copy);
      } else {
        Value bits = t.isF64() ? host.create<arith::BitcastOp>(loc, i64, v) : v;
        Value shift = host.create<arith::ConstantIntOp>(loc, 32, 64);
        put(host.create<arith::TruncIOp>(loc, i32, bits), at);
        put(host.create<arith::TruncIOp>(
                loc, i32, host.create<arith::ShRUIOp>(loc, bits, shift)),
            at + 1);
        Value low = inside.create<arith::ExtUIOp>(loc, i64, get(at));
        Value high = inside.create<arith::ExtUIOp>(loc, i64, get(at + 1));
        at += 2;
        copy = inside.create<arith::OrIOp>(
            loc, low,
            inside.create<arith::ShLIOp>(
                loc, high, inside.create<arith::ConstantIntOp>(loc, 32, 64)));
        if (t.isF64())
          copy = inside.create<arith::BitcastOp>(loc, t, copy);
      }
      replaceAllUsesInRegionWith(v, copy, body);
    }
    return success();
  }

  /// Report calls in a kernel become stores into the call's report buffer
  /// (an i32 array the runtime binds and reads when the call ends: [0]
  /// set by an out-of-range subscript, with the check's id, the index and
  /// the size in [1..3]; [4] by a non-finite value, with id and kind in
  /// [5..6]). The host passes a stand-in marked `mlx.vulkan.report`.
  LogicalResult lowerReports(gpu::LaunchOp launch) {
    SmallVector<func::CallOp> calls;
    WalkResult walk = launch.getBody().walk([&](func::CallOp call) {
      if (!isReportCall(call)) {
        call.emitError("a call of '")
            << call.getCallee() << "' in a Vulkan kernel";
        return WalkResult::interrupt();
      }
      calls.push_back(call);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
    if (calls.empty())
      return success();
    auto fn = launch->getParentOfType<func::FuncOp>();
    OpBuilder entry(&fn.getBody().front(), fn.getBody().front().begin());
    Location loc = launch.getLoc();
    Value slots = entry.create<arith::ConstantIndexOp>(loc, 8);
    auto buffer = entry.create<memref::AllocaOp>(
        loc, MemRefType::get({ShapedType::kDynamic}, entry.getI32Type()),
        ValueRange{slots});
    buffer->setAttr(kReportAttr, entry.getUnitAttr());
    for (func::CallOp call : calls) {
      OpBuilder b(call);
      Location at = call.getLoc();
      auto put = [&](int64_t slot, Value v) {
        if (v.getType() != b.getI32Type())
          v = b.create<arith::TruncIOp>(at, b.getI32Type(), v);
        b.create<memref::StoreOp>(
            at, v, buffer,
            ValueRange{b.create<arith::ConstantIndexOp>(at, slot)});
      };
      int64_t first = call.getCallee() == "mlx_report_out_of_bounds" ? 0 : 4;
      put(first, b.create<arith::ConstantIntOp>(at, 1, 32));
      for (auto [k, v] : llvm::enumerate(call.getOperands()))
        put(first + 1 + k, v);
      call.erase();
    }
    return success();
  }

  void runOnOperation() override {
    SmallVector<gpu::LaunchOp> launches;
    getOperation().walk([&](gpu::LaunchOp l) { launches.push_back(l); });
    for (gpu::LaunchOp launch : launches)
      if (failed(flatten(launch)))
        return signalPassFailure();
  }
};

/// `mlx-vulkan-narrow-compares`: in kernels, a comparison of i64 values
/// that are indices (index_cast from `index`) or small constants compares
/// the indices (32 bits in a kernel) instead. Fewer 64-bit operations, and
/// a workaround: lavapipe 22.3 (Debian 12) evaluates such 64-bit compares
/// wrongly (`i < 2` false for i = 0; found by test/Stdlib/cnn.test).
struct NarrowComparesPass
    : public PassWrapper<NarrowComparesPass, OperationPass<gpu::GPUModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(NarrowComparesPass)
  void runOnOperation() override {
    SmallVector<arith::CmpIOp> compares;
    getOperation().walk([&](arith::CmpIOp c) {
      if (c.getLhs().getType().isInteger(64))
        compares.push_back(c);
    });
    for (arith::CmpIOp c : compares) {
      OpBuilder b(c);
      auto asIndex = [&](Value v) -> Value {
        if (auto cast = v.getDefiningOp<arith::IndexCastOp>())
          if (cast.getIn().getType().isIndex())
            return cast.getIn();
        if (auto k = getConstantIntValue(v);
            k && *k >= INT32_MIN && *k <= INT32_MAX)
          return b.create<arith::ConstantIndexOp>(c.getLoc(), *k);
        return nullptr;
      };
      Value lhs = asIndex(c.getLhs()), rhs = asIndex(c.getRhs());
      if (!lhs || !rhs)
        continue;
      c.replaceAllUsesWith(
          b.create<arith::CmpIOp>(c.getLoc(), c.getPredicate(), lhs, rhs)
              .getResult());
      c.erase();
    }
  }
};

/// Whether the runtime can pass a kernel argument of type `type`: only
/// one-dimensional buffers (FlattenBuffersPass packs the scalars).
bool isKernelArgument(Type type) {
  auto memref = dyn_cast<MemRefType>(type);
  return memref && memref.getRank() == 1;
}

/// `mlx-vulkan-kernel-abi`: the module's SPIR-V target environment, and
/// each outlined kernel's workgroup size (the launch's block size) as its
/// entry point ABI; checks that the runtime can pass every argument.
struct KernelAbiPass
    : public PassWrapper<KernelAbiPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(KernelAbiPass)
  explicit KernelAbiPass(std::string targetEnv)
      : targetEnv(std::move(targetEnv)) {}

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Attribute env = parseAttribute(targetEnv, &getContext());
    if (!env) {
      module.emitError("bad SPIR-V target environment ") << targetEnv;
      return signalPassFailure();
    }
    module->setAttr(spirv::getTargetEnvAttrName(), env);
    WalkResult result = module.walk([&](gpu::LaunchFuncOp launch) {
      auto fn = SymbolTable::lookupNearestSymbolFrom<gpu::GPUFuncOp>(
          launch, launch.getKernel());
      if (!fn) {
        launch.emitError("no kernel ") << launch.getKernel();
        return WalkResult::interrupt();
      }
      SmallVector<int32_t> size;
      for (Value v : {launch.getBlockSizeX(), launch.getBlockSizeY(),
                      launch.getBlockSizeZ()}) {
        auto c = getConstantIntValue(v);
        if (!c) {
          launch.emitError("a Vulkan kernel's workgroup size must be known");
          return WalkResult::interrupt();
        }
        size.push_back((int32_t)*c);
      }
      fn->setAttr(spirv::getEntryPointABIAttrName(),
                  spirv::getEntryPointABIAttr(&getContext(), size));
      for (Type t : fn.getArgumentTypes())
        if (!isKernelArgument(t)) {
          launch.emitError("a Vulkan kernel cannot take an argument of type ")
              << t;
          return WalkResult::interrupt();
        }
      // GLSL.std.450 has exp, log, tanh, pow, sin, … for f32 only.
      WalkResult math = fn.walk([&](Operation *op) {
        if (op->getDialect()->getNamespace() != "math" ||
            !llvm::any_of(op->getResultTypes(),
                          [](Type t) { return t.isF64(); }) ||
            isa<math::AbsFOp, math::FloorOp, math::CeilOp, math::RoundOp,
                math::RoundEvenOp, math::TruncOp, math::SqrtOp, math::RsqrtOp,
                math::FmaOp>(op))
          return WalkResult::advance();
        op->emitError("f64 '")
            << op->getName()
            << "' is not supported on Vulkan yet (SPIR-V's GLSL "
               "instructions have it for f32 only); run f64 on --backend cpu";
        return WalkResult::interrupt();
      });
      return math;
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
  std::string targetEnv;
};

/// `mlx-vulkan-launch-calls`: serializes each kernel's spirv.module into
/// the module's kernel list, replaces each gpu.launch_func by a call of
/// mlx_vk_launch(kernel, grid x, y, z, args) (args: an i64 array on the
/// stack: buffer addresses and scalar bits), and drops the GPU and SPIR-V
/// modules. Host code that reads or writes memory itself first calls
/// mlx_vk_sync.
struct LaunchCallsPass
    : public PassWrapper<LaunchCallsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(LaunchCallsPass)
  LaunchCallsPass(uint32_t maxPushBytes, uint32_t maxBuffers)
      : maxPushBytes(maxPushBytes), maxBuffers(maxBuffers) {}

  /// Moves kernel `fn`'s argument `k` (its parameter block, a storage
  /// buffer after spirv-lower-abi-attrs) into push-constant memory.
  static LogicalResult pushConstants(spirv::ModuleOp spv, StringRef fn,
                                     int64_t k) {
    auto var = spv.lookupSymbol<spirv::GlobalVariableOp>(
        (fn + "_arg_" + Twine(k)).str());
    if (!var)
      return spv.emitError("no interface variable for the parameters of ")
             << fn;
    auto moved = [](Type t) {
      auto ptr = cast<spirv::PointerType>(t);
      return spirv::PointerType::get(ptr.getPointeeType(),
                                     spirv::StorageClass::PushConstant);
    };
    var.setTypeAttr(TypeAttr::get(moved(var.getType())));
    var->removeAttr("binding");
    var->removeAttr("descriptor_set");
    SmallVector<Value> pointers;
    spv.walk([&](spirv::AddressOfOp a) {
      if (a.getVariable() == var.getSymName())
        pointers.push_back(a.getPointer());
    });
    while (!pointers.empty()) {
      Value p = pointers.pop_back_val();
      p.setType(moved(p.getType()));
      for (Operation *user : p.getUsers())
        if (auto chain = dyn_cast<spirv::AccessChainOp>(user);
            chain && chain.getBasePtr() == p)
          pointers.push_back(chain.getResult());
    }
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    OpBuilder b(ctx);
    // The kernels: one per gpu.module, whose spirv.module is
    // __spv__<name>.
    llvm::StringMap<int64_t> kernelIndex;
    SmallVector<Attribute> kernels;
    SmallVector<gpu::LaunchFuncOp> launches;
    module.walk([&](gpu::LaunchFuncOp l) { launches.push_back(l); });
    for (auto gpuModule : module.getOps<gpu::GPUModuleOp>()) {
      auto spv = module.lookupSymbol<spirv::ModuleOp>(
          ("__spv__" + gpuModule.getName()).str());
      auto fns = llvm::to_vector(gpuModule.getOps<gpu::GPUFuncOp>());
      if (!spv || fns.size() != 1) {
        gpuModule.emitError("kernel module not lowered to SPIR-V");
        return signalPassFailure();
      }
      // Buffers, but for what the launches pass there: the report buffer,
      // the parameter block.
      SmallVector<int32_t> kinds(fns[0].getNumArguments(),
                                 (int32_t)ArgKind::Buffer);
      int64_t paramBytes = 0;
      for (gpu::LaunchFuncOp l : launches)
        if (l.getKernelModuleName() == gpuModule.getName())
          for (auto [k, v] : llvm::enumerate(l.getKernelOperands())) {
            Operation *def = v.getDefiningOp();
            if (def && def->hasAttr(kReportAttr))
              kinds[k] = (int32_t)ArgKind::Report;
            if (def && def->hasAttr(kParamsAttr)) {
              kinds[k] = (int32_t)ArgKind::Params;
              paramBytes = cast<MemRefType>(v.getType()).getNumElements() * 4;
            }
          }
      // The parameters as push constants where they fit.
      if (paramBytes && paramBytes <= maxPushBytes)
        for (auto [k, kind] : llvm::enumerate(kinds))
          if (kind == (int32_t)ArgKind::Params) {
            if (failed(pushConstants(spv, fns[0].getName(), k)))
              return signalPassFailure();
            kind = (int32_t)ArgKind::PushConstants;
          }
      // (a driver may not check the limit: lavapipe crashes past it)
      if (int64_t buffers = llvm::count_if(
              kinds,
              [](int32_t k) { return k != (int32_t)ArgKind::PushConstants; });
          buffers > maxBuffers) {
        fns[0].emitError("a Vulkan kernel with ")
            << buffers << " storage buffers; the device allows " << maxBuffers;
        return signalPassFailure();
      }
      SmallVector<uint32_t> words;
      if (failed(spirv::serialize(spv, words)))
        return signalPassFailure();
      auto abi = spirv::lookupEntryPointABI(fns[0]);
      std::string assembly;
      llvm::raw_string_ostream os(assembly);
      spv.print(os);
      NamedAttribute fields[] = {
          b.getNamedAttr("name", b.getStringAttr(fns[0].getName())),
          b.getNamedAttr(
              "spirv", DenseI32ArrayAttr::get(
                           ctx, ArrayRef<int32_t>((const int32_t *)words.data(),
                                                  words.size()))),
          b.getNamedAttr("workgroup", abi.getWorkgroupSize()),
          b.getNamedAttr("args", DenseI32ArrayAttr::get(ctx, kinds)),
          b.getNamedAttr("params", b.getI64IntegerAttr(paramBytes)),
          b.getNamedAttr("assembly", b.getStringAttr(assembly))};
      kernelIndex[gpuModule.getName()] = (int64_t)kernels.size();
      kernels.push_back(b.getDictionaryAttr(fields));
    }
    module->setAttr(kKernelsAttr, b.getArrayAttr(kernels));

    auto i64 = b.getI64Type();
    auto launchType = b.getFunctionType({i64, i64, i64, i64, i64}, {});
    auto syncType = b.getFunctionType({}, {});
    b.setInsertionPointToEnd(module.getBody());
    auto declare = [&](StringRef name, FunctionType type) {
      if (module.lookupSymbol(name))
        return;
      auto f = b.create<func::FuncOp>(module.getLoc(), name, type);
      f.setPrivate();
    };
    declare("mlx_vk_launch", launchType);
    declare("mlx_vk_sync", syncType);

    for (gpu::LaunchFuncOp launch : launches) {
      Location loc = launch.getLoc();
      auto fn = launch->getParentOfType<func::FuncOp>();
      // The argument array, once per launch site at the function's entry.
      b.setInsertionPointToStart(&fn.getBody().front());
      auto arrayType = MemRefType::get(
          {(int64_t)std::max<size_t>(1, launch.getKernelOperands().size())},
          i64);
      Value array = b.create<memref::AllocaOp>(loc, arrayType);
      b.setInsertionPoint(launch);
      for (auto [k, v] : llvm::enumerate(launch.getKernelOperands())) {
        Value bits = b.create<arith::IndexCastOp>(
            loc, i64, b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, v));
        Value at = b.create<arith::ConstantIndexOp>(loc, k);
        b.create<memref::StoreOp>(loc, bits, array, ValueRange{at});
      }
      Value address = b.create<arith::IndexCastOp>(
          loc, i64,
          b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, array));
      auto id = b.create<arith::ConstantIntOp>(
          loc, kernelIndex.lookup(launch.getKernelModuleName()), 64);
      auto grid = [&](Value v) {
        return b.create<arith::IndexCastOp>(loc, i64, v).getResult();
      };
      b.create<func::CallOp>(loc, "mlx_vk_launch", TypeRange{},
                             ValueRange{id, grid(launch.getGridSizeX()),
                                        grid(launch.getGridSizeY()),
                                        grid(launch.getGridSizeZ()), address});
      launch.erase();
    }
    for (Operation &op : llvm::make_early_inc_range(*module.getBody()))
      if (isa<gpu::GPUModuleOp, spirv::ModuleOp>(op))
        op.erase();
    module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
    module->removeAttr(spirv::getTargetEnvAttrName());

    // Host code's own memory accesses wait for the kernels recorded before.
    SmallVector<Operation *> hostAccesses;
    auto onHeap = [](Value memref) {
      return !memref.getDefiningOp<memref::AllocaOp>();
    };
    module.walk([&](memref::LoadOp op) {
      if (onHeap(op.getMemRef()))
        hostAccesses.push_back(op);
    });
    module.walk([&](memref::StoreOp op) {
      if (onHeap(op.getMemRef()))
        hostAccesses.push_back(op);
    });
    for (Operation *op : hostAccesses) {
      b.setInsertionPoint(op);
      b.create<func::CallOp>(op->getLoc(), "mlx_vk_sync", TypeRange{},
                             ValueRange{});
    }
  }
  uint32_t maxPushBytes, maxBuffers;
};

/// `mlx-vulkan-device-allocations`: the host code's malloc, aligned_alloc
/// and free are runtime/vulkan's (mlx_vk_malloc, …): every buffer is
/// device memory, in the JIT and in a built artefact alike.
struct DeviceAllocationsPass
    : public PassWrapper<DeviceAllocationsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(DeviceAllocationsPass)
  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (StringRef name : {"malloc", "aligned_alloc", "free"}) {
      Operation *fn = SymbolTable::lookupSymbolIn(module, name);
      if (!fn)
        continue;
      auto renamed = StringAttr::get(&getContext(), "mlx_vk_" + name.str());
      if (failed(SymbolTable::replaceAllSymbolUses(fn, renamed, module)))
        return signalPassFailure();
      SymbolTable::setSymbolName(fn, renamed);
    }
  }
};

} // namespace

gpu::ParallelLoopDimMappingAttr mlir::mlx::vulkan::mappingTo(MLIRContext *ctx,
                                                             gpu::Processor p) {
  auto identity = AffineMap::getMultiDimIdentityMap(1, ctx);
  return gpu::ParallelLoopDimMappingAttr::get(ctx, p, identity, identity);
}

void mlir::mlx::vulkan::cloneBody(OpBuilder &b, linalg::LinalgOp op,
                                  ArrayRef<Value> ivs, IRMapping &mapping) {
  for (Operation &inner : op.getBlock()->without_terminator()) {
    if (auto index = dyn_cast<linalg::IndexOp>(inner))
      mapping.map(index.getResult(), ivs[index.getDim()]);
    else
      b.clone(inner, mapping);
  }
}

/// The host functions kernels may call: their calls become stores into the
/// call's report buffer (see FlattenBuffersPass).
bool mlir::mlx::vulkan::isReportCall(Operation *op) {
  auto call = dyn_cast<func::CallOp>(op);
  return call && (call.getCallee() == "mlx_report_out_of_bounds" ||
                  call.getCallee() == "mlx_report_nonfinite");
}

/// Whether `op` can run inside a kernel: scalar arithmetic, loops and
/// branches over loads and stores of buffers made outside it, reports. No
/// allocation, no view, no other call (those stay in host code).
bool mlir::mlx::vulkan::fitsInKernel(Operation *op) {
  auto anyMemRef = [](TypeRange types) {
    return llvm::any_of(types, [](Type t) { return isa<MemRefType>(t); });
  };
  auto allowed = [&](Operation *o) {
    if (auto load = dyn_cast<memref::LoadOp>(o))
      // Buffers of `index` hold host addresses and sizes (the deallocation
      // helper's): 32 bits in a kernel.
      return !load.getMemRefType().getElementType().isIndex();
    if (auto store = dyn_cast<memref::StoreOp>(o))
      return !store.getMemRefType().getElementType().isIndex();
    if (isa<memref::DimOp>(o) || isReportCall(o))
      return true;
    if (isa<scf::ForOp, scf::IfOp, scf::WhileOp, scf::ParallelOp, scf::YieldOp,
            scf::ConditionOp, scf::ReduceOp, scf::ReduceReturnOp>(o))
      return !anyMemRef(o->getResultTypes());
    return o->getNumRegions() == 0 && isMemoryEffectFree(o) &&
           !anyMemRef(o->getResultTypes());
  };
  return !op->walk([&](Operation *o) {
              return allowed(o) ? WalkResult::advance()
                                : WalkResult::interrupt();
            }).wasInterrupted();
}

void mlir::mlx::registerVulkanTargetDialects(DialectRegistry &registry) {
  mlx::registerCpuTargetDialects(registry);
  registry.insert<gpu::GPUDialect, spirv::SPIRVDialect, scf::SCFDialect>();
}

std::string mlir::mlx::targetEnvFor(const ::mlx::vk::DeviceInfo &device) {
  std::string caps = "Shader", exts = "SPV_KHR_storage_buffer_storage_class";
  if (device.float64)
    caps += ", Float64";
  if (device.int64)
    caps += ", Int64";
  if (device.int16)
    caps += ", Int16";
  if (device.int8)
    caps += ", Int8";
  if (device.storage8) {
    caps += ", StorageBuffer8BitAccess";
    exts += ", SPV_KHR_8bit_storage";
  }
  return "#spirv.target_env<#spirv.vce<v1.3, [" + caps + "], [" + exts +
         "]>, api=Vulkan, #spirv.resource_limits<max_compute_workgroup_"
         "invocations = " +
         std::to_string(std::max<uint32_t>(device.maxWorkgroupInvocations,
                                           kWorkgroupSize)) +
         ", subgroup_size = " +
         std::to_string(std::max<uint32_t>(device.subgroupSize, 1)) + ">>";
}

void mlir::mlx::buildLinalgToVulkanPipeline(
    OpPassManager &pm, const std::string &targetEnv,
    const ::mlx::vk::DeviceInfo &device) {
  mlx::buildBufferizePipeline(pm);
  pm.addPass(std::make_unique<CopiesToLinalgPass>());
  pm.addNestedPass<func::FuncOp>(createTiledContractionsPass());
  pm.addNestedPass<func::FuncOp>(createRowKernelsPass());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  // Subviews and reshapes fold into the loads and stores through them.
  pm.addPass(memref::createFoldMemRefAliasOpsPass());
  pm.addNestedPass<func::FuncOp>(std::make_unique<MapLoopsPass>());
  pm.addPass(createParallelLoopToGpuPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createCanonicalizerPass());
  // (not canonicalized after: that would fold the host's widening of a
  // boolean with the kernel's narrowing back into a boolean argument)
  pm.addNestedPass<func::FuncOp>(std::make_unique<FlattenBuffersPass>());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(std::make_unique<KernelAbiPass>(targetEnv));
  // The same f32 log/tanh/erf as on the CPU (GLSL has no erf, and its
  // tanh overflows to NaN for large arguments on some drivers); exp as
  // MLIR's approximation (drivers reassociate the CPU's rounding trick).
  pm.addPass(mlx::createApproximateMathPass(/*strictRounding=*/false));
  pm.addNestedPass<gpu::GPUModuleOp>(std::make_unique<NarrowComparesPass>());
  pm.addNestedPass<gpu::GPUModuleOp>(arith::createArithExpandOpsPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createConvertMathToSPIRVPass());
  pm.addPass(createConvertGPUToSPIRVPass(/*mapMemorySpace=*/true));
  OpPassManager &spv = pm.nest<spirv::ModuleOp>();
  spv.addPass(createBufferBarriersPass());
  spv.addPass(spirv::createSPIRVLowerABIAttributesPass());
  spv.addPass(spirv::createSPIRVUpdateVCEPass());
  pm.addPass(std::make_unique<LaunchCallsPass>(
      device.maxPushConstantsSize, device.maxStorageBuffersPerStage));
  mlx::buildHostToLLVMPipeline(pm, /*alignedAlloc=*/true);
  pm.addPass(std::make_unique<DeviceAllocationsPass>());
}

std::vector<mlir::mlx::LoweredKernel> mlir::mlx::readKernels(ModuleOp module,
                                                             bool strip) {
  std::vector<LoweredKernel> out;
  auto list = module->getAttrOfType<ArrayAttr>(kKernelsAttr);
  if (!list)
    return out;
  for (Attribute a : list) {
    auto d = cast<DictionaryAttr>(a);
    LoweredKernel k;
    k.spec.name = cast<StringAttr>(d.get("name")).str();
    auto words = cast<DenseI32ArrayAttr>(d.get("spirv")).asArrayRef();
    k.spec.spirv.assign(words.begin(), words.end());
    auto size = cast<DenseI32ArrayAttr>(d.get("workgroup")).asArrayRef();
    for (size_t i = 0; i < 3 && i < size.size(); ++i)
      k.spec.workgroup[i] = (uint32_t)size[i];
    for (int32_t kind : cast<DenseI32ArrayAttr>(d.get("args")).asArrayRef())
      k.spec.args.push_back((ArgKind)kind);
    k.spec.paramBytes = (uint32_t)cast<IntegerAttr>(d.get("params")).getInt();
    k.assembly = cast<StringAttr>(d.get("assembly")).str();
    out.push_back(std::move(k));
  }
  if (strip)
    module->removeAttr(kKernelsAttr);
  return out;
}
