"""Run-engine benchmarks on a synthetic region of COGs (benchmarks/make_region.py), as ratios
measured side by side in one run (robust to a loaded machine).

Sections (``--only NAME`` runs one):

floor     end-to-end detect per scene vs the I/O floor: rasterio decoding the same chunk windows of
          the bands the run needs (green, NIR at 10 m; SWIR1, SCL at 20 m), and vs odc-stac reading
          them onto the chunk grids (the former reader)
memory    peak RSS (fresh process each) at 1x, 4x and 16x the area at a fixed chunk size: after the
          chunk tasks (engine) and at the end (with lake extraction)
workers   chunk-task throughput with 2 worker processes vs 1 (LocalCluster, started before timing)
years     peak RSS for 8 years vs 1 year (one date a year)
regional  a region of 4 tiles across the 42N/43N border, 3 dates, 2 years: time per tile-date, and
          from it a paper estimate for the Tien Shan + Pamir 2016-2023 on 1, 8 and 64 workers
shipped   whole runs on 2 workers writing into the shared work folder vs sending their files back
          with each result (workers without a shared folder: a cloud Dask service)
estimate  the time the plan announces (``RunEstimate.seconds``) against the measured run, for a
          tile with 1 and 12 dates and the region, at several chunk sizes (in-process, second run)

Usage::

    .venv/bin/python benchmarks/bench_engine.py --data /tmp/gli-bench [--tile-px 4096] [--only floor]

The COGs are generated under ``--data`` (not in git) on first use.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_region

#: Sensor noise of the synthetic bands (``make_region --noise-dn``): 2 DN compress like real COGs.
NOISE_DN = 2.0


def _region(data: Path, name: str, **kw: object) -> Path:
    name = f"{name}-n{NOISE_DN:g}"
    out = data / name
    if not (out / "items.json").exists():
        t = time.perf_counter()
        make_region.make_region(out, noise_dn=NOISE_DN, **kw)  # type: ignore[arg-type]
        print(f"  (generated {name} in {time.perf_counter() - t:.0f} s)")
    return out


def _kw(region: Path, years: tuple[int, ...]) -> dict[str, object]:
    return {"years": years, "stac": str(region / "items.json"), "collection": make_region.COLLECTION,
            "progress": False}


def _box_aoi(region: Path, frac: float, path: Path) -> Path:
    """A square AOI covering ``frac`` of the side of the region's (single) tile, at its centre."""
    import shapely.geometry
    from shapely.geometry import mapping, shape

    aoi = shape(json.loads((region / "aoi.geojson").read_text())["features"][0]["geometry"])
    x0, y0, x1, y1 = aoi.bounds
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * frac / 2, (y1 - y0) * frac / 2
    b = shapely.geometry.box(cx - hw, cy - hh, cx + hw, cy + hh)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(b)}]}))
    return path


# ------------------------------------------------------------------------------------------- floor


def bench_floor(data: Path, tile_px: int) -> None:
    """One scene a year (every per-year cost charged to it), a short season of 3 scenes, then a
    season of 12 scenes (the per-year costs shared, as in a real season: about 12 usable dates per
    tile, docs/performance.md)."""
    _floor_case(data, tile_px, dates=1, steps=True)
    _floor_case(data, tile_px, dates=3, steps=False)
    _floor_case(data, tile_px, dates=12, steps=False)


def _floor_case(data: Path, tile_px: int, *, dates: int, steps: bool) -> None:
    import odc.stac
    import rasterio

    from gli_toolbox import grids, search
    from gli_toolbox.aoi import read_aoi
    from gli_toolbox.config import DetectConfig
    from gli_toolbox.engine import mark_run, run_chunk
    from gli_toolbox.pipeline import _tasks, _zone_chunks, detect, plan

    name = f"t{tile_px}" if dates == 1 else f"t{tile_px}d{dates}"
    region = _region(data, name, tile_px=tile_px, cols=1, rows=1, dates=dates, years=[2019])
    kw = _kw(region, (2019,))
    aoi_path = str(region / "aoi.geojson")
    config = DetectConfig(years=(2019,), stac=kw["stac"], collection=kw["collection"], chunk_px=2048)
    the_aoi = read_aoi(aoi_path)
    zones = grids.zone_parts(the_aoi.geometry_wgs84, crs=None, resolution_m=10.0)
    zc = _zone_chunks(zones, config)
    (p,) = plan(the_aoi, config, search.open_source(config.stac))
    work = data / f"work-floor{dates}"
    work.mkdir(parents=True, exist_ok=True)
    mark_run(work)  # what detect() writes before the tasks, which check it
    tasks, _ = _tasks(p, zc, config, work)
    tasks = tasks[0]
    npx = sum(t.chunk.height * t.chunk.width for t in tasks)
    bands = ["green", "nir", "swir16", "scl"]

    def floor() -> None:  # decode the same windows of the same files, nothing else
        from gli_toolbox.load import _nested_window

        for t in tasks:
            gb = t.geobox()
            for _, scenes in t.days:
                for s in scenes:
                    for b in bands:
                        with rasterio.open(s.item.assets[b].href) as src:
                            nested = _nested_window(src, gb)
                            if nested is not None:
                                src.read(1, window=nested[0])

    def odc_read() -> None:
        for t in tasks:
            gb = t.geobox()
            for _, scenes in t.days:
                odc.stac.load([s.item for s in scenes], bands=bands, geobox=gb, resampling="nearest",
                              groupby="solar_day").load()

    def raw_reads() -> None:  # gli's reader, digital numbers only (the floor plus mosaic/upsampling)
        from gli_toolbox.load import _read_direct, close_datasets

        with rasterio.Env(GDAL_CACHEMAX=256):
            for t in tasks:
                gb = t.geobox()
                for _, scenes in t.days:
                    _read_direct([s.item for s in scenes], gb, {b: b for b in bands})
        close_datasets()

    def read_days() -> None:  # + reflectance, SCL validity, fusion (the path of L1C and mixed days)
        from gli_toolbox.load import close_datasets, read_day

        for t in tasks:
            gb = t.geobox()
            for _, scenes in t.days:
                read_day(scenes, gb, need_swir=True)
        close_datasets()

    def chunks() -> None:
        from gli_toolbox.load import close_datasets

        close_datasets()  # as at the start of a run: nothing decoded yet
        for t in tasks:
            run_chunk(t)
        close_datasets()

    def floor_once() -> None:  # each file opened once, its windows read in turn: shared blocks decoded once
        by_file: dict[str, list[object]] = {}
        for t in tasks:
            for _, scenes in t.days:
                for s in scenes:
                    for b in bands:
                        by_file.setdefault(s.item.assets[b].href, []).append(t.geobox())
        from gli_toolbox.load import _nested_window

        with rasterio.Env(GDAL_CACHEMAX=256):
            for href, boxes in by_file.items():
                with rasterio.open(href) as src:
                    for gb in boxes:
                        nested = _nested_window(src, gb)
                        if nested is not None:
                            src.read(1, window=nested[0])

    def end_to_end() -> None:
        detect(aoi_path, chunk_px=2048, work_dir=data / f"work-e2e{dates}", **kw)

    end_to_end()  # warm-up (imports, file cache)
    (class_vrt,) = (data / f"work-e2e{dates}").glob("*/rasters/*/2019/class_*.vrt")

    def year_floor() -> None:  # the least any per-year lake step does: read the classes, label the water once
        from scipy import ndimage

        with rasterio.open(class_vrt) as src:
            cls = src.read(1)
        ndimage.label((cls == 1) | (cls == 2))  # 4-connected, as lakes are

    fns = {"floor": floor, "once": floor_once, "chunks": chunks, "year": year_floor, "e2e": end_to_end}
    if steps:
        fns = {"floor": floor, "once": floor_once, "odc": odc_read, "raw": raw_reads, "read_day": read_days,
               "chunks": chunks, "year": year_floor, "e2e": end_to_end}
    res = _interleaved(fns, n=5 if dates == 1 else 3)
    f = res["floor"]
    print(f"floor: {npx / 1e6:.1f} Mpx, {dates} scene(s) in one season, {len(tasks)} chunks of 2048 px")
    print(f"  I/O floor (rasterio, same windows)   {f:7.2f} s   1.00x")
    print(f"  files kept open, shared blocks once  {res['once']:7.2f} s   {res['once'] / f:.2f}x")
    if steps:
        print(f"  odc-stac read of the same bands      {res['odc']:7.2f} s   {res['odc'] / f:.2f}x")
        print(f"  gli reader, digital numbers          {res['raw']:7.2f} s   {res['raw'] / f:.2f}x")
        print(f"  reflectance path (read_day)          {res['read_day']:7.2f} s   {res['read_day'] / f:.2f}x")
    print(f"  chunk tasks (read, count, composite) {res['chunks']:7.2f} s   {res['chunks'] / f:.2f}x")
    print(f"  gli detect end to end                {res['e2e']:7.2f} s   {res['e2e'] / f:.2f}x"
          f"   ({res['e2e'] / dates:.2f} s per scene)")
    # what 1.5x leaves for the per-year work once the chunk tasks are done, against the least that
    # work can be: one read of the season's classes and one labelling (no holes, seeds, polygons,
    # river flag or tracking)
    print(f"  per-year floor: read classes, label   {res['year']:7.2f} s"
          f"   (1.5x leaves {1.5 * f - res['chunks']:.2f} s for it after the chunk tasks)")
    if dates >= 12:  # the command: + imports and writing the outputs (fixed per run)
        cli = _cli_time(region, aoi_path, data / "cli-out")
        print(f"  `gli detect` command, all outputs    {cli:7.2f} s   {cli / f:.2f}x"
              f"   (+ {cli - res['e2e']:.1f} s per run: imports, GeoPackage, styles, figures, report)")


def _cli_time(region: Path, aoi_path: str, out: Path, n: int = 3) -> float:
    """Best of ``n`` runs of the command line in a fresh process (the outputs written each time)."""
    import shutil

    gli = Path(sys.executable).with_name("gli")
    best = float("inf")
    for _ in range(n):
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([str(gli), "detect", "--aoi", aoi_path, "--years", "2019", "--stac", str(region / "items.json"),
                        "--collection", make_region.COLLECTION, "--chunk-px", "2048", "--out", str(out)],
                       check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def _interleaved(fns: dict[str, object], n: int = 5) -> dict[str, float]:
    """Best of ``n`` times of each function, the functions taking turns (so that a change of the
    machine's load hits all of them alike)."""
    best = {k: float("inf") for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            best[k] = min(best[k], time.perf_counter() - t)
    return best


# ------------------------------------------------------------------------------------------ memory

# VmHWM (peak RSS of this process image), not ru_maxrss, which a child inherits from its parent's fork
_CHILD = r"""
import json, logging, sys
logging.disable(logging.WARNING)
from gli_toolbox.pipeline import detect
def hwm():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
args = json.loads(sys.argv[1])
peak = {}
def on_progress(done, total, what):
    if done == total:
        peak["engine"] = hwm()
res = detect(args["aoi"], on_progress=on_progress, **args["kw"])
peak["total"] = hwm()
peak["pixels"] = sum(z.grid.shape[0] * z.grid.shape[1] for z in res.zones)
print(json.dumps(peak))
"""


def _child_peak(aoi: Path | str, kw: dict[str, object]) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps({"aoi": str(aoi), "kw": kw})], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory(data: Path, tile_px: int) -> None:
    region = _region(data, f"t{tile_px}", tile_px=tile_px, cols=1, rows=1, dates=1, years=[2019])
    kw = {**_kw(region, (2019,)), "years": [2019], "chunk_px": 512, "work_dir": str(data / "work-mem")}
    rows = []
    for frac in (0.25, 0.5, 1.0):
        aoi = _box_aoi(region, frac, data / f"aoi_{frac}.geojson")
        rows.append((frac, _child_peak(aoi, kw)))
    base = rows[0][1]
    print("memory: chunk_px 512, in-process runner, peak RSS (fresh process each)")
    print(f"  {'area':>5} {'pixels':>11} {'engine MB':>10} {'ratio':>6} {'total MB':>9} {'ratio':>6}")
    for frac, r in rows:
        print(f"  {round(frac * frac * 16):>4}x {r['pixels']:>11,} {r['engine'] / 1024:>10.0f} "
              f"{r['engine'] / base['engine']:>6.2f} {r['total'] / 1024:>9.0f} {r['total'] / base['total']:>6.2f}")


def bench_years(data: Path, tile_px: int) -> None:
    region = _region(data, f"y{tile_px // 2}", tile_px=tile_px // 2, cols=1, rows=1, dates=1,
                     years=list(range(2016, 2024)))
    aoi = region / "aoi.geojson"
    one = _child_peak(aoi, {**_kw(region, (2016,)), "years": [2016], "chunk_px": 1024, "work_dir": str(data / "w-y1")})
    eight = _child_peak(aoi, {**_kw(region, tuple(range(2016, 2024))), "years": list(range(2016, 2024)),
                              "chunk_px": 1024, "work_dir": str(data / "w-y8")})
    print(f"years: {tile_px // 2}^2 px, one date a year, peak RSS")
    print(f"  1 year  {one['total'] / 1024:7.0f} MB")
    print(f"  8 years {eight['total'] / 1024:7.0f} MB   ratio {eight['total'] / one['total']:.2f}")


# ----------------------------------------------------------------------------------------- workers


def bench_workers(data: Path, tile_px: int, repeats: int = 4) -> None:
    """Chunk phase with 1 and 2 worker processes. One cluster at a time (as a user runs it: an idle
    second cluster's polling would take CPU from the measured one), started before timing, warmed up
    by one run; the runners take turns ``repeats`` times."""
    from statistics import median

    from dask.distributed import Client, LocalCluster

    from gli_toolbox.pipeline import detect

    # 4 tiles of tile_px (4096: 67 Mpx), 6 dates, the default chunk size: tasks of the size a real run has
    region = _region(data, f"r{tile_px}", tile_px=tile_px, cols=2, rows=2, dates=3, years=[2019, 2020])
    kw = {**_kw(region, (2019, 2020)), "chunk_px": 2048}
    aoi = str(region / "aoi.geojson")

    def chunk_phase(**extra: object) -> float:
        marks: dict[str, float] = {}

        def on_progress(done: int, total: int, what: str) -> None:
            if done == total:
                marks["last"] = time.perf_counter()

        detect(aoi, on_progress=on_progress, on_plan=lambda est: marks.__setitem__("start", time.perf_counter()),
               **{**kw, **extra})  # type: ignore[arg-type]
        return marks["last"] - marks["start"]

    import dask

    from gli_toolbox.engine import WORKER_CONFIG

    times: dict[int, list[float]] = {0: [], 1: [], 2: []}
    chunk_phase(work_dir=data / "w-work0")  # warm-up of the main process
    for _ in range(repeats):
        times[0].append(chunk_phase(work_dir=data / "w-work0"))
        for n in (1, 2):
            with dask.config.set(WORKER_CONFIG):  # the settings of the clusters `gli detect --workers N` starts
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       dashboard_address="127.0.0.1:0", memory_limit="3GB")
            client = Client(cluster)
            try:
                chunk_phase(client=client, work_dir=data / f"w-work{n}")  # warm-up: imports, compiled kernels
                times[n].append(min(chunk_phase(client=client, work_dir=data / f"w-work{n}") for _ in range(2)))
            finally:
                client.close()
                cluster.close()
    best = {n: min(t) for n, t in times.items()}
    ratios = [a / b for a, b in zip(times[1], times[2])]
    print(f"workers: 4 tiles of {tile_px}^2 px, 6 dates, chunk_px 2048, chunk phase (plan -> last chunk done), "
          f"{repeats} turns, one cluster at a time")
    print(f"  in-process {best[0]:6.2f} s (no cluster; best)")
    print(f"  1 worker  {best[1]:6.2f} s (best)")
    print(f"  2 workers {best[2]:6.2f} s (best)   throughput ratio {best[1] / best[2]:.2f}x (best against best)")
    print(f"  ratio in each turn {', '.join(f'{r:.2f}' for r in ratios)}: median {median(ratios):.2f}x")


# ----------------------------------------------------------------------------------------- shipped


def bench_shipped(data: Path, tile_px: int, repeats: int = 3) -> None:
    """Whole runs on 2 workers that share the work folder against the same workers sending every
    chunk's files back with its result (a cloud Dask service: ``DaskRunner.shipping``), turn about.
    The workers here do see the folder (loopback), so shipping is switched on after the check: this
    measures the extra serialisation, the writing here and lake extraction in this process, not a
    network (the bytes sent are printed: divide by a link's bandwidth for its share)."""
    from dask.distributed import Client, LocalCluster

    from gli_toolbox import engine
    from gli_toolbox.pipeline import detect

    region = _region(data, f"r{tile_px}", tile_px=tile_px, cols=2, rows=2, dates=3, years=[2019, 2020])
    kw = {**_kw(region, (2019, 2020)), "chunk_px": 2048}
    aoi = str(region / "aoi.geojson")
    check = engine.DaskRunner.check_workers
    times: dict[bool, list[float]] = {False: [], True: []}
    n_lakes: dict[bool, int] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                      memory_limit="3GB") as cluster, Client(cluster) as client:
        for turn in range(repeats + 1):  # the first turn warms up (imports, compiled kernels)
            for ship in (False, True):
                def checked(self: engine.DaskRunner, folder: Path, ship: bool = ship) -> None:
                    check(self, folder)
                    self.shipping = ship

                engine.DaskRunner.check_workers = checked  # type: ignore[method-assign]
                work = data / f"s-work{int(ship)}"
                import shutil

                shutil.rmtree(work, ignore_errors=True)
                t = time.perf_counter()
                try:
                    res = detect(aoi, client=client, work_dir=work, **kw)  # type: ignore[arg-type]
                finally:
                    engine.DaskRunner.check_workers = check  # type: ignore[method-assign]
                if turn:
                    times[ship].append(time.perf_counter() - t)
                n_lakes[ship] = sum(len(g) for g in res.lakes.values())
    sent = sum(p.stat().st_size for p in (data / "s-work1").glob("*/chunks/*/*/*") if p.is_file())
    shared, shipped = min(times[False]), min(times[True])
    print(f"shipped: 4 tiles of {tile_px}^2 px, 3 dates, 2 years, 2 workers, {repeats} turns; lakes "
          f"{n_lakes[False]} (shared folder) and {n_lakes[True]} (shipped)")
    print(f"  workers write into the shared work folder  {shared:7.2f} s   1.00x")
    print(f"  results sent back with each task           {shipped:7.2f} s   {shipped / shared:.2f}x"
          f"   ({sent / 1e6:.1f} MB of chunk files sent)")


# ---------------------------------------------------------------------------------------- regional


def bench_regional(data: Path, tile_px: int) -> None:
    from gli_toolbox.pipeline import detect

    region = _region(data, f"r{tile_px}", tile_px=tile_px, cols=2, rows=2, dates=3, years=[2019, 2020])
    kw = {**_kw(region, (2019, 2020)), "chunk_px": 2048}
    # a first run reads the files into the page cache and loads the compiled kernels: the second is
    # measured (network reads are not part of this estimate; docs/performance.md says how big they are)
    detect(str(region / "aoi.geojson"), work_dir=data / "w-regional", **kw)  # type: ignore[arg-type]
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    res = detect(str(region / "aoi.geojson"), work_dir=data / "w-regional",
                 on_plan=lambda est: marks.setdefault("plan", time.perf_counter()),
                 on_progress=lambda d, n, w: marks.__setitem__("chunks", time.perf_counter()) if d == n else None,
                 **kw)
    total = time.perf_counter() - t0
    px = sum(z.grid.shape[0] * z.grid.shape[1] for z in res.zones)
    tile_dates = 4 * 3 * 2
    per_tile_date = (marks["chunks"] - marks["plan"]) / tile_dates * (10980**2 / tile_px**2)
    print(f"regional: 4 tiles of {tile_px}^2 px across 42N/43N, 3 dates x 2 years; zones "
          f"{[z['zone'] for z in res.run['zones']]}, {px / 1e6:.0f} Mpx of grid")
    print(f"  total {total:.1f} s (chunk phase {marks['chunks'] - marks['plan']:.1f} s); lakes "
          f"{ {y: len(g) for y, g in res.lakes.items()} }; complete={res.run['complete']}")
    print(f"  chunk cost scaled to a full 10980^2 tile-date: {per_tile_date:.0f} s on 1 worker")
    # Tien Shan + Pamir glacier belt, 2016-2023 (see docs/performance.md for the assumptions)
    tiles, dates, years = 60, 12, 8
    total_s = tiles * dates * years * per_tile_date
    for w in (1, 8, 64):
        print(f"  paper estimate Tien Shan + Pamir 2016-2023 ({tiles} tiles x {dates} dates x {years} years) "
              f"on {w:>2} workers: {total_s / w / 3600:8.1f} h")


def bench_estimate(data: Path, tile_px: int) -> None:
    """The plan's estimate (the cost model in ``gli_toolbox.pipeline``) against measured runs: its
    terms (pixel-days, chunk-days, pixels and chunks per season) vary independently across the cases."""
    import shutil

    from gli_toolbox.pipeline import detect

    tile = _region(data, f"t{tile_px}", tile_px=tile_px, cols=1, rows=1, dates=1, years=[2019])
    season = _region(data, f"t{tile_px}d12", tile_px=tile_px, cols=1, rows=1, dates=12, years=[2019])
    region = _region(data, f"r{tile_px // 2}", tile_px=tile_px // 2, cols=2, rows=2, dates=3, years=[2019, 2020])
    cases = [(tile, (2019,), 2048), (season, (2019,), 2048), (season, (2019,), 512),
             (region, (2019, 2020), 256), (region, (2019, 2020), 1024), (region, (2019, 2020), 2048)]
    print(f"{'case':<34} {'chunks':>6} {'chunk-days':>10} {'estimated':>9} {'measured':>9} {'ratio':>6}")
    for root, years, cpx in cases:
        plans: list = []
        best = float("inf")
        for turn in range(2):  # the first run warms the page cache and loads the compiled kernels
            shutil.rmtree(data / "w-estimate", ignore_errors=True)
            t = time.perf_counter()
            detect(str(root / "aoi.geojson"), work_dir=data / "w-estimate", on_plan=plans.append, chunk_px=cpx,
                   **_kw(root, years))  # type: ignore[arg-type]
            if turn:
                best = time.perf_counter() - t
        est = plans[-1]
        name = f"{root.name}, {len(years)} year(s), chunk {cpx}"
        print(f"{name:<34} {est.chunks:>6} {est.chunk_days:>10} {est.seconds:>8.1f}s {best:>8.1f}s "
              f"{est.seconds / best:>6.2f}")
    shutil.rmtree(data / "w-estimate", ignore_errors=True)


def main() -> None:
    global NOISE_DN
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/gli-bench"))
    ap.add_argument("--tile-px", type=int, default=4096)
    ap.add_argument("--only", choices=["floor", "memory", "workers", "years", "regional", "estimate", "shipped"],
                    action="append")
    ap.add_argument("--turns", type=int, default=4, help="turns of the workers section (in-process, 1, 2 workers)")
    ap.add_argument("--noise-dn", type=float, default=NOISE_DN,
                    help="sensor noise of the synthetic bands (default 2 DN: compressed like real COGs; 0: smooth)")
    a = ap.parse_args()
    NOISE_DN = a.noise_dn
    logging.disable(logging.WARNING)
    a.data.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; load {os.getloadavg()[0]:.1f}")
    for name in a.only or ["floor", "memory", "workers", "years", "regional", "estimate"]:
        t = time.perf_counter()
        {"floor": bench_floor, "memory": bench_memory, "years": bench_years,
         "workers": lambda d, px: bench_workers(d, px, repeats=a.turns),
         "regional": lambda d, px: bench_regional(d, px // 2), "estimate": bench_estimate,
         "shipped": bench_shipped}[name](a.data, a.tile_px)
        print(f"  ({name}: {time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
