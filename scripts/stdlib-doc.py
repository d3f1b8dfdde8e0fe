#!/usr/bin/python3
"""Generates docs/Stdlib.md from the stdlib sources and the test results.

For every function of stdlib/*.mlx: its signature, the equation comment
above it, each value and gradient test of test/Stdlib/*.test that runs it
(the generated fixtures of test/fixtures/make_fixtures.py), run now with the
built mlxc, with the largest relative error measured against the
reference, and its f64 finite-difference check (test/Unit/GradCheckTest.cpp,
run now through the unit-test binary). Run after a build:
    scripts/stdlib-doc.py [BUILD_DIR]     (default: build)
Needs Debian's python3-numpy (installed by scripts/setup.sh when missing).
"""
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_numpy():
    try:
        import numpy  # noqa: F401
    except ImportError:
        subprocess.run([os.path.join(ROOT, "scripts", "setup.sh"), "python3-numpy"],
                       check=True, stdout=subprocess.DEVNULL)


def functions(path):
    """(name, signature, comment) of each def in an .mlx file, in order."""
    out, comment = [], []
    for line in open(path, encoding="utf-8"):
        if line.startswith("#"):
            comment.append(line[1:].strip())
            continue
        m = re.match(r"def (\w+)\((.*)\) -> (.*) \{", line)
        if m:
            out.append((m.group(1), f"{m.group(1)}({m.group(2)}) -> {m.group(3)}",
                        " ".join(c for c in comment if c)))
        comment = []  # only the block right above a def is its comment
    return out


def weighted_key(fn, modules):
    """module.function of a test's function: X_weighted (a weighted sum of X,
    from test/Stdlib/Inputs/weighted.mlx) stands for X."""
    base = fn[:-len("_weighted")] if fn.endswith("_weighted") else fn
    return f"{modules.get(base, '?')}.{base}"


def stdlib_tests(mlxc, tmp, modules):
    """module.function -> {"value"|"grad": [(case name, largest relative
    error)]}, from the generated test/Stdlib/*.test files. Values: the
    largest element-wise relative error; gradients (whose exact zeros make
    that meaningless): the largest |error| over the largest |reference| of
    each gradient."""
    import numpy as np
    results = {}
    for test in sorted(glob.glob(os.path.join(ROOT, "test", "Stdlib", "*.test"))):
        runs = [l[len("# RUN: "):].strip() for l in open(test) if l.startswith("# RUN: ")]
        for k, run in enumerate(runs):
            m = re.search(r"%mlxc run (%stdlib/\w+|%S/Inputs/weighted)\.mlx -f (\w+) (.*) "
                          r"--save %t\.(\S+)$", run)
            if not m:
                continue
            kind = "grad" if "--grad" in run else "value"
            source, fn, args, case = m.groups()
            source = source.replace("%stdlib", os.path.join(ROOT, "stdlib")).replace(
                "%S", os.path.dirname(test)) + ".mlx"
            key = weighted_key(fn, modules)
            args = args.replace("%fixtures", os.path.join(ROOT, "test", "fixtures"))
            out = os.path.join(tmp, os.path.basename(test) + "." + case)
            cmd = [mlxc, "run", source, "-f", fn,
                   *shlex.split(args), "--save", out]
            ok = subprocess.run(cmd, capture_output=True).returncode == 0
            worst = None
            for compare in runs[k + 1:]:
                c = re.match(r"%npy-compare %t\.(\S+?)(/\S+)? %fixtures/(\S+)", compare)
                if not c or c.group(1) != case:
                    break
                expected = os.path.join(ROOT, "test", "fixtures", c.group(3))
                if os.path.isdir(expected):
                    expected = os.path.join(expected, "expected.npy")
                actual = out + (c.group(2) or "")
                if os.path.isdir(actual):
                    actual = glob.glob(os.path.join(actual, "*.npy"))[0]
                if not ok or not os.path.exists(actual):
                    ok = False
                    break
                a = np.atleast_1d(np.load(actual).astype(np.float64))
                e = np.atleast_1d(np.load(expected).astype(np.float64))
                finite = np.isfinite(e) & np.isfinite(a)
                if kind == "grad":
                    scale = max(float(np.abs(e[finite]).max()) if finite.any() else 0.0, 1e-30)
                    err = np.abs(a - e)[finite] / scale
                else:
                    err = np.abs(a - e)[finite] / np.maximum(np.abs(e)[finite], 1e-30)
                worst = max(worst or 0.0, float(err.max()) if err.size else 0.0)
            results.setdefault(key, {}).setdefault(kind, []).append(
                (case, worst if ok else None))
    return results


def grad_checks(build, tmp, modules):
    """module.function -> the largest relative error of the f64 central
    differences check (GradCheckTest), from the unit tests' XML report."""
    import xml.etree.ElementTree as ET
    unit = os.path.join(build, "test", "Unit", "mlx-unit-tests")
    report = os.path.join(tmp, "gradcheck.xml")
    subprocess.run([unit, "--gtest_filter=Stdlib/GradCheck.*", f"--gtest_output=xml:{report}"],
                   capture_output=True)
    out = {}
    for test in ET.parse(report).iter("testcase"):
        param = test.get("value_param", "").strip('"')
        if "." not in param:
            continue
        worst = [p.get("value") for p in test.iter("property")
                 if p.get("name") == "max_relative_error"]
        failed = test.find("failure") is not None or not worst
        key = weighted_key(param.split(".")[1], modules)
        entry = (param.split(".")[1], None if failed else float(worst[0]))
        out.setdefault(key, []).append(entry)
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    mlxc = os.path.join(build, "tools", "mlxc", "mlxc")
    ensure_numpy()
    modules = {name: os.path.basename(path)[:-4]
               for path in glob.glob(os.path.join(ROOT, "stdlib", "*.mlx"))
               for name, _, _ in functions(path)}
    with tempfile.TemporaryDirectory() as tmp:
        results = stdlib_tests(mlxc, tmp, modules)
        fd = grad_checks(build, tmp, modules)
    lines = ["# The stdlib, from its sources and its tests",
             "",
             "Generated by `scripts/stdlib-doc.py` (do not edit): every function of",
             "`stdlib/`, the equation comment above it, and its value tests (the",
             "fixtures of `test/fixtures/make_fixtures.py`, computed with NumPy or",
             "PyTorch) with the largest relative error of mlxc's result against the",
             "reference, measured when this page was generated; its gradient",
             "tests (`test/Stdlib/gradients.test` and `gradient-edges.test`:",
             "PyTorch autograd of the sum of its results) with the largest error",
             "relative to the largest gradient entry; and its f64 check against",
             "central finite differences of the compiled function",
             "(`test/Unit/GradCheckTest.cpp`, the same relative error). A function",
             "whose results sum to a constant (a distribution, a permutation) is",
             "differentiated through a weighted sum Σ c·f of",
             "`test/Stdlib/Inputs/weighted.mlx`, listed as `NAME_weighted`: the",
             "gradient of its plain sum is 0 or 1 whatever its derivative.",
             ""]
    for path in sorted(glob.glob(os.path.join(ROOT, "stdlib", "*.mlx"))):
        module = os.path.basename(path)[:-4]
        lines += [f"## {module}", ""]
        for name, signature, comment in functions(path):
            lines.append(f"### `{name}`")
            lines.append("")
            lines.append(f"`{signature}`")
            lines.append("")
            if comment:
                lines += [comment, ""]
            tests = results.get(f"{module}.{name}", {})
            shown = lambda cases: ", ".join(
                f"`{case}`: " + ("**failed**" if worst is None else f"{worst:.1e}")
                for case, worst in cases)
            if tests.get("value"):
                lines += [f"Tests (largest relative error): {shown(tests['value'])}", ""]
            else:
                lines += ["Tests: no value fixture of its own (see the integration"
                          " tests, or the functions that call it).", ""]
            if tests.get("grad"):
                lines += [f"Gradient vs PyTorch autograd: {shown(tests['grad'])}", ""]
            if f"{module}.{name}" in fd:
                lines += [f"Gradient vs f64 finite differences: {shown(fd[f'{module}.{name}'])}", ""]
    with open(os.path.join(ROOT, "docs", "Stdlib.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    count = lambda kind: sum(len(v.get(kind, [])) for v in results.values())
    print(f"docs/Stdlib.md: {count('value')} value tests, {count('grad')} gradient tests, "
          f"{len(fd)} finite-difference checks")


if __name__ == "__main__":
    main()
