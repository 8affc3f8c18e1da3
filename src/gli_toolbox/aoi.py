"""Read and check the area of interest (AOI) file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from .errors import AoiError

logger = logging.getLogger(__name__)

__all__ = ["Aoi", "aoi_from_geometry", "geodesic_area_km2", "read_aoi"]

_GEOD = pyproj.Geod(ellps="WGS84")


def geodesic_area_km2(geom_wgs84: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid, in km2 (no projection distortion)."""
    return abs(_GEOD.geometry_area_perimeter(geom_wgs84)[0]) / 1e6


@dataclass(frozen=True)
class Aoi:
    """A checked area of interest: one (Multi)Polygon, kept in WGS84 and in its source CRS."""

    geometry_wgs84: BaseGeometry
    source: str
    source_crs: str

    @property
    def area_km2(self) -> float:
        return geodesic_area_km2(self.geometry_wgs84)

    @property
    def centre(self) -> tuple[float, float]:
        """(lon, lat) of the AOI centroid."""
        c = self.geometry_wgs84.centroid
        return float(c.x), float(c.y)

    def to_crs(self, crs: str | pyproj.CRS) -> BaseGeometry:
        """The AOI geometry in ``crs``."""
        return gpd.GeoSeries([self.geometry_wgs84], crs="EPSG:4326").to_crs(crs).iloc[0]


def _check_geometry(geom: BaseGeometry, name: str, max_km2: float) -> None:
    if geom.is_empty:
        raise AoiError(f"AOI {name} is empty; draw a polygon around the lakes to map")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise AoiError(f"AOI {name} is a {geom.geom_type}, not a polygon; the AOI must be a Polygon or MultiPolygon")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise AoiError(
            f"AOI {name} is not a valid polygon ({reason}); repair it, e.g. QGIS 'Fix geometries' or shapely.make_valid"
        )
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise AoiError(
            f"AOI {name}: coordinates {geom.bounds} are not longitude/latitude; the file's CRS is missing or wrong"
        )
    area = geodesic_area_km2(geom)
    if area > max_km2:
        raise AoiError(
            f"AOI {name} covers {area:,.0f} km2, more than the {max_km2:,.0f} km2 limit; split it into smaller areas "
            "or check its CRS/units"
        )


def aoi_from_geometry(geom: BaseGeometry, *, crs: str | pyproj.CRS = "EPSG:4326", max_km2: float = 250_000.0, name: str = "geometry") -> Aoi:
    """Build an :class:`Aoi` from a shapely geometry in ``crs`` (checked like a file)."""
    if geom is None or geom.is_empty:
        raise AoiError(f"AOI {name} is empty; draw a polygon around the lakes to map")
    if geom.geom_type in ("Polygon", "MultiPolygon") and not geom.is_valid:
        _check_geometry(geom, name, max_km2)
    wgs = gpd.GeoSeries([geom], crs=crs).to_crs("EPSG:4326").iloc[0]
    _check_geometry(wgs, name, max_km2)
    return Aoi(geometry_wgs84=wgs, source=name, source_crs=pyproj.CRS.from_user_input(crs).to_string())


def read_aoi(path: str | Path, *, max_km2: float = 250_000.0) -> Aoi:
    """Read an AOI from any vector file (GeoJSON, GeoPackage, shapefile ...).

    All features are dissolved into one (Multi)Polygon.

    Raises
    ------
    AoiError
        Missing or unreadable file, no features, not polygons, invalid (e.g. self-intersecting)
        polygons, no CRS, coordinates outside lon/lat, or an area above ``max_km2``.
    """
    p = Path(path).expanduser()
    name = str(path)
    if not p.exists():
        raise AoiError(f"AOI file {name} not found; give the path of a GeoJSON, GeoPackage or shapefile polygon")
    try:
        gdf = gpd.read_file(p)
    except Exception as exc:  # noqa: BLE001 - GDAL raises many types for broken files
        msg = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise AoiError(f"cannot read AOI {name} ({msg}); save it as GeoJSON or GeoPackage") from None
    if len(gdf) == 0 or gdf.geometry.isna().all() or gdf.geometry.is_empty.all():
        raise AoiError(f"AOI {name} has no features; draw a polygon around the lakes to map")
    if gdf.crs is None:
        raise AoiError(f"AOI {name} has no CRS; add a .prj file or save it as GeoJSON in WGS84 (EPSG:4326)")
    geoms = gdf.geometry.dropna()
    geoms = geoms[~geoms.is_empty]
    kinds = sorted(set(geoms.geom_type))
    if any(k not in ("Polygon", "MultiPolygon") for k in kinds):
        raise AoiError(f"AOI {name} contains {', '.join(kinds)} geometries; the AOI must be Polygon or MultiPolygon")
    invalid = geoms[~geoms.is_valid]
    if len(invalid):
        reason = shapely.is_valid_reason(invalid.iloc[0])
        raise AoiError(
            f"AOI {name} has an invalid polygon ({reason}); repair it, e.g. QGIS 'Fix geometries' or shapely.make_valid"
        )
    # Check lon/lat plausibility in the source CRS first: a projected file mislabelled as WGS84.
    if gdf.crs.is_geographic:
        _check_geometry(shapely.union_all(geoms.values), name, float("inf"))
    union = shapely.union_all(geoms.to_crs("EPSG:4326").values)
    _check_geometry(union, name, max_km2)
    return Aoi(geometry_wgs84=union, source=name, source_crs=gdf.crs.to_string())
