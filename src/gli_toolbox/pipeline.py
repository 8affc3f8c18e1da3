"""The detection pipeline: search -> read chunk by chunk -> yearly water composite -> lakes.

:func:`detect` is the Python API behind ``gli detect``; it returns results in memory and writes
nothing. :func:`gli_toolbox.export.write_outputs` writes them.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely.geometry
from affine import Affine
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox
from shapely.geometry.base import BaseGeometry

from . import lakes as lakes_mod
from . import load, search
from .aoi import Aoi, as_aoi
from .classify import classify_bands
from .config import DetectConfig
from .errors import AoiError, AssetReadError, ConfigError, NoScenesFoundError
from .tracking import TrackResult, track
from .water import MAYBE_WATER, NEVER_OBSERVED, composite, composite_classes, seeded_growth

logger = logging.getLogger(__name__)

__all__ = ["DetectResult", "WaterMap", "detect", "plan"]


@dataclass
class WaterMap:
    """Water classification on the processing grid for one year (or one date).

    ``water_class``: 1 water, 0 not water, 255 never validly observed (or outside the AOI).
    ``valid_count`` / ``water_count``: valid and water observations per pixel.
    """

    label: str
    water_class: NDArray[np.uint8]
    valid_count: NDArray[np.uint16]
    water_count: NDArray[np.uint16]
    transform: Affine
    crs: str
    snow_count: NDArray[np.uint16] | None = None
    """Clear observations classified as snow/ice (not counted in ``valid_count``)."""

    def observed_share(self, geom: BaseGeometry) -> float:
        """Share of the pixels under ``geom`` (grid CRS) with at least one open-water observation."""
        import rasterio.features

        inside = rasterio.features.geometry_mask([geom], out_shape=self.valid_count.shape, transform=self.transform,
                                                 invert=True, all_touched=False)
        n = int(inside.sum())
        return float((self.valid_count[inside] > 0).sum() / n) if n else 0.0

    @property
    def water_fraction(self) -> NDArray[np.float32]:
        """Share of valid observations that were water (NaN where never observed)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.valid_count > 0, self.water_count / np.maximum(self.valid_count, 1), np.nan).astype(np.float32)


@dataclass
class DetectResult:
    """What :func:`detect` returns: per-year lake layers and water maps, plus the run record."""

    config: DetectConfig
    aoi: Aoi
    grid: GeoBox
    lakes: dict[int, gpd.GeoDataFrame]
    masks: dict[int, WaterMap]
    scene_lakes: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    scene_masks: dict[str, WaterMap] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    tracking: TrackResult | None = None
    """Lakes matched across the exported layers (years, or dates with ``per_scene``)."""

    def explore(self, **kwargs: Any) -> Any:
        """Interactive map (folium) of the lakes by period and status: :func:`gli_toolbox.maps.explore_detect`."""
        from .maps import explore_detect

        return explore_detect(self, **kwargs)


@dataclass
class YearPlan:
    year: int
    start: str
    end: str
    days: dict[dt.date, list[search.Scene]]
    dropped: list[str]


def _as_aoi(aoi: Aoi | str | Path | BaseGeometry | dict[str, Any], max_km2: float) -> Aoi:
    return as_aoi(aoi, max_km2=max_km2)  # also GeoDataFrame/GeoSeries, GeoJSON Feature(Collection)


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
        days = plans[-1].days
        logger.info("%s: %d scene(s) on %d day(s) found (%s to %s, cloud cover <= %g%%)", year, len(scenes), len(days),
                    start[:10], end[:10], config.max_cloud_pct)
    return plans


def _no_scene_reason(p: YearPlan, config: DetectConfig) -> str:
    return (
        f"{p.year}: no {config.collection} scenes intersect the AOI between {p.start[:10]} and {p.end[:10]} "
        f"with cloud cover <= {config.max_cloud_pct:g}%"
    )


def _software() -> dict[str, str]:
    from importlib.metadata import version

    import rasterio

    out = {"python": platform.python_version(), "gdal": rasterio.__gdal_version__}
    for pkg in ("gli-toolbox", "odc-stac", "pystac-client", "rasterio", "numpy", "geopandas"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = "unknown"
    return out


def detect(
    aoi: Aoi | str | Path | BaseGeometry | dict[str, Any],
    *,
    config: DetectConfig | None = None,
    progress: bool | None = None,
    on_scene: Callable[[str], None] | None = None,
    **params: Any,
) -> DetectResult:
    """Detect glacial lakes in ``aoi`` for each year of the configuration.

    Parameters
    ----------
    aoi
        Path of a vector file, an :class:`~gli_toolbox.aoi.Aoi`, a shapely geometry or a GeoJSON
        geometry dict (both in WGS84).
    config
        Run parameters; or give them as keyword arguments (``years=(2017, 2019)``,
        ``stac="sample_data/catalog.json"``, ``ndwi_threshold=0.3`` ...), which override ``config``.
    progress
        Show a progress bar (default: only on a terminal).

    Returns
    -------
    DetectResult
        ``lakes[year]`` GeoDataFrames and ``masks[year]`` water maps; ``run`` is what ``run.json`` holds.

    Raises
    ------
    NoScenesFoundError
        No scene for any year. Years without scenes are otherwise skipped and listed in
        ``run["warnings"]``.
    """
    if config is None:
        config = DetectConfig(**params)
    elif params:
        config = replace(config, **params)
    the_aoi = _as_aoi(aoi, config.max_aoi_km2)
    grid = _grid(the_aoi, config)  # checks --crs and the AOI's extent before any network access
    _check_inputs(config)
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
    ctx = _prepare(the_aoi, config, grid)
    logger.info("grid %s, %g m: %d x %d pixels in %d chunk(s) of up to %d px", ctx.crs, config.resolution_m,
                grid.shape[0], grid.shape[1], len(ctx.tiles), config.chunk_px)

    from tqdm import tqdm

    total = sum(len(p.days) for p in plans) * len(ctx.tiles)
    bar = tqdm(total=total, unit="scene", desc="reading scenes", disable=(None if progress is None else not progress),
               leave=False)
    lakes: dict[int, gpd.GeoDataFrame] = {}
    masks: dict[int, WaterMap] = {}
    scene_lakes: dict[str, gpd.GeoDataFrame] = {}
    scene_masks: dict[str, WaterMap] = {}
    years_record: dict[str, Any] = {}
    try:
        for p in plans:
            base = {"season": [p.start, p.end], "scenes": [s.to_record() for sc in p.days.values() for s in sc],
                    "dropped_duplicates": p.dropped}
            if not p.days:
                years_record[str(p.year)] = {**base, "reason": _no_scene_reason(p, config)}
                continue
            t_year = time.perf_counter()
            stack = _observe_year(p, ctx, bar, log, on_scene)
            failed = sorted(d.isoformat() for d in stack.day_failed)
            # a day that failed in some chunk keeps what it gave elsewhere but does not count as a scene
            n_scenes = sum(1 for d, used in stack.day_used.items() if used and d not in stack.day_failed)
            if n_scenes == 0:
                reason = (
                    f"{p.year}: {sum(len(v) for v in p.days.values())} scene(s) found but none gave a valid "
                    "observation of the AOI (cloud, shadow, no data or unreadable); no lake layer for this year"
                ) if len(failed) < len(p.days) else (  # HOOK(rel): a failure is not "nothing seen"
                    f"{p.year}: every scene failed to read; the year is incomplete, not empty: run again later"
                )
                log.add_warning(reason)
                years_record[str(p.year)] = {**base, "days_failed": failed, "reason": reason}
                continue
            if stack.maybe_count is not None:  # seeded growth: possible water joins lakes with a seed
                wclass = seeded_growth(composite_classes(stack.water_count, stack.maybe_count, stack.valid_count,
                                                         min_water_fraction=config.min_water_fraction))
            else:
                wclass = composite(stack.water_count, stack.valid_count, min_water_fraction=config.min_water_fraction)
            wclass[~ctx.inside] = NEVER_OBSERVED
            masks[p.year] = WaterMap(str(p.year), wclass, stack.valid_count, stack.water_count, ctx.transform,
                                     ctx.crs, stack.snow_count)
            lakes[p.year] = _lakes(ctx, wclass, stack.valid_count, {"year": p.year, "n_scenes": n_scenes})
            for day, (day_water, day_obs) in stack.per_day.items():
                if day in stack.day_failed or not day_obs.any():
                    continue
                label = day.strftime("%Y%m%d")
                dclass = np.where(day_obs, day_water.astype(np.uint8), np.uint8(NEVER_OBSERVED)).astype(np.uint8)
                if day in stack.per_day_maybe:
                    dclass[stack.per_day_maybe[day] & ~day_water] = MAYBE_WATER
                    dclass = seeded_growth(dclass)
                    day_water = dclass == 1
                scene_masks[label] = WaterMap(label, dclass, day_obs.astype(np.uint16), day_water.astype(np.uint16),
                                              ctx.transform, ctx.crs)
                scene_lakes[label] = _lakes(ctx, dclass, day_obs.astype(np.uint16),
                                            {"year": p.year, "n_scenes": 1, "date": day.isoformat()})
            logger.info("%s: %d lake(s), %.4f km2 from %d day(s) with valid observations, in %.1f s", p.year,
                        len(lakes[p.year]), float(lakes[p.year]["area_km2"].sum()), n_scenes,
                        time.perf_counter() - t_year)
            years_record[str(p.year)] = {
                **base,
                "days_used": n_scenes,
                "days_failed": failed,
                "n_lakes": len(lakes[p.year]),
                "lake_area_km2": float(lakes[p.year]["area_km2"].sum()),
                "water_pixels": int((wclass == 1).sum()),
                "never_observed_pixels_in_aoi": int(((stack.valid_count == 0) & ctx.inside).sum()),
            }
    finally:
        bar.close()
    if not lakes:
        raise NoScenesFoundError(
            "no valid observation in any year: " + "; ".join(log.warnings) + ". Check the scenes with `gli search`"
        )

    # One physical lake keeps one id over the series: relabel with the tracker's stable ids.
    def seen(maps: dict[Any, WaterMap]) -> Callable[[Any, Any], bool]:
        return lambda period, geom: period in maps and maps[period].observed_share(geom) >= 0.5

    tracking = track(lakes, pixel_m=config.resolution_m, observed=seen(dict(masks)))
    lakes = {y: _sorted(g) for y, g in tracking.layers.items()}
    if config.per_scene and scene_lakes:
        tracking = track(scene_lakes, pixel_m=config.resolution_m, observed=seen(dict(scene_masks)))
        scene_lakes = {k: _sorted(g) for k, g in tracking.layers.items()}
    if len(tracking.periods) < 2:  # HOOK(rel): one period says nothing about change (as in gli track)
        log.add_warning("only one period with observations: lake change needs two, so no change status is given")
        tracking.changes["status"], tracking.changes["signif"] = None, 0
    run = _run_record(ctx, source, years_record, log, tracking)
    period = (lambda d: d.replace("-", "")) if config.per_scene else (lambda d: d[:4])  # HOOK(rel): contract 6
    run["incomplete"] = {k: [f"{s['day']}: {s['error']}" for s in log.skipped if period(s["day"]) == k]
                         for k in sorted({period(s["day"]) for s in log.skipped})}
    run["complete"] = not run["incomplete"]
    return DetectResult(config, the_aoi, ctx.grid, lakes, masks, scene_lakes, scene_masks, run, tracking)


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


@dataclass
class _Context:
    """Everything fixed for one run: the grid, its chunks, the AOI mask, DEM and glaciers."""

    config: DetectConfig
    aoi: Aoi
    grid: GeoBox
    grid_crs: Any
    crs: str
    transform: Affine
    inside: NDArray[np.bool_]
    tiles: list[tuple[tuple[slice, slice], GeoBox]]
    tile_boxes: list[BaseGeometry]
    dem: Any = None
    dem10: NDArray[np.float32] | None = None
    slope10: NDArray[np.float32] | None = None
    glaciers: gpd.GeoDataFrame | None = None


def _grid(the_aoi: Aoi, config: DetectConfig) -> GeoBox:
    """The output grid, refused when its bounding box exceeds ``max_aoi_km2`` (parts far apart)."""
    grid = load.output_grid(the_aoi.geometry_wgs84, crs=config.crs, resolution_m=config.resolution_m)
    ny, nx = grid.shape
    bbox_km2 = ny * nx * config.resolution_m**2 / 1e6
    if bbox_km2 > config.max_aoi_km2:
        raise AoiError(
            f"AOI {the_aoi.source}: its bounding box covers {bbox_km2:,.0f} km2 ({ny} x {nx} pixels), more than the "
            f"{config.max_aoi_km2:,.0f} km2 limit; split it into separate AOI files of nearby lakes"
        )
    return grid


def _check_inputs(config: DetectConfig) -> None:
    """Fail on missing context files before any search or download."""
    for flag, value in (("--glaciers", config.glaciers), ("--dem", None if config.dem == "auto" else config.dem)):
        if value and not Path(value).exists():
            raise ConfigError(f"{flag} {value}: file not found")


def _prepare(the_aoi: Aoi, config: DetectConfig, grid: GeoBox) -> _Context:
    assert grid.crs is not None  # output_grid always sets one
    grid_crs = grid.crs
    tiles = list(load.chunks(grid, config.chunk_px))
    ctx = _Context(
        config=config, aoi=the_aoi, grid=grid, grid_crs=grid_crs,
        crs=grid_crs.to_wkt() if grid_crs.epsg is None else f"EPSG:{grid_crs.epsg}",
        transform=grid.affine, inside=load.aoi_mask(grid, the_aoi.geometry_wgs84), tiles=tiles,
        tile_boxes=[shapely.geometry.box(*g.boundingbox) for _, g in tiles],
    )
    if config.dem:
        from . import terrain
        from .dem import load_dem

        ctx.dem = load_dem(config.dem, grid, stac=config.stac, margin_m=config.dem_margin_m)
        ctx.dem10 = ctx.dem.on(grid)
        ctx.slope10 = ctx.dem.on(grid, terrain.slope_deg(ctx.dem.elevation, transform=ctx.dem.geobox.affine))
    if config.glaciers:
        from .outlines import read_glaciers

        margin = config.max_glacier_dist_m if config.max_glacier_dist_m is not None else 20_000.0
        ctx.glaciers = read_glaciers(config.glaciers, aoi_wgs84=the_aoi.geometry_wgs84, margin_m=margin + 1000.0,
                                     crs=grid_crs.to_wkt())
    return ctx


@dataclass
class _Season:
    """Observations of one season accumulated over days and chunks."""

    water_count: NDArray[np.uint16]
    valid_count: NDArray[np.uint16]
    snow_count: NDArray[np.uint16]
    day_used: dict[dt.date, bool]
    day_failed: set[dt.date]
    per_day: dict[dt.date, tuple[NDArray[np.bool_], NDArray[np.bool_]]]
    maybe_count: NDArray[np.uint16] | None = None
    """Observations passing the permissive (grow) test; method ``multi`` only."""
    per_day_maybe: dict[dt.date, NDArray[np.bool_]] = field(default_factory=dict)


def _terrain_shadow(ctx: _Context, scenes: list[search.Scene], day: dt.date, log: _RunLog) -> NDArray[np.bool_] | None:
    """Cast shadow on the coarse DEM grid for the day's sun, or None without a DEM."""
    if ctx.dem is None or not ctx.config.terrain_shadows:
        return None
    from . import terrain
    from .providers import sun_angles

    sun = sun_angles(scenes[0].item)
    if sun is None:
        log.note(f"{day}: no sun angles; terrain shadows not masked")
        return None
    az, el = sun
    log.terrain[day.isoformat()] = {"sun_azimuth": round(az, 2), "sun_elevation": round(el, 2),
                                    "shadow_share_of_aoi": None}
    if el <= 0:
        return None
    return terrain.cast_shadow(ctx.dem.elevation, transform=ctx.dem.geobox.affine, sun_azimuth_deg=az,
                               sun_elevation_deg=el)


def _observe_year(p: YearPlan, ctx: _Context, bar: Any, log: _RunLog,
                  on_scene: Callable[[str], None] | None) -> _Season:
    """Read every day of the season chunk by chunk and count water, valid and snow observations."""
    from odc.geo.geom import Geometry

    config, grid, inside = ctx.config, ctx.grid, ctx.inside
    season = _Season(np.zeros(grid.shape, np.uint16), np.zeros(grid.shape, np.uint16), np.zeros(grid.shape, np.uint16),
                     {d: False for d in p.days}, set(), {},
                     np.zeros(grid.shape, np.uint16) if config.method == "multi" else None)
    for day, scenes in p.days.items():
        footprint = shapely.union_all(
            [Geometry(shapely.geometry.shape(s.item.geometry), "EPSG:4326").to_crs(ctx.grid_crs).geom for s in scenes]
        )
        if config.per_scene:
            season.per_day[day] = (np.zeros(grid.shape, dtype=bool), np.zeros(grid.shape, dtype=bool))
            if season.maybe_count is not None:
                season.per_day_maybe[day] = np.zeros(grid.shape, dtype=bool)
        shadow_coarse = _terrain_shadow(ctx, scenes, day, log)
        shadow_px = 0
        t_day, n_read = time.perf_counter(), 0
        for (sl, tile), tbox in zip(ctx.tiles, ctx.tile_boxes):
            bar.update(1)
            if day in season.day_failed or not footprint.intersects(tbox):
                continue
            n_read += 1
            t_chunk = time.perf_counter()
            try:
                obs = load.read_day(scenes, tile, need_swir=True, cloud_detector=config.cloud_detector)
                logger.debug("%s: chunk %s read in %.2f s", day, tile.shape, time.perf_counter() - t_chunk)
            except AssetReadError as exc:
                season.day_failed.add(day)
                log.skipped.append({"day": day.isoformat(), "scenes": ", ".join(s.id for s in scenes), "error": str(exc)})
                logger.warning("skipped %s: %s", day, exc)
                continue
            for note in obs.notes:
                log.note(note)
            masked = ~obs.valid
            if shadow_coarse is not None:
                shadow = ctx.dem.on(tile, shadow_coarse.astype(np.float32), "nearest") > 0.5
                shadow_px += int((shadow & inside[sl]).sum())
                masked |= shadow
            # SWIR1 is always read: it feeds the snow/ice test (NDSI), MNDWI and the multi method
            bands = {"green": obs.green, "nir": obs.nir}
            if obs.swir16 is not None:
                bands["swir16"] = obs.swir16
            water, maybe, observed, snow = classify_bands(
                bands, scl=obs.scl, masked=masked,
                method=config.method, threshold=config.ndwi_threshold, index=config.index,
            )
            observed &= inside[sl]
            water &= observed
            if season.maybe_count is not None:
                maybe &= observed
                season.maybe_count[sl] += maybe
                if config.per_scene:
                    season.per_day_maybe[day][sl] = maybe
            season.water_count[sl] += water
            season.valid_count[sl] += observed
            season.snow_count[sl] += snow & inside[sl]
            if observed.any():
                season.day_used[day] = True
            if config.per_scene:
                season.per_day[day][0][sl] = water
                season.per_day[day][1][sl] = observed
        if day.isoformat() in log.terrain:
            log.terrain[day.isoformat()]["shadow_share_of_aoi"] = round(shadow_px / max(int(inside.sum()), 1), 4)
        logger.info("%s: read %d scene(s) (%s) on %d of %d chunk(s) in %.1f s", day, len(scenes),
                    ", ".join(s.id for s in scenes), n_read, len(ctx.tiles), time.perf_counter() - t_day)
        if on_scene is not None:
            on_scene(day.isoformat())
    return season


def _lakes(ctx: _Context, wclass: NDArray[np.uint8], counts: NDArray[np.uint16], attributes: dict[str, Any]) -> gpd.GeoDataFrame:
    """Lake layer of one water class map, with terrain and glacier attributes when configured."""
    config = ctx.config
    gdf = lakes_mod.extract_lakes(
        wclass, counts, transform=ctx.transform, crs=ctx.crs, aoi_mask=ctx.inside, attributes=attributes,
        params=lakes_mod.LakeParams(min_area_m2=config.min_area_m2, max_hole_m2=config.hole_area_m2,
                                    max_slope_deg=config.max_slope_deg if ctx.dem is not None else None),
        dem=ctx.dem10, slope=ctx.slope10,
    )
    return _with_glaciers(gdf, ctx.glaciers, config)


def _run_record(ctx: _Context, source: search.SceneSource, years_record: dict[str, Any], log: _RunLog,
                tracking: TrackResult) -> dict[str, Any]:
    """The content of ``run.json``."""
    config, the_aoi = ctx.config, ctx.aoi
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "software": _software(),
        "parameters": config.to_dict(),
        "aoi": {
            "source": the_aoi.source,
            "source_crs": the_aoi.source_crs,
            "area_km2": round(the_aoi.area_km2, 6),
            "bounds_wgs84": list(the_aoi.geometry_wgs84.bounds),
        },
        "stac": {"location": source.location, "collection": config.collection},
        "grid": {
            "crs": ctx.crs,
            "resolution_m": config.resolution_m,
            "shape": list(ctx.grid.shape),
            "transform": list(ctx.transform)[:6],
            "pixel_area_m2": abs(ctx.transform.a * ctx.transform.e),
            "chunks": len(ctx.tiles),
        },
        "years": years_record,
        "terrain": ({"dem": ctx.dem.source, "max_slope_deg": config.max_slope_deg, "days": log.terrain}
                    if ctx.dem is not None else None),
        "glaciers": ({"source": config.glaciers, "n_outlines_near_aoi": len(ctx.glaciers),
                      "max_glacier_dist_m": config.max_glacier_dist_m} if ctx.glaciers is not None else None),
        "skipped_assets": log.skipped,
        "warnings": log.warnings + log.notes,
        "tracking": {
            "periods": [str(p) for p in tracking.periods],
            "lakes": len(tracking.changes),
            "status_counts": {k: int(v) for k, v in tracking.changes["status"].value_counts().items()},
            "merges": int((tracking.events["kind"] == "merged").sum()),
            "splits": int((tracking.events["kind"] == "split").sum()),
        },
    }


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
