#!/usr/bin/env python3
"""`mlxc derive` on every differentiable stdlib function, compiled back.

  derive_roundtrip.py MLXC STDLIB_DIR OUT_DIR

For each function of the stdlib with a float parameter and a float result:
derive its gradient with respect to all its float parameters, check that
`mlxc check` accepts the printed program, run it on random arguments and
compare its results with `mlxc run --grad` of the function on the same
arguments (relative 1e-4, NaN equal to NaN). The functions the printer
cannot write yet are listed in REFUSED, each with the words its error must
contain: a refusal elsewhere, or an accepted function still listed there,
fails the test. Exit 1 with a message per failure.
"""
import concurrent.futures
import json
import math
import os
import random
import re
import subprocess
import sys

# Functions whose gradients derive cannot print yet, each with the words
# its error must contain (none now).
REFUSED = {}

# Arguments chosen where random ones say little: symmetric positive
# definite matrices for the Cholesky family (random ones give NaNs, which
# compare equal), and loops of several steps (random integers are 0 or 1).
SPD = "[[4,2,0.4,0.2],[2,5,1,0.3],[0.4,1,3,0.5],[0.2,0.3,0.5,2]]"
OVERRIDES = {
    "cholesky": {"A": SPD},
    "solve_spd": {"A": SPD, "b": "[1,2,3,4]"},
    "normal_equation": {"X": "[[1,0.5],[0.3,2],[1.5,0.2],[0.7,0.9]]",
                        "y": "[1,2,3,4]"},
    "gd_linear_regression": {"steps": "3"},
    "kmeans": {"iters": "2"},
}

DEF = re.compile(r"^def (\w+)\((.*?)\)\s*->\s*(.*?)\s*\{", re.M)
PARAM = re.compile(r"^\s*(\w+)\s*:\s*(static\s+)?(\w+)(?:\[(.*)\])?\s*$")


def split_params(text):
    """Splits a parameter list at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for c in text:
        depth += c == "["
        depth -= c == "]"
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    if cur.strip():
        parts.append(cur)
    return parts


def literal(shape, dtype, rng):
    if not shape:
        if dtype.startswith("f"):
            return repr(round(rng.uniform(0.1, 0.9), 4))
        return str(rng.randrange(2))
    return "[" + ",".join(literal(shape[1:], dtype, rng)
                          for _ in range(shape[0])) + "]"


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def same(a, b):
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(
            same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))


def arguments(name, parsed, size_of):
    """--arg options for the parameters: floats in (0.1, 0.9), integers 0
    or 1, statics 2; the n-th size name is size_of(n)."""
    rng = random.Random(name)
    sizes, args, statics = {}, [], []
    for pname, static, dtype, dims in (m.groups() for m in parsed):
        if static:
            statics.append("--arg=%s=2" % pname)
            sizes[pname] = 2
            continue
        shape = []
        for d in dims.split(",") if dims else []:
            d = d.strip()
            if d == "...":
                shape.append(3)
                continue
            for sym in re.findall(r"[A-Za-z_]\w*", d):
                sizes.setdefault(sym, size_of(len(sizes)))
            shape.append(eval(d.replace("/", "//"), {}, dict(sizes)))
        value = OVERRIDES.get(name, {}).get(pname)
        args.append("--arg=%s=%s" % (
            pname, value if value else literal(shape, dtype, rng)))
    return args, statics


def check_one(mlxc, path, name, parsed, floats, out):
    """The failures of one function's round trip, and whether it ran."""
    wrt = ",".join(floats)
    # Sizes 2 and 4 by turns (rope wants an even D), else all 2
    # (gqa_attention wants G to divide HQ).
    for size_of in (lambda n: 2 + 2 * (n % 2), lambda n: 2):
        args, statics = arguments(name, parsed, size_of)
        ref = run([mlxc, "run", path, "-f", name, "--grad", wrt, "--json"]
                  + args + statics)
        if ref.returncode == 0:
            break
    derived = run([mlxc, "derive", path, "-f", name, "--wrt", wrt] + statics)
    if derived.returncode:
        why = derived.stderr.strip().splitlines()[0] if derived.stderr else ""
        if name not in REFUSED:
            return ["%s: derive failed: %s" % (name, why)], False
        if REFUSED[name] not in why:
            return ["%s: refused for another reason: %s" % (name, why)], False
        return [], False
    if name in REFUSED:
        return ["%s is derived now: take it out of REFUSED" % name], False
    source = os.path.join(out, name + ".mlx")
    with open(source, "w") as f:
        f.write(derived.stdout)
    check = run([mlxc, "check", source])
    if check.returncode:
        return ["%s: the derived program does not check:\n%s" %
                (name, check.stderr)], False
    grad_name = re.search(r"^def (\w+)", derived.stdout, re.M).group(1)
    mine = run([mlxc, "run", source, "-f", grad_name, "--json"] + args)
    if mine.returncode or ref.returncode:
        return ["%s: a run failed:\n%s%s" % (name, mine.stderr, ref.stderr)], False
    want = {o["name"]: o["data"] for o in json.loads(ref.stdout)["outputs"]}
    failures = []
    for o in json.loads(mine.stdout)["outputs"]:
        if not same(o["data"], want[o["name"]]):
            failures.append("%s: %s differs: %s vs --grad %s" % (
                name, o["name"], o["data"], want[o["name"]]))
    return failures, True


def main(mlxc, stdlib, out):
    os.makedirs(out, exist_ok=True)
    jobs = []
    for file in sorted(os.listdir(stdlib)):
        path = os.path.join(stdlib, file)
        for name, params, result in DEF.findall(open(path).read()):
            parsed = [PARAM.match(p) for p in split_params(params)]
            floats = [m.group(1) for m in parsed
                      if m.group(3) in ("f32", "f64") and not m.group(2)]
            if floats and ("f32" in result or "f64" in result):
                jobs.append((mlxc, path, name, parsed, floats, out))
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        results = list(pool.map(lambda job: check_one(*job), jobs))
    failures = [f for fs, _ in results for f in fs]
    for f in failures:
        lines = f.splitlines()
        print("FAIL", "\n  ".join(l[:200] for l in lines[:4]))
    print("%d gradients derived and compiled back, %d refused as listed, "
          "%d failures" % (sum(ok for _, ok in results), len(REFUSED),
                           len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
