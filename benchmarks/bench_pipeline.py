"""Speed and memory of `detect` as ratios (not timed tests).

1. pipeline time / time to just read the same bands for the same grid with odc-stac
   (how much the science and vectorizing add on top of I/O), once without cloud masking (green,
   NIR, SWIR1 read) and once with s2cloudless (the ten model bands read as well);
2. peak Python-heap memory (tracemalloc, includes numpy buffers) for AOIs of growing size at a fixed
   chunk size, divided by the AOI's pixel count: with chunked reading this should fall towards the
   5 bytes per pixel of the yearly count arrays instead of staying at the ~30 bytes per pixel of
   whole-AOI float bands.

Runs offline on the Havel L1C scene of sample_data (the largest sample, 786 x 604 px at 10 m).
Usage: .venv/bin/python benchmarks/bench_pipeline.py
"""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import odc.stac
import shapely.geometry

import gli_toolbox
from gli_toolbox import load, search
from gli_toolbox.aoi import aoi_from_geometry

ROOT = Path(__file__).resolve().parents[1]
CATALOG = str(ROOT / "sample_data" / "catalog.json")
KW = {"years": (2017,), "months": (2, 2), "stac": CATALOG, "collection": "sentinel-2-l1c", "progress": False}


def havel_boxes():
    """AOIs of 1/16, 1/4 and all of the Havel crop (WGS84)."""
    src = search.open_source(CATALOG)
    item = next(i for i in src.local_items if i.collection_id == "sentinel-2-l1c")
    x0, y0, x1, y1 = shapely.geometry.shape(item.geometry).bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    out = []
    for f in (0.25, 0.5, 0.95):
        hw, hh = (x1 - x0) * f / 2, (y1 - y0) * f / 2
        out.append(shapely.geometry.box(cx - hw, cy - hh, cx + hw, cy + hh))
    return item, out


def best_of(n, fn):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    logging.disable(logging.WARNING)
    item, boxes = havel_boxes()
    aoi = aoi_from_geometry(boxes[-1])
    grid = load.output_grid(aoi.geometry_wgs84, crs=None, resolution_m=10)
    print(f"grid {grid.shape.y} x {grid.shape.x} px")
    cases = {
        "no cloud masking": ("none", ["green", "nir", "swir16"]),
        "s2cloudless + shadows": ("auto", ["green", "nir", "swir16", "coastal", "blue", "red", "rededge1",
                                           "nir08", "nir09", "cirrus", "swir22"]),
    }
    gli_toolbox.detect(aoi, **KW)  # warm-up: imports, s2cloudless model
    for name, (detector, bands) in cases.items():
        t_read = best_of(3, lambda b=bands: odc.stac.load([item], bands=b, geobox=grid, resampling="nearest").load())
        t_pipe = best_of(3, lambda d=detector: gli_toolbox.detect(aoi, cloud_detector=d, **KW))
        print(f"{name:>22}: read {len(bands):2d} bands {t_read:6.3f} s, detect {t_pipe:6.3f} s, "
              f"ratio pipeline / read = {t_pipe / t_read:.1f}")

    print("\npeak memory vs AOI size (chunk_px=128):")
    print(f"{'pixels':>10} {'peak MiB':>9} {'bytes/px':>9}")
    for b in boxes:
        a = aoi_from_geometry(b)
        g = load.output_grid(a.geometry_wgs84, crs=None, resolution_m=10)
        tracemalloc.start()
        gli_toolbox.detect(a, chunk_px=128, cloud_detector="none", **KW)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        npx = g.shape.x * g.shape.y
        print(f"{npx:>10} {peak / 2**20:>9.1f} {peak / npx:>9.1f}")


if __name__ == "__main__":
    main()
