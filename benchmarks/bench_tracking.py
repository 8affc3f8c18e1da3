"""Tracking speed: ``track_inventories`` (what ``gli track`` runs) on three yearly inventories of
5,000 and of 20,000 lakes, measured side by side, and the scaling ratio.

The lakes are generated (a benchmark measures speed, not science): lakes scattered over a UTM area
that grows with their number (constant density, like a regional glacial-lake inventory), with
log-normal sizes (median ~0.01 km2), which between years grow or shrink by up to 20 %, shift by up
to 10 m, and some appear, vanish, merge or split. Each year is written as a GeoPackage in WGS84, so
the run includes reading, reprojection to UTM, the standard fields, tracking and the tables.

Linear is a ratio of 4.0 for four times the lakes. Before the UTM zone was taken from the joint
bounding box, ``shapely.union_all`` over every polygon (only to find the centre) made it 3.8x the
time of 5,000 lakes for three years: 72 s, of which 36 s union. Also printed: the share of the time
spent in ``tracking.track`` and, for reference, what ``union_all`` over all polygons would cost.

Usage: .venv/bin/python benchmarks/bench_tracking.py [--sizes 5000 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from gli_toolbox.inventories import read_inventories, track_inventories
from gli_toolbox.tracking import track

CRS = "EPSG:32643"


def inventories(n: int, seed: int = 1) -> dict[int, gpd.GeoDataFrame]:
    """Three yearly layers of about ``n`` lakes each in UTM 43N."""
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
        layers[year] = g
    return layers


def write(n: int, folder: Path) -> tuple[list[Path], dict[int, gpd.GeoDataFrame]]:
    layers = inventories(n)
    paths = []
    for year, g in layers.items():
        path = folder / f"lakes_{n}_{year}.gpkg"
        g.to_crs("EPSG:4326").to_file(path, engine="pyogrio")
        paths.append(path)
    return paths, layers


def timed(f, *args) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = f(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=(5000, 20000), metavar=("SMALL", "LARGE"))
    ap.add_argument("--repeat", type=int, default=3, help="runs per size, interleaved; the fastest counts")
    args = ap.parse_args()
    sizes = list(args.sizes)
    best: dict[int, dict[str, float]] = {n: {"total": np.inf, "core": np.inf} for n in sizes}
    with tempfile.TemporaryDirectory() as d:
        data = {n: write(n, Path(d)) for n in sizes}
        utm = {n: read_inventories(data[n][0])[0] for n in sizes}
        track_inventories(data[sizes[0]][0][:2])  # warm-up (imports, PROJ database)
        for _ in range(args.repeat):  # interleaved, so a load change on the machine hits both sizes
            for n in sizes:
                t, res = timed(track_inventories, data[n][0])
                best[n]["total"] = min(best[n]["total"], t)
                best[n]["core"] = min(best[n]["core"], timed(track, utm[n])[0])
                best[n]["lakes"] = sum(len(g) for g in data[n][1].values())
                best[n]["counts"] = res.changes["status"].value_counts().to_dict()  # type: ignore[attr-defined]
        for n in sizes:
            allg = np.concatenate([g.to_crs("EPSG:4326").geometry.values for g in data[n][1].values()])
            best[n]["union"] = timed(shapely.union_all, allg)[0]
    for n in sizes:
        b = best[n]
        print(f"{n:>6} lakes/year ({b['lakes']} in all): track_inventories {b['total']:6.2f} s "
              f"({1e3 * b['total'] / b['lakes']:.3f} ms per lake), of which tracking {b['core']:5.2f} s; "
              f"union_all of all polygons (no longer done) would add {b['union']:5.2f} s; statuses {b['counts']}")
    small, large = sizes
    print(f"scaling ratio time({large}) / time({small}) = {best[large]['total'] / best[small]['total']:.2f} "
          f"({large / small:.1f} = linear); tracking alone {best[large]['core'] / best[small]['core']:.2f}")


if __name__ == "__main__":
    main()
