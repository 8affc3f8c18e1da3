"""Lake extraction (clean, label, polygonize, attributes) on a large mask with thousands of lakes.

Prints the time per lake and the peak traced memory per pixel for masks of growing size with the
same lake density: the memory per pixel should stay flat (no whole-raster int64 or polygon
temporaries), the time per lake too. The mask is generated (square lakes of 8-20 px): a benchmark
measures speed and memory, not science.

Usage: .venv/bin/python benchmarks/bench_lakes.py
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
from affine import Affine

from gli_toolbox.lakes import extract_lakes


def mask(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wc = np.zeros((side, side), np.uint8)
    for _ in range(int(6000 * (side / 4000) ** 2)):
        r, c = rng.integers(0, side - 20, 2)
        s = rng.integers(8, 20)
        wc[r:r + s, c:c + s] = 1
    return wc


def main() -> None:
    print(f"{'pixels':>12} {'lakes':>6} {'time s':>7} {'ms/lake':>8} {'peak B/px':>10}")
    for side in (2000, 4000):
        wc = mask(side)
        counts = np.ones(wc.shape, np.uint16)
        kw = {"transform": Affine(10, 0, 400000, 0, -10, 4700000), "crs": "EPSG:32643", "min_area_m2": 5400}
        t = time.perf_counter()
        g = extract_lakes(wc, counts, **kw)
        dt = time.perf_counter() - t  # timed without tracemalloc, which slows numpy allocations down
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        extract_lakes(wc, counts, **kw)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{wc.size:>12} {len(g):>6} {dt:>7.2f} {1e3 * dt / max(len(g), 1):>8.2f} {(peak - base) / wc.size:>10.1f}")


if __name__ == "__main__":
    main()
