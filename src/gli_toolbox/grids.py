"""Processing grids: UTM zones, the 10 m grid of each zone part of an AOI, and its chunks.

An AOI of any size is split along UTM zone borders; each part is processed on the 10 m grid of its
own zone (true areas everywhere, pixels aligned with the Sentinel-2 tiles of that zone), unless the
user forces one CRS. Every grid is snapped outward to multiples of the resolution, so a chunk's
pixels are the same whatever the AOI or the chunk size.

No odc-stac here (``gli track`` imports :func:`utm_crs` without the reading stack); grids are
``odc.geo`` GeoBoxes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely.geometry
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from .errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_AREA_DISTORTION",
    "Chunk",
    "ZonePart",
    "aoi_mask",
    "area_distortion",
    "chunks",
    "clip_polygons",
    "output_grid",
    "part_mask",
    "utm_crs",
    "utm_zone_label",
    "zone_parts",
]

#: Largest accepted areal scale error of the output CRS at the AOI centre (UTM: < 0.3 % within its zone).
MAX_AREA_DISTORTION = 0.01


def utm_crs(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone containing (lon, lat).

    >>> utm_crs(74.6, 42.8), utm_crs(-70.0, -33.0)
    ('EPSG:32643', 'EPSG:32719')
    """
    zone = min(math.floor((lon + 180.0) / 6.0) + 1, 60)
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def utm_zone_label(crs: str) -> str:
    """Short label of a UTM CRS (``"43N"``), or the CRS text with ``:`` removed for other CRSs.

    >>> utm_zone_label("EPSG:32643"), utm_zone_label("EPSG:32719"), utm_zone_label("EPSG:3035")
    ('43N', '19S', 'EPSG3035')
    """
    code = crs.upper().removeprefix("EPSG:")
    if code.isdigit() and (32601 <= int(code) <= 32660 or 32701 <= int(code) <= 32760):
        n = int(code)
        return f"{n % 100:02d}{'N' if n < 32700 else 'S'}"
    return "".join(ch for ch in crs if ch.isalnum())


def area_distortion(crs: object, lon: float, lat: float) -> float:
    """Areal scale factor of a projected CRS at (lon, lat): 1.0 = true areas.

    >>> round(area_distortion("EPSG:32643", 75.0, 42.0), 4), round(area_distortion("EPSG:3857", 75.0, 42.0), 2)
    (0.9992, 1.81)
    """
    import pyproj

    return float(pyproj.Proj(pyproj.CRS.from_user_input(crs)).get_factors(lon, lat).areal_scale)


def _checked_crs(target: str, lon: float, lat: float) -> Any:
    import pyproj

    try:
        crs_obj = pyproj.CRS.from_user_input(target)
    except pyproj.exceptions.CRSError:
        raise ConfigError(f"--crs: {target!r} is not a known CRS; give an EPSG code such as EPSG:32643") from None
    if not crs_obj.is_projected or crs_obj.axis_info[0].unit_name not in ("metre", "meter"):
        raise ConfigError(f"--crs: {target} is not a projected CRS in metres; lake areas need one, e.g. a UTM zone (EPSG:326xx)")
    distortion = area_distortion(crs_obj, lon, lat)
    if abs(distortion - 1.0) > MAX_AREA_DISTORTION:
        raise ConfigError(
            f"--crs: {target} stretches areas by {100 * (distortion - 1):+.1f}% at the AOI (e.g. Web Mercator); "
            f"use its UTM zone {utm_crs(lon, lat)} or an equal-area CRS so that 10 m pixels are 10 m on the ground"
        )
    return crs_obj


def output_grid(aoi_wgs84: BaseGeometry, *, crs: str | None, resolution_m: float):  # -> GeoBox
    """One grid over the whole AOI: its bounding box in ``crs`` (default: UTM zone of the AOI
    centre), snapped outward to multiples of ``resolution_m`` so it lines up with Sentinel-2 pixels.
    """
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import Geometry

    c = aoi_wgs84.centroid
    crs_obj = _checked_crs(crs or utm_crs(c.x, c.y), c.x, c.y)
    geom = Geometry(aoi_wgs84, "EPSG:4326").to_crs(crs_obj)
    return GeoBox.from_geopolygon(geom, resolution=resolution_m, crs=crs_obj, tight=False)


@dataclass(frozen=True)
class ZonePart:
    """The part of an AOI processed on one grid (normally one UTM zone).

    ``geometry_wgs84`` is the AOI clipped to the zone; ``grid`` covers it at the run's resolution.
    """

    crs: str
    geometry_wgs84: BaseGeometry
    grid: object  # odc.geo GeoBox

    @property
    def label(self) -> str:
        """Short name used in file names and run.json (``"43N"``)."""
        return utm_zone_label(self.crs)


def zone_parts(aoi_wgs84: BaseGeometry, *, crs: str | None, resolution_m: float) -> list[ZonePart]:
    """Split the AOI into the parts processed on one grid each.

    With ``crs`` the whole AOI is one part on that CRS (checked for area distortion). Otherwise the
    AOI is cut along UTM zone borders (every 6 degrees of longitude, and at the equator) and each
    part gets the grid of its own zone. Parts are ordered west to east, north before south.

    >>> from shapely.geometry import box
    >>> [p.crs for p in zone_parts(box(71.5, 41.0, 78.5, 42.0), crs=None, resolution_m=10)]
    ['EPSG:32642', 'EPSG:32643', 'EPSG:32644']
    >>> [p.crs for p in zone_parts(box(74.1, 41.0, 74.2, 41.1), crs=None, resolution_m=10)]
    ['EPSG:32643']
    """
    if crs is not None:
        return [ZonePart(crs, aoi_wgs84, output_grid(aoi_wgs84, crs=crs, resolution_m=resolution_m))]
    minx, miny, maxx, maxy = aoi_wgs84.bounds
    z0 = min(math.floor((minx + 180.0) / 6.0), 59)
    z1 = min(math.floor((maxx + 180.0) / 6.0), 59)
    parts = []
    for z in range(z0, z1 + 1):
        lon0 = -180.0 + 6.0 * z
        for lat0, lat1 in ((0.0, 90.0), (-90.0, 0.0)):
            if maxy < lat0 or miny >= lat1 or (lat0 < 0 and miny >= 0):
                continue
            strip = shapely.geometry.box(lon0, lat0, lon0 + 6.0, lat1)
            part = aoi_wgs84.intersection(strip)
            if part.is_empty or part.area == 0:
                continue
            part = shapely.geometry.MultiPolygon(
                [g for g in getattr(part, "geoms", [part]) if g.geom_type == "Polygon" and g.area > 0]
            ) if part.geom_type not in ("Polygon", "MultiPolygon") else part
            if part.is_empty:
                continue
            zcrs = utm_crs(lon0 + 3.0, lat0 + (1.0 if lat0 >= 0 else -1.0))
            parts.append(ZonePart(zcrs, part, output_grid(part, crs=zcrs, resolution_m=resolution_m)))
    if not parts:  # a degenerate AOI (a sliver on a zone border): one part in the centre's zone
        parts = [ZonePart(utm_crs(aoi_wgs84.centroid.x, aoi_wgs84.centroid.y), aoi_wgs84,
                          output_grid(aoi_wgs84, crs=None, resolution_m=resolution_m))]
    return parts


@dataclass(frozen=True)
class Chunk:
    """One square window of a zone grid: rows ``row0:row0+height``, columns ``col0:col0+width``."""

    row0: int
    col0: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row0, self.row0 + self.height), slice(self.col0, self.col0 + self.width)

    @property
    def name(self) -> str:
        return f"r{self.row0:06d}_c{self.col0:06d}"


def chunks(grid: object, chunk_px: int) -> Iterator[Chunk]:
    """Split a grid (any object with ``.shape``) into square chunks of ``chunk_px`` (smaller at the edges).

    >>> from types import SimpleNamespace
    >>> [c.name for c in chunks(SimpleNamespace(shape=(3, 5)), 4)]
    ['r000000_c000000', 'r000000_c000004']
    """
    ny, nx = grid.shape  # type: ignore[attr-defined]
    for y0 in range(0, ny, chunk_px):
        for x0 in range(0, nx, chunk_px):
            yield Chunk(y0, x0, min(chunk_px, ny - y0), min(chunk_px, nx - x0))


def aoi_mask(grid: object, aoi_wgs84: BaseGeometry) -> NDArray[np.bool_]:
    """True for grid pixels whose centre lies inside the AOI."""
    from odc.geo.geom import Geometry

    assert grid.crs is not None  # type: ignore[attr-defined]
    geom = Geometry(aoi_wgs84, "EPSG:4326").to_crs(grid.crs).geom  # type: ignore[attr-defined]
    return part_mask(grid, geom)


def clip_polygons(geom: BaseGeometry, box: BaseGeometry) -> BaseGeometry:
    """The polygonal part of ``geom`` inside ``box`` (lines and points of the overlay dropped).

    >>> from shapely.geometry import box as b
    >>> clip_polygons(b(0, 0, 2, 2), b(1, 1, 3, 3)).area
    1.0
    """
    out = geom.intersection(box)
    if out.geom_type in ("Polygon", "MultiPolygon"):
        return out
    polys = [g for g in getattr(out, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty]
    return shapely.union_all(polys) if polys else shapely.geometry.Polygon()


def part_mask(grid: object, geom: BaseGeometry) -> NDArray[np.bool_]:
    """True for grid pixels whose centre lies inside ``geom`` (given in the grid's CRS). The geometry
    is first clipped to the grid (plus one pixel), which keeps a country outline fast on a chunk and
    leaves the vertices near the chunk untouched, so a pixel's answer does not depend on the chunk."""
    import rasterio.features

    gbox = shapely.geometry.box(*grid.boundingbox).buffer(2 * abs(grid.affine.a), join_style="mitre")  # type: ignore[attr-defined]
    if not geom.within(gbox):
        geom = clip_polygons(geom, gbox)
    if geom.is_empty:
        return np.zeros(grid.shape, dtype=np.bool_)  # type: ignore[attr-defined]
    return rasterio.features.geometry_mask([geom], out_shape=grid.shape, transform=grid.affine,  # type: ignore[attr-defined]
                                           invert=True)
