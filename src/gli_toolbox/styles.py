"""QGIS styles of the outputs, as QML documents (XML), written without QGIS.

One function per kind of layer returns the ``<qgis>`` element of a QGIS 3 style: :func:`lake_style`
(clear outlines, labelled by ``lake_id``), :func:`change_style` (categorised by ``status`` with the
Okabe-Ito colour-blind-safe palette and a legend in plain words), :func:`water_style` (paletted:
water, land, never observed) and :func:`count_style` (graduated number of valid observations).
:func:`to_qml` serialises one as a ``.qml`` file; :mod:`gli_toolbox.qgis_project` embeds the same
elements in the project. The colours are module constants so tests can check rendered pixels.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from .schema import field_spec

__all__ = [
    "OKABE_ITO",
    "QGIS_VERSION",
    "STATUS_STYLES",
    "WATER_CLASSES",
    "change_style",
    "count_style",
    "lake_style",
    "style_for_layer",
    "to_qml",
    "water_style",
]

#: Version written into styles and projects (the oldest QGIS LTR they were checked with).
QGIS_VERSION = "3.22.16-Białowieża"

#: Okabe and Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "orange": "#e69f00", "sky_blue": "#56b4e9", "bluish_green": "#009e73", "yellow": "#f0e442",
    "blue": "#0072b2", "vermillion": "#d55e00", "reddish_purple": "#cc79a7", "grey": "#999999", "black": "#000000",
}

#: Change status -> (fill colour, legend label), in legend order. "Increased"/"decreased" mean by more
#: than the combined one-sigma area uncertainty (docs/tracking.md); smaller changes are "stable".
STATUS_STYLES: dict[str, tuple[str, str]] = {
    "growing": (OKABE_ITO["vermillion"], "Growing: area increased"),
    "shrinking": (OKABE_ITO["blue"], "Shrinking: area decreased"),
    "stable": (OKABE_ITO["bluish_green"], "Stable: no significant change"),
    "new": (OKABE_ITO["orange"], "New: appeared after the first period"),
    "vanished": (OKABE_ITO["reddish_purple"], "Vanished: gone where clearly seen"),
    "not_observed": (OKABE_ITO["grey"], "Not observed: hidden at the end"),
    "not_assessed": ("#ffffff", "Not assessed: one period only"),
    "merged": (OKABE_ITO["sky_blue"], "Merged with another lake"),
    "split": (OKABE_ITO["yellow"], "Split into several lakes"),
}

#: Water mask value -> (colour, legend label). 255 is the GeoTIFF's nodata value.
WATER_CLASSES: dict[int, tuple[str, str]] = {
    1: (OKABE_ITO["blue"], "Water"),
    2: (OKABE_ITO["sky_blue"], "Possible water"),
    0: ("#f2ecdc", "Land (not water)"),
    255: ("#6e6e6e", "Never observed (cloud, snow, outside)"),
}

#: Valid-observation classes: (upper bound, colour, label); viridis colours, grey for none.
COUNT_CLASSES: tuple[tuple[float, str, str], ...] = (
    (0, WATER_CLASSES[255][0], "0: never observed"),
    (1, "#440154", "1 observation"),
    (2, "#3b528b", "2 observations"),
    (4, "#21918c", "3 to 4 observations"),
    (8, "#5ec962", "5 to 8 observations"),
    (float("inf"), "#fde725", "more than 8 observations"),
)

LAKE_OUTLINE = "#00325a"
LABEL_MAX_SCALE = 100_000  # labels drawn at 1:100 000 and larger scales


def _rgba(hex_colour: str, alpha: int = 255) -> str:
    h = hex_colour.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = text
    return el


def _root(kind: str) -> ET.Element:
    attrs = {"version": QGIS_VERSION, "styleCategories": "AllStyleCategories", "hasScaleBasedVisibilityFlag": "0",
             "minScale": "100000000", "maxScale": "0"}
    if kind == "vector":
        attrs.update(labelsEnabled="0", readOnly="0", simplifyDrawingHints="1", simplifyLocal="1")
    root = ET.Element("qgis", attrs)
    flags = _sub(root, "flags")
    for k, v in (("Identifiable", "1"), ("Removable", "1"), ("Searchable", "1"), ("Private", "0")):
        _sub(flags, k, v)
    return root


def _fill_symbol(parent: ET.Element, name: str, fill: str | None, outline: str, width_mm: float,
                 *, outline_style: str = "solid") -> None:
    sym = _sub(parent, "symbol", name=name, type="fill", alpha="1", clip_to_extent="1", force_rhr="0")
    layer = _sub(sym, "layer", **{"class": "SimpleFill", "enabled": "1", "pass": "0", "locked": "0"})
    props = {
        "color": _rgba(fill) if fill else "0,0,0,0",
        "style": "solid" if fill else "no",
        "outline_color": _rgba(outline),
        "outline_style": outline_style,
        "outline_width": f"{width_mm:g}",
        "outline_width_unit": "MM",
        "joinstyle": "round",
    }
    for k, v in props.items():
        _sub(layer, "prop", k=k, v=v)


def _labeling(root: ET.Element, field: str) -> None:
    root.set("labelsEnabled", "1")
    lab = _sub(root, "labeling", type="simple")
    settings = _sub(lab, "settings", calloutType="simple")
    ts = _sub(settings, "text-style", fieldName=field, isExpression="0", fontSize="8", fontSizeUnit="Point",
              textColor=_rgba(LAKE_OUTLINE), fontFamily="Sans Serif", namedStyle="Regular", fontWeight="50",
              textOpacity="1", blendMode="0", multilineHeight="1")
    _sub(ts, "text-buffer", bufferDraw="1", bufferSize="0.8", bufferSizeUnits="MM", bufferColor="255,255,255,255",
         bufferOpacity="0.8", bufferNoFill="1", bufferJoinStyle="128", bufferBlendMode="0")
    _sub(settings, "text-format", multilineAlign="3", wrapChar="", formatNumbers="0", decimals="3")
    _sub(settings, "placement", placement="0", polygonPlacementFlags="2", dist="1", distUnits="MM",
         priority="5", fitInPolygonOnly="0", centroidInside="1", centroidWhole="0")
    _sub(settings, "rendering", drawLabels="1", scaleVisibility="1", scaleMin="0", scaleMax=str(LABEL_MAX_SCALE),
         obstacle="1", obstacleFactor="1", obstacleType="1", displayAll="0", upsidedownLabels="0",
         fontLimitPixelSize="0", minFeatureSize="0", limitNumLabels="0", maxNumLabels="2000", zIndex="0",
         labelPerPart="0", mergeLines="0")


def _aliases(root: ET.Element, fields: Sequence[str]) -> None:
    conf = _sub(root, "fieldConfiguration")
    for name in fields:
        f = _sub(conf, "field", name=name, configurationFlags="None")
        _sub(_sub(f, "editWidget", type=""), "config")
    aliases = _sub(root, "aliases")
    for i, name in enumerate(fields):
        spec = field_spec(name)
        _sub(aliases, "alias", field=name, index=str(i), name=spec.alias if spec else "")


def _vector_tail(root: ET.Element, display_field: str = "lake_id") -> None:
    _sub(root, "blendMode", "0")
    _sub(root, "featureBlendMode", "0")
    _sub(root, "layerOpacity", "1")
    _sub(root, "legend", type="default-vector", showLabelLegend="0")
    _sub(root, "previewExpression", f'"{display_field}"')
    _sub(root, "mapTip", "")
    _sub(root, "layerGeometryType", "2")


def _temporal(root: ET.Element, start_field: str | None, end_field: str | None) -> None:
    enabled = "1" if start_field else "0"
    mode = "2" if start_field else "0"  # 2: start and end dates from fields
    t = _sub(root, "temporal", enabled=enabled, mode=mode, startField=start_field or "", endField=end_field or "",
             limitMode="1",  # include the end date: a one-day period is [date, date]
             accumulate="0", fixedDuration="0", durationField="", durationUnit="d", startExpression="",
             endExpression="")
    fr = _sub(t, "fixedRange")
    _sub(fr, "start", "")
    _sub(fr, "end", "")


def lake_style(fields: Sequence[str], *, temporal: bool = False) -> ET.Element:
    """Style of a lake layer: dark blue outline over a faint blue fill, labelled by ``lake_id``
    from 1:100 000. With ``temporal``, the layer's temporal properties use ``date`` and
    ``date_end`` so QGIS's temporal controller shows one period per frame.

    >>> lake_style(["lake_id", "area_km2"]).find("renderer-v2").get("type")
    'singleSymbol'
    """
    root = _root("vector")
    _temporal(root, "date" if temporal else None, "date_end" if temporal else None)
    r = _sub(root, "renderer-v2", type="singleSymbol", forceraster="0", symbollevels="0", enableorderby="0",
             referencescale="-1")
    _fill_symbol(_sub(r, "symbols"), "0", None, LAKE_OUTLINE, 0.5)
    if "lake_id" in fields:
        _labeling(root, "lake_id")
    _aliases(root, fields)
    _vector_tail(root)
    return root


def change_style(fields: Sequence[str], *, extra_statuses: Iterable[str] = ()) -> ET.Element:
    """Style of ``lake_changes``: filled by ``status`` with :data:`STATUS_STYLES` (and any other
    status found in the data, in grey, so nothing is hidden).

    >>> cats = change_style(["lake_id", "status"]).find("renderer-v2/categories")
    >>> [c.get("value") for c in cats][:3], cats[0].get("label")
    (['growing', 'shrinking', 'stable'], 'Growing: area increased')
    """
    root = _root("vector")
    _temporal(root, None, None)
    r = _sub(root, "renderer-v2", type="categorizedSymbol", attr="status", forceraster="0", symbollevels="0",
             enableorderby="0", referencescale="-1")
    cats = _sub(r, "categories")
    syms = _sub(r, "symbols")
    items = [(k, c, label) for k, (c, label) in STATUS_STYLES.items()]
    items += [(s, "#dddddd", s.replace("_", " ").capitalize()) for s in extra_statuses if s not in STATUS_STYLES]
    for i, (value, colour, label) in enumerate(items):
        _sub(cats, "category", value=value, symbol=str(i), label=label, render="true")
        outline = "#8c8c8c" if value == "not_assessed" else "#232323"
        style = "dash" if value in ("not_observed", "vanished") else "solid"
        _fill_symbol(syms, str(i), colour, outline, 0.4, outline_style=style)
    _aliases(root, fields)
    _vector_tail(root)
    return root


def _raster_root() -> tuple[ET.Element, ET.Element]:
    root = _root("raster")
    t = _sub(root, "temporal", enabled="0", fetchMode="0", mode="0")
    fr = _sub(t, "fixedRange")
    _sub(fr, "start", "")
    _sub(fr, "end", "")
    pipe = _sub(root, "pipe")
    prov = _sub(pipe, "provider")
    _sub(prov, "resampling", enabled="false", zoomedInResamplingMethod="nearestNeighbour",
         zoomedOutResamplingMethod="nearestNeighbour", maxOversampling="2")
    return root, pipe


def _raster_tail(root: ET.Element, pipe: ET.Element) -> None:
    _sub(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    _sub(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0", invertColors="0")
    _sub(pipe, "rasterresampler", maxOversampling="2")
    _sub(pipe, "resamplingStage", "resamplingFilter")
    _sub(root, "blendMode", "0")


def water_style() -> ET.Element:
    """Paletted style of ``water_*.tif``: :data:`WATER_CLASSES` (water, possible water, land,
    never observed).

    >>> [e.get("label") for e in water_style().iter("paletteEntry")][0]
    'Water'
    """
    root, pipe = _raster_root()
    rr = _sub(pipe, "rasterrenderer", type="paletted", band="1", alphaBand="-1", opacity="1", nodataColor="")
    pal = _sub(rr, "colorPalette")
    for value, (colour, label) in WATER_CLASSES.items():
        _sub(pal, "paletteEntry", value=str(value), color=colour, alpha="255", label=label)
    _raster_tail(root, pipe)
    return root


def count_style() -> ET.Element:
    """Graduated style of ``nobs_*.tif``: :data:`COUNT_CLASSES` (0 = never observed in grey).

    >>> [e.get("label") for e in count_style().iter("item")][-1]
    'more than 8 observations'
    """
    root, pipe = _raster_root()
    top = COUNT_CLASSES[-2][0]
    rr = _sub(pipe, "rasterrenderer", type="singlebandpseudocolor", band="1", alphaBand="-1", opacity="1",
              nodataColor="", classificationMin="0", classificationMax=f"{top:g}")
    shader = _sub(_sub(rr, "rastershader"), "colorrampshader", colorRampType="DISCRETE", classificationMode="1",
                  minimumValue="0", maximumValue=f"{top:g}", clip="0", labelPrecision="0")
    for bound, colour, label in COUNT_CLASSES:
        _sub(shader, "item", value="inf" if bound == float("inf") else f"{bound:g}", color=colour, alpha="255",
             label=label)
    _raster_tail(root, pipe)
    return root


def style_for_layer(name: str, fields: Sequence[str] = (), *, statuses: Iterable[str] = ()) -> ET.Element:
    """The style of an output by its layer/file name (``lakes_*``, ``lake_changes``, ``water_*``,
    ``nobs_*``).

    >>> style_for_layer("nobs_2019").find("pipe/rasterrenderer").get("type")
    'singlebandpseudocolor'
    """
    if name == "lake_changes":
        return change_style(fields, extra_statuses=statuses)
    if name.startswith("water_"):
        return water_style()
    if name.startswith("nobs_"):
        return count_style()
    return lake_style(fields, temporal=name == "lakes_all")


def to_qml(root: ET.Element) -> str:
    """Serialise a style element as a ``.qml`` document.

    >>> to_qml(water_style()).splitlines()[0]
    "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
    """
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode") + "\n"
