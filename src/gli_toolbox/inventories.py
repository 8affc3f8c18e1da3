"""Read existing lake inventories (any vector format, any CRS) for ``gli track``.

Partners edit exported outlines in QGIS and want the same change analysis on them; this adapter
turns one or more files (or GeoPackage layers) into one lake layer per period in one projected CRS,
with the standard fields recomputed where they can be.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer

from .errors import InventoryError
from .grids import utm_crs
from .lakes import LAKE_FIELDS, area_uncertainty_km2, glims_id

logger = logging.getLogger(__name__)

__all__ = ["period_from_name", "read_inventories", "standard_fields"]

_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


def period_from_name(name: str) -> int | str | None:
    """Year (``int``) or date (``"YYYYMMDD"``) found in a file or layer name, else None.

    >>> period_from_name("lakes_2019.shp"), period_from_name("lakes_20190723"), period_from_name("x.gpkg")
    (2019, '20190723', None)
    """
    m = _DATE.search(name)
    if m:
        return "".join(m.groups())
    m = _YEAR.search(name)
    return int(m.group(1)) if m else None


def standard_fields(gdf: gpd.GeoDataFrame, *, year: int, pixel_m: float) -> gpd.GeoDataFrame:
    """Recompute the detect fields that follow from the outline; keep ``n_obs``, ``edge``,
    ``n_scenes`` from the input when present (else -1, unknown), an existing ``lake_id`` and every
    other attribute of the input."""
    g = gdf.copy()
    crs = CRS.from_user_input(g.crs)
    g["area_km2"] = g.geometry.area / 1e6
    g["perim_km"] = g.geometry.length / 1e3
    g["area_err"] = area_uncertainty_km2(g.geometry.length.to_numpy(), pixel_m=pixel_m)
    rep = g.geometry.representative_point()
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(rep.x.to_numpy(), rep.y.to_numpy())
    g["lon"], g["lat"] = np.round(lon, 6), np.round(lat, 6)
    g["year"] = int(year)
    ids = [glims_id(x, y) for x, y in zip(lon, lat)]
    if "lake_id" in g.columns:
        old = g["lake_id"].astype("string").fillna("").str.strip()
        g["lake_id"] = [o if o else n for o, n in zip(old, ids)]
    else:
        g["lake_id"] = ids
    for f in ("n_obs", "edge", "n_scenes"):
        g[f] = pd.to_numeric(g[f], errors="coerce").fillna(-1).astype("int64") if f in g.columns else -1
    # the partner's own attributes (notes, names, context fields) follow the standard ones
    own = [c for c in g.columns if c not in LAKE_FIELDS and c != g.geometry.name]
    return g[list(LAKE_FIELDS) + own + [g.geometry.name]]


def _read_layers(path: Path) -> list[tuple[str, gpd.GeoDataFrame]]:
    if not path.exists():
        raise InventoryError(f"inventory {path} not found; give shapefiles, GeoPackages or GeoJSON files")
    try:
        layers = [name for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # noqa: BLE001
        raise InventoryError(f"cannot read inventory {path} ({str(exc).splitlines()[0][:120]}); is it a vector file?") from None
    out = []
    for name in layers:
        try:
            g = gpd.read_file(path, layer=name) if len(layers) > 1 else gpd.read_file(path)
        except Exception as exc:  # noqa: BLE001
            raise InventoryError(f"cannot read layer {name} of {path} ({str(exc).splitlines()[0][:120]})") from None
        label = f"{path.name}:{name}" if len(layers) > 1 else path.name
        out.append((label, g))
    return out


def _clean(label: str, g: gpd.GeoDataFrame, notes: list[str]) -> gpd.GeoDataFrame:
    if not isinstance(g, gpd.GeoDataFrame) or getattr(g, "_geometry_column_name", None) not in g.columns:
        raise InventoryError(f"{label} has no geometry (a table?); give polygon layers: shapefile, GeoPackage or GeoJSON")
    if len(g) == 0 or g.geometry.isna().all():
        raise InventoryError(f"{label} has no features; remove it from the list or give the right layer")
    if g.crs is None:
        raise InventoryError(f"{label} has no CRS; add a .prj file or save it as GeoPackage with a CRS")
    g = g[g.geometry.notna() & ~g.geometry.is_empty].copy()
    kinds = sorted(set(g.geom_type))
    if any(k not in ("Polygon", "MultiPolygon") for k in kinds):
        raise InventoryError(
            f"{label} mixes geometry types ({', '.join(kinds)}); lakes must be polygons: remove the other features"
        )
    bad = ~g.geometry.is_valid
    if bad.any():
        reasons = sorted({shapely.is_valid_reason(x).split("[")[0] for x in g.geometry[bad]})
        fixed = shapely.make_valid(g.geometry[bad].values)  # may return collections with lines
        rebuilt = []
        for geom in fixed:
            parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
            rebuilt.append(shapely.union_all(parts) if parts else None)
        g.loc[bad, g.geometry.name] = gpd.GeoSeries(rebuilt, index=g.index[bad], crs=g.crs)
        g = g[g.geometry.notna() & ~g.geometry.is_empty]
        if len(g) == 0:
            raise InventoryError(f"{label}: no valid polygon is left after repairing its geometries; check the layer")
        note = f"{label}: repaired {int(bad.sum())} invalid geometr{'y' if bad.sum() == 1 else 'ies'} ({'; '.join(reasons)})"
        notes.append(note)
        logger.warning(note)
    return g


def read_inventories(
    paths: list[str | Path], *, year_field: str | None = None, pixel_m: float = 10.0
) -> tuple[dict[Any, gpd.GeoDataFrame], list[str]]:
    """Lake layers by period (year ``int`` or ``"YYYYMMDD"``) in one projected CRS, plus notes.

    The period comes from ``year_field`` (a column; one file may then hold several years) or from
    a 4-digit year / 8-digit date in the layer or file name. Layers are reprojected to the UTM zone
    of their common centre, so areas are true areas whatever the input CRS.

    Raises
    ------
    InventoryError
        Missing/unreadable file, empty layer, no CRS, non-polygon features, no year, two layers
        for the same year.
    """
    notes: list[str] = []
    found: list[tuple[Any, str, gpd.GeoDataFrame]] = []
    for p in paths:
        path = Path(p)
        for label, g in _read_layers(path):
            g = _clean(label, g, notes)
            if year_field:
                if year_field not in g.columns:
                    raise InventoryError(
                        f"{label} has no field {year_field!r}; fields are: {', '.join(map(str, g.columns[:-1]))}"
                    )
                years = pd.to_numeric(g[year_field], errors="coerce")
                if years.isna().any():
                    raise InventoryError(f"{label}: {int(years.isna().sum())} features have no year in {year_field!r}")
                for y, sub in g.groupby(years.astype(int)):
                    found.append((int(y), label, sub))
            else:
                name = label.split(":")[-1]
                period = period_from_name(name) or period_from_name(path.name)
                if period is None:
                    raise InventoryError(
                        f"cannot tell the year of {label}: put a 4-digit year in the file name or pass --year-field"
                    )
                found.append((period, label, g))
    if not found:
        raise InventoryError("no inventory layers given")
    kinds = {len(str(period)) for period, _, _ in found}
    if len(kinds) > 1:
        raise InventoryError(
            "some inventories are per year and some per date (YYYYMMDD); track years and dates separately"
        )
    seen: dict[Any, str] = {}
    for period, label, _ in found:
        if period in seen and not year_field:
            raise InventoryError(f"{seen[period]} and {label} are both for {period}; give one layer per year")
        seen.setdefault(period, label)

    # Areas must be true areas whatever the inputs' CRS (Web Mercator is common from QGIS): use the
    # UTM zone of the data's centre, independent of the order of the inputs.
    allg = pd.concat([g.to_crs("EPSG:4326").geometry for _, _, g in found])
    c = shapely.union_all(allg.values).centroid
    target = CRS.from_user_input(utm_crs(c.x, c.y))
    layers: dict[Any, gpd.GeoDataFrame] = {}
    for period, _label, g in found:
        g = g.to_crs(target)
        year = int(str(period)[:4])
        std = standard_fields(g, year=year, pixel_m=pixel_m)
        if len(str(period)) == 8:
            std["date"] = f"{str(period)[:4]}-{str(period)[4:6]}-{str(period)[6:]}"
        layers[period] = pd.concat([layers[period], std]) if period in layers else std
    return layers, notes
