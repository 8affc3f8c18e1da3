"""Read existing lake inventories (any vector format, any CRS) for ``gli track``.

Partners edit exported outlines in QGIS and want the same change analysis on them; this adapter
turns one or more files (or GeoPackage layers) into one lake layer per period in one projected CRS,
with the standard fields recomputed where they can be.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer

from .attributes import LAKE_FIELDS, lake_attributes
from .errors import InventoryError
from .periods import Period
from .records import RepairedGeometryWarning, SinglePeriodWarning, TrackRecord, software_versions
from .tracking import TrackResult, track

logger = logging.getLogger(__name__)

__all__ = ["period_from_name", "read_inventories", "standard_fields", "track_inventories", "utm_zone_crs"]

#: An inventory: a vector file path, or an already loaded GeoDataFrame.
Inventory: TypeAlias = str | Path | gpd.GeoDataFrame

_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


def period_from_name(name: str) -> Period | None:
    """The year or date (``YYYYMMDD``) found in a file or layer name, else None.

    >>> period_from_name("lakes_2019.shp").label, period_from_name("lakes_20190723").label, period_from_name("x.gpkg")
    ('2019', '20190723', None)
    """
    m = _DATE.search(name)
    if m:
        return Period.of("".join(m.groups()))
    m = _YEAR.search(name)
    return Period.of(int(m.group(1))) if m else None


def utm_zone_crs(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone containing (lon, lat).

    >>> utm_zone_crs(74.6, 42.8).to_epsg(), utm_zone_crs(-70.0, -33.0).to_epsg()
    (32643, 32719)
    """
    zone = min(int(np.floor((lon + 180.0) / 6.0)) + 1, 60)
    return CRS.from_epsg(32600 + zone if lat >= 0 else 32700 + zone)


def standard_fields(gdf: gpd.GeoDataFrame, *, year: int, pixel_m: float) -> gpd.GeoDataFrame:
    """Recompute the detect fields that follow from the outline; keep ``n_obs``, ``edge``,
    ``n_scenes`` from the input when present (else -1, unknown), an existing ``lake_id`` and every
    other attribute of the input."""
    g = gdf.copy()
    attrs = lake_attributes(g.geometry, crs=g.crs, pixel_m=pixel_m)
    for k in ("area_km2", "perim_km", "area_err", "lon", "lat"):
        g[k] = attrs[k].to_numpy()
    g["year"] = int(year)
    if "lake_id" in g.columns:
        old = g["lake_id"].astype("string").fillna("").str.strip()
        g["lake_id"] = [o if o else n for o, n in zip(old, attrs["lake_id"])]
    else:
        g["lake_id"] = attrs["lake_id"].to_numpy()
    for f in ("n_obs", "edge", "n_scenes"):
        g[f] = pd.to_numeric(g[f], errors="coerce").fillna(-1).astype("int64") if f in g.columns else -1
    # the partner's own attributes (notes, names, context fields) follow the standard ones
    own = [c for c in g.columns if c not in LAKE_FIELDS and c != g.geometry.name]
    return g[list(LAKE_FIELDS) + own + [g.geometry.name]]


def _read_layers(path: Path) -> list[tuple[str, gpd.GeoDataFrame]]:
    if not path.exists():
        raise InventoryError(f"inventory {path} not found; give shapefiles, GeoPackages or GeoJSON files")
    try:
        # a gli GeoPackage also holds the change layer, all periods in one layer and QGIS styles
        layers = [name for name, _ in pyogrio.list_layers(path) if name not in ("lake_changes", "lakes_all", "layer_styles")]
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
        notes.append(note)  # issued as a RepairedGeometryWarning by track_inventories
    return g


def _sources(inventories: Sequence[Inventory] | Mapping[Any, Inventory]) -> list[tuple[Period | None, str, Any]]:
    """(period given by the caller or None, label, path or GeoDataFrame) of each input."""
    if isinstance(inventories, Mapping):
        return [(Period.of(k), _describe(v, k), v) for k, v in inventories.items()]
    if isinstance(inventories, (str, Path, gpd.GeoDataFrame)):
        inventories = [inventories]
    return [(None, _describe(v, i), v) for i, v in enumerate(inventories)]


def _describe(source: Inventory, key: Any) -> str:
    return f"GeoDataFrame {key}" if isinstance(source, gpd.GeoDataFrame) else str(source)


def _found_layers(inventories: Sequence[Inventory] | Mapping[Any, Inventory], year_field: str | None,
                  notes: list[str]) -> list[tuple[Period, str, gpd.GeoDataFrame]]:
    """Every cleaned layer with its period (from the caller, ``year_field`` or the name)."""
    found: list[tuple[Period, str, gpd.GeoDataFrame]] = []
    for given, label0, src in _sources(inventories):
        path = None if isinstance(src, gpd.GeoDataFrame) else Path(src)
        layers = [(label0, src)] if path is None else _read_layers(path)
        for label, g in layers:
            g = _clean(label, g, notes)
            if given is not None:
                found.append((given, label, g))
            elif year_field:
                if year_field not in g.columns:
                    raise InventoryError(
                        f"{label} has no field {year_field!r}; fields are: {', '.join(map(str, g.columns[:-1]))}"
                    )
                years = pd.to_numeric(g[year_field], errors="coerce")
                if years.isna().any():
                    raise InventoryError(f"{label}: {int(years.isna().sum())} features have no year in {year_field!r}")
                for y, sub in g.groupby(years.astype(int)):
                    found.append((Period.of(int(y)), label, sub))
            else:
                name = label.split(":")[-1]
                period = period_from_name(name) or (period_from_name(path.name) if path is not None else None)
                if period is None:
                    raise InventoryError(
                        f"cannot tell the year of {label}: put a 4-digit year in the file name or pass --year-field"
                    )
                found.append((period, label, g))
    return found


def _common_utm(layers: list[gpd.GeoDataFrame]) -> CRS:
    """The CRS areas are measured in: the layers' own CRS when they share one that keeps areas true
    over them (an equal-area projection, such as the layers of a multi-zone ``gli detect``, or a UTM
    zone next to the layers' centre, such as a one-zone run: its areas then stay those of detect);
    otherwise the UTM zone of the centre of the layers' joint WGS84 bounding box. Independent of the
    input order and linear in the number of lakes (each layer's bounds are reprojected, not its
    polygons)."""
    centre_utm = _centre_utm(layers)
    shared = {CRS.from_user_input(g.crs) for g in layers}
    if len(shared) == 1:
        (own,) = shared
        op = own.coordinate_operation
        method = op.method_name if op is not None else ""
        if "Equal Area" in method:
            return own
        zone, centre_zone = own.utm_zone, centre_utm.utm_zone
        if zone and centre_zone and zone[-1] == centre_zone[-1] and abs(int(zone[:-1]) - int(centre_zone[:-1])) <= 1:
            return own
    return centre_utm


def _centre_utm(layers: list[gpd.GeoDataFrame]) -> CRS:
    boxes = []
    for g in layers:
        x0, y0, x1, y1 = g.total_bounds
        boxes.append(Transformer.from_crs(g.crs, "EPSG:4326", always_xy=True).transform_bounds(x0, y0, x1, y1,
                                                                                               densify_pts=21))
    b = np.array(boxes)
    return utm_zone_crs((b[:, 0].min() + b[:, 2].max()) / 2.0, (b[:, 1].min() + b[:, 3].max()) / 2.0)


def _detect_resolution_m() -> float:
    """The pixel size ``gli detect`` maps at by default (:class:`~gli_toolbox.config.DetectConfig`)."""
    from .config import DetectConfig

    return float(DetectConfig.__dataclass_fields__["resolution_m"].default)  # type: ignore[arg-type]


def read_inventories(
    inventories: Sequence[Inventory] | Mapping[Any, Inventory], *, year_field: str | None = None,
    pixel_m: float = 10.0,
) -> tuple[dict[Period, gpd.GeoDataFrame], list[str]]:
    """Lake layers by :class:`~gli_toolbox.periods.Period` in one projected CRS, plus notes.

    ``inventories`` are vector file paths or GeoDataFrames, or a mapping period -> path or
    GeoDataFrame. The period comes from the mapping key, from ``year_field`` (a column; one file may
    then hold several years) or from a 4-digit year / 8-digit date in the layer or file name.
    Layers are reprojected to the UTM zone of the centre of their joint bounding box, so areas are
    true areas whatever the input CRS.

    Raises
    ------
    InventoryError
        Missing/unreadable file, empty layer, no CRS, non-polygon features, no year, two layers
        for the same year.
    """
    notes: list[str] = []
    found = _found_layers(inventories, year_field, notes)
    if not found:
        raise InventoryError("no inventory layers given")
    if len({period.per_scene for period, _, _ in found}) > 1:
        raise InventoryError(
            "some inventories are per year and some per date (YYYYMMDD); track years and dates separately"
        )
    seen: dict[Period, str] = {}
    for period, label, _ in found:
        if period in seen and not year_field:
            raise InventoryError(f"{seen[period]} and {label} are both for {period}; give one layer per year")
        seen.setdefault(period, label)

    # Areas must be true areas whatever the inputs' CRS (Web Mercator is common from QGIS).
    target = _common_utm([g for _, _, g in found])
    layers: dict[Period, gpd.GeoDataFrame] = {}
    for period, _label, g in found:
        std = standard_fields(g.to_crs(target), year=period.year, pixel_m=pixel_m)
        if period.per_scene:
            std["date"] = period.iso
        layers[period] = pd.concat([layers[period], std]) if period in layers else std
    return layers, notes


def track_inventories(
    inventories: Sequence[Inventory] | Mapping[Any, Inventory],
    *,
    year_field: str | None = None,
    pixel_m: float | None = None,
    proximity_m: float = 30.0,
    small_lake_km2: float = 0.05,
) -> TrackResult:
    """Stable lake ids and change analysis for existing inventories: the library call behind ``gli track``.

    Parameters
    ----------
    inventories
        Vector files (shapefile, GeoPackage with one layer per period, GeoJSON; any CRS) or
        GeoDataFrames, or a mapping period (``2019``, ``"20190723"``) -> file or GeoDataFrame.
    year_field
        Column holding the year; default: the year or date in the layer or file name.
    pixel_m
        Pixel size the outlines were mapped at, for the area uncertainty (default: the resolution
        of :class:`~gli_toolbox.config.DetectConfig`, 10 m).
    proximity_m, small_lake_km2
        Matching of small lakes without overlap (see :func:`~gli_toolbox.tracking.track`).

    Returns
    -------
    TrackResult
        ``layers`` keyed by :class:`~gli_toolbox.periods.Period`, ``changes``, ``areas``, ``pairs``,
        ``events`` and ``run`` (the :class:`~gli_toolbox.records.TrackRecord` of ``run.json``).
        :func:`gli_toolbox.export.write_track_outputs` writes it.

    Warns
    -----
    RepairedGeometryWarning
        Invalid polygons were repaired (also listed in ``run.warnings``).
    SinglePeriodWarning
        Only one period: lakes get ids, but change needs two periods (status ``not_assessed``).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> lake = lambda w: gpd.GeoDataFrame(geometry=[box(620000, 4770000, 620000 + w, 4770300)], crs="EPSG:32643")
    >>> res = track_inventories({2016: lake(400), 2020: lake(800)})
    >>> res.changes[["status", "a_first", "a_last"]].values.tolist()
    [['growing', 0.12, 0.24]]
    """
    if pixel_m is None:
        pixel_m = _detect_resolution_m()
    layers, notes = read_inventories(inventories, year_field=year_field, pixel_m=pixel_m)
    run = TrackRecord(software=software_versions(), inputs=[label for _, label, _ in _sources(inventories)],
                      year_field=year_field, pixel_m=pixel_m)
    for note in notes:
        run.warn(RepairedGeometryWarning, note)
    if len(layers) == 1:
        only = next(iter(layers))
        run.warn(SinglePeriodWarning, f"only one period ({only}) was given: lakes get ids, but change needs two periods; "
                                      "status is 'not_assessed'. Give inventories of at least two years")
    result = track(layers, pixel_m=pixel_m, proximity_m=proximity_m, small_lake_km2=small_lake_km2)
    run.periods = [str(p) for p in result.periods]
    run.crs = result.changes.crs.to_string() if result.changes.crs is not None else None
    run.status_counts = {k: int(v) for k, v in result.changes["status"].value_counts().items()}
    result.run = run
    return result
