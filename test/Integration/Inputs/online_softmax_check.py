"""Runs softmax-weighted sums (attention) with mlx-online-softmax on and off
(`--online-softmax=true|false`) on the same random arguments and compares:
equal within 2e-6 relative, NaN where the other is NaN. Sizes span several
64-key tiles with a partial last one. Prints one line per case and exits 1
on a difference.

usage: online_softmax_check.py MLXC STDLIB INPUTS_DIR OUT_DIR
"""
import json
import math
import os
import random
import subprocess
import sys


def matrix(rows, cols, rng):
    return "[" + ",".join(
        "[" + ",".join("%.5f" % rng.uniform(-2, 2) for _ in range(cols)) + "]"
        for _ in range(rows)) + "]"


def run(mlxc, path, fn, args, online):
    cmd = [mlxc, "run", path, "-f", fn, "--json",
           "--online-softmax=%s" % ("true" if online else "false")]
    cmd += ["--arg=%s=%s" % kv for kv in args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["outputs"][0]["data"]


def emitted(mlxc, path, fn, online):
    cmd = [mlxc, "emit", path, "-f", fn, "--stage=linalg",
           "--online-softmax=%s" % ("true" if online else "false")]
    return subprocess.run(cmd, capture_output=True, text=True,
                          check=True).stdout


def main(mlxc, stdlib, inputs, out):
    os.makedirs(out, exist_ok=True)
    rng = random.Random(7)
    transformer = os.path.join(stdlib, "transformer.mlx")
    late = os.path.join(inputs, "online_softmax.mlx")
    cases = [
        ("causal_attention T=130", transformer, "causal_attention",
         [("Q", matrix(130, 5, rng)), ("K", matrix(130, 5, rng)),
          ("V", matrix(130, 3, rng))], 0),
        ("attention T=70 S=200", transformer, "attention",
         [("Q", matrix(70, 4, rng)), ("K", matrix(200, 4, rng)),
          ("V", matrix(200, 6, rng))], 0),
        # lo = 60: row i < 90 sees keys 60 + i .. 149 (none of the first tile
        # from i = 4 on), rows 90 .. 99 none.
        ("late_keys T=100 S=150 lo=60", late, "late_keys",
         [("Q", matrix(100, 3, rng)), ("K", matrix(150, 3, rng)),
          ("V", matrix(150, 2, rng)), ("lo", "60")], 10),
        # 1000-sized logits: the running max keeps exp finite.
        ("causal_attention T=100, scores ±1000", transformer,
         "causal_attention",
         [("Q", matrix(100, 2, rng)),
          ("K", "[" + ",".join("[%d,%d]" % (500 * (-1) ** j, 500)
                               for j in range(100)) + "]"),
          ("V", matrix(100, 2, rng))], 0),
    ]
    failures = 0
    for name, path, fn, args, masked_rows in cases:
        online = run(mlxc, path, fn, args, True)
        two_pass = run(mlxc, path, fn, args, False)
        worst, nans, bad = 0.0, 0, []
        for i, (ra, rb) in enumerate(zip(online, two_pass)):
            for a, b in zip(ra, rb):
                if math.isnan(a) or math.isnan(b):
                    nans += 1
                    if not (math.isnan(a) and math.isnan(b)):
                        bad.append("row %d: %r vs %r" % (i, a, b))
                    continue
                if not math.isfinite(a) or not math.isfinite(b):
                    bad.append("row %d: %r vs %r" % (i, a, b))
                    continue
                err = abs(a - b) / max(1.0, abs(b))
                worst = max(worst, err)
                if err > 2e-6:
                    bad.append("row %d: %r vs %r" % (i, a, b))
        nan_rows = sum(1 for r in online if all(math.isnan(x) for x in r))
        if nan_rows != masked_rows:
            bad.append("%d rows NaN, expected %d" % (nan_rows, masked_rows))
        rewritten = "scf.for" in emitted(mlxc, path, fn, True) and \
            "scf.for" not in emitted(mlxc, path, fn, False)
        if not rewritten:
            bad.append("not rewritten")
        status = "FAIL" if bad else "ok"
        failures += bool(bad)
        print("%s: %s, %d rows masked whole, max rel diff %.1e" %
              (status, name, nan_rows, worst))
        for b in bad[:5]:
            print("  " + b)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
