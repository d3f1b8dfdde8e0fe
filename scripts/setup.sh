#!/usr/bin/env bash
# Installs the Debian 12 packages mlxc needs (only those missing; apt-get as
# root, or through sudo) and builds it into ./build. Safe to run again.
#   scripts/setup.sh [EXTRA-PACKAGE...]   (sanitize.sh and fuzz.sh add the
#                                          clang runtime libraries)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake ninja-build ccache g++ make python3
  llvm-19-dev libmlir-19-dev mlir-19-tools llvm-19-tools clang-19
  antlr4 libantlr4-runtime-dev
  libgtest-dev
  pkg-config  # test/Integration/embed-pkgconfig.test
  libomp5-19  # the OpenMP runtime parallel loops call (JIT and built libraries)
  # The Vulkan backend: headers and loader, lavapipe (a CPU device, so the
  # tests run everywhere), the validation layer and spirv-val.
  libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers spirv-tools
  # mlxc explain's pages are checked in headless Chromium by the tests.
  chromium
  "$@"
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root (or install sudo)" >&2; exit 1; }
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLX_VULKAN=ON
elif ! grep -q '^MLX_VULKAN:BOOL=ON' build/CMakeCache.txt; then
  cmake -S . -B build -DMLX_VULKAN=ON > /dev/null
fi
cmake --build build
