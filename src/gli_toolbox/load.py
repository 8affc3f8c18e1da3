"""Read Sentinel-2 pixels for one chunk of the output grid: only the needed bands, only the window.

odc-stac does the windowed reading, reprojection and same-day mosaicking (local files, HTTP(S)
COGs through GDAL's /vsicurl/, S3); this adapter adds the provider's reflectance rule and the
scene-classification mask.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox

from . import providers, retry
from .errors import AssetReadError, ConfigError
from .grids import aoi_mask, output_grid, utm_crs  # re-exported: they moved to grids
from .search import Scene
from .water import offset_already_removed, scl_valid, to_reflectance

logger = logging.getLogger(__name__)

__all__ = ["DayGroup", "Observation", "aoi_mask", "observation", "output_grid", "read_day", "read_day_dn", "utm_crs"]


@dataclass
class Observation:
    """Reflectance and validity of one acquisition day over one chunk."""

    green: NDArray[np.float32]
    nir: NDArray[np.float32]
    swir16: NDArray[np.float32] | None
    valid: NDArray[np.bool_]
    scl: NDArray[np.uint8] | None
    notes: list[str] = field(default_factory=list)


def _stac_cfg(keys: dict[str, str]) -> dict[str, Any]:
    assets = {k: {"data_type": "uint16", "nodata": 0} for b, k in keys.items() if b != "scl"}
    if "scl" in keys:
        assets[keys["scl"]] = {"data_type": "uint8", "nodata": 0}
    return {"*": {"assets": assets}}


#: Bands s2cloudless needs, by our band names (B01 B02 B04 B05 B08 B8A B09 B10 B11 B12).
S2CLOUDLESS_INPUTS = ("coastal", "blue", "red", "rededge1", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22")


class _NotAligned(Exception):
    """An asset is not on a pixel lattice nested in the tile's: read it with odc-stac instead."""


def _nested_window(src: Any, tile: GeoBox) -> tuple[Any, NDArray[np.int64], NDArray[np.int64]] | None:
    """For an open raster on the tile's CRS whose pixels are ``f`` x ``f`` tile pixels on the same
    lattice (10, 20, 60 m Sentinel-2 bands on a 10 m grid): the source window under the tile and, per
    tile row/column, the row/column in that window (pixel repetition = nearest neighbour). None when
    the tile does not touch the raster."""
    from rasterio.windows import Window

    t, a = src.transform, tile.affine
    if src.crs is None or tile.crs is None or t.b != 0 or t.d != 0 or a.b != 0 or a.d != 0:
        raise _NotAligned
    if src.crs.to_epsg() is None or src.crs.to_epsg() != tile.crs.epsg:
        raise _NotAligned
    fx, fy = t.a / a.a, t.e / a.e
    f = round(fx)
    ox, oy = (a.c - t.c) / a.a, (a.f - t.f) / a.e  # tile origin in tile pixels from the raster origin
    if f < 1 or abs(fx - f) > 1e-9 or abs(fy - f) > 1e-9 or abs(ox - round(ox)) > 1e-6 or abs(oy - round(oy)) > 1e-6:
        raise _NotAligned
    h, w = tile.shape
    cols = (round(ox) + np.arange(w)) // f  # source column of each tile column
    rows = (round(oy) + np.arange(h)) // f
    c0, c1 = max(int(cols[0]), 0), min(int(cols[-1]) + 1, src.width)
    r0, r1 = max(int(rows[0]), 0), min(int(rows[-1]) + 1, src.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0), rows - r0, cols - c0


_REPEAT: list[Any] = []


def _repeat_kernel() -> Any:
    """``out[i, j] = data[rows[i], cols[j]]`` compiled by Numba (cached on disk): one pass, about
    twice as fast as two ``np.repeat`` (measured on 2048^2 px)."""
    if not _REPEAT:
        import numba

        @numba.njit(cache=True, nogil=True)
        def repeat_pixels(data, rows, cols, out):  # pragma: no cover - compiled
            for i in range(out.shape[0]):
                row = data[rows[i]]
                for j in range(out.shape[1]):
                    out[i, j] = row[cols[j]]

        _REPEAT.append(repeat_pixels)
    return _REPEAT[0]


def _upsample(data: NDArray[Any], rows: NDArray[np.int64], cols: NDArray[np.int64]) -> NDArray[Any]:
    """``data[rows][:, cols]`` for monotonic runs of repeated indices (pixel repetition): a slice when
    nothing repeats, else one compiled gather.

    >>> _upsample(np.array([[1, 2], [3, 4]], np.uint16), np.array([0, 0, 1]), np.array([0, 1, 1])).tolist()
    [[1, 2, 2], [1, 2, 2], [3, 4, 4]]
    """
    if rows.size == 0 or cols.size == 0:
        return data[:0, :0]
    r0, c0 = int(rows[0]), int(cols[0])
    nr, nc = int(rows[-1]) - r0 + 1, int(cols[-1]) - c0 + 1
    block = data[r0:r0 + nr, c0:c0 + nc]
    if nr == rows.size and nc == cols.size:
        return block
    out = np.empty((rows.size, cols.size), dtype=data.dtype)
    _repeat_kernel()(data, rows.astype(np.int64), cols.astype(np.int64), out)
    return out


#: Band files kept open per thread between chunk tasks (least recently used closed first): the next
#: chunk of the same day reuses GDAL's decoded blocks on the shared edge and skips re-opening the file
#: (22 % less decoding on 2048 px chunks, docs/performance.md). GDAL's block cache bounds the memory.
OPEN_DATASETS = 64
_open_local = threading.local()


def _dataset(href: str) -> Any:
    """The open dataset of ``href`` from this thread's cache (opened on a miss)."""
    import rasterio

    cache: OrderedDict[str, Any] = _open_local.__dict__.setdefault("cache", OrderedDict())
    src = cache.pop(href, None)
    if src is None or src.closed:
        src = rasterio.open(href)
    cache[href] = src
    while len(cache) > OPEN_DATASETS:
        cache.popitem(last=False)[1].close()
    return src


def _forget(href: str) -> None:
    """Close and drop a cached dataset (after a failure: the retry opens the file again)."""
    cache = _open_local.__dict__.get("cache", {})
    src = cache.pop(href, None)
    if src is not None:
        src.close()


def close_datasets() -> None:
    """Close the band files this thread keeps open (the end of a run)."""
    cache = _open_local.__dict__.get("cache", {})
    while cache:
        cache.popitem()[1].close()


def _read_direct(items: Sequence[Any], tile: GeoBox,
                 keys: dict[str, str]) -> tuple[dict[str, NDArray[Any]], list[Any]]:
    """Decode only the tile's window of each asset with rasterio, upsampled by pixel repetition,
    same-day items mosaicked (first non-zero pixel); return the bands and the items that are on
    another CRS or lattice (not read: a tile of the neighbouring UTM zone). Raises
    :class:`_NotAligned` when an item is on the tile's lattice for one band but not for another."""
    h, w = tile.shape
    out: dict[str, NDArray[Any]] = {}
    others: list[Any] = []
    for i_band, (b, k) in enumerate(keys.items()):
        acc: NDArray[Any] | None = None
        dtype: Any = None
        for it in items:
            if any(it is o for o in others):
                continue
            href = it.assets[k].href
            try:
                src = _dataset(href)
                nested = _nested_window(src, tile)
                dtype = src.dtypes[0]
                if nested is None:
                    continue
                win, rows, cols = nested
                data = src.read(1, window=win)
            except _NotAligned:
                if i_band == 0:
                    others.append(it)
                    continue
                raise
            except Exception as exc:  # GDAL raises many types; read_bands retries and describes them
                _forget(href)
                raise _AssetFailure(f"{it.id} asset {k}", href) from exc
            ok_r = (rows >= 0) & (rows < data.shape[0])
            ok_c = (cols >= 0) & (cols < data.shape[1])
            sub = _upsample(data, rows[ok_r], cols[ok_c])
            if acc is None and ok_r.all() and ok_c.all():
                acc = data if sub.shape == data.shape else np.ascontiguousarray(sub)  # the window is the tile
                continue
            r0, c0 = int(np.argmax(ok_r)), int(np.argmax(ok_c))  # ok rows/cols are one contiguous run
            if acc is None:  # the first item: its part of the tile, the rest nodata (0)
                acc = np.zeros((h, w), dtype=dtype)
                acc[r0:r0 + sub.shape[0], c0:c0 + sub.shape[1]] = sub
                continue
            cur = acc[r0:r0 + sub.shape[0], c0:c0 + sub.shape[1]]
            take = (cur == 0) & (sub != 0)
            cur[take] = sub[take]
        if acc is None:
            acc = np.zeros((h, w), dtype=dtype or np.uint16)
        out[b] = acc
    return out, others


class _AssetFailure(Exception):
    """A band file failed in the direct reader: ``args`` = (item and asset, file); the cause says why."""


def read_bands(items: Sequence[Any], tile: GeoBox, keys: dict[str, str], *,
               resampling: str = "nearest") -> dict[str, NDArray[Any]]:
    """Read the assets ``keys`` (our band name -> asset key) of same-day ``items`` over ``tile``:
    digital numbers, mosaicked (first valid item), nearest-neighbour onto the tile's pixels.

    Assets on the tile's CRS and pixel lattice (the usual case: a zone's own Sentinel-2 tiles on
    that zone's 10 m grid) are decoded directly with rasterio, window by window, and 20 m / 60 m
    bands upsampled by pixel repetition, which is what nearest-neighbour resampling gives there
    (measured faster than odc-stac: ``docs/performance.md``). Anything else (another UTM zone,
    another lattice, ``resampling`` other than nearest) goes through odc-stac's reprojection.

    Transient failures (connection resets, timeouts, HTTP 429 and 5xx) are retried with backoff
    within the bounded budget of :mod:`gli_toolbox.retry`; a retry asks the server again instead of
    GDAL's cache.

    Raises
    ------
    AssetReadError
        One readable line naming the items (and asset) and what went wrong (HTTP status, reset,
        timeout, damaged or truncated file ...), without credentials.
    """
    attempts = itertools.count()
    ids = ", ".join(i.id for i in items)
    read = functools.partial(_read_once, items, tile, keys, resampling, attempts)
    with retry.capture_gdal_messages() as gdal_messages:
        try:
            return retry.call_with_retry(read, what=f"reading {ids}")
        except (AssetReadError, ConfigError):
            raise
        except _AssetFailure as exc:
            cause = exc.__cause__ or exc
            what, href = exc.args
            raise AssetReadError(f"cannot read {what}: {retry.describe_failure(cause, gdal_messages, asset=href)}") from None
        except Exception as exc:  # noqa: BLE001 - GDAL/odc raise many types for unreadable assets
            raise AssetReadError(f"cannot read {ids}: {retry.describe_failure(exc, gdal_messages)}") from None


def _read_once(items: Sequence[Any], tile: GeoBox, keys: dict[str, str], resampling: str,
               attempts: Iterator[int]) -> dict[str, NDArray[Any]]:
    """One attempt of :func:`read_bands`; attempts after the first bypass GDAL's cache."""
    import rasterio

    uncached = next(attempts) > 0
    env = retry.gdal_env(items, uncached=uncached)
    if uncached:  # a retry asks the server again: no file kept open from before
        for it in items:
            for k in keys.values():
                _forget(it.assets[k].href)
    if resampling == "nearest":
        try:
            with rasterio.Env(**env):
                out, others = _read_direct(items, tile, keys)
                if not others or not any((a == 0).any() for a in out.values()):
                    return out  # the tile's own zone covers it: the other zone's tiles are not needed
                # gaps (tile edge at a zone border): filled from the other zone's tiles, reprojected
                fill = _read_odc(others, tile, keys, resampling)
            for b, a in out.items():
                take = (a == 0) & (fill[b] != 0)
                a[take] = fill[b][take]
            return out
        except _NotAligned:
            pass
    with rasterio.Env(**env):
        return _read_odc(items, tile, keys, resampling)


def _read_odc(items: Sequence[Any], tile: GeoBox, keys: dict[str, str], resampling: str) -> dict[str, NDArray[Any]]:
    """odc-stac's reading of ``items`` onto ``tile`` (any CRS and lattice), fused by solar day."""
    import odc.stac  # imported here: 0.6 s (with dask.array) that a run reading only its own zone's tiles does not need

    ds = odc.stac.load(items, bands=list(keys.values()), geobox=tile, groupby="solar_day",
                       resampling=resampling, stac_cfg=_stac_cfg(keys), fail_on_error=True)
    return {b: ds[k].isel(time=0).values for b, k in keys.items()}  # pixels are read here


@dataclass
class MaskPlan:
    """The cloud-mask policy for one group of same-day items: which assets to read and how to mask."""

    keys: dict[str, str]
    s2cloudless: bool
    notes: list[str]


def mask_plan(items: Sequence[Any], bands: Sequence[str], cloud_detector: str) -> MaskPlan:
    """Decide how a group of items is masked (SCL, s2cloudless or nothing) and which assets that needs.

    Raises
    ------
    AssetReadError
        An item lacks one of ``bands``.
    """
    notes: list[str] = []
    found = {b: providers.asset_key(items[0], b) for b in [*bands, "scl"]}
    missing = [b for b in bands if found[b] is None]
    if missing:
        raise AssetReadError(f"{items[0].id} has no {', '.join(missing)} asset (keys: {', '.join(items[0].assets)})")
    if cloud_detector in ("scl", "none"):
        found["scl"] = found["scl"] if cloud_detector == "scl" else None
    use_s2cloudless = cloud_detector == "s2cloudless" or (cloud_detector == "auto" and found["scl"] is None)
    if use_s2cloudless:
        if cloud_detector == "s2cloudless":
            found["scl"] = None
        extra = {b: providers.asset_key(items[0], b) for b in S2CLOUDLESS_INPUTS if b not in found}
        if all(extra.values()):
            found.update(extra)
        else:
            use_s2cloudless = False
            notes.append(
                f"{items[0].id}: no scene classification and no {', '.join(b for b, k in extra.items() if not k)} "
                "band for s2cloudless; clouds and shadows are not masked"
            )
    return MaskPlan({b: k for b, k in found.items() if k is not None}, use_s2cloudless, notes)


def needs_s2cloudless(scenes: Sequence[Scene], cloud_detector: str) -> bool:
    """Whether a day's scenes are masked with s2cloudless (no SCL, or forced)."""
    try:
        return any(mask_plan([s.item], ["green", "nir"], cloud_detector).s2cloudless for s in scenes)
    except AssetReadError:
        return False


def s2cloudless_mask(refl: dict[str, NDArray[np.float32]], item: Any, pixel_m: float) -> tuple[NDArray[np.bool_], str]:
    """Clouds and (with sun angles) projected cloud shadows from top-of-atmosphere reflectances."""
    from .clouds import cloud_mask, cloud_probability, clouds_and_shadows

    toa = {providers.S2_BAND_IDS[b]: refl[b] for b in S2CLOUDLESS_INPUTS}
    sun = providers.sun_angles(item)
    if sun is not None and sun[1] > 0:
        cloud, shadow = clouds_and_shadows(toa, sun_azimuth_deg=sun[0], sun_elevation_deg=sun[1], pixel_m=pixel_m)
        return cloud | shadow, f"{item.id}: no scene classification; clouds and shadows from s2cloudless"
    mask = cloud_mask(cloud_probability(toa, block_px=max(1, round(60.0 / pixel_m))))
    return mask, (f"{item.id}: no scene classification and no sun angles; clouds from s2cloudless, "
                  "cloud shadows not masked")


def _over(tile: GeoBox, items: list[Any]) -> list[Any]:
    """The items whose footprint touches the tile (same-day tiles of other zones usually do not)."""
    import shapely.geometry
    from odc.geo.geom import Geometry

    tbox = shapely.geometry.box(*tile.boundingbox)
    assert tile.crs is not None
    return [it for it in items
            if it.geometry is None
            or Geometry(shapely.geometry.shape(it.geometry), "EPSG:4326").to_crs(tile.crs).geom.intersects(tbox)]


@dataclass
class DayGroup:
    """Digital numbers of one day's items that share a reflectance rule, read over one chunk."""

    items: list[Any]
    dn: dict[str, NDArray[Any]]
    """Band name -> DN on the chunk grid (``scl`` included when the items have it and it is used)."""
    scale: float
    offset: float
    nodata: int
    s2cloudless: bool
    """Clouds of these items come from s2cloudless (no scene classification, or forced)."""


def read_day_dn(scenes: Sequence[Scene], tile: GeoBox, *, need_swir: bool, cloud_detector: str = "auto",
                coarse_clouds: bool = False) -> tuple[list[DayGroup], list[str]]:
    """Read one acquisition day over ``tile`` as digital numbers: one :class:`DayGroup` per
    reflectance rule (same-day tiles normally share one), and the notes for ``run.json``.

    The DN are what :func:`read_bands` returns (mosaicked, nearest-neighbour on the tile's pixels);
    the group's ``offset`` is the provider's rule, already corrected when the pixels show that the
    offset was removed (:func:`gli_toolbox.water.offset_already_removed`). With ``coarse_clouds``
    (the day's coarse cloud pass exists) the s2cloudless input bands are not read.

    Raises
    ------
    AssetReadError
        When a band file cannot be read; the caller skips the day and records it.
    """
    bands = ["green", "nir"] + (["swir16"] if need_swir else [])
    by_rule: dict[tuple[Any, ...], list[Scene]] = defaultdict(list)
    for s in scenes:
        by_rule[providers.reflectance_rule(s.item).key()].append(s)
    groups: list[DayGroup] = []
    notes: list[str] = []
    for group in by_rule.values():
        items = _over(tile, [s.item for s in group])
        if not items:
            continue
        rule = providers.reflectance_rule(items[0])
        mp = mask_plan(items, bands, cloud_detector)
        notes += mp.notes
        keys = dict(mp.keys)
        if mp.s2cloudless and coarse_clouds:  # the coarse pass has it: read only the bands the water test needs
            keys = {b: k for b, k in keys.items() if b in bands}
        dn = read_bands(items, tile, keys)
        offset = rule.offset
        if rule.verify_offset and offset != 0 and offset_already_removed(dn["green"], nodata=rule.nodata):
            offset = 0.0
            notes.append(
                f"{', '.join(i.id for i in items)}: metadata say the -1000 DN offset is still in the pixels, "
                "but the data show it was already removed; read without offset"
            )
        if "scl" not in keys and not mp.s2cloudless and cloud_detector != "none" and not any(items[0].id in n for n in notes):
            notes.append(f"{items[0].id}: no scene classification; clouds and shadows are not masked")
        groups.append(DayGroup(items, dn, rule.scale, offset, rule.nodata, mp.s2cloudless))
    return groups, notes


def read_day(scenes: Sequence[Scene], tile: GeoBox, *, need_swir: bool, cloud_detector: str = "auto",
             cloud_mask: Callable[[], Callable[[NDArray[np.float32]], NDArray[np.bool_]]] | None = None) -> Observation:
    """Read one acquisition day (one or more tiles of the same pass) over ``tile`` as reflectance.

    Scenes are grouped by their reflectance rule (they normally share one), each group is read
    and mosaicked (:func:`read_day_dn`), converted to reflectance, and the groups fused
    (first valid pixel). Clouds and shadows are masked as :func:`mask_plan` decides: with the scene
    classification; where an item has none (or ``cloud_detector="s2cloudless"``), with s2cloudless
    and projected cloud shadows (:mod:`gli_toolbox.clouds`). ``cloud_mask`` may supply that mask
    (from the day's coarse pass over the whole zone, so that it does not depend on the chunk: a
    function returning a function of the tile's NIR reflectance); without it s2cloudless runs on the
    tile alone.

    Raises
    ------
    AssetReadError
        When a band file cannot be read; the caller skips the day and records it.
    """
    groups, notes = read_day_dn(scenes, tile, need_swir=need_swir, cloud_detector=cloud_detector,
                                coarse_clouds=cloud_mask is not None)
    return observation(groups, tile, need_swir=need_swir, notes=notes, cloud_mask=cloud_mask)


def observation(groups: Sequence[DayGroup], tile: GeoBox, *, need_swir: bool, notes: list[str],
                cloud_mask: Callable[[], Callable[[NDArray[np.float32]], NDArray[np.bool_]]] | None = None) -> Observation:
    """Reflectance of one day from its :class:`DayGroup` s: converted, masked, fused (first valid group)."""
    bands = ["green", "nir"] + (["swir16"] if need_swir else [])
    shape = tile.shape
    out: dict[str, NDArray[np.float32]] = {}
    scl_out: NDArray[np.uint8] | None = None
    valid: NDArray[np.bool_] | None = None
    notes = list(notes)
    given: Callable[[NDArray[np.float32]], NDArray[np.bool_]] | None = None
    for g in groups:
        items, dn = g.items, g.dn
        refl = {b: to_reflectance(dn[b], scale=g.scale, offset=g.offset, nodata=g.nodata) for b in dn if b != "scl"}
        ok = np.isfinite(refl[bands[0]])
        for b in bands[1:]:
            ok &= np.isfinite(refl[b])
        if g.s2cloudless:
            if cloud_mask is not None:
                given = cloud_mask() if given is None else given
                ok &= ~given(refl["nir"])
                notes.append(f"{items[0].id}: no scene classification; clouds and shadows from s2cloudless")
            else:
                mask, note = s2cloudless_mask(refl, items[0], float(abs(tile.affine.a)))
                ok &= ~mask
                notes.append(note)
        if "scl" in dn:
            scl = dn["scl"].astype(np.uint8)
            ok &= scl_valid(scl)
            if scl_out is None:
                scl_out = scl
            else:
                take_scl = (scl_out == 0) & (scl != 0)
                scl_out[take_scl] = scl[take_scl]
        if valid is None:  # the first group: take its arrays as they are (NaN where not ok)
            for b in bands:
                out[b] = refl[b]
                out[b][~ok] = np.nan
            valid = ok
            continue
        take = ok & ~valid
        for b in bands:
            out[b][take] = refl[b][take]
        valid |= take
    if valid is None:  # no item over the tile
        valid = np.zeros(shape, dtype=bool)
        out = {b: np.full(shape, np.nan, dtype=np.float32) for b in bands}
    return Observation(out["green"], out["nir"], out.get("swir16"), valid, scl_out, notes)


def read_toa(scenes: Sequence[Scene], tile: GeoBox) -> dict[str, NDArray[np.float32]]:
    """The ten s2cloudless bands of a day (top-of-atmosphere reflectance) averaged onto ``tile``
    (a coarse grid: the day's cloud pass), same-day scenes mosaicked; NaN where no scene has data.

    Raises
    ------
    AssetReadError
        A band file cannot be read, or an item lacks one of the bands.
    """
    out = {b: np.full(tile.shape, np.nan, dtype=np.float32) for b in S2CLOUDLESS_INPUTS}
    groups: dict[tuple[Any, ...], list[Scene]] = defaultdict(list)
    for s in scenes:
        groups[providers.reflectance_rule(s.item).key()].append(s)
    for group in groups.values():
        items = _over(tile, [s.item for s in group])
        if not items:
            continue
        rule = providers.reflectance_rule(items[0])
        keys = {b: providers.asset_key(items[0], b) for b in S2CLOUDLESS_INPUTS}
        missing = [b for b, k in keys.items() if k is None]
        if missing:
            raise AssetReadError(f"{items[0].id} has no {', '.join(missing)} asset for s2cloudless")
        dn = read_bands(items, tile, {b: k for b, k in keys.items() if k is not None}, resampling="average")
        for b in S2CLOUDLESS_INPUTS:
            refl = to_reflectance(dn[b], scale=rule.scale, offset=rule.offset, nodata=rule.nodata)
            take = np.isnan(out[b]) & np.isfinite(refl)
            out[b][take] = refl[take]
    return out
