#!/usr/bin/python3
"""The Vulkan benchmark: mlxc --backend vulkan beside PyTorch on the CPU, same run.

    scripts/bench-vulkan.sh [--small] [--repeat R] [--threads N] [--json OUT]

(scripts/bench-vulkan.sh installs what this needs and builds mlxc in release
mode; run this file directly with Debian's /usr/bin/python3 once it has.)

Issue 12's cases: matmul 4096^3, row softmax 8192x8192, causal attention
T=4096 D=64 (forward); --small runs them at 1024^3, 2048x2048 and T=1024
(lavapipe, Mesa's CPU device, takes seconds per 4096^3 product).

For each case the same seeded inputs go to `mlxc bench --backend vulkan
--json`, which reports apart: the compile (cold, and from the cache), the
upload of the arguments into device memory (once), the per-call time with
the arguments already there (min and median of the repeats after a
warm-up), and copying the results back to host memory. PyTorch runs the
same on the host CPU (N threads) in the same run; the table gives
GFLOP/s (matmul, attention) or GB/s (softmax: bytes read + written once)
and torch time / mlxc time (> 1: the device is faster). It says which
device and driver ran. On lavapipe the ratio measures Mesa's CPU device,
not a GPU: the point of running it there is that every path works.

This is a benchmark, not a test: nothing here asserts a time.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from timing import timed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STDLIB = os.path.join(ROOT, "stdlib")
CASES_MLX = os.path.join(ROOT, "bench", "cases.mlx")


def causal_torch(q, k, v):
    s = q @ k.T / np.sqrt(q.shape[1])
    mask = torch.ones(s.shape, dtype=torch.bool).triu(1)
    return torch.softmax(s.masked_fill(mask, float("-inf")), 1) @ v


def make_cases(rng, small):
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    n = 1024 if small else 4096
    rows = 2048 if small else 8192
    T, D = (1024, 64) if small else (4096, 64)
    A, B = f32(n, n), f32(n, n)
    x = f32(rows, rows)
    q, k, v = f32(T, D), f32(T, D), f32(T, D)
    t = {name: torch.from_numpy(a) for name, a in
         {"A": A, "B": B, "x": x, "q": q, "k": k, "v": v}.items()}
    return [
        (f"matmul {n}^3", os.path.join(STDLIB, "linalg.mlx"), "matmul",
         {"A": A, "B": B}, 2.0 * n ** 3, "flop", lambda: t["A"] @ t["B"]),
        (f"row softmax {rows}x{rows}", CASES_MLX, "row_softmax", {"x": x},
         2 * x.nbytes, "byte", lambda: torch.softmax(t["x"], 1)),
        (f"causal attention T={T} D={D} fwd", os.path.join(STDLIB, "transformer.mlx"),
         "causal_attention", {"Q": q, "K": k, "V": v}, 4.0 * T * T * D, "flop",
         lambda: causal_torch(t["q"], t["k"], t["v"])),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlxc", default=os.path.join(ROOT, "build", "tools", "mlxc", "mlxc"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "vulkan-latest.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows, device = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for name, mlx, fn, inputs, work, kind, peer in make_cases(rng, args.small):
            cmd = [args.mlxc, "bench", mlx, "-f", fn, "--backend", "vulkan",
                   "--repeat", str(args.repeat), "--json"]
            for arg, value in inputs.items():
                path = os.path.join(tmp, f"{fn}.{arg}.npy")
                np.save(path, value)
                cmd += ["--arg", f"{arg}={path}"]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                            text=True).stdout)
            device = out["device"]
            torch_min, torch_median = timed(peer, args.repeat)
            rate = work / out["min_ms"] / 1e6  # GFLOP/s or GB/s
            row = {"case": name, "mlxc_min_ms": out["min_ms"],
                   "mlxc_median_ms": out["median_ms"], "upload_ms": out["upload_ms"],
                   "download_ms": out["download_ms"], "compile_ms": out["compile_ms"],
                   "cached_compile_ms": out["cached_compile_ms"],
                   "rate": rate, "unit": "GFLOP/s" if kind == "flop" else "GB/s",
                   "torch_cpu_min_ms": torch_min, "torch_cpu_median_ms": torch_median,
                   "torch_over_mlxc": torch_min / out["min_ms"]}
            rows.append(row)
            print(f"{name}: {out['min_ms']:.2f} ms per call (median "
                  f"{out['median_ms']:.2f}), {rate:.1f} {row['unit']}; upload "
                  f"{out['upload_ms']:.2f} ms, download {out['download_ms']:.2f} ms, "
                  f"compile {out['compile_ms']:.0f} ms cold / "
                  f"{out['cached_compile_ms']:.0f} ms cached; torch CPU "
                  f"({args.threads} threads) {torch_min:.2f} ms: torch/mlxc "
                  f"{row['torch_over_mlxc']:.2f}", flush=True)
    print(f"device: {device}; torch {torch.__version__} on the host CPU, "
          f"{args.threads} threads")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"device": device, "small": args.small, "repeat": args.repeat,
                   "torch_threads": args.threads, "rows": rows}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
