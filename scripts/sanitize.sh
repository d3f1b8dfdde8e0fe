#!/usr/bin/env bash
# Builds mlxc with AddressSanitizer + UndefinedBehaviorSanitizer (clang-19)
# into build-asan/ and runs the whole test suite there; any report fails it.
# LeakSanitizer is on: `mlxc run` over the stdlib tests must not leak.
set -euo pipefail
cd "$(dirname "$0")/.."
# libclang-rt-19-dev: the ASan/UBSan/libFuzzer runtimes clang-19 links.
./scripts/setup.sh libclang-rt-19-dev > /dev/null
if [ ! -f build-asan/build.ninja ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
    -DMLX_SANITIZE=ON
fi
cmake --build build-asan
# allow_user_poisoning=0: the uninstrumented LLVM libraries and the
# instrumented inline LLVM allocator code in our objects disagree on
# manual poisoning (false use-after-poison reports inside libMLIR).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allow_user_poisoning=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$PWD/test/lsan.supp:${LSAN_OPTIONS:-}"
cd build-asan
ctest --output-on-failure
