"""Lake extraction: peak memory flat in the area, time per lake against the code before the chunked engine.

1. Memory. A real water class mask (NDWI of the Havel lakes, Sentinel-2 L1C 2017-02-16 in
   ``../shared/data``: class 1 where NDWI > 0.1, class 2 where 0 < NDWI <= 0.1, one never-observed
   stripe) is mirror-tiled to 1x, 4x and 16x the base area (2x2, 4x4 and 8x8 tiles of 768 x 1536 px,
   mirrored so lakes run on across tile seams) and written as tiled, compressed GeoTIFFs with a
   ``nobs`` raster, as the engine writes them. Each size is extracted by
   :func:`gli_toolbox.stitch.extract_zone_lakes` in a fresh process; the peak RSS of that process is
   compared across sizes (target: within 20 %).
2. Time per lake, side by side in this process: the old in-memory ``extract_lakes`` (one
   ``rasterio.features.shapes`` call per lake, kept in ``lakes_before.py``) against the new one on
   (a) the generated mask of 17,000 small square lakes of the previous benchmark and (b) the tiled
   real mask; the two layers must be identical.
3. Labelling only, the choice of the union-find: our seed pass (per chunk, the candidate components
   on its edges, flooded from the edge pixels) + union of border labels against
   ``dask_image.ndmeasure.label`` on the same chunks (threaded scheduler; it labels every component).
4. Lake extraction and river flag from zone rasters against the code of an earlier commit
   (``--before``, default the one before the one-label lake pass; its ``stitch.py`` and
   ``rivers.py`` are taken with ``git show``), interleaved, best process time of ``--repeat`` runs
   each; the layers (fields, WKB of every outline) and the ``is_river`` flags must be identical.
   Rasters: the Havel mask tiled 2x2 as written in part 1, or ``--zone CLASS.tif NOBS.tif`` (e.g.
   the ``class``/``nobs`` rasters left in a run's work folder).

Usage: .venv/bin/python benchmarks/bench_lakes.py [--chunk-px 1024] [--workdir DIR] [--skip memory,time,label,before]
       [--before REV] [--zone CLASS.tif NOBS.tif] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HAVEL = Path(__file__).resolve().parents[1].parent.parent / "shared" / "data" / "s2_l1c_havel_T33UUU_20170216"
HAVEL_CANDIDATES = [HAVEL, Path("/work/shared/data/s2_l1c_havel_T33UUU_20170216")]
PARAMS = {"min_area_m2": 300.0, "max_hole_m2": 300.0}
ROOT = Path(__file__).resolve().parents[1]
#: the last commit before the one-label lake pass, packed polygonization and compiled loops (part 4)
BEFORE = "8408405"


def havel_class() -> tuple[np.ndarray, object, object]:
    import rasterio

    base = next(p for p in HAVEL_CANDIDATES if p.exists()) / "IMG_DATA"
    with rasterio.open(base / "T33UUU_20170216T102101_B03.jp2") as g, rasterio.open(base / "T33UUU_20170216T102101_B08.jp2") as n:
        green, nir, transform, crs = g.read(1).astype("f4"), n.read(1).astype("f4"), g.transform, g.crs
    ndwi = (green - nir) / np.maximum(green + nir, 1)
    cls = np.where(ndwi > 0.1, 1, np.where(ndwi > 0.0, 2, 0)).astype(np.uint8)
    cls[:, 700:703] = 255  # a never-observed stripe (e.g. a failed chunk): edge lakes
    return cls, transform, crs


def tiled(cls: np.ndarray, k: int) -> np.ndarray:
    row = [cls if j % 2 == 0 else cls[:, ::-1] for j in range(k)]
    block = np.concatenate(row, axis=1)
    return np.concatenate([block if i % 2 == 0 else block[::-1] for i in range(k)], axis=0)


def write_zone(workdir: Path, k: int) -> dict[str, str]:
    import rasterio

    cls, transform, crs = havel_class()
    big = tiled(cls, k)
    nobs = np.where(big == 255, 0, 3 + (np.arange(big.shape[1]) % 5)[None, :]).astype(np.uint16)
    out = {}
    for name, arr in (("class", big), ("nobs", nobs)):
        path = workdir / f"{name}_{k}x{k}.tif"
        if not path.exists():
            with rasterio.open(path, "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1,
                               dtype=arr.dtype, crs=crs, transform=transform, tiled=True, blockxsize=512,
                               blockysize=512, compress="deflate") as dst:
                dst.write(arr, 1)
        out[name] = str(path)
    return out


def rss_mb(key: str = "VmRSS:") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return math.nan


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: reset by exec, unlike ru_maxrss which keeps the
    forking parent's size)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(paths: dict[str, str], chunk_px: int) -> None:
    """One extraction in this (fresh) process; prints JSON with time, lakes and RSS figures."""
    from gli_toolbox import stitch
    from gli_toolbox.lakes import LakeParams

    base_mb = peak_rss_mb()
    before = rss_mb()
    t = time.perf_counter()
    gdf = stitch.extract_zone_lakes([stitch.ZoneRaster(paths["class"], paths["nobs"])], LakeParams(**PARAMS),
                                    attributes={"year": 2017}, chunk_px=chunk_px)
    dt = time.perf_counter() - t
    gc.collect()
    held = rss_mb() - before  # the lake layer itself (and allocator leftovers): grows with the lakes
    print(json.dumps({"lakes": len(gdf), "time_s": dt, "peak_mb": peak_rss_mb(), "base_mb": base_mb, "held_mb": held,
                      "edge": int(gdf.edge.sum())}))


def memory(workdir: Path, chunk_px: int) -> None:
    print(f"\n1. Peak RSS of extract_zone_lakes from tiled GeoTIFFs (chunk_px={chunk_px}), one fresh process each")
    print(f"{'area':>5} {'pixels':>12} {'lakes':>7} {'time s':>7} {'ms/lake':>8} {'peak MB':>8} {'peak/1x':>8} "
          f"{'imports MB':>10} {'result MB':>9}")
    first = None
    for k, label in ((2, "1x"), (4, "4x"), (8, "16x")):
        paths = write_zone(workdir, k)
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(paths), "--chunk-px", str(chunk_px)],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        first = first or r["peak_mb"]
        px = 768 * 1536 * k * k
        print(f"{label:>5} {px:>12} {r['lakes']:>7} {r['time_s']:>7.2f} {1e3 * r['time_s'] / max(r['lakes'], 1):>8.3f} "
              f"{r['peak_mb']:>8.1f} {r['peak_mb'] / first:>8.2f} {r['base_mb']:>10.1f} {r['held_mb']:>9.1f}")
    print("peak MB = peak RSS of the process (VmHWM); imports MB = RSS before extracting; result MB = RSS still held"
          " after it (the returned layer)")


def squares(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wc = np.zeros((side, side), np.uint8)
    for _ in range(int(6000 * (side / 4000) ** 2)):
        r, c = rng.integers(0, side - 20, 2)
        s = rng.integers(8, 20)
        wc[r:r + s, c:c + s] = 1
    return wc


def per_lake() -> None:
    import pandas as pd
    from affine import Affine

    sys.path.insert(0, str(Path(__file__).parent))
    import lakes_before

    from gli_toolbox.lakes import LakeParams, extract_lakes

    print("\n2. Time per lake, in memory, old (one shapes call per lake) vs new (one per chunk), same layer")
    print(f"{'mask':>22} {'lakes':>7} {'old ms/lake':>12} {'new ms/lake':>12} {'new/old':>8}")
    cls, transform, crs = havel_class()
    cases = [("17k squares 4000^2", squares(4000), Affine(10, 0, 400000, 0, -10, 4700000), "EPSG:32643", 5400.0, None),
             ("Havel tiled 4x4", tiled(cls, 4), transform, crs, PARAMS["min_area_m2"], PARAMS["max_hole_m2"])]
    for name, wc, t, c, min_m2, hole in cases:
        counts = np.ones(wc.shape, np.uint16)
        old_in = np.where(wc == 2, 0, wc).astype(np.uint8)  # the old code knows no class 2
        new_in = old_in
        t0 = time.perf_counter()
        old = lakes_before.extract_lakes(old_in, counts, transform=t, crs=c, min_area_m2=min_m2, max_hole_m2=hole)
        t1 = time.perf_counter()
        new = extract_lakes(new_in, counts, transform=t, crs=c, params=LakeParams(min_area_m2=min_m2, max_hole_m2=hole))
        t2 = time.perf_counter()
        pd.testing.assert_frame_equal(old.drop(columns="geometry"), new.drop(columns="geometry"))
        assert old.geometry.geom_equals_exact(new.geometry, 0).all()
        n = len(new)
        print(f"{name:>22} {n:>7} {1e3 * (t1 - t0) / n:>12.3f} {1e3 * (t2 - t1) / n:>12.3f} {(t2 - t1) / (t1 - t0):>8.2f}")


def labelling(chunk_px: int) -> None:
    import dask
    import dask.array as da
    from affine import Affine
    from pyproj import CRS

    try:
        from dask_image import ndmeasure
    except ImportError:  # not a dependency of gli-toolbox: only this comparison needs it
        print("3. labelling against dask-image: skipped, dask-image is not installed (pip install dask-image)")
        return

    from gli_toolbox import stitch

    cls, _, _ = havel_class()
    big = tiled(cls, 4)
    cand = (big == 1) | (big == 2)
    print(f"\n3. Labelling the 4-connected water candidates of the Havel mask tiled 4x4 ({big.size} px), chunks {chunk_px}")
    src = stitch._ArraySource(stitch._Grid(big.shape, Affine(10, 0, 0, 0, -10, 0), CRS.from_epsg(32633)), {"class": big})
    chunks = stitch._chunks(big.shape, chunk_px)
    t0 = time.perf_counter()
    res = stitch._run(stitch._seed_pass, src, chunks, [(False,)] * len(chunks), None)
    _, _, k_edge = stitch._union(chunks, res)
    n_ours = sum(int(np.asarray(r["flag"]).size) for r in res)  # edge labels that entered the union
    t1 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        lab, n_dask = ndmeasure.label(da.from_array(cand, chunks=chunk_px))
        lab, n_dask = dask.compute(lab, n_dask)
    t2 = time.perf_counter()
    from scipy import ndimage

    _, n_ref = ndimage.label(cand)
    print(f"   ours (edge components per chunk + union of {n_ours} edge labels -> {k_edge} components): {t1 - t0:.2f} s")
    print(f"   dask_image.ndmeasure.label ({int(n_dask)} objects; scipy on the whole array: {n_ref}):  {t2 - t1:.2f} s"
          f"  -> ratio dask-image/ours {(t2 - t1) / (t1 - t0):.2f}")
    print("   (dask-image also materialises the whole relabelled int32 array: 4 B/px, growing with the area)")


def module_at(rev: str, name: str, tmp: Path) -> object:
    """``gli_toolbox.<name>`` as it was at commit ``rev`` (``git show``), imported as a sibling module
    of the package so that its relative imports resolve to today's modules."""
    code = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/gli_toolbox/{name}.py"], check=True,
                          capture_output=True, text=True).stdout
    path = tmp / f"{name}_{rev}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(f"gli_toolbox.{name}_{rev}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def before_after(rev: str, paths: dict[str, str], chunk_px: int, repeat: int, tmp: Path) -> None:
    import shapely

    from gli_toolbox import rivers, stitch
    from gli_toolbox.lakes import LakeParams

    old_st, old_rv = module_at(rev, "stitch", tmp), module_at(rev, "rivers", tmp)
    params = LakeParams(min_area_m2=5400.0, max_hole_m2=5400.0)  # the detect defaults
    print(f"\n4. Lake extraction + river flag, {Path(paths['class']).name} (chunk_px={chunk_px}): commit {rev} vs now")

    def run(st: object, rv: object) -> tuple[object, np.ndarray, float, float]:
        zones = [st.ZoneRaster(paths["class"], paths.get("nobs"))]  # type: ignore[attr-defined]
        t0 = time.process_time()
        gdf = st.extract_zone_lakes(zones, params, attributes={"year": 2019}, chunk_px=chunk_px)  # type: ignore[attr-defined]
        t1 = time.process_time()
        flag = rv.is_river(gdf.geometry, pixel_size_m=10.0)  # type: ignore[attr-defined]
        return gdf, flag, t1 - t0, time.process_time() - t1

    old, new = run(old_st, old_rv), run(stitch, rivers)  # also compiles the kernels
    a, b = old[0], new[0]
    assert list(a.columns) == list(b.columns) and len(a) == len(b), "different layers"
    for c in a.columns.drop("geometry"):
        assert a[c].tolist() == b[c].tolist(), f"field {c} differs"
    assert (shapely.to_wkb(a.geometry.values) == shapely.to_wkb(b.geometry.values)).all(), "outlines differ"
    assert (old[1] == new[1]).all(), "is_river differs"
    best = {"old": [math.inf, math.inf], "new": [math.inf, math.inf]}
    for _ in range(repeat):
        for key, mods in (("old", (old_st, old_rv)), ("new", (stitch, rivers))):
            _, _, tl, tr = run(*mods)
            best[key] = [min(best[key][0], tl), min(best[key][1], tr)]
    (ol, orv), (nl, nrv) = best["old"], best["new"]
    print(f"   {len(b)} lakes, {int(new[1].sum())} river-like: identical layers and flags")
    print(f"   {'':>14} {'before s':>9} {'now s':>8} {'before/now':>10}   (process time, best of {repeat})")
    for name, o, n in (("lakes", ol, nl), ("river flag", orv, nrv), ("both", ol + orv, nl + nrv)):
        print(f"   {name:>14} {o:>9.3f} {n:>8.3f} {o / n:>10.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunk-px", type=int, default=1024)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--child")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: memory,time,label,before")
    ap.add_argument("--before", default=BEFORE, help="commit to compare lake extraction and river flag with (part 4)")
    ap.add_argument("--zone", nargs=2, metavar=("CLASS", "NOBS"), help="zone rasters for part 4")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if a.child:
        child(json.loads(a.child), a.chunk_px)
        return
    skip = set(a.skip.split(","))
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = a.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if "memory" not in skip:
            memory(workdir, a.chunk_px)
        if "before" not in skip:
            paths = {"class": a.zone[0], "nobs": a.zone[1]} if a.zone else write_zone(workdir, 2)
            before_after(a.before, paths, a.chunk_px, a.repeat, Path(tmp))
    if "time" not in skip:
        per_lake()
    if "label" not in skip:
        labelling(a.chunk_px)


if __name__ == "__main__":
    main()
