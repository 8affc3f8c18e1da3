"""The QGIS project ``inventory.qgz`` of an output folder, written without QGIS.

:func:`write_project` looks at what a run wrote (the layers of ``inventory.gpkg``, ``water_*.tif``,
``nobs_*.tif``) and writes a QGIS 3 project (``.qgs`` XML zipped as ``.qgz``) that opens them
grouped and ordered, styled (:mod:`gli_toolbox.styles`), in the data's CRS, with paths relative to
the project file (the folder can be zipped and e-mailed), and with the temporal controller set to
play ``lakes_all`` one year per frame.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyproj import CRS

from .styles import QGIS_VERSION, style_for_layer

logger = logging.getLogger(__name__)

__all__ = ["PROJECT_NAME", "MapLayer", "project_xml", "scan_outputs", "write_project"]

PROJECT_NAME = "inventory.qgz"

GROUPS = (
    ("lakes", "Lakes by year"),
    ("change", "Lake change"),
    ("time", "All periods (temporal controller)"),
    ("water", "Water masks"),
    ("nobs", "Valid observations"),
)


@dataclass
class MapLayer:
    """One layer of the project."""

    name: str
    kind: str  # "vector" | "raster"
    source: str  # relative to the project file, e.g. "./inventory.gpkg|layername=lakes_2019"
    group: str  # key of GROUPS
    crs: Any
    extent: tuple[float, float, float, float] | None
    visible: bool = True
    fields: tuple[str, ...] = ()
    geometry_type: str = "Polygon"
    statuses: tuple[str, ...] = ()
    dates: tuple[dt.date, dt.date] | None = None


def _period_key(name: str) -> str:
    return name.split("_", 1)[1] if "_" in name else name


def _sort_newest_first(layers: list[MapLayer]) -> list[MapLayer]:
    return sorted(layers, key=lambda m: _period_key(m.name), reverse=True)


def scan_outputs(folder: Path) -> list[MapLayer]:
    """The project's layers from the files in ``folder``, in drawing order (top first)."""
    import pyogrio
    import rasterio

    folder = Path(folder)
    gpkg = folder / "inventory.gpkg"
    vectors: list[MapLayer] = []
    if gpkg.exists():
        names = [str(n) for n in pyogrio.list_layers(gpkg)[:, 0] if str(n) != "layer_styles"]
        for name in names:
            if name != "lake_changes" and name != "lakes_all" and not name.startswith("lakes_"):
                continue
            info = pyogrio.read_info(gpkg, layer=name)
            tb = info["total_bounds"]
            bounds = (float(tb[0]), float(tb[1]), float(tb[2]), float(tb[3])) if tb is not None else None
            ok = bool(info["features"] > 0 and bounds is not None and all(math.isfinite(b) for b in bounds))
            layer = MapLayer(name, "vector", f"./inventory.gpkg|layername={name}",
                             "change" if name == "lake_changes" else "time" if name == "lakes_all" else "lakes",
                             info["crs"], bounds if ok else None, fields=tuple(str(f) for f in info["fields"]),
                             geometry_type=str(info["geometry_type"]))
            if name == "lake_changes" and "status" in layer.fields and info["features"]:
                df = pyogrio.read_dataframe(gpkg, layer=name, columns=["status"], read_geometry=False)
                layer.statuses = tuple(sorted({str(s) for s in df["status"].dropna()}))
            if name == "lakes_all" and info["features"]:
                df = pyogrio.read_dataframe(gpkg, layer=name, columns=["date", "date_end"], read_geometry=False)
                layer.dates = (df["date"].min().date(), df["date_end"].max().date())
            vectors.append(layer)
    rasters: list[MapLayer] = []
    for path in sorted(folder.glob("*.tif")):
        stem = path.stem
        if not stem.startswith(("water_", "nobs_")):
            continue
        with rasterio.open(path) as src:
            b = src.bounds
            rasters.append(MapLayer(stem, "raster", f"./{path.name}", "water" if stem.startswith("water_") else "nobs",
                                    src.crs.to_wkt() if src.crs else None, (b.left, b.bottom, b.right, b.top)))
    by_group: dict[str, list[MapLayer]] = {g: [] for g, _ in GROUPS}
    for m in vectors + rasters:
        by_group[m.group].append(m)
    for g in ("lakes", "water", "nobs"):
        by_group[g] = _sort_newest_first(by_group[g])
        for i, m in enumerate(by_group[g]):
            m.visible = i == 0 and g != "nobs"  # the latest period shows; the others are one click away
    for m in by_group["time"]:
        m.visible = False  # shown with the temporal controller; otherwise it repeats the yearly layers
    return [m for g, _ in GROUPS for m in by_group[g]]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: Any) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = text
    return el


def _srs(parent: ET.Element, crs: Any) -> None:
    c = CRS.from_user_input(crs)
    sr = _sub(parent, "spatialrefsys")
    _sub(sr, "wkt", c.to_wkt())
    auth = c.to_authority()
    _sub(sr, "authid", f"{auth[0]}:{auth[1]}" if auth else "")
    if auth and auth[0] == "EPSG":
        _sub(sr, "srid", auth[1])
    _sub(sr, "description", c.name)
    _sub(sr, "geographicflag", "true" if c.is_geographic else "false")


def _extent(parent: ET.Element, tag: str, ext: tuple[float, float, float, float], **attrib: Any) -> ET.Element:
    if attrib:  # DefaultViewExtent style: attributes
        return _sub(parent, tag, xmin=repr(ext[0]), ymin=repr(ext[1]), xmax=repr(ext[2]), ymax=repr(ext[3]))
    el = _sub(parent, tag)
    for k, v in zip(("xmin", "ymin", "xmax", "ymax"), ext):
        _sub(el, k, repr(float(v)))
    return el


def _layer_id(m: MapLayer) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", m.name) + "_gli"


def _maplayer(parent: ET.Element, m: MapLayer) -> None:
    style = style_for_layer(m.name, m.fields, statuses=m.statuses)
    attrs = dict(style.attrib)
    attrs.pop("version", None)
    attrs["type"] = m.kind
    if m.kind == "vector":
        attrs["geometry"] = "Polygon"
        attrs["wkbType"] = m.geometry_type
    ml = _sub(parent, "maplayer", **attrs)
    if m.extent is not None:
        _extent(ml, "extent", m.extent)
    _sub(ml, "id", _layer_id(m))
    _sub(ml, "datasource", m.source)
    _sub(ml, "layername", m.name)
    if m.crs is not None:
        _srs(_sub(ml, "srs"), m.crs)
    if m.kind == "vector":
        _sub(ml, "provider", "ogr", encoding="UTF-8")
    else:
        _sub(ml, "provider", "gdal")
        nd = _sub(ml, "noData")
        # never-observed pixels (nodata 255) are drawn in their own colour, not left transparent
        _sub(nd, "noDataList", bandNo="1", useSrcNoData="0" if m.group == "water" else "1")
    msm = _sub(ml, "map-layer-style-manager", current="default")
    _sub(msm, "map-layer-style", name="default")
    for child in style:
        ml.append(child)


def _union(extents: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    x0 = min(e[0] for e in extents)
    y0 = min(e[1] for e in extents)
    x1 = max(e[2] for e in extents)
    y1 = max(e[3] for e in extents)
    pad = max(x1 - x0, y1 - y0, 100.0) * 0.1
    return (x0 - pad, y0 - pad, x1 + pad, y1 + pad)


def project_xml(layers: list[MapLayer], *, title: str = "Glacial lake inventory") -> str:
    """The ``.qgs`` document for ``layers`` (drawing order, top first)."""
    if not layers:
        raise ValueError("a project needs at least one layer")
    crs = next((m.crs for m in layers if m.kind == "vector" and m.crs), None) or next(m.crs for m in layers if m.crs)
    root = ET.Element("qgis", projectname=title, version=QGIS_VERSION)
    _sub(root, "homePath", path="")
    _sub(root, "title", title)
    _srs(_sub(root, "projectCrs"), crs)

    tree = _sub(root, "layer-tree-group")
    for key, label in GROUPS:
        members = [m for m in layers if m.group == key]
        if not members:
            continue
        g = _sub(tree, "layer-tree-group", name=label, checked="Qt::Checked", expanded="0" if key == "nobs" else "1")
        for m in members:
            _sub(g, "layer-tree-layer", id=_layer_id(m), name=m.name, source=m.source,
                 providerKey="ogr" if m.kind == "vector" else "gdal",
                 checked="Qt::Checked" if m.visible else "Qt::Unchecked", expanded="1")
    order = _sub(tree, "custom-order", enabled="0")
    for m in layers:
        _sub(order, "item", _layer_id(m))

    pl = _sub(root, "projectlayers")
    for m in layers:
        _maplayer(pl, m)
    lo = _sub(root, "layerorder")
    for m in layers:
        _sub(lo, "layer", id=_layer_id(m))

    extents = [m.extent for m in layers if m.extent is not None and m.kind == "vector"] or \
        [m.extent for m in layers if m.extent is not None]
    view = _union(extents) if extents else (0.0, 0.0, 1.0, 1.0)
    canvas = _sub(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    _sub(canvas, "units", "degrees" if CRS.from_user_input(crs).is_geographic else "meters")
    _extent(canvas, "extent", view)
    _sub(canvas, "rotation", "0")
    _srs(_sub(canvas, "destinationsrs"), crs)

    props = _sub(root, "properties")
    srs = _sub(props, "SpatialRefSys")
    _sub(srs, "ProjectionsEnabled", "1", type="int")
    paths = _sub(props, "Paths")
    _sub(paths, "Absolute", "false", type="bool")
    pvs = _sub(root, "ProjectViewSettings", UseProjectScales="0", rotation="0")
    dve = _extent(pvs, "DefaultViewExtent", view, attrs=True)
    _srs(dve, crs)

    dates = [m.dates for m in layers if m.dates is not None]
    if dates:
        start = min(d[0] for d in dates)
        end = max(d[1] for d in dates)
        ts = _sub(root, "ProjectTimeSettings", timeStep="1", timeStepUnit="y", frameRate="1", cumulativeTemporalRange="0")
        tr = _sub(ts, "TemporalRange")
        # whole calendar years, so that each one-year frame holds exactly one yearly period
        _sub(tr, "start", f"{start.year}-01-01T00:00:00Z")
        _sub(tr, "end", f"{end.year + 1}-01-01T00:00:00Z")
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode") + "\n"


def write_project(folder: str | Path, *, name: str = PROJECT_NAME) -> Path | None:
    """Write the QGIS project of everything in ``folder`` as ``folder/name`` (a ``.qgz``).

    Returns the path, or None when the folder has no layer to show.
    """
    folder = Path(folder)
    layers = scan_outputs(folder)
    if not layers:
        logger.info("no layers in %s: no QGIS project written", folder)
        return None
    xml = project_xml(layers)
    path = folder / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(Path(name).with_suffix(".qgs").name, xml.encode("utf-8"))
    return path
