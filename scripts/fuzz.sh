#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-19, ASan + UBSan) into build-fuzz/ and
# runs each for SECONDS (default 60) from a seed corpus of the stdlib, the
# examples and the lit tests, with a 2 s per-input timeout (10 s for the
# pipeline, whose inputs include whole training programs compiled with
# gradients: seconds under the sanitizers). Crashes land in
# build-fuzz/artifacts/; turn each into a regression test under test/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Targets: frontend (source through the front end), pipeline (the same
# inputs with gradients through the whole CPU pipeline), npy, literal.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(frontend pipeline npy literal)
# libclang-rt-19-dev: the ASan/UBSan/libFuzzer runtimes clang-19 links.
./scripts/setup.sh libclang-rt-19-dev > /dev/null
if [ ! -f build-fuzz/build.ninja ]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
    -DMLX_FUZZERS=ON
fi
cmake --build build-fuzz --target fuzz-frontend fuzz-npy fuzz-literal
mkdir -p build-fuzz/artifacts build-fuzz/corpus/{frontend,pipeline,npy,literal}
for c in frontend pipeline; do
  cp stdlib/*.mlx examples/*.mlx build-fuzz/corpus/$c/
  find test -name '*.mlx' -exec cp {} build-fuzz/corpus/$c/ \;
done
# (No `find | head`: under pipefail, find's SIGPIPE would stop the script.)
mapfile -t npys < <(find test/fixtures -name '*.npy' | sort)
for f in "${npys[@]:0:200}"; do
  cp "$f" "build-fuzz/corpus/npy/$(echo "$f" | tr / _)"
done
for lit in '[[1,2],[3,4]]' '-inf' '3.5' '[true,false]' '[]' '[1e-3, 2E+4]'; do
  printf '%s' "$lit" > "build-fuzz/corpus/literal/$(echo "$lit" | md5sum | cut -c1-8)"
done
export ASAN_OPTIONS="detect_leaks=0:allow_user_poisoning=0:${ASAN_OPTIONS:-}"
for t in "${targets[@]}"; do
  dict=() binary=$t timeout=2
  case $t in
  frontend) dict=(-dict=test/fuzz/mlx.dict) ;;
  pipeline) dict=(-dict=test/fuzz/mlx.dict) binary=frontend timeout=10 ;;
  esac
  echo "== fuzz-$t for ${seconds}s"
  env $([ "$t" = pipeline ] && echo MLX_FUZZ_PIPELINE=1) \
  build-fuzz/test/fuzz/fuzz-$binary "${dict[@]}" -max_total_time="$seconds" \
    -timeout=$timeout -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/$t- build-fuzz/corpus/$t 2>&1 |
    grep -E 'INITED|DONE|stat::number_of_executed_units|stat::average_exec_per_sec|cov:|ERROR|SUMMARY|Test unit written' | tail -8
done
