"""Tracking speed on three inventories of a few thousand lakes each.

The lakes are generated (a benchmark measures speed, not science): 3,000 lakes scattered over a
60 x 60 km UTM area with log-normal sizes like a regional glacial-lake inventory (median ~0.01 km2),
which between years grow or shrink by up to 20 %, shift by up to 10 m, and some appear, vanish,
merge or split. Prints the time per run and per lake; a spatial index keeps it near-linear, so
doubling the lakes should roughly double the time (printed as the scaling ratio).

Usage: .venv/bin/python benchmarks/bench_tracking.py
"""

from __future__ import annotations

import time

import geopandas as gpd
import numpy as np
import shapely

from gli_toolbox.tracking import track

CRS = "EPSG:32643"


def inventories(n: int, seed: int = 1) -> dict[int, gpd.GeoDataFrame]:
    rng = np.random.default_rng(seed)
    side = 60_000 * np.sqrt(n / 3000)
    x = rng.uniform(0, side, n) + 500_000
    y = rng.uniform(0, side, n) + 4_700_000
    r = np.sqrt(rng.lognormal(np.log(0.01e6), 1.0, n) / np.pi)  # radius from area in m2
    layers = {}
    for k, year in enumerate((2016, 2019, 2022)):
        keep = rng.random(n) > 0.03 * k  # some vanish
        grow = 1 + rng.uniform(-0.2, 0.2, n) * k
        dx, dy = rng.uniform(-10, 10, (2, n))
        geoms = shapely.buffer(shapely.points(x + dx, y + dy), r * np.sqrt(grow), quad_segs=4)
        new = rng.integers(0, n, n // 50)  # new small lakes
        new_geoms = shapely.buffer(shapely.points(x[new] + 300, y[new] + 300), 40, quad_segs=4)
        g = gpd.GeoDataFrame(geometry=np.concatenate([geoms[keep], new_geoms]), crs=CRS)
        g = g.dissolve().explode(index_parts=False).reset_index(drop=True)  # touching lakes merge
        g["lake_id"] = [f"L{year}_{i}" for i in range(len(g))]
        layers[year] = g
    return layers


def main() -> None:
    for n in (3000, 6000):
        layers = inventories(n)
        sizes = [len(g) for g in layers.values()]
        t0 = time.perf_counter()
        res = track(layers)
        dt = time.perf_counter() - t0
        counts = res.changes["status"].value_counts().to_dict()
        print(f"{n} lakes/year {sizes}: {dt:.2f} s, {1e3 * dt / sum(sizes):.3f} ms per lake; statuses {counts}")
        if n == 3000:
            t3000 = dt
    print(f"scaling ratio time(6000) / time(3000) = {dt / t3000:.2f} (2.0 = linear)")


if __name__ == "__main__":
    main()
