#!/usr/bin/env bash
# Sets up, builds, and runs two of the seed's worked examples through the
# compiler: attention for two tokens, and cross-entropy of two models.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
mlxc=build/tools/mlxc/mlxc

echo
echo "== Causal attention, the seed's two-token example (token 2 → [0.413, 0.587])"
cat examples/attention_two_tokens.mlx
$mlxc run examples/attention_two_tokens.mlx -f cat_attention \
  --arg Q=[[0,0],[1,0]] --arg K=[[0.5,0.5],[1,-1]] --arg V=[[1,0],[0,1]]

echo
echo "== Cross-entropy H(p, q) for p = [0, 1, 0] (0.51 and 2.30 nats)"
$mlxc run stdlib/prob.mlx -f cross_entropy --arg p=[0,1,0] --arg q=[0.2,0.6,0.2]
$mlxc run stdlib/prob.mlx -f cross_entropy --arg p=[0,1,0] --arg q=[0.85,0.1,0.05] --json

echo
echo "== The gradient of softmax cross-entropy, derived as .mlx source: softmax(z)·Σy − y"
$mlxc derive stdlib/supervised.mlx -f softmax_cross_entropy --wrt z
