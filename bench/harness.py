#!/usr/bin/python3
"""The CPU benchmark: mlxc beside PyTorch and NumPy, case by case, same run.

    scripts/bench.sh [--threads N] [--repeat R] [--json OUT] [--readme]

(scripts/bench.sh installs what this needs and builds mlxc in release mode;
run this file directly with Debian's /usr/bin/python3 once it has.)

For each case the same inputs (.npy, seeded) go to `mlxc bench --json`
(per-call time after a warm-up, compile time apart) and to PyTorch and NumPy
timed here (as shipped and, where the API has it, writing into a
preallocated `out=`), interleaved case by case, all limited to the same
thread count: torch.set_num_threads, threadpoolctl for the BLAS pools, and
OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=4 so the pools do not spin
against each other; mlxc's parallel loops get MLX_NUM_THREADS=N. The table
says what ran on how many threads.

Reported per case: min and median of the repeats, GFLOP/s (compute-bound
cases) or GB/s (memory-bound: bytes read + written once), % of the roof
this run measured itself (compute: the best sgemm 2048^3 of the peers at N
threads, an achieved roof, not the data sheet's; memory: the faster of a
256 MiB NumPy copy and a torch copy at N threads), and peer time / mlxc
time (> 1: mlxc is faster). Before each case a
health probe compares 1- and N-thread sgemm; a row whose probe saw less
than 1.5x (for N = 2) is flagged: the host took a core away.

This is a benchmark, not a test: nothing here asserts a time.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

ENV = {"OMP_WAIT_POLICY": "passive", "OPENBLAS_THREAD_TIMEOUT": "4"}
if any(os.environ.get(k) != v for k, v in ENV.items()):
    # Thread-pool settings only take effect before the libraries load.
    os.environ.update(ENV)
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from timing import timed  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STDLIB = os.path.join(ROOT, "stdlib")
CASES_MLX = os.path.join(ROOT, "bench", "cases.mlx")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl")
                            if x in flags]
    except OSError:
        pass
    return []


class Case:
    def __init__(self, name, mlx, fn, inputs, work, kind, torch_fns, numpy_fns, grads=()):
        self.name, self.mlx, self.fn, self.inputs = name, mlx, fn, inputs
        self.work, self.kind = work, kind  # FLOPs or bytes; "flop" | "byte"
        self.torch_fns, self.numpy_fns, self.grads = torch_fns, numpy_fns, grads


def make_cases(rng):
    f32 = lambda *s, scale=1.0: (rng.standard_normal(s) * scale).astype(np.float32)
    cases = []

    for n in (1024, 2048):
        A, B = f32(n, n), f32(n, n)
        C, Ct = np.empty((n, n), np.float32), torch.empty(n, n)
        tA, tB = torch.from_numpy(A), torch.from_numpy(B)
        cases.append(Case(
            f"matmul {n}^3", os.path.join(STDLIB, "linalg.mlx"), "matmul",
            {"A": A, "B": B}, 2.0 * n ** 3, "flop",
            {"torch": lambda tA=tA, tB=tB: tA @ tB,
             "torch out=": lambda tA=tA, tB=tB, Ct=Ct: torch.matmul(tA, tB, out=Ct)},
            {"numpy out=": lambda A=A, B=B, C=C: np.matmul(A, B, out=C)}))

    x = f32(4096, 4096)
    tx = torch.from_numpy(x)

    def np_softmax(x=x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    cases.append(Case(
        "row softmax 4096x4096", CASES_MLX, "row_softmax", {"x": x}, 2 * x.nbytes, "byte",
        {"torch": lambda: torch.softmax(tx, 1)}, {"numpy": np_softmax}))

    gamma, beta = np.ones(4096, np.float32), np.zeros(4096, np.float32)
    tg, tb = torch.from_numpy(gamma), torch.from_numpy(beta)

    def np_layer_norm(x=x):
        mu = x.mean(axis=1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * gamma + beta

    cases.append(Case(
        "row layer_norm 4096x4096", CASES_MLX, "row_layer_norm",
        {"x": x, "gamma": gamma, "beta": beta}, 2 * x.nbytes, "byte",
        {"torch": lambda: F.layer_norm(tx, (4096,), tg, tb, 1e-5)}, {"numpy": np_layer_norm}))

    z = f32(16 * 1024 * 1024)
    tz = torch.from_numpy(z)
    cases.append(Case(
        "GELU (erf) 16M", os.path.join(STDLIB, "nn.mlx"), "gelu", {"z": z}, 2 * z.nbytes,
        "byte", {"torch": lambda: F.gelu(tz)}, {}))

    def causal_torch(q, k, v):
        s = q @ k.T / np.sqrt(q.shape[1])
        mask = torch.ones(s.shape, dtype=torch.bool).triu(1)
        return torch.softmax(s.masked_fill(mask, float("-inf")), 1) @ v

    def causal_numpy(q, k, v):
        s = q @ k.T / np.sqrt(q.shape[1])
        s[np.triu_indices(s.shape[0], 1)] = -np.inf
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)) @ v

    T, D = 4096, 64
    q, k, v = f32(T, D), f32(T, D), f32(T, D)
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    cases.append(Case(
        f"causal attention T={T} D={D} fwd", os.path.join(STDLIB, "transformer.mlx"),
        "causal_attention", {"Q": q, "K": k, "V": v}, 4.0 * T * T * D, "flop",
        {"torch": lambda tq=tq, tk=tk, tv=tv: causal_torch(tq, tk, tv)},
        {"numpy": lambda q=q, k=k, v=v: causal_numpy(q, k, v)}))

    T = 1024
    q, k, v = f32(T, D), f32(T, D), f32(T, D)

    def causal_grad(q=q, k=k, v=v):
        ts = [torch.from_numpy(a).requires_grad_(True) for a in (q, k, v)]
        causal_torch(*ts).sum().backward()

    cases.append(Case(
        f"causal attention T={T} D={D} fwd+bwd", os.path.join(STDLIB, "transformer.mlx"),
        "causal_attention", {"Q": q, "K": k, "V": v}, 3 * 4.0 * T * T * D, "flop",
        {"torch autograd": causal_grad}, {}, grads=("Q", "K", "V")))

    mlp = {"x": f32(256, 784), "W1": f32(784, 1024, scale=0.05), "b1": np.zeros(1024, np.float32),
           "W2": f32(1024, 10, scale=0.05), "b2": np.zeros(10, np.float32)}

    def mlp_grad():
        t = {n: torch.from_numpy(a) for n, a in mlp.items()}
        for n in ("W1", "b1", "W2", "b2"):
            t[n].requires_grad_(True)
        (F.relu(t["x"] @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]).sum().backward()

    cases.append(Case(
        "MLP 784-1024-10 batch 256 fwd+bwd", os.path.join(STDLIB, "nn.mlx"), "mlp2", mlp,
        3 * 2.0 * 256 * (784 * 1024 + 1024 * 10), "flop",
        {"torch autograd": mlp_grad}, {}, grads=("W1", "b1", "W2", "b2")))

    # An LSTM layer of 128 steps, batch 64, 512 inputs and hidden units
    # (bench/cases.mlx's lstm_layer; PyTorch's nn.LSTM, its gates in
    # another order, the same work).
    T, B, H = 128, 64, 512
    lstm = {"xs": f32(T, B, H), "h0": f32(B, H), "c0": f32(B, H),
            "W": f32(4 * H, 2 * H, scale=0.03), "b": f32(4 * H, scale=0.1)}
    torch_lstm = torch.nn.LSTM(H, H)
    tl = {n: torch.from_numpy(a) for n, a in lstm.items()}

    def torch_lstm_forward():
        with torch.no_grad():
            return torch_lstm(tl["xs"], (tl["h0"][None], tl["c0"][None]))

    def np_lstm():
        sigmoid = lambda z: 1 / (1 + np.exp(-z))
        h, c, Wt = lstm["h0"], lstm["c0"], lstm["W"].T.copy()
        for t in range(T):
            z = np.concatenate([h, lstm["xs"][t]], axis=1) @ Wt + lstm["b"]
            c = sigmoid(z[:, :H]) * c + sigmoid(z[:, H:2 * H]) * np.tanh(z[:, 2 * H:3 * H])
            h = sigmoid(z[:, 3 * H:]) * np.tanh(c)

    cases.append(Case(
        f"LSTM {T} steps batch {B} hidden {H} fwd", CASES_MLX, "lstm_layer", lstm,
        2.0 * T * B * 4 * H * 2 * H, "flop",
        {"torch nn.LSTM": torch_lstm_forward}, {"numpy": np_lstm}))

    # conv2d 3x3, 64 -> 128 channels, 56x56, batch 8, padding 1.
    conv = {"I": f32(8, 64, 56, 56), "K": f32(128, 64, 3, 3, scale=0.05), "b": f32(128)}
    tc = {n: torch.from_numpy(a) for n, a in conv.items()}
    cases.append(Case(
        "conv2d 3x3 64->128 56x56 batch 8", CASES_MLX, "conv2d_batch", conv,
        2.0 * 8 * 128 * 56 * 56 * 64 * 9, "flop",
        {"torch": lambda: F.conv2d(tc["I"], tc["K"], tc["b"], padding=1)}, {}))

    # One AdamW step over 10 M parameters as one tensor: reads w, m, v, g,
    # writes w, m, v. PyTorch's optimizer updates in place.
    N = 10_000_000
    w, g = f32(N), f32(N, scale=0.01)
    m, v = np.zeros(N, np.float32), np.full(N, 1e-4, np.float32)
    hyper = {"t": np.array(3, np.int32), "lr": np.array(1e-3, np.float32),
             "b1": np.array(0.9, np.float32), "b2": np.array(0.999, np.float32),
             "eps": np.array(1e-8, np.float32), "wd": np.array(0.01, np.float32)}
    tw = torch.from_numpy(w.copy()).requires_grad_(True)
    tw.grad = torch.from_numpy(g)
    adamw = torch.optim.AdamW([tw], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    nw, nm, nv = w.copy(), m.copy(), v.copy()

    def np_adamw():
        nw[:] -= 1e-3 * 0.01 * nw
        nm[:] = 0.9 * nm + 0.1 * g
        nv[:] = 0.999 * nv + 0.001 * g * g
        nw[:] -= 1e-3 * (nm / (1 - 0.9 ** 3)) / (np.sqrt(nv / (1 - 0.999 ** 3)) + 1e-8)

    cases.append(Case(
        "AdamW step 10M", os.path.join(STDLIB, "optim.mlx"), "adamw_step",
        {"w": w, "m": m, "v": v, "g": g, **hyper}, 7 * 4 * N, "byte",
        {"torch AdamW": adamw.step}, {"numpy": np_adamw}))
    return cases


def mlxc_bench(mlxc, case, paths, repeat, threads):
    cmd = [mlxc, "bench", case.mlx, "-f", case.fn, "--repeat", str(repeat), "--json"]
    for name in case.inputs:
        cmd += ["--arg", f"{name}={paths[name]}"]
    if case.grads:
        cmd += ["--grad", ",".join(case.grads)]
    env = dict(os.environ, MLX_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def sgemm_gflops(n, threads, repeat=3):
    a = torch.randn(n, n)
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        best, _ = timed(lambda: a @ a, repeat)
    return 2.0 * n ** 3 / best / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlxc", default=os.path.join(ROOT, "build", "tools", "mlxc", "mlxc"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None,
                        help="where to write the results (default: "
                        "bench/results/latest.json; none with --only)")
    parser.add_argument("--readme", action="store_true",
                        help="replace the table in README.md with this run's")
    parser.add_argument("--only", default="",
                        help="run only the cases whose name contains this text")
    opts = parser.parse_args()
    if opts.only and opts.readme:
        parser.error("--readme needs every case (drop --only)")
    if opts.json is None and not opts.only:
        opts.json = os.path.join(ROOT, "bench", "results", "latest.json")
    n = opts.threads
    torch.set_num_threads(n)
    rng = np.random.default_rng(20261201)
    tmp = tempfile.mkdtemp(prefix="mlxc-bench-")

    # The roofs this run measures itself.
    compute_roof = sgemm_gflops(2048, n)
    # Memory: the faster of a NumPy copy (one thread) and a torch copy at N
    # threads, 256 MiB into a buffer already mapped.
    big = np.ones(64 * 1024 * 1024, np.float32)
    dst = np.empty_like(big)
    dst[:] = 0
    best, _ = timed(lambda: np.copyto(dst, big), 5)
    tbig, tdst = torch.from_numpy(big), torch.from_numpy(dst)
    with threadpool_limits(n):
        best = min(best, timed(lambda: tdst.copy_(tbig), 5)[0])
    memory_roof = 2 * big.nbytes / best / 1e6  # GB/s, read + write
    machine = {"cpu": cpu_name(), "features": cpu_flags(), "cores": os.cpu_count(),
               "threads": n, "compute_roof_gflops": compute_roof,
               "memory_roof_gbs": memory_roof, "torch": torch.__version__,
               "numpy": np.__version__}
    print(f"# {machine['cpu']} ({', '.join(machine['features'])}), {os.cpu_count()} cores; "
          f"peers at {n} threads; measured roofs: sgemm {compute_roof:.0f} GFLOP/s, "
          f"copy {memory_roof:.1f} GB/s")

    rows = []
    for case in make_cases(rng):
        if opts.only not in case.name:
            continue
        paths = {}
        for name, a in case.inputs.items():
            paths[name] = os.path.join(tmp, f"{case.fn}_{name}.npy")
            np.save(paths[name], a)
        probe = sgemm_gflops(512, n) / sgemm_gflops(512, 1)
        mlxc = mlxc_bench(opts.mlxc, case, paths, opts.repeat, n)
        peers = {}
        with threadpool_limits(n):
            for label, fn in list(case.torch_fns.items()) + list(case.numpy_fns.items()):
                peers[label] = timed(fn, opts.repeat)
        best_label = min(peers, key=lambda k: peers[k][0]) if peers else None
        rate = case.work / mlxc["min_ms"] / 1e6  # GFLOP/s or GB/s
        roof = compute_roof if case.kind == "flop" else memory_roof
        row = {"case": case.name, "mlxc_min_ms": mlxc["min_ms"],
               "mlxc_median_ms": mlxc["median_ms"], "mlxc_compile_ms": mlxc["compile_ms"],
               "mlxc_cached_compile_ms": mlxc["cached_compile_ms"],
               "mlxc_threads": mlxc["threads"], "rate": rate,
               "unit": "GFLOP/s" if case.kind == "flop" else "GB/s",
               "roof_percent": 100 * rate / roof,
               "peers": {k: {"min_ms": a, "median_ms": b} for k, (a, b) in peers.items()},
               "best_peer": best_label,
               "best_peer_over_mlxc": peers[best_label][0] / mlxc["min_ms"] if peers else None,
               "probe_speedup": probe, "probe_ok": probe >= 0.75 * n}
        rows.append(row)
        peer_text = ", ".join(f"{k} {a:.2f}" for k, (a, _) in peers.items())
        print(f"{case.name}: mlxc {mlxc['min_ms']:.2f} ms (median {mlxc['median_ms']:.2f}, "
              f"compile {mlxc['compile_ms']:.0f} ms cold, {mlxc['cached_compile_ms']:.0f} ms "
              f"cached), {rate:.1f} {row['unit']} = "
              f"{row['roof_percent']:.0f}% of roof; {peer_text}; best peer/mlxc "
              f"{row['best_peer_over_mlxc']:.2f}" + ("" if row["probe_ok"] else " [probe failed]"),
              flush=True)

    table = markdown_table(machine, rows)
    print()
    print(table)
    if opts.json:
        os.makedirs(os.path.dirname(os.path.abspath(opts.json)), exist_ok=True)
        with open(opts.json, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=1)
    if opts.readme:
        write_readme(table)


def markdown_table(machine, rows):
    lines = [f"Measured on {machine['cpu']} ({', '.join(machine['features'])}); "
             f"peers at {machine['threads']} threads (torch {machine['torch']}, "
             f"NumPy {machine['numpy']}), mlxc at {machine['threads']} (MLX_NUM_THREADS); "
             f"roofs measured in the same run: "
             f"sgemm {machine['compute_roof_gflops']:.0f} GFLOP/s, copy "
             f"{machine['memory_roof_gbs']:.1f} GB/s.",
             "",
             "| case | mlxc min / median ms | mlxc rate | % roof | best peer, min ms | peer/mlxc |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        peer = r["best_peer"]
        peer_text = f"{peer} {r['peers'][peer]['min_ms']:.2f}" if peer else "—"
        ratio = f"{r['best_peer_over_mlxc']:.2f}" if peer else "—"
        flag = "" if r["probe_ok"] else " (probe failed)"
        lines.append(f"| {r['case']}{flag} | {r['mlxc_min_ms']:.2f} / {r['mlxc_median_ms']:.2f} | "
                     f"{r['rate']:.1f} {r['unit']} | {r['roof_percent']:.0f}% | {peer_text} | "
                     f"{ratio} |")
    return "\n".join(lines)


def write_readme(table):
    path = os.path.join(ROOT, "README.md")
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    with open(path) as f:
        text = f.read()
    if begin not in text or end not in text:
        raise SystemExit("README.md has no bench:begin/bench:end block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(head + begin + "\n" + table + "\n" + end + tail)


if __name__ == "__main__":
    main()
