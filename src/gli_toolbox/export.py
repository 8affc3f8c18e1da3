"""Write detection results: shapefiles, GeoPackage, water masks and ``run.json``.

Outputs are first written to a hidden staging folder next to the target and only moved into
place when everything was written, so a failed run leaves nothing half-written behind. With
``overwrite`` the files of the earlier run are replaced as a whole (stale layers of other years
do not survive); other files in the folder (for example outlines a partner edited) are never
touched.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from .errors import OutputError, OutputExistsError
from .schema import field_spec, real_digits
from .styles import WATER_CLASSES, count_style, style_for_layer, to_qml, water_style

if TYPE_CHECKING:
    import pyarrow as pa

    from .pipeline import DetectResult, WaterMap
    from .tracking import TrackResult

logger = logging.getLogger(__name__)

__all__ = [
    "SHAPEFILE_SIDECARS", "check_output_dir", "lakes_all", "layer_table", "staged_output", "store_gpkg_style",
    "write_counts", "write_lakes_all", "write_layer", "write_mask", "write_outputs", "write_tracking",
]

SHAPEFILE_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def check_output_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse an existing, non-empty output folder unless ``overwrite``, and a place that cannot
    be written, before any work is done."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder path")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder {out} already exists; choose another --out or add --overwrite")
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"--out {out}: {ancestor} is a file, not a folder; choose another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: cannot write in {ancestor}; choose a folder you can write to")


def _previous_outputs(out: Path) -> list[str]:
    """Top-level names an earlier gli run wrote into ``out`` (from its run.json)."""
    try:
        doc = json.loads((out / "run.json").read_text(encoding="utf-8"))
        names = doc.get("outputs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")]


@contextmanager
def staged_output(out: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a staging folder; when the block succeeds, put its content in ``out``.

    A new folder is renamed into place in one step. With ``overwrite`` the files of the earlier gli
    run (listed in its ``run.json``) and same-named files are first moved aside, then the new ones
    moved in, then the old ones deleted; if anything fails or is interrupted, the old files are put
    back. Files a user added to the folder are never touched. On any error the staging folder is
    deleted, so nothing half-written is left.
    """
    out = Path(out)
    check_output_dir(out, overwrite=overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create it ({exc.strerror or exc}); choose another --out") from None
    try:
        yield stage
        if not out.exists():
            os.replace(stage, out)
            return
        _swap_into(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_into(stage: Path, out: Path) -> None:
    new = sorted(p.name for p in stage.iterdir())
    old = sorted(set(_previous_outputs(out)) | set(new))
    backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for name in old:
            if (out / name).exists():
                os.replace(out / name, backup / name)
                moved_aside.append(name)
        for name in new:
            os.replace(stage / name, out / name)
            moved_in.append(name)
    except BaseException:
        for name in moved_in:  # roll back: the folder is as it was before this run
            target = out / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        for name in moved_aside:
            os.replace(backup / name, out / name)
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def _arrow_column(name: str, s: pd.Series) -> tuple[pa.Array, pa.Field]:
    """One attribute column with the OGR field definition that fits it (see :mod:`.schema`)."""
    import pyarrow as pa

    spec = field_spec(name)
    md: dict[bytes, bytes] = {}
    if spec is not None:
        md[b"GDAL:OGR:alternative_name"] = spec.alias.encode()
        md[b"GDAL:OGR:comment"] = spec.full_description.encode()
    kind = spec.kind if spec is not None else None
    if kind is None:
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
            arr = pa.array(s, from_pandas=True)
            return arr, pa.field(name, arr.type, metadata=md or None)
        kind = "str"
    if kind == "real":
        v = np.round(pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64), spec.decimals)  # type: ignore[union-attr]
        bad = ~np.isfinite(v)
        top = float(np.abs(v[~bad]).max()) if (~bad).any() else 0.0
        digits = real_digits(top, minimum=spec.width)  # type: ignore[union-attr]
        dtype = pa.decimal128(digits + spec.decimals, spec.decimals)  # type: ignore[union-attr]
        arr = pa.array(np.where(bad, 0.0, v), mask=bad).cast(dtype)  # GDAL: Real(width, decimals)
        return arr, pa.field(name, dtype, metadata=md)
    if kind == "int":
        v = pd.to_numeric(s, errors="coerce").astype("Int64")
        arr = pa.array(v, from_pandas=True, type=pa.int64())
        top = int(np.abs(v.dropna().to_numpy(dtype=np.int64)).max()) if v.notna().any() else 0
        if top < 2**31:
            arr = arr.cast(pa.int32())
        md[b"GDAL:OGR:width"] = str(max(spec.width, len(str(top)) + (1 if (v < 0).any() else 0))).encode()  # type: ignore[union-attr]
        return arr, pa.field(name, arr.type, metadata=md)
    if kind == "date":
        d = pd.to_datetime(s, errors="coerce")
        arr = pa.array(d.dt.date, from_pandas=True, type=pa.date32())
        return arr, pa.field(name, pa.date32(), metadata=md or None)
    text = s.astype(object).where(s.notna(), None)
    values = [None if x is None else str(x) for x in text]
    nbytes = max((len(x.encode("utf-8")) for x in values if x is not None), default=1)
    width = min(254, max(spec.width if spec is not None else 1, nbytes))
    md[b"GDAL:OGR:width"] = str(width).encode()
    arr = pa.array(values, type=pa.string())
    return arr, pa.field(name, pa.string(), metadata=md)


def layer_table(gdf: gpd.GeoDataFrame) -> pa.Table:
    """Attributes with fitted OGR field definitions, aliases and descriptions, plus WKB geometry:
    what :func:`pyogrio.write_arrow` turns into shapefile/GeoPackage fields."""
    import pyarrow as pa
    import shapely

    arrays, fields = [], []
    for name in gdf.columns:
        if name == gdf.geometry.name:
            continue
        arr, field = _arrow_column(str(name), gdf[name])
        arrays.append(arr)
        fields.append(field)
    geoms = gdf.geometry.values
    if len(gdf) and set(gdf.geom_type) - {"Polygon"}:  # one type per layer: promote polygons
        geoms = np.array([shapely.MultiPolygon([g]) if g is not None and g.geom_type == "Polygon" else g
                          for g in geoms], dtype=object)
    arrays.append(pa.array(shapely.to_wkb(geoms), type=pa.binary()))
    fields.append(pa.field("geometry", pa.binary(), metadata={b"ARROW:extension:name": b"geoarrow.wkb"}))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _geometry_type(gdf: gpd.GeoDataFrame) -> str:
    if len(gdf) and set(gdf.geom_type) - {"Polygon"}:
        return "MultiPolygon"  # unions over years and edited outlines can be multi-part
    return "Polygon"


#: GeoPackage 1.2: read without warnings by the GDAL of QGIS 3.22 LTR (GDAL 3.6 warns on 1.4)
_GPKG_OPTIONS = {"VERSION": "1.2"}


def write_layer(gdf: gpd.GeoDataFrame, folder: Path, name: str, *, gpkg: Path | None = None,
                shapefile: bool = True) -> None:
    """Write one lake layer as ``<name>.shp`` (UTF-8 ``.cpg``, ``.prj``) with its QGIS style
    ``<name>.qml``, and into ``gpkg`` with the same style as the layer's default.

    Field widths and decimals fit the values and every known field gets an alias with its unit
    and a description (:mod:`gli_toolbox.schema`): shapefiles hold the widths, the GeoPackage the
    aliases and descriptions (``gpkg_data_columns``), the style the aliases for QGIS.
    """
    import pyogrio

    table = layer_table(gdf)
    crs = gdf.crs.to_wkt() if gdf.crs is not None else None
    kw: dict[str, Any] = {"geometry_name": "geometry", "geometry_type": _geometry_type(gdf), "crs": crs}
    fields = [str(c) for c in gdf.columns if c != gdf.geometry.name]
    statuses = sorted({str(x) for x in gdf["status"].dropna()}) if "status" in gdf.columns else []
    qml = to_qml(style_for_layer(name, fields, statuses=statuses))
    if shapefile:
        pyogrio.write_arrow(table, folder / f"{name}.shp", driver="ESRI Shapefile", encoding="UTF-8", **kw)
        (folder / f"{name}.qml").write_text(qml, encoding="utf-8")
    if gpkg is not None:
        lower = {f.lower() for f in fields}
        fid = next(c for c in ("fid", "gpkg_fid", "gli_fid") if c not in lower)  # a partner's FID stays a field
        pyogrio.write_arrow(table, gpkg, layer=name, driver="GPKG", layer_options={"GEOMETRY_NAME": "geom", "FID": fid},
                            dataset_options=_GPKG_OPTIONS, **kw)
        store_gpkg_style(gpkg, name, qml)


def store_gpkg_style(gpkg: Path, layer: str, qml: str, *, geometry_column: str = "geom") -> None:
    """Store ``qml`` as the default QGIS style of ``layer`` in the GeoPackage's ``layer_styles``
    table (the table QGIS itself uses; QGIS applies the default style when it opens the layer)."""
    import pyogrio

    row = pd.DataFrame({
        "f_table_catalog": [""], "f_table_schema": [""], "f_table_name": [layer], "f_geometry_column": [geometry_column],
        "styleName": [layer], "styleQML": [qml], "styleSLD": [""], "useAsDefault": [True],
        "description": [f"gli-toolbox style of {layer}"], "owner": [""], "ui": [""],
        "update_time": [pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")],
    })
    exists = "layer_styles" in {str(n) for n in pyogrio.list_layers(gpkg)[:, 0]}
    pyogrio.write_dataframe(row, gpkg, layer="layer_styles", driver="GPKG", append=exists,
                            layer_options=None if exists else {"FID": "id"}, dataset_options=_GPKG_OPTIONS)


def write_mask(mask: WaterMap, path: Path) -> None:
    """Write a water class raster: uint8, 1 water, 0 not water, 255 never validly observed (nodata),
    with a colour table (any GIS shows the classes) and the QGIS style ``<name>.qml`` beside it."""
    h, w = mask.water_class.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "uint8", "crs": mask.crs,
        "transform": mask.transform, "nodata": 255, "compress": "deflate", "tiled": w >= 256 and h >= 256,
        "photometric": "palette",
    }
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    colours = {v: tuple(int(c.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)) + (255,) for v, (c, _) in WATER_CLASSES.items()}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask.water_class, 1)
        dst.write_colormap(1, colours)
        dst.set_band_description(1, f"water classes {mask.label}")
        dst.update_tags(1, VALUES="1=water;0=not water;255=never validly observed")
    path.with_suffix(".qml").write_text(to_qml(water_style()), encoding="utf-8")


def write_counts(mask: WaterMap, path: Path) -> None:
    """Write the number of valid (clear, snow-free) observations per pixel: uint16 GeoTIFF, with
    its graduated QGIS style ``<name>.qml`` beside it."""
    h, w = mask.valid_count.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "uint16", "crs": mask.crs,
        "transform": mask.transform, "compress": "deflate", "tiled": w >= 256 and h >= 256,
    }
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask.valid_count.astype(np.uint16), 1)
        dst.set_band_description(1, f"valid observations {mask.label}")
    path.with_suffix(".qml").write_text(to_qml(count_style()), encoding="utf-8")


def _period_dates(label: str, months: tuple[int, int] | None) -> tuple[dt.date, dt.date]:
    """First and last day of a period: the acquisition date, or the season (whole year if unknown)."""
    if len(label) == 8:
        d = dt.date(int(label[:4]), int(label[4:6]), int(label[6:]))
        return d, d
    y = int(label)
    m1, m2 = months or (1, 12)
    end = dt.date(y + 1, 1, 1) if m2 == 12 else dt.date(y, m2 + 1, 1)
    return dt.date(y, m1, 1), end - dt.timedelta(days=1)


def lakes_all(layers: Mapping[str, gpd.GeoDataFrame], *, months: tuple[int, int] | None = None) -> gpd.GeoDataFrame:
    """All periods in one layer for QGIS's temporal controller: each period's lakes with ``period``
    (label), ``date`` and ``date_end`` (first and last day of the season, or the acquisition date).

    ``layers`` maps period labels (``"2019"`` or ``"20190723"``) to lake layers in one CRS.
    """
    parts = []
    crs = None
    for label in sorted(layers, key=lambda k: (str(k)[:4], str(k))):
        g = layers[label]
        crs = crs or g.crs
        start, end = _period_dates(str(label), months)
        g = g.drop(columns=[c for c in ("period", "date", "date_end") if c in g.columns])
        cols = [c for c in g.columns if c != g.geometry.name]
        at = cols.index("year") + 1 if "year" in cols else 1
        g = g.copy()
        g.insert(at, "period", str(label))
        g.insert(at + 1, "date", pd.Timestamp(start))
        g.insert(at + 2, "date_end", pd.Timestamp(end))
        parts.append(g)
    if not parts:
        raise ValueError("lakes_all needs at least one period")
    out = pd.concat(parts, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry=parts[0].geometry.name, crs=crs)


def write_lakes_all(layers: Mapping[str, gpd.GeoDataFrame], gpkg: Path, *, months: tuple[int, int] | None = None) -> None:
    """Write :func:`lakes_all` into ``gpkg`` with its temporal style as default (no shapefile)."""
    if layers:
        write_layer(lakes_all(layers, months=months), gpkg.parent, "lakes_all", gpkg=gpkg, shapefile=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


def write_run_json(run: Mapping[str, Any], path: Path) -> None:
    """Write ``run.json`` last in its folder, listing every top-level output (for --overwrite)."""
    doc = dict(run)
    doc["outputs"] = sorted({p.name for p in path.parent.iterdir()} | {path.name})
    path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n", encoding="utf-8")


def write_outputs(result: DetectResult, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write all outputs of a detection run into ``out`` and return the written paths.

    Yearly mode: ``lakes_<YEAR>.shp``; with ``per_scene``: ``lakes_<YYYYMMDD>.shp`` instead.
    Always ``inventory.gpkg`` (same layers, plus ``lake_changes`` and ``lakes_all``), a ``.qml``
    style beside every layer, the QGIS project ``inventory.qgz`` and ``run.json``;
    ``water_<YEAR|YYYYMMDD>.tif`` and ``nobs_<YEAR|YYYYMMDD>.tif`` (valid observations per pixel)
    with ``save_masks``.
    """
    from .qgis_project import write_project

    cfg = result.config
    if cfg.per_scene:
        periods = {str(k): v for k, v in result.scene_lakes.items()}
        masks = {f"water_{k}": v for k, v in result.scene_masks.items()}
    else:
        periods = {str(y): v for y, v in result.lakes.items()}
        masks = {f"water_{y}": v for y, v in result.masks.items()}
    with staged_output(out, overwrite=overwrite) as stage:
        gpkg = stage / "inventory.gpkg"
        for label, gdf in periods.items():
            write_layer(gdf, stage, f"lakes_{label}", gpkg=gpkg)
        if cfg.save_masks:
            for name, mask in masks.items():
                write_mask(mask, stage / f"{name}.tif")
                write_counts(mask, stage / f"{name.replace('water_', 'nobs_')}.tif")
        if result.tracking is not None:
            write_tracking(result.tracking, stage, gpkg=gpkg, qgis=False)
        write_lakes_all(periods, gpkg, months=None if cfg.per_scene else tuple(cfg.months))  # type: ignore[arg-type]
        write_project(stage)
        write_run_json(dict(result.run), stage / "run.json")
        names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    return [Path(out) / n for n in names]


def write_tracking(tr: TrackResult, folder: Path, *, gpkg: Path | None = None, qgis: bool = True) -> None:
    """Write ``lake_changes.shp`` / ``.csv`` (and the layer into ``inventory.gpkg``),
    ``lake_areas.csv``, ``lake_pairs.csv``, ``lake_events.csv`` and ``figures/*.png`` for a
    tracking result.

    ``gpkg`` defaults to ``folder/inventory.gpkg``. With ``qgis`` (as ``gli track`` does, after
    writing the per-period layers) also ``lakes_all`` and the QGIS project ``inventory.qgz``.
    """
    from .figures import write_figures
    from .qgis_project import write_project

    gpkg = gpkg if gpkg is not None else folder / "inventory.gpkg"
    changes = tr.changes
    write_layer(changes, folder, "lake_changes", gpkg=gpkg)
    changes.drop(columns=changes.geometry.name).to_csv(folder / "lake_changes.csv", index=False, float_format="%.6f")
    tr.areas.to_csv(folder / "lake_areas.csv", index=False, float_format="%.6f")
    tr.pairs.to_csv(folder / "lake_pairs.csv", index=False, float_format="%.6f")
    tr.events.to_csv(folder / "lake_events.csv", index=False)
    write_figures(tr, folder / "figures")
    if qgis:
        write_lakes_all({str(p): g for p, g in tr.layers.items()}, gpkg)
        write_project(folder)
