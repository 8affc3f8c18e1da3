"""Read and check the area of interest (AOI): a file, a (Geo)DataFrame, a geometry or a GeoJSON dict.

Heights (Z coordinates, e.g. from Google Earth KML or a PolygonZ shapefile) are dropped; KML and
KMZ (zipped KML) are read through GDAL; a file with several layers needs ``layer=`` (CLI
``--aoi-layer``); AOIs crossing the antimeridian (180 degrees) are refused with one line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyproj
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from .errors import AoiError

logger = logging.getLogger(__name__)

#: Default of ``max_km2``: no area limit. A region of any size is mapped chunk by chunk and the run's
#: plan states its scenes, pixels, bytes and time before anything is read; ``max_km2`` remains as
#: an optional guard (for example in a service that accepts AOIs from others).
NO_LIMIT = float("inf")

__all__ = ["Aoi", "aoi_from_geometry", "as_aoi", "geodesic_area_km2", "read_aoi"]

_GEOD = pyproj.Geod(ellps="WGS84")

#: Suffixes read as Google Earth files (KMZ is a zip with one doc.kml inside).
_KML_SUFFIXES = (".kml", ".kmz")


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


def _check_antimeridian(geom: BaseGeometry, name: str) -> None:
    """Refuse AOIs across 180 degrees: RFC 7946 split parts on both sides, or one ring spanning > 180.

    >>> from shapely.geometry import box, MultiPolygon
    >>> _check_antimeridian(box(74, 42, 75, 43), "a")
    >>> _check_antimeridian(MultiPolygon([box(179.9, 60, 180, 61), box(-180, 60, -179.9, 61)]), "a")
    Traceback (most recent call last):
    ...
    gli_toolbox.errors.AoiError: AOI a crosses the antimeridian (180 degrees longitude) ...
    """
    minx, _, maxx, _ = geom.bounds
    if maxx - minx <= 180:
        return
    if geom.geom_type == "MultiPolygon":
        raise AoiError(
            f"AOI {name} crosses the antimeridian (180 degrees longitude) or has parts more than 180 degrees apart; "
            "gli maps one side at a time: make one AOI file for the part east of 180 and one for the part west of it"
        )
    raise AoiError(
        f"AOI {name} spans {maxx - minx:.0f} degrees of longitude in one ring, which is read as going the long way "
        "round the globe; if it crosses the antimeridian, split it at 180 degrees into one AOI file per side"
    )


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
    _check_antimeridian(geom, name)
    area = geodesic_area_km2(geom)
    if area > max_km2:
        raise AoiError(
            f"AOI {name} covers {area:,.0f} km2, more than max_km2={max_km2:,.0f}; raise or drop the limit "
            "(regions of any size are mapped chunk by chunk), or check the file's CRS"
        )


def aoi_from_geometry(geom: BaseGeometry, *, crs: str | pyproj.CRS = "EPSG:4326", max_km2: float = NO_LIMIT, name: str = "geometry") -> Aoi:
    """Build an :class:`Aoi` from a shapely geometry in ``crs`` (checked like a file; heights dropped)."""
    if geom is None or geom.is_empty:
        raise AoiError(f"AOI {name} is empty; draw a polygon around the lakes to map")
    geom = shapely.force_2d(geom)
    if geom.geom_type in ("Polygon", "MultiPolygon") and not geom.is_valid:
        _check_geometry(geom, name, max_km2)
    if pyproj.CRS.from_user_input(crs).is_geographic:
        _check_geometry(geom, name, NO_LIMIT)  # antimeridian and lon/lat checks before reprojection
    wgs = gpd.GeoSeries([geom], crs=crs).to_crs("EPSG:4326").iloc[0]
    _check_geometry(wgs, name, max_km2)
    return Aoi(geometry_wgs84=wgs, source=name, source_crs=pyproj.CRS.from_user_input(crs).to_string())


def _layers(p: Path | str, name: str) -> list[str]:
    import pyogrio

    try:
        return [str(n) for n, _ in pyogrio.list_layers(p)]
    except Exception as exc:  # noqa: BLE001 - GDAL raises many types for broken files
        msg = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise AoiError(f"cannot read AOI {name} ({msg}); save it as GeoJSON or GeoPackage") from None


def _kml_in_kmz(p: Path, name: str) -> str:
    """Name of the KML document inside a KMZ (Google Earth calls it ``doc.kml``)."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as z:
            kmls = [n for n in z.namelist() if n.lower().endswith(".kml")]
    except (OSError, zipfile.BadZipFile) as exc:
        raise AoiError(f"cannot read AOI {name} ({exc}); a KMZ is a zip file: save it again from Google Earth") from None
    if not kmls:
        raise AoiError(f"AOI {name} is a zip without a .kml document inside; save it again from Google Earth")
    return "doc.kml" if "doc.kml" in kmls else kmls[0]


def _read_frame(p: Path, name: str, layer: str | None) -> gpd.GeoDataFrame:
    """All features of the AOI file (every layer of a KML/KMZ; one chosen layer of other files)."""
    source: Path | str = p
    if p.suffix.lower() == ".kmz":
        source = f"/vsizip/{p.resolve()}/{_kml_in_kmz(p, name)}"  # GDAL reads the KML inside the zip
    layers = _layers(source, name)
    if layer is not None:
        if layer not in layers:
            raise AoiError(f"AOI {name} has no layer {layer!r}; its layers are: {', '.join(layers)}")
        chosen = [layer]
    elif len(layers) > 1 and p.suffix.lower() not in _KML_SUFFIXES:
        raise AoiError(
            f"AOI {name} has {len(layers)} layers ({', '.join(layers)}); choose one with --aoi-layer NAME "
            "(Python: read_aoi(path, layer=NAME))"
        )
    else:
        chosen = layers  # Google Earth folders are layers of one KML: the AOI is all their polygons
    frames = []
    for lyr in chosen:
        try:
            frames.append(gpd.read_file(source, layer=lyr, engine="pyogrio"))
        except Exception as exc:  # noqa: BLE001 - GDAL raises many types for broken files
            msg = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
            raise AoiError(f"cannot read AOI {name} ({msg}); save it as GeoJSON or GeoPackage") from None
    frames = [f for f in frames if len(f)]
    if p.suffix.lower() in _KML_SUFFIXES and frames:
        # Google Earth files often hold pins and paths next to the polygon: use the polygons
        both = pd.concat([f.geometry.geom_type for f in frames])
        if both.isin(["Polygon", "MultiPolygon"]).any() and not both.isin(["Polygon", "MultiPolygon"]).all():
            dropped = int((~both.isin(["Polygon", "MultiPolygon"])).sum())
            logger.warning("AOI %s: %d placemark(s) that are not polygons (pins, paths) are ignored", name, dropped)
            frames = [f[f.geometry.geom_type.isin(["Polygon", "MultiPolygon"])] for f in frames]
            frames = [f for f in frames if len(f)]
    if not frames:
        return gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")
    crs = frames[0].crs
    if any(f.crs != crs for f in frames[1:]):
        frames = [f.to_crs(crs) for f in frames]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)


def read_aoi(path: str | Path, *, max_km2: float = NO_LIMIT, layer: str | None = None) -> Aoi:
    """Read an AOI from any vector file (GeoJSON, GeoPackage, shapefile, KML, KMZ ...).

    All features are dissolved into one (Multi)Polygon; heights (Z) are dropped. A file with
    several layers (a GeoPackage) needs ``layer``; all layers (folders) of a KML/KMZ are used.
    Any area is accepted (a country's glacier belt, several UTM zones); ``max_km2`` is an optional
    guard against larger areas.

    Raises
    ------
    AoiError
        Missing or unreadable file, several layers and no ``layer``, no features, not polygons,
        invalid (e.g. self-intersecting) polygons, no CRS, coordinates outside lon/lat, across the
        antimeridian, or an area above ``max_km2``.
    """
    p = Path(path).expanduser()
    name = str(path)
    if not p.exists():
        raise AoiError(f"AOI file {name} not found; give the path of a GeoJSON, GeoPackage, shapefile or KML polygon")
    gdf = _read_frame(p, name, layer)
    return aoi_from_frame(gdf, name=name, max_km2=max_km2)


def aoi_from_frame(gdf: gpd.GeoDataFrame | gpd.GeoSeries, *, name: str, max_km2: float = NO_LIMIT) -> Aoi:
    """Build an :class:`Aoi` from all polygons of a GeoDataFrame or GeoSeries (dissolved, 2D)."""
    geoms = gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else gdf
    if len(geoms) == 0 or geoms.isna().all() or geoms.is_empty.all():
        raise AoiError(f"AOI {name} has no features; draw a polygon around the lakes to map")
    if geoms.crs is None:
        raise AoiError(f"AOI {name} has no CRS; add a .prj file or save it as GeoJSON in WGS84 (EPSG:4326)")
    geoms = geoms.dropna()
    geoms = geoms[~geoms.is_empty]
    geoms = gpd.GeoSeries(shapely.force_2d(geoms.values), crs=geoms.crs)  # heights (Z) are not used
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
    if geoms.crs.is_geographic:
        _check_geometry(shapely.union_all(geoms.values), name, float("inf"))
    union = shapely.union_all(geoms.to_crs("EPSG:4326").values)
    _check_geometry(union, name, max_km2)
    return Aoi(geometry_wgs84=union, source=name, source_crs=geoms.crs.to_string())


def as_aoi(aoi: Any, *, max_km2: float = NO_LIMIT, layer: str | None = None) -> Aoi:
    """The :class:`Aoi` for what the Python API accepts as ``aoi``.

    Accepted: an :class:`Aoi`; a path (str or Path) of a vector file; a GeoDataFrame or GeoSeries
    with a CRS; a shapely geometry or a GeoJSON geometry/Feature/FeatureCollection dict (WGS84).

    >>> from shapely.geometry import box
    >>> round(as_aoi(box(74.0, 42.0, 74.01, 42.01)).area_km2, 2)
    0.92
    >>> as_aoi(42)
    Traceback (most recent call last):
    ...
    gli_toolbox.errors.AoiError: aoi: expected a file path, a GeoDataFrame/GeoSeries, a shapely polygon or a GeoJSON dict; got int
    """
    if isinstance(aoi, Aoi):
        return aoi
    if isinstance(aoi, (str, Path)):
        return read_aoi(aoi, max_km2=max_km2, layer=layer)
    if isinstance(aoi, (gpd.GeoDataFrame, gpd.GeoSeries)):
        return aoi_from_frame(aoi, name=f"({type(aoi).__name__} of {len(aoi)} features)", max_km2=max_km2)
    if isinstance(aoi, dict):
        kind = aoi.get("type")
        try:
            if kind == "FeatureCollection":
                frame = gpd.GeoDataFrame.from_features(aoi, crs="EPSG:4326")
                return aoi_from_frame(frame, name="(GeoJSON FeatureCollection)", max_km2=max_km2)
            geom = shapely.geometry.shape(aoi["geometry"] if kind == "Feature" else aoi)
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as exc:
            raise AoiError(f"aoi: not a GeoJSON geometry, Feature or FeatureCollection ({exc}); "
                           "pass e.g. {'type': 'Polygon', 'coordinates': [...]}") from None
        return aoi_from_geometry(geom, max_km2=max_km2)
    if isinstance(aoi, BaseGeometry):
        return aoi_from_geometry(aoi, max_km2=max_km2)
    raise AoiError(
        "aoi: expected a file path, a GeoDataFrame/GeoSeries, a shapely polygon or a GeoJSON dict; "
        f"got {type(aoi).__name__}"
    )
