"""Read a DEM for the processing grid: from a file, or Copernicus GLO-30 from the STAC provider.

The DEM is kept on a coarser grid (``resolution_m``, 30 m = the DEM's own resolution) that covers
the processing grid plus a margin, so that cast shadows from ridges outside the AOI are found.
Values for a chunk of the 10 m grid are resampled from it on demand.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox
from rasterio.warp import Resampling, reproject

from .errors import ConfigError, StacError

logger = logging.getLogger(__name__)

__all__ = ["DEM_COLLECTION", "Dem", "dem_grid", "find_dem_items", "load_dem", "read_dem_blocks", "read_dem_file",
           "read_dem_items", "read_dem_stac"]

#: Copernicus DEM GLO-30 on Planetary Computer and Earth Search v1.
DEM_COLLECTION = "cop-dem-glo-30"


def _wkt(g: GeoBox) -> str:
    if g.crs is None:
        raise ValueError("grid without CRS")
    return g.crs.to_wkt()


@dataclass
class Dem:
    """Elevation (m, float32, NaN = no data) on ``geobox``, and where it came from."""

    elevation: NDArray[np.float32]
    geobox: GeoBox
    source: str

    def on(self, target: GeoBox, values: NDArray[np.floating] | None = None,
           resampling: Literal["nearest", "bilinear"] = "bilinear") -> NDArray[np.float32]:
        """``values`` (default: the elevation) of this DEM grid resampled onto ``target``."""
        src = self.elevation if values is None else values.astype(np.float32)
        out = np.full(target.shape, np.nan, dtype=np.float32)
        reproject(src, out, src_transform=self.geobox.affine, src_crs=_wkt(self.geobox),
                  dst_transform=target.affine, dst_crs=_wkt(target), src_nodata=np.nan, dst_nodata=np.nan,
                  resampling=Resampling.nearest if resampling == "nearest" else Resampling.bilinear)
        return out


def dem_grid(grid: GeoBox, *, margin_m: float, resolution_m: float = 30.0) -> GeoBox:
    """The processing grid's extent grown by ``margin_m``, at ``resolution_m``, same CRS."""
    x0, y0, x1, y1 = grid.boundingbox
    return GeoBox.from_bbox((x0 - margin_m, y0 - margin_m, x1 + margin_m, y1 + margin_m), grid.crs,
                            resolution=resolution_m, tight=False)


def _coverage_check(elev: NDArray[np.float32], target: GeoBox, core: GeoBox, source: str) -> None:
    # share of the core (AOI grid) covered by DEM values
    inner = np.full(core.shape, np.nan, dtype=np.float32)
    reproject(elev, inner, src_transform=target.affine, src_crs=_wkt(target), dst_transform=core.affine,
              dst_crs=_wkt(core), src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.nearest)
    share = float(np.isfinite(inner).mean()) if inner.size else 0.0
    if share < 0.5:
        raise ConfigError(
            f"--dem {source} covers only {100 * share:.0f}% of the area; give a DEM that covers the AOI or use --dem auto"
        )


def read_dem_file(path: str | Path, target: GeoBox) -> NDArray[np.float32]:
    """Read any GDAL-readable DEM reprojected (bilinear) onto ``target``; nodata becomes NaN."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"--dem {path}: file not found; give a GeoTIFF DEM or --dem auto")
    out = np.full(target.shape, np.nan, dtype=np.float32)
    try:
        with rasterio.open(p) as src:
            if src.crs is None:
                raise ConfigError(f"--dem {path} has no CRS; add one (gdal_edit.py -a_srs) or use --dem auto")
            reproject(rasterio.band(src, 1), out, dst_transform=target.affine, dst_crs=_wkt(target),
                      dst_nodata=np.nan, resampling=Resampling.bilinear)
    except rasterio.errors.RasterioError as exc:
        raise ConfigError(f"--dem {path}: cannot read it as a raster ({str(exc)[:120]})") from None
    return out


def find_dem_items(stac: str, bounds_lonlat: tuple[float, float, float, float]) -> list[Any]:
    """The Copernicus DEM GLO-30 items of the STAC API (or local catalog) over ``bounds_lonlat``
    (one search for a whole zone part: the chunk tasks then read from these items)."""
    from shapely.geometry import box

    from . import search

    source = search.open_source(stac)
    if DEM_COLLECTION not in source.collections() and source.is_local:
        raise StacError(f"{stac} has no {DEM_COLLECTION} collection; pass --dem PATH to a DEM file")
    items = source.search(collection=DEM_COLLECTION, intersects=box(*bounds_lonlat),
                          start="1900-01-01T00:00:00Z", end="2100-01-01T00:00:00Z", max_cloud_pct=None)
    if not items:
        raise StacError(f"no {DEM_COLLECTION} tiles found at {stac} for the area; pass --dem PATH to a DEM file")
    return list(items)


def dem_asset_key(item: Any) -> str:
    """The asset of a DEM item that holds the elevations: ``data`` (Copernicus DEM on the STAC
    APIs), else its first asset."""
    return "data" if "data" in item.assets else next(iter(item.assets))


def read_dem_items(items: Sequence[Any], target: GeoBox) -> NDArray[np.float32]:
    """The DEM ``items`` mosaicked onto ``target`` (bilinear), NaN where none covers it; transient
    network failures are retried (:mod:`gli_toolbox.retry`)."""
    import odc.stac
    from shapely.geometry import box, shape

    from . import retry

    lonlat = box(*target.extent.to_crs("EPSG:4326").geom.bounds)
    over = [it for it in items if it.geometry is None or shape(it.geometry).intersects(lonlat)]
    elev = np.full(target.shape, np.nan, dtype=np.float32)
    if not over:
        return elev
    key = dem_asset_key(over[0])

    def load() -> Any:
        with rasterio.Env(**retry.gdal_env(over)):
            ds = odc.stac.load(over, bands=[key], geobox=target, resampling="bilinear", dtype="float32", groupby="id",
                               stac_cfg={"*": {"assets": {key: {"data_type": "float32", "nodata": np.nan}}}})
            return ds[key].values

    arr = retry.call_with_retry(load, what=f"reading {DEM_COLLECTION} {', '.join(i.id for i in over)}")
    # tiles do not overlap except on edges: take the first finite value along the item axis
    for layer in arr:
        take = np.isnan(elev) & np.isfinite(layer)
        elev[take] = layer[take]
    return elev


#: Side (pixels of the DEM lattice) of the fixed blocks a chunk's DEM is cut from (15 km at 30 m).
DEM_BLOCK_PX = 512
_BLOCKS: OrderedDict[tuple[Any, ...], NDArray[np.float32]] = OrderedDict()
#: Blocks kept per process (1 MB each): neighbouring chunks share most of theirs.
_BLOCKS_KEPT = 48


def read_dem_blocks(source: str, items: Sequence[Any], target: GeoBox) -> NDArray[np.float32]:
    """The DEM (the file ``source``, or ``items`` with ``source == "auto"``) on ``target``, a window
    of the absolute lattice of :func:`dem_grid`, cut from fixed blocks of that lattice.

    Reprojecting onto the window itself made a chunk's DEM depend on the chunk's extent (GDAL's
    approximate transformer and resampling scale are set per warped region: 0.05 m of elevation and
    0.02 degrees of slope between 128 and 1024 px chunks, enough to move a lake across the slope
    limit). Each block is always warped onto the same grid, so every chunk gets the same values.
    """
    a = target.affine
    res = a.a
    h, w = target.shape
    if a.b or a.d or a.e != -res or (a.c / res) % 1 or (a.f / res) % 1:  # not on the lattice
        return read_dem_items(items, target) if source == "auto" else read_dem_file(source, target)
    span = DEM_BLOCK_PX * res
    crs = _wkt(target)
    if source == "auto":
        key: tuple[Any, ...] = ("auto", tuple(it.id for it in items))
    else:
        try:  # a file changed between two runs of one session is read again
            st = os.stat(source)
        except OSError:
            return read_dem_file(source, target)  # says what is wrong with it
        key = (source, st.st_mtime_ns, st.st_size)
    out = np.full(target.shape, np.nan, dtype=np.float32)
    for r in range(math.floor(-a.f / span), math.floor((-a.f + h * res - 1e-6) / span) + 1):
        for c in range(math.floor(a.c / span), math.floor((a.c + w * res - 1e-6) / span) + 1):
            bkey = (*key, crs, res, r, c)
            block = _BLOCKS.pop(bkey, None)
            if block is None:
                grid = GeoBox((DEM_BLOCK_PX, DEM_BLOCK_PX), Affine(res, 0, c * span, 0, -res, -r * span), target.crs)
                block = read_dem_items(items, grid) if source == "auto" else read_dem_file(source, grid)
            _BLOCKS[bkey] = block
            while len(_BLOCKS) > _BLOCKS_KEPT:
                _BLOCKS.popitem(last=False)
            col, row = round((c * span - a.c) / res), round((a.f + r * span) / res)  # block origin in target
            ty0, ty1, tx0, tx1 = max(row, 0), min(row + DEM_BLOCK_PX, h), max(col, 0), min(col + DEM_BLOCK_PX, w)
            out[ty0:ty1, tx0:tx1] = block[ty0 - row:ty1 - row, tx0 - col:tx1 - col]
    return out


def read_dem_stac(stac: str, target: GeoBox) -> NDArray[np.float32]:
    """Copernicus DEM GLO-30 tiles from the STAC API (or local catalog) mosaicked onto ``target``."""
    return read_dem_items(find_dem_items(stac, target.extent.to_crs("EPSG:4326").geom.bounds), target)


def load_dem(source: str, grid: GeoBox, *, stac: str, margin_m: float = 5000.0, resolution_m: float = 30.0) -> Dem:
    """DEM for ``grid`` plus ``margin_m``: ``source`` is a file path or ``"auto"`` (GLO-30 via ``stac``)."""
    target = dem_grid(grid, margin_m=margin_m, resolution_m=resolution_m)
    if source == "auto":
        elev = read_dem_stac(stac, target)
        label = f"{DEM_COLLECTION} from {stac}"
    else:
        elev = read_dem_file(source, target)
        label = str(source)
    _coverage_check(elev, target, grid, source)
    return Dem(elev, target, label)
