#!/usr/bin/python3
"""Fits the polynomial of mlx-approximate-math's f32 exp
(codegen/cpu/ApproximateMath.cpp): exp(r) ≈ 1 + r + r²·q(r) on
|r| ≤ ln 2 / 2, q of degree 4, minimizing the largest relative error
(iteratively reweighted least squares on Chebyshev nodes). Prints the
coefficients as C hex float literals and the fit's error in ulps (2^-23).
Needs /usr/bin/python3 with python3-numpy."""
import numpy as np

R = np.log(2) / 2 * 1.0005  # margin: k comes from a rounded x·log2 e
DEGREE = 4

n = 4000
r = R * np.cos(np.pi * (np.arange(n) + 0.5) / n)
weights = np.ones(n)
A = np.stack([r ** (2 + i) for i in range(DEGREE + 1)], 1) / np.exp(r)[:, None]
b = (np.exp(r) - 1 - r) / np.exp(r)
for _ in range(30):
    c, *_ = np.linalg.lstsq(A * weights[:, None], b * weights, rcond=None)
    err = np.abs(A @ c - b)
    weights *= np.sqrt(err / err.mean()) + 1e-12
    weights /= weights.mean()

c32 = c.astype(np.float32).astype(np.float64)
xs = np.linspace(-R, R, 400001)
rel = (1 + xs + xs**2 * np.polyval(c32[::-1], xs)) / np.exp(xs) - 1
print("kExpQ = {" + ", ".join(float(v).hex().replace("0000000p", "p") + "f"
                              for v in np.float32(c)) + "}")
print("largest relative error %.3g = %.3f ulp" % (abs(rel).max(),
                                                    abs(rel).max() / 2**-23))
