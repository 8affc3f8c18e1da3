"""Read glacier outlines (e.g. a Randolph Glacier Inventory region) for the area being mapped."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
from shapely.geometry.base import BaseGeometry

from .errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["read_glaciers"]


def read_glaciers(path: str | Path, *, aoi_wgs84: BaseGeometry, margin_m: float, crs: str) -> gpd.GeoDataFrame:
    """Glacier polygons within ``margin_m`` of the AOI, in ``crs``.

    Only features intersecting the AOI's bounding box grown by the margin are read (pyogrio's
    ``bbox`` filter), so a whole RGI region file is fine.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"--glaciers {path}: file not found; give a glacier outline file, e.g. an RGI region shapefile")
    try:
        import pyogrio

        info = pyogrio.read_info(p)
        file_crs = info.get("crs")
        if file_crs is None:
            raise ConfigError(f"--glaciers {path} has no CRS; add a .prj file")
        grown = gpd.GeoSeries([aoi_wgs84], crs="EPSG:4326").to_crs(crs).buffer(margin_m).to_crs(file_crs)
        g = gpd.read_file(p, bbox=tuple(grown.total_bounds))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - GDAL raises many types
        raise ConfigError(f"--glaciers {path}: cannot read it ({str(exc).splitlines()[0][:120]})") from None
    g = g[g.geometry.notna() & ~g.geometry.is_empty]
    kinds = set(g.geom_type)
    if kinds - {"Polygon", "MultiPolygon"}:
        raise ConfigError(f"--glaciers {path} has {', '.join(sorted(kinds))} features; glacier outlines must be polygons")
    return g.to_crs(crs)
