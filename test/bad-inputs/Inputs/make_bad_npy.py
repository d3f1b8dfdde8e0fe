#!/usr/bin/python3
"""Writes one malformed .npy file per reader diagnostic into DIR (argv[1])."""
import os
import struct
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def npy(name, header, data=b"", version=1):
    pad = (64 - (10 + len(header) + 1) % 64) % 64
    h = (header + " " * pad + "\n").encode()
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]) + size + h + data)


npy("version.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, version=7)
with open(os.path.join(out, "truncated.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00\xff\x00{'descr'")
npy("nodescr.npy", "{'fortran_order': False, 'shape': (1,), }")
npy("bigendian.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4)
npy("complex.npy", "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8)
npy("noorder.npy", "{'descr': '<f4', 'shape': (1,), }", b"\0" * 4)
npy("noshape.npy", "{'descr': '<f4', 'fortran_order': False, }", b"\0" * 4)
npy("baddim.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2x,), }", b"\0" * 8)
npy("rank17.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1," * 17 + "), }", b"\0" * 4)
npy("huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000, 1000000), }")
npy("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", b"\0" * 8)
