#!/usr/bin/env python3
"""Checks `mlxc run --json` output read from stdin, for the example programs.

  check_outputs.py NAME falls RATIO     the last value < RATIO × the first,
                                        and no value above the first
  check_outputs.py NAME close OTHER TOL every |NAME − OTHER| <= TOL
  check_outputs.py NAME near VALUES TOL every |NAME − VALUES| <= TOL, up to
                                        the order of rows (VALUES: JSON)
  check_outputs.py NAME below TOL       every |NAME| <= TOL
  check_outputs.py NAME ends VALUE TOL  |the last value of NAME − VALUE| <= TOL

Several checks may follow each other. Exit 1 with a message on failure.
"""
import json
import sys


def rows(data):
    return data if isinstance(data, list) else [data]


def main(argv):
    outputs = {o["name"]: o["data"] for o in json.load(sys.stdin)["outputs"]}
    i = 0
    while i < len(argv):
        name, check = argv[i], argv[i + 1]
        values = outputs[name]
        if check == "falls":
            ratio = float(argv[i + 2])
            if not values[-1] < ratio * values[0] or max(values) > values[0]:
                sys.exit(f"{name} does not fall to below {ratio} x its start: {values}")
            i += 3
        elif check == "close":
            other, tol = outputs[argv[i + 2]], float(argv[i + 3])
            flat = lambda v: sum((rows(r) for r in rows(v)), [])
            worst = max(abs(a - b) for a, b in zip(flat(values), flat(other)))
            if worst > tol:
                sys.exit(f"{name} and {argv[i + 2]} differ by {worst}: {values} vs {other}")
            i += 4
        elif check == "near":
            expected, tol = json.loads(argv[i + 2]), float(argv[i + 3])
            got_rows = values if isinstance(values[0], list) else [values]
            for row in expected:
                if not any(all(abs(a - b) <= tol for a, b in zip(row, got))
                           for got in got_rows):
                    sys.exit(f"no row of {name} within {tol} of {row}: {values}")
            i += 4
        elif check == "ends":
            value, tol = float(argv[i + 2]), float(argv[i + 3])
            last = values[-1] if isinstance(values, list) else values
            if not abs(last - value) <= tol:
                sys.exit(f"{name} ends at {last}, not within {tol} of {value}: {values}")
            i += 4
        elif check == "below":
            tol = float(argv[i + 2])
            flat = values if isinstance(values, list) else [values]
            while flat and isinstance(flat[0], list):
                flat = sum(flat, [])
            if any(not abs(v) <= tol for v in flat):  # NaN fails too
                sys.exit(f"{name} is not below {tol}: {values}")
            i += 3
        else:
            sys.exit(f"unknown check {check}")


if __name__ == "__main__":
    main(sys.argv[1:])
