# lit configuration of the mlxc test suite.
import os
import lit.formats

config.name = "mlxc"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".mlx", ".mlir", ".test"]
config.excludes = ["Inputs", "fixtures", "Unit", "fuzz", "CMakeLists.txt"]
config.test_source_root = os.path.dirname(__file__)
# `--param backend=vulkan` runs the suite on that backend ($MLX_BACKEND for
# every mlxc), with the Vulkan validation layer on (any message it prints
# fails the call), in a tree of its own.
backend = lit_config.params.get("backend", "cpu")
config.available_features.add("backend-" + backend)
if backend == "cpu":
    config.test_exec_root = os.path.join(config.mlx_obj_root, "test")
else:
    config.test_exec_root = os.path.join(config.mlx_obj_root, "test-" + backend)
    config.environment["MLX_BACKEND"] = backend
    config.environment["MLX_VULKAN_VALIDATION"] = "1"
    # Every kernel the suite loads, for spirv-val (test/run-backend.sh).
    if lit_config.params.get("spv_dir"):
        config.environment["MLX_VULKAN_SPV_DIR"] = lit_config.params["spv_dir"]
if getattr(config, "mlx_vulkan", False):
    config.available_features.add("vulkan")

tools = os.path.join(config.mlx_obj_root, "tools")
config.substitutions.append(("%mlxc", os.path.join(tools, "mlxc", "mlxc")))
# RUN lines of what only the CPU backend does (AOT builds, f64
# transcendentals, its LLVM IR) pin it with %cpu; the others follow
# --param backend.
config.substitutions.append(("%cpu", "--backend cpu"))
config.substitutions.append(("%mlx-opt", os.path.join(tools, "mlx-opt", "mlx-opt")))
config.substitutions.append(("%npy-compare", os.path.join(tools, "npy-compare", "npy-compare")))
config.substitutions.append(("%mlx-vulkan-run", os.path.join(tools, "mlx-vulkan-run", "mlx-vulkan-run")))
config.substitutions.append(("%mlx-build", config.mlx_obj_root))
config.substitutions.append(("%stdlib", os.path.join(config.mlx_src_root, "stdlib")))
config.substitutions.append(("%fixtures", os.path.join(config.mlx_src_root, "test", "fixtures")))
config.substitutions.append(("%inputs", os.path.join(config.mlx_src_root, "test", "Inputs")))
config.environment["PATH"] = os.pathsep.join(
    [config.llvm_tools_dir, config.environment.get("PATH", os.environ.get("PATH", ""))])
# Imports must come from -I/MLX_PATH/stdlib only, never from a stray env.
config.environment.pop("MLX_PATH", None)
# The compile cache of the tests lives in the build tree, not in $HOME.
config.environment["MLX_CACHE_DIR"] = os.path.join(config.mlx_obj_root, "test", "compile-cache")
config.environment.pop("MLX_CACHE_TRACE", None)
for name in ("MLX_VULKAN_DEVICE", "VK_ICD_FILENAMES", "VK_DRIVER_FILES"):
    config.environment.pop(name, None)
# Sanitized builds: programs built outside the tree cannot load an
# instrumented libmlxc.so (the sanitizer runtime must come first).
if getattr(config, "mlx_sanitize", False):
    config.available_features.add("sanitize")
import shutil
if shutil.which("pkg-config"):
    config.available_features.add("pkg-config")
# mlxc explain's pages, loaded in headless Chromium (scripts/setup.sh
# installs Debian's chromium).
if shutil.which("chromium"):
    config.available_features.add("chromium")
