"""The detection pipeline: search -> read chunk by chunk -> yearly water composite -> lakes.

:func:`detect` is the Python API behind ``gli detect``; it returns results in memory and writes
nothing. :func:`gli_toolbox.export.write_outputs` writes them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely.geometry
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from . import grids, search
from .aoi import Aoi, as_aoi
from .config import DetectConfig
from .engine import ChunkTask, CloudTask, ZoneRasters
from .errors import ConfigError, NoScenesFoundError, OutputError
from .results import DetectResult, WaterMap, ZoneMap
from .tracking import TrackResult, track

logger = logging.getLogger(__name__)

__all__ = ["DetectResult", "RunEstimate", "WaterMap", "detect", "estimate", "extract_period_lakes", "plan"]


@dataclass
class YearPlan:
    year: int
    start: str
    end: str
    days: dict[dt.date, list[search.Scene]]
    dropped: list[str]


def _as_aoi(aoi: Any) -> Aoi:
    """The AOI from any accepted form (path, GeoDataFrame/GeoSeries, shapely or GeoJSON geometry):
    :func:`gli_toolbox.aoi.as_aoi` (no area limit: regions of any size are mapped chunk by chunk)."""
    return as_aoi(aoi)


def plan(aoi: Aoi, config: DetectConfig, source: search.SceneSource | None = None) -> list[YearPlan]:
    """Search scenes for every year of ``config`` (what ``gli search`` lists)."""
    source = source or search.open_source(config.stac)
    plans = []
    for year in config.years:
        start, end = config.season(year)
        scenes, dropped = search.search_year(
            source, collection=config.collection, aoi_wgs84=aoi.geometry_wgs84, start=start, end=end,
            max_cloud_pct=config.max_cloud_pct,
        )
        plans.append(YearPlan(year, start, end, search.group_by_day(scenes), dropped))
        logger.info("%s: %d scene(s) on %d day(s) found (%s to %s, cloud cover <= %g%%)", year, len(scenes),
                    len(plans[-1].days), start[:10], end[:10], config.max_cloud_pct)
    return plans


def _no_scene_reason(p: YearPlan, config: DetectConfig) -> str:
    return (
        f"{p.year}: no {config.collection} scenes intersect the AOI between {p.start[:10]} and {p.end[:10]} "
        f"with cloud cover <= {config.max_cloud_pct:g}%"
    )


@dataclass
class RunEstimate:
    """The plan stated before any pixel is read: what a run will read and roughly how long it takes."""

    zones: list[str]
    chunks: int
    scenes: int
    days: int
    pixels: int
    """Grid pixels of the chunks that touch the AOI, summed over zones."""
    pixel_days: int
    """Pixels of each chunk times the acquisition days whose footprints touch the chunk, summed."""
    chunk_days: int
    """Chunks times the acquisition days over each (the chunk tasks' reads)."""
    bytes_to_read: int
    """Decoded bytes of the needed bands (green, NIR at 10 m; SWIR1, SCL at 20 m); the files are
    compressed, so fewer bytes travel."""
    seconds: float
    """Estimated duration of the run (chunk tasks and the per-year work) on ``workers`` workers, for
    band files read at local-disk speed: see :func:`estimate_seconds`."""
    workers: int
    seasons: int
    """Seasons with scenes: each has one task per chunk (the progress bar counts these tasks)."""
    dashboard: str | None = None
    """Address of the Dask dashboard when the chunk tasks run on a cluster (progress, task stream)."""

    def lines(self) -> list[str]:
        """Human-readable plan (the first lines of ``gli detect``)."""
        out = [
            (f"plan: {self.scenes} scenes on {self.days} days; {len(self.zones)} UTM zone part(s) "
            f"({', '.join(self.zones)}), {self.chunks} chunks, {_pixels(self.pixels)} of 10 m grid; "
            f"{self.chunks * self.seasons} chunk tasks ({self.seasons} season(s))"),
            (f"plan: about {_size(self.bytes_to_read)} of band data to decode; estimated "
            f"{_duration(self.seconds)} of processing on {self.workers} worker(s); reading over the network "
            "and writing the outputs add to it"),
        ]
        if self.dashboard:
            out.append(f"plan: progress in the Dask dashboard at {self.dashboard} "
                       "(tasks gli-chunk-<season>-<zone>-<chunk>-<run>)")
        return out


#: The cost model of :func:`estimate_seconds`, per worker, measured with
#: ``benchmarks/bench_engine.py --only estimate`` (docs/performance.md): the chunk tasks take a time
#: per pixel and acquisition day (read the bands, mask, classify, count) plus a time per chunk and
#: day (opening windows, small arrays) and per chunk and season (season classes, the chunk file);
#: the per-year work (lake extraction, river flag, tracking) a time per pixel and season plus a time
#: per chunk and season (its three chunk passes).
PIXEL_DAYS_PER_S_PER_WORKER = 7.5e7
S_PER_CHUNK_DAY = 0.007
PIXEL_SEASONS_PER_S = 1.2e7
S_PER_CHUNK_SEASON = 0.035
#: Decoded bytes per 10 m pixel and day: green + NIR (uint16 at 10 m) + SWIR1 + SCL (at 20 m).
BYTES_PER_PIXEL_DAY = 2 + 2 + 2 / 4 + 1 / 4


def _size(n: float) -> str:
    """Human-readable byte count.

    >>> _size(843_885), _size(3.2e9), _size(52_000_000)
    ('844 kB', '3.2 GB', '52.0 MB')
    """
    if n < 1e6:
        return f"{n / 1e3:,.0f} kB"
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def _pixels(n: float) -> str:
    """Human-readable pixel count.

    >>> _pixels(1008), _pixels(16_777_216)
    ('1.0 kpx', '16.8 Mpx')
    """
    return f"{n / 1e6:,.1f} Mpx" if n >= 1e6 else f"{n / 1e3:,.1f} kpx"


def _duration(seconds: float) -> str:
    """``"under 1 s"``, ``"40 s"``, ``"12 min"``, ``"3.5 h"``.

    >>> _duration(0.2), _duration(40), _duration(720), _duration(12600)
    ('under 1 s', '40 s', '12 min', '3.5 h')
    """
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _zone_chunks(zones: list[Any], config: DetectConfig) -> list[tuple[Any, BaseGeometry, list[grids.Chunk]]]:
    """Per zone part: its geometry in the zone CRS and the chunks of its grid that touch it."""
    from odc.geo.geom import Geometry
    from shapely import prepared

    out = []
    for z in zones:
        part = Geometry(z.geometry_wgs84, "EPSG:4326").to_crs(z.grid.crs).geom
        prep = prepared.prep(part)
        a = z.grid.affine
        keep = []
        for c in grids.chunks(z.grid, config.chunk_px):
            x0, y0 = a * (c.col0, c.row0)
            x1, y1 = a * (c.col0 + c.width, c.row0 + c.height)
            if prep.intersects(shapely.geometry.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))):
                keep.append(c)
        out.append((z, part, keep))
    return out


def estimate(plans: list[YearPlan], zones: list[Any], config: DetectConfig, *, workers: int = 1,
             dashboard: str | None = None, lakes_here: bool = False) -> RunEstimate:
    """The plan of a run: scenes, chunks, pixels, bytes and an estimated time (no pixel is read).
    Each chunk counts the days whose scene footprints touch it, as its chunk task reads them.
    ``lakes_here``: the per-year lake step runs in this process, not on the ``workers`` (workers that
    do not share the work folder)."""
    zc = _zone_chunks(zones, config)
    pixels = sum(c.height * c.width for _, _, cs in zc for c in cs)
    days = sum(len(p.days) for p in plans)
    scenes = sum(len(v) for p in plans for v in p.days.values())
    chunks = sum(len(cs) for _, _, cs in zc)
    seasons = sum(1 for p in plans if p.days)
    pixel_days = chunk_days = 0
    for z, _, cs in zc:
        n_days = _days_per_chunk(plans, z, cs)
        pixel_days += int(sum(n * c.height * c.width for n, c in zip(n_days.tolist(), cs)))
        chunk_days += int(n_days.sum())
    return RunEstimate(
        zones=[z.label for z in zones], chunks=chunks, scenes=scenes, days=days, pixels=pixels,
        pixel_days=pixel_days, chunk_days=chunk_days, bytes_to_read=int(pixel_days * BYTES_PER_PIXEL_DAY),
        seconds=estimate_seconds(pixels=pixels, chunks=chunks, pixel_days=pixel_days, chunk_days=chunk_days,
                                 seasons=seasons, workers=workers, lake_workers=1 if lakes_here else None),
        workers=max(workers, 1), seasons=seasons, dashboard=dashboard,
    )


def _days_per_chunk(plans: list[YearPlan], zone: Any, chunks: list[grids.Chunk]) -> NDArray[np.int64]:
    """Per chunk of one zone grid: the acquisition days (of all seasons) with a scene over it."""
    from odc.geo.geom import Geometry

    if not chunks:
        return np.zeros(0, dtype=np.int64)
    a = zone.grid.affine
    boxes = []
    for c in chunks:
        x0, y0 = a * (c.col0, c.row0)
        x1, y1 = a * (c.col0 + c.width, c.row0 + c.height)
        boxes.append(shapely.geometry.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    feet, day_of = [], []
    for i, scenes in enumerate(v for plan_ in plans for v in plan_.days.values()):
        for sc in scenes:
            feet.append(Geometry(shapely.geometry.shape(sc.item.geometry), "EPSG:4326").to_crs(zone.crs).geom)
            day_of.append(i)
    if not feet:
        return np.zeros(len(chunks), dtype=np.int64)
    scene_i, chunk_i = shapely.STRtree(boxes).query(feet, predicate="intersects")
    pairs = np.unique(np.stack([np.asarray(day_of)[scene_i], chunk_i]), axis=1)  # each (day, chunk) once
    return np.bincount(pairs[1], minlength=len(chunks)).astype(np.int64)


def estimate_seconds(*, pixels: int, chunks: int, pixel_days: int, chunk_days: int, seasons: int,
                     workers: int = 1, lake_workers: int | None = None) -> float:
    """Estimated duration of a run on ``workers`` workers, band files read at local-disk speed (the
    cost model above; each part divided among the workers): ``pixels`` of grid in ``chunks`` chunks,
    ``pixel_days`` and ``chunk_days`` to read (see :class:`RunEstimate`), over ``seasons`` years.
    ``lake_workers``: the workers of the per-year step when not ``workers`` (1: it runs here).

    >>> px = 4096 * 4096  # one tile in 4 chunks, a season of 12 days
    >>> round(estimate_seconds(pixels=px, chunks=4, pixel_days=12 * px, chunk_days=48, seasons=1), 1)
    4.6
    >>> estimate_seconds(pixels=px, chunks=4, pixel_days=0, chunk_days=0, seasons=0)
    0.0

    On 2 workers with the per-year step here, that step is not halved:

    >>> kw = dict(pixels=px, chunks=4, pixel_days=12 * px, chunk_days=48, seasons=1, workers=2)
    >>> per_year = estimate_seconds(pixels=px, chunks=4, pixel_days=0, chunk_days=0, seasons=1)
    >>> round(estimate_seconds(**kw, lake_workers=1) - estimate_seconds(**kw), 6) == round(per_year / 2, 6)
    True
    """
    chunk_tasks = pixel_days / PIXEL_DAYS_PER_S_PER_WORKER + chunk_days * S_PER_CHUNK_DAY
    per_year = seasons * (pixels / PIXEL_SEASONS_PER_S + chunks * S_PER_CHUNK_SEASON)
    return chunk_tasks / max(workers, 1) + per_year / max(lake_workers or workers, 1)


def detect(
    aoi: Aoi | str | Path | BaseGeometry | dict[str, Any],
    *,
    config: DetectConfig | None = None,
    progress: bool | None = None,
    on_scene: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    on_plan: Callable[[RunEstimate], None] | None = None,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    work_dir: str | Path | None = None,
    resume: bool = False,
    **params: Any,
) -> DetectResult:
    """Detect glacial lakes in ``aoi`` for each year of the configuration.

    Parameters
    ----------
    aoi
        Path of a vector file, an :class:`~gli_toolbox.aoi.Aoi`, a shapely geometry or a GeoJSON
        geometry dict (both in WGS84). Any size: it is split into UTM zone parts, each mapped on
        the 10 m grid of its own zone (unless ``config.crs`` forces one grid).
    config
        Run parameters; or give them as keyword arguments (``years=(2017, 2019)``,
        ``stac="sample_data/catalog.json"``, ``ndwi_threshold=0.3`` ...), which override ``config``.
    progress
        Show a progress bar over chunk tasks (default: only on a terminal).
    on_progress
        Called as ``on_progress(done, total, what)`` after every chunk task (``what`` is its name).
    on_plan
        Called once with the :class:`RunEstimate` before any pixel is read.
    client, scheduler, workers
        Where chunk tasks run: a ``dask.distributed.Client``; the address of an existing scheduler;
        or the number of worker processes of a local cluster started for this run. Default: in this
        process, one chunk after the other (no cluster to start; same results). In a script, call
        ``detect(workers=N)`` under ``if __name__ == "__main__":`` (each worker process imports the
        script); notebooks need nothing.
    work_dir
        Folder for chunk results and the composite rasters (default: a new temporary folder, deleted
        when the result is). The water maps of the result read from it, so keep it while you use them.
    resume
        Reuse the finished chunks found in ``work_dir`` (same parameters, AOI and scenes).

    Returns
    -------
    DetectResult
        ``lakes[year]`` GeoDataFrames and ``masks[year]`` water maps; ``run`` is what ``run.json`` holds
        (``run["complete"]`` is False when a chunk or a band file failed: see ``run["incomplete"]``).

    Raises
    ------
    NoScenesFoundError
        No scene for any year. Years without scenes are otherwise skipped and listed in
        ``run["warnings"]``.
    """
    unknown = sorted(set(params) - {f.name for f in fields(DetectConfig)})
    if unknown:  # a bare TypeError otherwise; the options of writing files belong to write_outputs
        where = " (output options such as overwrite belong to gli_toolbox.write_outputs)" \
            if set(unknown) & {"out", "overwrite"} else ""
        raise ConfigError(f"detect() got unknown parameter(s) {', '.join(unknown)}{where}: see "
                          "help(gli_toolbox.DetectConfig) for the run parameters")
    if config is None:
        from dataclasses import MISSING

        missing = [f.name for f in fields(DetectConfig)
                   if f.default is MISSING and f.default_factory is MISSING and f.name not in params]
        if missing:
            raise ConfigError(f"detect() needs {', '.join(m + '=' for m in missing)} (e.g. years=(2019, 2020)), "
                              "or config=DetectConfig(...)")
        config = DetectConfig(**params)
    elif params:
        config = replace(config, **params)
    the_aoi = _as_aoi(aoi)
    zones = grids.zone_parts(the_aoi.geometry_wgs84, crs=config.crs, resolution_m=config.resolution_m)
    _check_inputs(config)
    if config.dem and config.dem != "auto":  # read by the chunk tasks, whose workers may run in another folder
        config = replace(config, dem=os.path.abspath(config.dem))
    if resume and work_dir is None:
        raise ConfigError("resume=True needs work_dir=, the folder of the run to continue (without it, each run "
                          "works in a new temporary folder)")
    temporary = None
    if work_dir is None:  # our own folder: removed with the result that reads from it, or at once on failure
        import tempfile

        work_dir = temporary = Path(tempfile.mkdtemp(prefix="gli-work-"))
    try:
        result = _detect(the_aoi, zones, config, client=client, scheduler=scheduler, workers=workers,
                         work_dir=work_dir, resume=resume, progress=progress, on_scene=on_scene,
                         on_progress=on_progress, on_plan=on_plan)
    except BaseException:
        if temporary is not None:
            import shutil

            shutil.rmtree(temporary, ignore_errors=True)
        raise
    if temporary is not None:
        import shutil
        import weakref

        weakref.finalize(result, shutil.rmtree, temporary, ignore_errors=True)
    return result


def _detect(the_aoi: Aoi, zones: list[Any], config: DetectConfig, *, client: Any, scheduler: str | None,
            workers: int | None, work_dir: str | Path, resume: bool, progress: bool | None,
            on_scene: Callable[[str], None] | None, on_progress: Callable[[int, int, str], None] | None,
            on_plan: Callable[[RunEstimate], None] | None) -> DetectResult:
    from .engine import make_runner

    runner = make_runner(client=client, scheduler=scheduler, workers=workers)  # a bad --scheduler fails here
    try:
        source = search.open_source(config.stac)
        plans = plan(the_aoi, config, source)
        log = _RunLog(warnings=[_no_scene_reason(p, config) for p in plans if not p.days])
        if all(not p.days for p in plans):
            raise NoScenesFoundError(
                "no scenes found: " + "; ".join(_no_scene_reason(p, config) for p in plans)
                + ". Widen --months, raise --max-cloud, or check --collection"
            )
        for w in log.warnings:
            logger.warning(w)
        zone_chunks = _zone_chunks(zones, config)
        for z, _, cs in zone_chunks:
            logger.info("zone %s grid %s, %g m: %d x %d pixels in %d chunk(s) of up to %d px", z.label, z.crs,
                        config.resolution_m, z.grid.shape[0], z.grid.shape[1], len(cs), config.chunk_px)
        work = _work_folder(work_dir, config, the_aoi, resume)
        try:
            # gli-toolbox on the workers, the folder shared with them, the scenes and DEM they read: before any read
            runner.check_workers(work, files=lambda: _task_files(plans, config, zones))
            glaciers = _glaciers(the_aoi, config, zones)
            if config.dem:
                _check_dem(config, zones)
            est = estimate(plans, zones, config, workers=runner.n_workers, dashboard=runner.dashboard,
                           lakes_here=runner.shipping)
            for line in est.lines():
                logger.info(line)
            if on_plan is not None:
                on_plan(est)
        except BaseException:
            with suppress(OSError):
                work.rmdir()  # nothing computed yet: no empty work folder left behind (kept if it holds chunks)
            raise
        from .engine import mark_run

        mark_run(work)  # each task checks it first (workers that join the cluster later)
        with _no_space_guard(work):
            outcomes = _run_tasks(plans, zone_chunks, config, work, runner, resume, progress, on_progress, log)
        out_crs = config.crs or grids.utm_crs(*the_aoi.centre)
        if len(zones) == 1:
            out_crs = zones[0].crs
        # lake extraction's chunk passes run on the same workers as the chunk tasks, when they share the
        # work folder (its zone rasters): else here
        with _no_space_guard(work):
            periods = _period_results(plans, outcomes, config, glaciers, out_crs, log, on_scene,
                                      client=None if runner.shipping else getattr(runner, "client", None),
                                      progress=progress)
    finally:
        runner.close()
        from .load import close_datasets

        close_datasets()  # band files kept open between this process's chunk tasks
    lakes, masks, scene_lakes, scene_masks = periods.lakes, periods.masks, periods.scene_lakes, periods.scene_masks
    years_record, incomplete = periods.years_record, periods.incomplete
    if not lakes:
        failed = [ln for lines in incomplete.values() for ln in lines]
        if failed:  # the cause is the failure, not the scenes
            raise NoScenesFoundError(
                f"no valid observation in any year: {len(failed)} chunk task(s) or band file(s) failed, e.g. "
                f"{failed[0]}. Fix that and run the same command again"
            )
        raise NoScenesFoundError(
            "no valid observation in any year: " + "; ".join(log.warnings) + ". Check the scenes with `gli search`"
        )

    # One physical lake keeps one id over the series: relabel with the tracker's stable ids.
    def seen(maps: dict[Any, WaterMap]) -> Callable[[Any, Any], bool]:
        return lambda period, geom: period in maps and maps[period].observed_share(geom, out_crs) >= 0.5

    with ExitStack() as open_counts:  # count rasters open while tracking asks about vanished lakes
        for m in [*masks.values(), *scene_masks.values()]:
            open_counts.enter_context(m.open_counts())
        tracking = track(lakes, pixel_m=config.resolution_m, observed=seen(dict(masks)))
        lakes = {y: _sorted(g) for y, g in tracking.layers.items()}
        if config.per_scene and scene_lakes:
            tracking = track(scene_lakes, pixel_m=config.resolution_m, observed=seen(dict(scene_masks)))
            scene_lakes = {k: _sorted(g) for k, g in tracking.layers.items()}
    if len(tracking.periods) < 2:  # a failure or a gap is not "stable": say so, claim no status
        log.add_warning(f"only one period ({', '.join(str(p) for p in tracking.periods)}) has lakes: lake change "
                        "needs two periods, so the change status is 'not_assessed'")
    run = _run_record(the_aoi, config, zones, zone_chunks, source, years_record, log, tracking, glaciers,
                      incomplete, runner.name, work, est)
    result = DetectResult(config, the_aoi, zones[0].grid, lakes, masks, scene_lakes, scene_masks, run, tracking,
                          zones=zones, work_dir=work)
    return result


@dataclass
class _Periods:
    """Per-period results of a run, before tracking."""

    lakes: dict[int, gpd.GeoDataFrame] = field(default_factory=dict)
    masks: dict[int, WaterMap] = field(default_factory=dict)
    scene_lakes: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    scene_masks: dict[str, WaterMap] = field(default_factory=dict)
    years_record: dict[str, Any] = field(default_factory=dict)
    incomplete: dict[str, list[str]] = field(default_factory=dict)


def _period_results(plans: list[YearPlan], outcomes: dict[int, _SeasonOutcome], config: DetectConfig,
                    glaciers: gpd.GeoDataFrame | None, out_crs: str, log: _RunLog,
                    on_scene: Callable[[str], None] | None, *, client: Any = None,
                    progress: bool | None = None) -> _Periods:
    """Lakes, water maps and the run record of every period, from the seasons' zone rasters (with a
    progress bar over the years: on a region this phase takes minutes to hours, after the chunks')."""
    from tqdm import tqdm

    bar = tqdm(total=sum(1 for p in plans if p.days), unit="year", desc="lakes",
               disable=(None if progress is None else not progress), leave=False)
    try:
        return _period_results_each(plans, outcomes, config, glaciers, out_crs, log, on_scene, client, bar)
    finally:
        bar.close()


def _advancing(plans: list[YearPlan], bar: Any) -> Iterator[YearPlan]:
    """The plans in turn; the bar moves when the loop's body is done with a year that has scenes."""
    for p in plans:
        if p.days:
            bar.set_postfix_str(str(p.year))
        yield p
        if p.days:
            bar.update(1)


def _period_results_each(plans: list[YearPlan], outcomes: dict[int, _SeasonOutcome], config: DetectConfig,
                         glaciers: gpd.GeoDataFrame | None, out_crs: str, log: _RunLog,
                         on_scene: Callable[[str], None] | None, client: Any, bar: Any) -> _Periods:
    lakes: dict[int, gpd.GeoDataFrame] = {}
    masks: dict[int, WaterMap] = {}
    scene_lakes: dict[str, gpd.GeoDataFrame] = {}
    scene_masks: dict[str, WaterMap] = {}
    years_record: dict[str, Any] = {}
    incomplete: dict[str, list[str]] = {}
    for p in _advancing(plans, bar):
        base = {"season": [p.start, p.end], "scenes": [s.to_record() for sc in p.days.values() for s in sc],
                "dropped_duplicates": p.dropped}
        if not p.days:
            years_record[str(p.year)] = {**base, "reason": _no_scene_reason(p, config)}
            continue
        season = outcomes[p.year]
        lines = season.incomplete_lines()
        if lines:
            incomplete[str(p.year)] = lines
        failed = sorted(season.day_failed)
        n_scenes = sum(1 for d, used in season.day_used.items() if used and d not in season.day_failed)
        if n_scenes == 0:
            reason = (
                f"{p.year}: {sum(len(v) for v in p.days.values())} scene(s) found but none gave a valid "
                "observation of the AOI (cloud, shadow, no data or unreadable); no lake layer for this year"
            ) if len(failed) < len(p.days) else (  # a failure is not "nothing seen"
                f"{p.year}: every scene failed to read; the year is incomplete, not empty: run again later"
            )
            log.add_warning(reason)
            years_record[str(p.year)] = {**base, "days_failed": failed, "reason": reason}
            continue
        rasters = season.rasters
        year_r = [r[str(p.year)] for r in rasters]
        masks[p.year] = _water_map(str(p.year), year_r)
        lakes[p.year] = _with_glaciers(
            extract_period_lakes(year_r, config, {"year": p.year, "n_scenes": n_scenes}, out_crs=out_crs,
                                 client=client),
            glaciers, config)
        if config.per_scene:
            for day in sorted(p.days):
                iso = day.isoformat()
                if iso in season.day_failed or not season.day_used.get(iso):
                    continue
                label = day.strftime("%Y%m%d")
                day_r = [r[label] for r in rasters if label in r]
                scene_masks[label] = _water_map(label, day_r)
                scene_lakes[label] = _with_glaciers(
                    extract_period_lakes(day_r, config, {"year": p.year, "n_scenes": 1, "date": iso}, out_crs=out_crs,
                                         client=client),
                    glaciers, config)
        logger.info("%s: %d lake(s), %.4f km2 from %d day(s) with valid observations", p.year, len(lakes[p.year]),
                    float(lakes[p.year]["area_km2"].sum()), n_scenes)
        years_record[str(p.year)] = {
            **base,
            "days_used": n_scenes,
            "days_failed": failed,
            "n_lakes": len(lakes[p.year]),
            "rivers_removed": int(lakes[p.year].attrs.get("rivers_removed", 0)),
            "rivers_removed_km2": float(lakes[p.year].attrs.get("rivers_removed_km2", 0.0)),
            "lake_area_km2": float(lakes[p.year]["area_km2"].sum()),
            "water_pixels": sum(r.stats.get("water_px", 0) for r in year_r),
            "never_observed_pixels_in_aoi": sum(r.stats.get("never_observed_px", 0) for r in year_r)
            + season.failed_inside_px,
        }
        if on_scene is not None:
            for day in sorted(p.days):
                on_scene(day.isoformat())
    return _Periods(lakes, masks, scene_lakes, scene_masks, years_record, incomplete)


def _rivers(polygons: list[BaseGeometry], pixel_size_m: float, client: Any) -> NDArray[np.bool_]:
    """:func:`gli_toolbox.rivers.is_river` of every polygon, in batches on the Dask workers when
    there is a client (a pure function of each polygon: the same flags either way; a batch that
    fails there runs here)."""
    import functools

    from .rivers import is_river

    flag = functools.partial(is_river, pixel_size_m=pixel_size_m)
    if not polygons:
        return np.zeros(0, dtype=bool)
    if client is None or len(polygons) < 64:
        return np.asarray(flag(polygons), dtype=bool)
    from .engine import CHUNK_RETRIES, results_or_here

    n = min(len(polygons) // 16, 8 * max(len(client.nthreads()), 1))
    batches = [list(b) for b in np.array_split(np.asarray(polygons, dtype=object), max(n, 1))]
    futures = client.map(flag, batches, pure=False, retries=CHUNK_RETRIES)
    return np.concatenate([np.asarray(f, dtype=bool) for f in results_or_here(client, futures, lambda i: flag(batches[i]))])


def extract_period_lakes(rasters: list[ZoneRasters], config: DetectConfig, attributes: dict[str, Any], *,
                         out_crs: str, client: Any = None) -> gpd.GeoDataFrame:
    """Lakes of one period from its zone rasters (contract 3): the one call site of lake extraction.

    :func:`gli_toolbox.stitch.extract_zone_lakes` labels the rasters window by window (memory set by
    ``chunk_px``, not by the area), joins lakes cut by chunk and zone borders, and keeps possible
    water (class 2) only where it grows from confident water. Then water objects shaped like rivers
    (:func:`gli_toolbox.rivers.is_river`) are removed, or kept and flagged in ``is_river`` with
    ``keep_rivers``; ``gdf.attrs["rivers_removed"]`` says how many were removed.
    """
    from .lakes import LakeParams
    from .stitch import ZoneRaster, extract_zone_lakes

    terrain = all("elev" in r.paths and "slope" in r.paths for r in rasters)
    zones = [ZoneRaster(r.paths["class"], nobs_path=r.paths.get("nobs"), elev_path=r.paths.get("elev"),
                        slope_path=r.paths.get("slope")) for r in rasters]
    params = LakeParams(min_area_m2=config.min_area_m2, max_hole_m2=config.hole_area_m2,
                        max_slope_deg=config.max_slope_deg if terrain else None)
    gdf = extract_zone_lakes(zones, params, attributes=attributes, crs=None if len(rasters) == 1 else out_crs,
                             chunk_px=config.chunk_px, client=client)
    river = _rivers(list(gdf.geometry), config.resolution_m, client)
    if config.keep_rivers:
        gdf["is_river"] = np.asarray(river, dtype=np.int64)
        gdf.attrs["rivers_removed"] = 0
        gdf.attrs["rivers_removed_km2"] = 0.0
        return gdf
    river = np.asarray(river, dtype=bool)
    removed_km2 = float(gdf.loc[river, "area_km2"].sum()) if river.any() else 0.0
    if river.any():
        logger.info("%s: removed %d river-like water object(s), %.4f km2", attributes.get("date", attributes.get("year")),
                    int(river.sum()), removed_km2)
    out = gdf.loc[~river].reset_index(drop=True)
    out.attrs["rivers_removed"] = int(river.sum())
    out.attrs["rivers_removed_km2"] = removed_km2
    return out


def _water_map(label: str, rasters: list[ZoneRasters]) -> WaterMap:
    return WaterMap(label, [ZoneMap(r.zone, r.crs, r.transform, r.shape,
                                    {k: v for k, v in r.paths.items() if k in ("class", "nobs", "water", "snow")},
                                    r.part) for r in rasters])


@dataclass
class _RunLog:
    """What a run reports besides its results: warnings, notes, skipped assets, terrain per day."""

    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    terrain: dict[str, Any] = field(default_factory=dict)

    def add_warning(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning(message)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            logger.warning(message)


def _check_inputs(config: DetectConfig) -> None:
    """Fail on missing context files before any search or download."""
    for flag, value in (("--glaciers", config.glaciers), ("--dem", None if config.dem == "auto" else config.dem)):
        if value and not Path(value).exists():
            raise ConfigError(f"{flag} {value}: file not found")


def _task_files(plans: list[YearPlan], config: DetectConfig, zones: list[Any]) -> list[str]:
    """What the chunk tasks read by name: the band files of every scene (those the cloud masking
    needs too) and the DEM (a file, or the files of ``--dem auto``'s items); URLs among them are the
    providers' business."""
    from .dem import dem_asset_key
    from .errors import AssetReadError
    from .load import mask_plan

    out = [config.dem] if config.dem and config.dem != "auto" else []
    for z in zones:
        out += [it.assets[dem_asset_key(it)].href for it in _zone_dem_items(config, z.grid)]
    for p in plans:
        for scenes in p.days.values():
            for s in scenes:
                try:
                    keys = mask_plan([s.item], ["green", "nir", "swir16"], config.cloud_detector).keys
                except AssetReadError:  # said by the chunk task that reads it
                    continue
                out += [s.item.assets[k].href for k in keys.values()]
    return out


def _check_dem(config: DetectConfig, zones: list[Any]) -> None:
    """The DEM must cover the AOI: checked once per zone on a coarse grid (chunk tasks read their own window)."""
    from .dem import load_dem

    assert config.dem is not None
    for z in zones:
        ny, nx = z.grid.shape
        res = max(30.0, config.resolution_m * max(ny, nx) / 1000.0)
        load_dem(config.dem, z.grid, stac=config.stac, margin_m=0.0, resolution_m=res)


def _glaciers(the_aoi: Aoi, config: DetectConfig, zones: list[Any]) -> gpd.GeoDataFrame | None:
    if not config.glaciers:
        return None
    from .outlines import read_glaciers

    margin = config.max_glacier_dist_m if config.max_glacier_dist_m is not None else 20_000.0
    crs = zones[0].grid.crs.to_wkt() if len(zones) == 1 else (config.crs or grids.utm_crs(*the_aoi.centre))
    return read_glaciers(config.glaciers, aoi_wgs84=the_aoi.geometry_wgs84, margin_m=margin + 1000.0, crs=crs)


@contextmanager
def _no_space_guard(work: Path) -> Iterator[None]:
    """Turn a full disk while writing the run's intermediate files into one :class:`OutputError`
    (the work folder is removed: a run that cannot write cannot be resumed either)."""
    import shutil

    from .engine import disk_full

    try:
        yield
    except Exception as exc:
        try:
            free = shutil.disk_usage(work).free
        except OSError:
            free = None
        if not (disk_full(exc) or (free is not None and free < 1 << 20)):
            raise
        shutil.rmtree(work, ignore_errors=True)
        with suppress(OSError):
            work.parent.rmdir()  # the work base, when this run made it and nothing else is in it
        raise OutputError(f"no space left in {work.parent.parent} for the run's intermediate files; free some "
                          "space or choose another --out") from None


def _work_folder(work_dir: str | Path, config: DetectConfig, the_aoi: Aoi, resume: bool) -> Path:
    """The run's work folder: ``<work_dir>/<run hash>``; emptied unless ``resume``."""
    import shutil

    from .engine import run_hash

    # absolute: workers of a cluster resolve the chunk paths themselves, from their own working folder
    base = Path(work_dir).absolute()
    work = base / run_hash(config, the_aoi.geometry_wgs84.wkb)
    if work.exists() and not resume:
        shutil.rmtree(work)  # our own intermediate files of an earlier, different attempt
    elif resume and not work.exists():
        logger.warning("--resume: no earlier work for these parameters in %s; starting from the beginning", base)
    elif resume:
        from . import __version__
        from .engine import RUN_MARKER

        marker = work / RUN_MARKER
        made_by = marker.read_text(encoding="utf-8").strip() if marker.is_file() else __version__
        if made_by != __version__:  # the layers of one run must not mix chunks of two versions
            raise ConfigError(f"--resume: the finished chunks in {base} were made by gli-toolbox {made_by}, this is "
                              f"{__version__}; delete that folder to start again, or continue with gli-toolbox "
                              f"{made_by}")
    work.mkdir(parents=True, exist_ok=True)
    return work


@dataclass
class _SeasonOutcome:
    """What the chunk tasks of one season gave."""

    day_used: dict[str, bool] = field(default_factory=dict)
    day_failed: set[str] = field(default_factory=set)
    failures: list[dict[str, str]] = field(default_factory=list)
    failed_chunks: list[str] = field(default_factory=list)
    failed_inside_px: int = 0
    rasters: list[dict[str, ZoneRasters]] = field(default_factory=list)

    def incomplete_lines(self) -> list[str]:
        lines = [f"{f['day']} {f['scenes']}: {f['error']}" for f in self.failures]
        return list(dict.fromkeys(lines)) + self.failed_chunks


def _zone_dem_items(config: DetectConfig, grid: Any) -> list[Any]:
    """``--dem auto``: the DEM items over a zone grid plus the DEM margin: one search per zone part
    and season (the chunk tasks get the items over their own window, instead of one search each)."""
    if config.dem != "auto":
        return []
    from .dem import dem_grid, find_dem_items

    return find_dem_items(config.stac, dem_grid(grid, margin_m=config.dem_margin_m).extent.to_crs("EPSG:4326").geom.bounds)


def _items_over(items: list[Any], target: Any) -> tuple[Any, ...]:
    """The items whose footprint touches ``target`` (a GeoBox)."""
    lonlat = shapely.geometry.box(*target.extent.to_crs("EPSG:4326").geom.bounds)
    return tuple(it for it in items if it.geometry is None or shapely.geometry.shape(it.geometry).intersects(lonlat))


def _tasks(p: YearPlan, zone_chunks: list[tuple[Any, BaseGeometry, list[grids.Chunk]]], config: DetectConfig,
           work: Path) -> tuple[list[list[ChunkTask]], list[CloudTask]]:
    """The chunk tasks of one season (per zone) and the day cloud passes they read (L1C days)."""
    from odc.geo.geom import Geometry

    from . import load
    from .engine import ChunkTask, CloudTask, cloud_blocks, season_key

    key = season_key(str(p.year), [s.id for v in p.days.values() for s in v])
    days = tuple((d, tuple(v)) for d, v in sorted(p.days.items()))
    cloud_days = [(d, v) for d, v in days if load.needs_s2cloudless(v, config.cloud_detector)]
    out = []
    cloud_tasks: list[CloudTask] = []
    for z, part, cs in zone_chunks:
        a = z.grid.affine
        ts = []
        dem_items = _zone_dem_items(config, z.grid)
        clouds = {d.isoformat(): str(work / "clouds" / key / z.label / d.isoformat()) for d, _ in cloud_days}
        blocks: set[tuple[int, int]] = set()
        # each task carries only the scenes over its chunk (item metadata, a few kB each)
        feet = {s.id: Geometry(shapely.geometry.shape(s.item.geometry), "EPSG:4326").to_crs(z.crs).geom
                for _, v in days for s in v}
        for c in cs:
            x0, y0 = a * (c.col0 - 2, c.row0 - 2)
            x1, y1 = a * (c.col0 + c.width + 2, c.row0 + c.height + 2)
            box = shapely.geometry.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            clipped = part if part.within(box) else grids.clip_polygons(part, box)
            over = tuple((d, tuple(s for s in v if feet[s.id].intersects(box))) for d, v in days)
            t = ChunkTask(config, str(p.year), z.label, z.crs, tuple(a)[:6], c, clipped,
                          tuple((d, v) for d, v in over if v),
                          str(work / "chunks" / key / z.label / f"{c.name}.tif"), clouds, run_dir=str(work))
            if dem_items:
                from .dem import dem_grid

                t = replace(t, dem_items=_items_over(dem_items, dem_grid(t.geobox(), margin_m=config.dem_margin_m)))
            ts.append(t)
            if cloud_days:
                blocks |= cloud_blocks(t.geobox())
        for d, scenes in cloud_days:
            footprint = shapely.union_all(
                [Geometry(shapely.geometry.shape(s.item.geometry), "EPSG:4326").to_crs(z.crs).geom for s in scenes])
            for b in sorted(blocks):
                span = 1024 * 60.0
                bbox = shapely.geometry.box(b[1] * span, -(b[0] + 1) * span, (b[1] + 1) * span, -b[0] * span)
                if footprint.intersects(bbox):
                    cloud_tasks.append(CloudTask(d, scenes, z.crs, b, str(Path(clouds[d.isoformat()]) / f"b{b[0]}_{b[1]}.tif"),
                                                 run_dir=str(work)))
        out.append(ts)
    return out, cloud_tasks


def _run_tasks(plans: list[YearPlan], zone_chunks: list[Any], config: DetectConfig, work: Path, runner: Any,
               resume: bool, progress: bool | None, on_progress: Callable[[int, int, str], None] | None,
               log: _RunLog) -> dict[int, _SeasonOutcome]:
    """Run every chunk task of every season (finished ones are reused with ``resume``), then
    assemble the zone rasters of each season."""
    from contextlib import closing

    from tqdm import tqdm

    from .engine import assemble, done_summary, run_chunk, run_cloud_block

    built = {p.year: _tasks(p, zone_chunks, config, work) for p in plans if p.days}
    day_lists = {p.year: sorted(p.days) for p in plans if p.days}
    per_year = {y: b[0] for y, b in built.items()}
    cloud_tasks = [c for b in built.values() for c in b[1] if not (resume and Path(c.path).exists())]
    for c in cloud_tasks:
        Path(c.path + ".failed").unlink(missing_ok=True)
    if cloud_tasks:
        # closing: an interrupt in this loop cancels the tasks left on a cluster at once (a traceback
        # kept by Jupyter would keep the generator, and its tasks, alive)
        with tqdm(total=len(cloud_tasks), unit="block", desc="cloud pass",
                  disable=(None if progress is None else not progress), leave=False) as cbar, \
                closing(runner.map(run_cloud_block, cloud_tasks)) as cloud_outcomes:  # type: ignore[arg-type]
            for outcome in cloud_outcomes:
                if outcome.summary is None:
                    line = f"{outcome.task.describe()}: {outcome.error}"
                    logger.warning("%s", line)
                    Path(outcome.task.path).parent.mkdir(parents=True, exist_ok=True)
                    Path(outcome.task.path + ".failed").write_text(line, encoding="utf-8")
                cbar.update(1)
    all_tasks = [t for zs in per_year.values() for ts in zs for t in ts]
    summaries: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    todo = []
    for t in all_tasks:
        s = done_summary(t) if resume else None
        if s is None:
            todo.append(t)
        else:
            summaries[t.path] = s
    if resume and summaries:
        logger.info("resuming: %d of %d chunk tasks already done", len(summaries), len(all_tasks))
    total = len(all_tasks)
    with tqdm(total=total, initial=len(summaries), unit="chunk", desc="chunks",
              disable=(None if progress is None else not progress), leave=False) as bar, \
            closing(runner.map(run_chunk, todo)) as outcomes:
        for outcome in outcomes:
            if outcome.summary is not None:
                summaries[outcome.task.path] = outcome.summary
                logger.debug("chunk %s %s done: %d day(s) with valid observations", outcome.task.season,
                             outcome.task.describe(), sum(1 for r in outcome.summary["days"].values() if r["used"]))
            else:
                errors[outcome.task.path] = outcome.error or "failed"
                logger.warning("chunk %s %s failed: %s", outcome.task.season, outcome.task.describe(), outcome.error)
            bar.set_postfix_str(f"{outcome.task.season} {outcome.task.zone}", refresh=False)
            bar.update(1)
            if on_progress is not None:
                on_progress(len(summaries) + len(errors), total, outcome.task.key)
    out: dict[int, _SeasonOutcome] = {}
    for year, zones_tasks in per_year.items():
        so = _SeasonOutcome()
        for ts in zones_tasks:
            for t in ts:
                s = summaries.get(t.path)
                if s is None:
                    so.failed_chunks.append(f"chunk {t.describe()}: {errors.get(t.path, 'failed')}; "
                                            "its area is marked never observed")
                    so.failed_inside_px += int(grids.part_mask(t.geobox(), t.part).sum())
                    continue
                for iso, rec in s["days"].items():
                    so.day_used[iso] = so.day_used.get(iso, False) or rec["used"]
                    if rec["failed"]:
                        so.day_failed.add(iso)
                    if "sun" in rec:
                        sun = rec["sun"]
                        if sun is None:
                            log.note(f"{dt.date.fromisoformat(iso)}: no sun angles; terrain shadows not masked")
                        else:
                            tr = log.terrain.setdefault(iso, {"sun_azimuth": round(sun[0], 2),
                                                              "sun_elevation": round(sun[1], 2), "shadow_px": 0})
                            tr["shadow_px"] += rec["shadow_px"]
                for n in s["notes"]:
                    log.note(n)
                for f in s["failures"]:
                    if f not in so.failures:
                        so.failures.append(f)
        for f in so.failures:
            if f not in log.skipped:
                log.skipped.append(f)
        n_chunks = sum(len(ts) for ts in zones_tasks)
        plan_days = next(p.days for p in plans if p.year == year)
        for day in sorted(plan_days):
            iso = day.isoformat()
            read = sum(1 for ts in zones_tasks for t in ts
                       if iso in summaries.get(t.path, {}).get("days", {}) and summaries[t.path]["days"][iso]["used"])
            logger.info("%s: read %d scene(s) (%s) on %d of %d chunk(s)%s", iso, len(plan_days[day]),
                        ", ".join(sc.id for sc in plan_days[day]), read, n_chunks,
                        " (failed in some chunks)" if iso in so.day_failed else "")
        for (z, part, _), ts in zip(zone_chunks, zones_tasks):
            if not ts:
                continue
            so.rasters.append(assemble(ts, summaries, zone_grid=z.grid, part=part, days=day_lists[year],
                                       folder=work / "rasters" / Path(ts[0].path).parent.parent.name,
                                       per_scene=config.per_scene,
                                       with_dem=bool(config.dem)))
        out[year] = so
    inside_total = sum(r[str(y)].stats.get("inside_px", 0) for y, so in out.items() for r in so.rasters[:]) or 1
    n_years = max(len(out), 1)
    for tr in log.terrain.values():  # shadow px summed over the seasons' chunks; share of the AOI
        tr["shadow_share_of_aoi"] = round(tr.pop("shadow_px") / max(inside_total / n_years, 1), 4)
    return out


def _run_record(the_aoi: Aoi, config: DetectConfig, zones: list[Any], zone_chunks: list[Any],
                source: search.SceneSource, years_record: dict[str, Any], log: _RunLog, tracking: TrackResult,
                glaciers: gpd.GeoDataFrame | None, incomplete: dict[str, list[str]], runner: str, work: Path,
                est: RunEstimate) -> dict[str, Any]:
    """The content of ``run.json``."""
    g = zones[0].grid
    crs = g.crs.to_wkt() if g.crs.epsg is None else f"EPSG:{g.crs.epsg}"
    grid = {
        "crs": crs,
        "resolution_m": config.resolution_m,
        "shape": list(g.shape),
        "transform": list(g.affine)[:6],
        "pixel_area_m2": abs(g.affine.a * g.affine.e),
        "chunks": len(zone_chunks[0][2]),
    }
    from .records import DetectRecord, PeriodRecord, TrackingSummary, software_versions

    years = {k: PeriodRecord(**{**v, "season": tuple(v["season"])}, failures=list(incomplete.get(k, [])))
             for k, v in years_record.items()}
    for k, lines in incomplete.items():  # a period with failures but no entry of its own (per-scene dates)
        years.setdefault(k, PeriodRecord(failures=list(lines)))
    record = DetectRecord(
        software=software_versions(("gli-toolbox", "odc-stac", "pystac-client", "rasterio", "numpy", "geopandas",
                                    "dask", "distributed"), full=True),
        warnings=list(log.warnings),
        notes=list(log.notes),
        parameters=config.to_dict(),
        aoi={
            "source": the_aoi.source,
            "source_crs": the_aoi.source_crs,
            "area_km2": round(the_aoi.area_km2, 6),
            "bounds_wgs84": list(the_aoi.geometry_wgs84.bounds),
        },
        stac={"location": source.location, "collection": config.collection},
        grid=grid,
        years=years,
        terrain=({"dem": config.dem if config.dem != "auto" else f"cop-dem-glo-30 from {config.stac}",
                  "max_slope_deg": config.max_slope_deg, "days": log.terrain} if config.dem else None),
        glaciers=({"source": config.glaciers, "n_outlines_near_aoi": len(glaciers),
                   "max_glacier_dist_m": config.max_glacier_dist_m} if glaciers is not None else None),
        skipped_assets=list(log.skipped),
        tracking=TrackingSummary.of(tracking),
        engine={"runner": runner, "plan": est.lines()},
    )
    if len(zones) > 1:
        record.zones = [
            {"zone": z.label, "crs": z.crs, "shape": list(z.grid.shape), "transform": list(z.grid.affine)[:6],
             "chunks": len(cs)} for z, _, cs in zone_chunks
        ]
        grid["crs_of_layers"] = config.crs or grids.utm_crs(*the_aoi.centre)
    return record.to_dict()


def _with_glaciers(lakes: gpd.GeoDataFrame, glaciers: gpd.GeoDataFrame | None, config: DetectConfig) -> gpd.GeoDataFrame:
    """Add glacier distance and lake type; keep lakes within ``max_glacier_dist_m``."""
    if glaciers is None:
        return lakes
    from .glaciers import glacier_context, near_glaciers

    out = glacier_context(lakes, glaciers)
    if config.max_glacier_dist_m is not None:
        out = near_glaciers(out, max_glacier_dist_m=config.max_glacier_dist_m)
    return out


def _sorted(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return g.sort_values("lake_id", kind="stable").reset_index(drop=True)
