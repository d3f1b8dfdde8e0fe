#!/usr/bin/python3
"""Backward-over-forward time of compiled gradients, beside PyTorch.

    /usr/bin/python3 bench/autodiff.py [--mlxc build/tools/mlxc/mlxc] [--repeat N]

For mlp2 (batch 256, 784-1024-10) and causal_attention (T = 1024, D = 64):
times the forward call and the gradient call (value and gradients with
respect to every float parameter, `mlxc bench --grad`), per call after a
warm-up, compile time apart; then PyTorch's forward and forward+backward on
the same inputs in the same run. Reports milliseconds and the ratios
backward/forward = (gradient call − forward) / forward, and mlxc/PyTorch.
Both sides run on one thread (mlxc with MLX_NUM_THREADS=1; the BLAS pool
is capped with threadpoolctl). scripts/bench.sh installs the
peers (PyTorch, NumPy, threadpoolctl, OpenBLAS): without
libopenblas0-pthread Debian's torch runs on the reference BLAS, which
flatters mlxc several times over.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mlxc_bench(mlxc, module, fn, args, grads, repeat):
    cmd = [mlxc, "bench", os.path.join(ROOT, "stdlib", module + ".mlx"), "-f", fn,
           "--repeat", str(repeat), "--json"]
    for name, path in args.items():
        cmd += ["--arg", f"{name}={path}"]
    if grads:
        cmd += ["--grad", ",".join(grads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=dict(os.environ, MLX_NUM_THREADS="1")).stdout
    return json.loads(out)


def torch_time(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mlxc", default=os.path.join(ROOT, "build", "tools", "mlxc", "mlxc"))
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp(prefix="mlxc-bench-")

    def save(arrays):
        paths = {}
        for name, a in arrays.items():
            paths[name] = os.path.join(tmp, name + ".npy")
            np.save(paths[name], a)
        return paths

    cases = []
    mlp = {"x": rng.standard_normal((256, 784)).astype(np.float32),
           "W1": (rng.standard_normal((784, 1024)) * 0.05).astype(np.float32),
           "b1": np.zeros(1024, np.float32),
           "W2": (rng.standard_normal((1024, 10)) * 0.05).astype(np.float32),
           "b2": np.zeros(10, np.float32)}

    def mlp_torch(t):
        return F.relu(t["x"] @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]

    cases.append(("nn", "mlp2", mlp, ["W1", "b1", "W2", "b2"], mlp_torch))
    att = {k: rng.standard_normal((1024, 64)).astype(np.float32) for k in "QKV"}

    def att_torch(t):
        s = t["Q"] @ t["K"].T / 8.0
        s = s.masked_fill(torch.ones_like(s).triu(1).bool(), float("-inf"))
        return torch.softmax(s, -1) @ t["V"]

    cases.append(("transformer", "causal_attention", att, ["Q", "K", "V"], att_torch))

    print(f"{'function':<18}{'':>8}{'fwd ms':>10}{'fwd+bwd ms':>12}{'bwd/fwd':>9}{'compile ms':>12}")
    for module, fn, arrays, wrt, torch_fn in cases:
        paths = save(arrays)
        fwd = mlxc_bench(opts.mlxc, module, fn, paths, [], opts.repeat)
        both = mlxc_bench(opts.mlxc, module, fn, paths, wrt, opts.repeat)
        ratio = (both["median_ms"] - fwd["median_ms"]) / fwd["median_ms"]
        print(f"{fn:<18}{'mlxc':>8}{fwd['median_ms']:>10.2f}{both['median_ms']:>12.2f}"
              f"{ratio:>9.2f}{fwd['compile_ms']:>6.0f}/{both['compile_ms']:.0f}")
        t = {k: torch.from_numpy(v) for k, v in arrays.items()}
        tg = {k: torch.from_numpy(v).requires_grad_(k in wrt) for k, v in arrays.items()}

        def forward_backward():
            for v in tg.values():
                v.grad = None
            torch_fn(tg).sum().backward()

        with torch.no_grad():
            tf = torch_time(lambda: torch_fn(t), opts.repeat)
        tb = torch_time(forward_backward, opts.repeat)
        print(f"{'':<18}{'torch':>8}{tf:>10.2f}{tb:>12.2f}{(tb - tf) / tf:>9.2f}")
        print(f"{'':<18}{'ratio':>8}{fwd['median_ms'] / tf:>10.1f}{both['median_ms'] / tb:>12.1f}"
              "   (mlxc / torch)")


if __name__ == "__main__":
    # One thread on both sides: torch's own pool and the BLAS pool (which
    # torch.set_num_threads does not cap).
    with threadpool_limits(1):
        main()
