"""What the benchmarks share: timing a call the same way."""
import time

import numpy as np


def timed(fn, repeat):
    """(min, median) ms of `repeat` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times), float(np.median(times))
