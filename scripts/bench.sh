#!/usr/bin/env bash
# The CPU benchmark (bench/harness.py): installs what it needs (Debian's
# PyTorch, NumPy, threadpoolctl and the pthreads OpenBLAS for
# /usr/bin/python3), builds mlxc in release mode, and runs mlxc beside
# PyTorch and NumPy case by case; prints a table and writes
# bench/results/latest.json. Arguments go to the harness
# (--threads N, --repeat R, --json OUT, --readme, --only TEXT).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh python3-numpy python3-torch python3-threadpoolctl \
  libopenblas0-pthread > /dev/null
exec /usr/bin/python3 bench/harness.py "$@"
