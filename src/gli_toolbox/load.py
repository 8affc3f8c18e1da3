"""Read Sentinel-2 pixels for one chunk of the output grid: only the needed bands, only the window.

odc-stac does the windowed reading, reprojection and same-day mosaicking (local files, HTTP(S)
COGs through GDAL's /vsicurl/, S3); this adapter adds the provider's reflectance rule and the
scene-classification mask.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import odc.stac
import rasterio.features
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox
from shapely.geometry.base import BaseGeometry

from . import providers, retry
from .errors import AssetReadError, ConfigError
from .search import Scene
from .water import offset_already_removed, scl_valid, to_reflectance

logger = logging.getLogger(__name__)

__all__ = ["Observation", "aoi_mask", "chunks", "output_grid", "read_day", "utm_crs"]


def utm_crs(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone containing (lon, lat).

    >>> utm_crs(74.6, 42.8), utm_crs(-70.0, -33.0)
    ('EPSG:32643', 'EPSG:32719')
    """
    zone = min(math.floor((lon + 180.0) / 6.0) + 1, 60)
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


#: Largest accepted areal scale error of the output CRS at the AOI centre (UTM: < 0.3 % within its zone).
MAX_AREA_DISTORTION = 0.01


def area_distortion(crs: object, lon: float, lat: float) -> float:
    """Areal scale factor of a projected CRS at (lon, lat): 1.0 = true areas.

    >>> round(area_distortion("EPSG:32643", 75.0, 42.0), 4), round(area_distortion("EPSG:3857", 75.0, 42.0), 2)
    (0.9992, 1.81)
    """
    import pyproj

    return float(pyproj.Proj(pyproj.CRS.from_user_input(crs)).get_factors(lon, lat).areal_scale)


def output_grid(aoi_wgs84: BaseGeometry, *, crs: str | None, resolution_m: float) -> GeoBox:
    """The one processing grid: the AOI's bounding box in ``crs`` (default: UTM zone of the AOI
    centre), snapped outward to multiples of ``resolution_m`` so it lines up with Sentinel-2 pixels.
    """
    import pyproj
    from odc.geo.geom import Geometry

    c = aoi_wgs84.centroid
    target = crs or utm_crs(c.x, c.y)
    try:
        crs_obj = pyproj.CRS.from_user_input(target)
    except pyproj.exceptions.CRSError:
        raise ConfigError(f"--crs: {target!r} is not a known CRS; give an EPSG code such as EPSG:32643") from None
    if not crs_obj.is_projected or crs_obj.axis_info[0].unit_name not in ("metre", "meter"):
        raise ConfigError(f"--crs: {target} is not a projected CRS in metres; lake areas need one, e.g. a UTM zone (EPSG:326xx)")
    distortion = area_distortion(crs_obj, c.x, c.y)
    if abs(distortion - 1.0) > MAX_AREA_DISTORTION:
        raise ConfigError(
            f"--crs: {target} stretches areas by {100 * (distortion - 1):+.1f}% at the AOI (e.g. Web Mercator); "
            f"use its UTM zone {utm_crs(c.x, c.y)} or an equal-area CRS so that 10 m pixels are 10 m on the ground"
        )
    geom = Geometry(aoi_wgs84, "EPSG:4326").to_crs(crs_obj)
    return GeoBox.from_geopolygon(geom, resolution=resolution_m, crs=crs_obj, tight=False)


def chunks(grid: GeoBox, chunk_px: int) -> Iterator[tuple[tuple[slice, slice], GeoBox]]:
    """Split the grid into independent square chunks: ``((row_slice, col_slice), sub_geobox)``."""
    ny, nx = grid.shape
    for y0 in range(0, ny, chunk_px):
        for x0 in range(0, nx, chunk_px):
            sl = (slice(y0, min(y0 + chunk_px, ny)), slice(x0, min(x0 + chunk_px, nx)))
            yield sl, grid[sl]


def aoi_mask(grid: GeoBox, aoi_wgs84: BaseGeometry) -> NDArray[np.bool_]:
    """True for grid pixels whose centre lies inside the AOI."""
    from odc.geo.geom import Geometry

    assert grid.crs is not None
    geom = Geometry(aoi_wgs84, "EPSG:4326").to_crs(grid.crs).geom
    return rasterio.features.geometry_mask([geom], out_shape=grid.shape, transform=grid.affine, invert=True)


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


def _read_bands(items: list[Any], keys: dict[str, str], tile: GeoBox, attempts: Iterator[int]) -> dict[str, NDArray[Any]]:
    """DN pixels of ``keys`` over ``tile``; a retry (``attempts`` past 0) asks the server again."""
    import rasterio

    with rasterio.Env(**retry.gdal_env(items, uncached=next(attempts) > 0)):
        ds = odc.stac.load(items, bands=list(keys.values()), geobox=tile, groupby="solar_day",
                           resampling="nearest", stac_cfg=_stac_cfg(keys), fail_on_error=True)
        return {b: ds[k].isel(time=0).values for b, k in keys.items()}  # pixels are read here


#: Bands s2cloudless needs, by our band names (B01 B02 B04 B05 B08 B8A B09 B10 B11 B12).
S2CLOUDLESS_INPUTS = ("coastal", "blue", "red", "rededge1", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22")


def read_day(scenes: Sequence[Scene], tile: GeoBox, *, need_swir: bool, cloud_detector: str = "auto") -> Observation:
    """Read one acquisition day (one or more tiles of the same pass) over ``tile``.

    Scenes are grouped by their reflectance rule (they normally share one), each group is read
    and mosaicked by odc-stac, converted to reflectance, and the groups fused (first valid pixel).
    Clouds and shadows are masked with the scene classification; where an item has none (or
    ``cloud_detector="s2cloudless"``), with s2cloudless and projected cloud shadows
    (:mod:`gli_toolbox.clouds`) when the item has the bands the model needs.

    Raises
    ------
    AssetReadError
        When a band file cannot be read; the caller skips the day and records it.
    """

    bands = ["green", "nir"] + (["swir16"] if need_swir else [])
    groups: dict[tuple[Any, ...], list[Scene]] = defaultdict(list)
    for s in scenes:
        groups[providers.reflectance_rule(s.item).key()].append(s)

    shape = tile.shape
    out = {b: np.full(shape, np.nan, dtype=np.float32) for b in bands}
    scl_out: NDArray[np.uint8] | None = None
    valid = np.zeros(shape, dtype=bool)
    notes: list[str] = []
    for group in groups.values():
        items = [s.item for s in group]
        rule = providers.reflectance_rule(items[0])
        found = {b: providers.asset_key(items[0], b) for b in bands + ["scl"]}
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
        keys: dict[str, str] = {b: k for b, k in found.items() if k is not None}
        read = functools.partial(_read_bands, items, keys, tile, itertools.count())
        with retry.capture_gdal_messages() as gdal_messages:
            try:
                dn = retry.call_with_retry(read, what=f"reading {', '.join(i.id for i in items)}")
            except (AssetReadError, ConfigError):
                raise
            except Exception as exc:  # noqa: BLE001 - GDAL/odc raise many types for unreadable assets
                why = retry.describe_failure(exc, gdal_messages)
                raise AssetReadError(f"cannot read {', '.join(i.id for i in items)}: {why}") from None
        offset = rule.offset
        if rule.verify_offset and offset != 0 and offset_already_removed(dn["green"], nodata=rule.nodata):
            offset = 0.0
            notes.append(
                f"{', '.join(i.id for i in items)}: metadata say the -1000 DN offset is still in the pixels, "
                "but the data show it was already removed; read without offset"
            )
        refl = {b: to_reflectance(dn[b], scale=rule.scale, offset=offset, nodata=rule.nodata) for b in keys if b != "scl"}
        ok = np.all([np.isfinite(refl[b]) for b in bands], axis=0)
        if use_s2cloudless:
            from .clouds import clouds_and_shadows

            toa = {providers.S2_BAND_IDS[b]: refl[b] for b in S2CLOUDLESS_INPUTS}
            sun = providers.sun_angles(items[0])
            if sun is not None and sun[1] > 0:
                cloud, shadow = clouds_and_shadows(toa, sun_azimuth_deg=sun[0], sun_elevation_deg=sun[1],
                                                   pixel_m=float(abs(tile.affine.a)))
                ok &= ~(cloud | shadow)
                notes.append(f"{items[0].id}: no scene classification; clouds and shadows from s2cloudless")
            else:
                from .clouds import cloud_mask, cloud_probability

                ok &= ~cloud_mask(cloud_probability(toa, block_px=max(1, round(60.0 / abs(tile.affine.a)))))
                notes.append(f"{items[0].id}: no scene classification and no sun angles; clouds from s2cloudless, "
                             "cloud shadows not masked")
        if "scl" in keys:
            scl = dn["scl"].astype(np.uint8)
            ok &= scl_valid(scl)
            if scl_out is None:
                scl_out = np.zeros(shape, dtype=np.uint8)
            take_scl = (scl_out == 0) & (scl != 0)
            scl_out[take_scl] = scl[take_scl]
        elif not use_s2cloudless and cloud_detector != "none" and not any(items[0].id in n for n in notes):
            notes.append(f"{items[0].id}: no scene classification; clouds and shadows are not masked")
        take = ok & ~valid
        for b in bands:
            out[b][take] = refl[b][take]
        valid |= take
    return Observation(out["green"], out["nir"], out.get("swir16"), valid, scl_out, notes)
