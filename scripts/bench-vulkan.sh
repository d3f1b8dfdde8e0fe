#!/usr/bin/env bash
# The Vulkan benchmark (bench/vulkan.py): installs what it needs (Debian's
# PyTorch and NumPy for /usr/bin/python3; setup.sh brings lavapipe and the
# Vulkan loader), builds mlxc in release mode with the Vulkan backend, and
# runs issue 12's cases on the Vulkan device (MLX_VULKAN_DEVICE picks one)
# beside PyTorch on the host CPU; writes bench/results/vulkan-latest.json.
# Arguments go to the script (--small, --repeat R, --threads N, --json OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh python3-numpy python3-torch > /dev/null
exec /usr/bin/python3 bench/vulkan.py "$@"
