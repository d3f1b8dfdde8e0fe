#!/bin/sh
# run-backend.sh BACKEND PYTHON LIT BUILD/test
# Runs the lit suite with --param backend=BACKEND; for vulkan, then checks
# every kernel it loaded with spirv-val (Vulkan 1.1 rules).
set -e
backend=$1 python=$2 lit=$3 tests=$4
spv="$tests/../test-$backend/spv"
rm -rf "$spv" && mkdir -p "$spv"
"$python" "$lit" -sv "$tests" --param backend="$backend" --param spv_dir="$spv"
[ "$backend" = vulkan ] || exit 0
command -v spirv-val > /dev/null || { echo "run-backend.sh: spirv-val not found (Debian package spirv-tools)"; exit 1; }
n=0
for f in "$spv"/*.spv; do
  spirv-val --target-env vulkan1.1 "$f" || { echo "invalid SPIR-V: $f"; exit 1; }
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "run-backend.sh: no kernel was written to $spv"; exit 1; }
echo "spirv-val: $n kernels valid"
