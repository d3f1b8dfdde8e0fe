#!/bin/sh
# compare.sh MLXC NPY-COMPARE DIR FILE FUNCTION ARG=VALUE... -- [MLXC-OPTION...]
# Runs FUNCTION on the CPU and on Vulkan (validation layer on) with the same
# arguments and compares every result (f32, rel. 1e-5, abs. 1e-5).
set -e
mlxc=$1 compare=$2 dir=$3 file=$4 fn=$5
shift 5
args=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do args="$args --arg $1"; shift; done
[ "$1" = "--" ] && shift
rm -rf "$dir/cpu.$fn" "$dir/vk.$fn"
"$mlxc" run "$file" -f "$fn" $args "$@" --backend cpu --save "$dir/cpu.$fn" > /dev/null
MLX_VULKAN_VALIDATION=1 "$mlxc" run "$file" -f "$fn" $args "$@" --backend vulkan --save "$dir/vk.$fn" > /dev/null
n=0
for f in "$dir/cpu.$fn"/*.npy; do
  "$compare" "$dir/vk.$fn/$(basename "$f")" "$f" --rtol 1e-5 --atol 1e-5
  n=$((n + 1))
done
echo "$fn: $n results agree"
