"""Interactive maps of lakes by period and by change status (folium / Leaflet).

``DetectResult.explore()`` and ``TrackResult.explore()`` call these functions. The maps have no
basemap by default (``tiles=None``), so no tile server is contacted: the lake outlines, their
attributes in tooltips and a legend are all in the page. Pass ``tiles="OpenStreetMap"`` (or any
folium tile name / URL) to add a basemap when a network is available.

With thousands of lakes the outlines are simplified to a tolerance of a fraction of a pixel
(``simplify_m``), which keeps the page small without a visible change at the map's scale.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np

from .figures import STATUS_COLOURS, status_colour

if TYPE_CHECKING:
    import folium

    from .pipeline import DetectResult
    from .tracking import TrackResult

logger = logging.getLogger(__name__)

__all__ = ["explore_detect", "explore_tracking"]

#: Colours of the per-period outline layers (Okabe-Ito, cycled).
_PERIOD_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

_TOOLTIP_FIELDS = ("lake_id", "year", "date", "area_km2", "area_err", "n_obs", "edge", "status", "first_yr",
                   "last_yr", "a_first", "a_last", "d_area", "d_pct")


def _folium() -> Any:
    try:
        import folium
    except ImportError:  # pragma: no cover - folium is a dependency
        raise ImportError("interactive maps need folium: pip install folium") from None
    return folium


#: Above this many lakes the per-period outline layers are left out unless asked for (the status
#: layer already shows every lake), keeping the page light.
MANY_LAKES = 2000


def _wgs84(gdf: gpd.GeoDataFrame, simplify_m: float | None) -> gpd.GeoDataFrame:
    import shapely

    g = gdf
    if simplify_m and len(g) > 500 and g.crs is not None and g.crs.is_projected:
        g = g.set_geometry(g.geometry.simplify(simplify_m, preserve_topology=True))
    g = g.to_crs(4326)
    # 1e-6 degree (about 0.1 m) is far below a Sentinel-2 pixel: shorter numbers, smaller page
    return g.set_geometry(shapely.set_precision(g.geometry.values, 1e-6))


def _fields(gdf: gpd.GeoDataFrame) -> list[str]:
    return [f for f in _TOOLTIP_FIELDS if f in gdf.columns]


def _leaflet_inline() -> tuple[str, str]:
    """Leaflet's script and style sheet (from the ``xstatic-leaflet`` package, the version folium
    uses), with the style sheet's images as data URIs, to be written into the page itself."""
    import base64
    import re
    from pathlib import Path

    import xstatic.pkg.leaflet as xleaflet

    base = Path(xleaflet.BASE_DIR)
    js = (base / "leaflet.js").read_text(encoding="utf-8")
    css = (base / "leaflet.css").read_text(encoding="utf-8")

    def data_uri(match: re.Match[str]) -> str:
        img = base / match.group(1)
        if not img.is_file():
            return match.group(0)
        return f"url(data:image/png;base64,{base64.b64encode(img.read_bytes()).decode('ascii')})"

    css = re.sub(r"url\((images/[\w.-]+\.png)\)", data_uri, css)
    return js, css


def _add_layer(m: Any, gdf: gpd.GeoDataFrame, *, name: str, colours: list[str] | str, fill: bool = True,
               fill_opacity: float = 0.3, weight: float = 2.0, dash: str | None = None, show: bool = True,
               tooltip: bool = True) -> None:
    """One GeoJSON layer (WGS84) styled per feature; the same as geopandas ``explore`` without its
    mapclassify (scikit-learn) dependency."""
    folium = _folium()
    g = gdf.copy()
    g["_colour"] = colours if isinstance(colours, list) else [colours] * len(g)
    fields = _fields(g)

    def style(feature: dict[str, Any]) -> dict[str, Any]:
        c = feature["properties"]["_colour"]
        out = {"color": c, "fillColor": c, "weight": weight, "fill": fill, "fillOpacity": fill_opacity if fill else 0}
        if dash:
            out["dashArray"] = dash
        return out

    layer = folium.GeoJson(g.to_json(drop_id=True), name=name, style_function=style, show=show,
                           tooltip=folium.GeoJsonTooltip(fields=fields) if (tooltip and fields) else None)
    layer.add_to(m)


def _new_map(gdfs: list[gpd.GeoDataFrame], tiles: str | None) -> Any:
    folium = _folium()
    bounds = np.array([g.total_bounds for g in gdfs if len(g)])
    m = folium.Map(tiles=tiles, control_scale=True, prefer_canvas=True)
    # Offline: no script or style sheet from a CDN. Leaflet itself is written into the page; the
    # other folium defaults (jQuery, Bootstrap, awesome-markers) are not used by these maps.
    m.default_js = []
    m.default_css = []
    js, css = _leaflet_inline()
    m.get_root().header.add_child(folium.Element(f"<style>{css}</style><script>{js}</script>"), name="leaflet_inline")
    if len(bounds):
        m.fit_bounds([[bounds[:, 1].min(), bounds[:, 0].min()], [bounds[:, 3].max(), bounds[:, 2].max()]])
    return m


def _legend(m: Any, title: str, entries: list[tuple[str, str, bool]]) -> None:
    """A fixed legend box: (label, colour, filled) per entry."""
    folium = _folium()
    rows = "".join(
        f'<div><span style="display:inline-block;width:12px;height:12px;margin-right:6px;'
        f'border:2px solid {c};background:{c if filled else "transparent"}"></span>{html.escape(label)}</div>'
        for label, c, filled in entries
    )
    box = (f'<div class="gli-legend" style="position:absolute;bottom:28px;right:10px;z-index:9999;background:white;'
           f'padding:6px 8px;border:1px solid #888;font:12px sans-serif"><b>{html.escape(title)}</b>{rows}</div>')
    m.get_root().html.add_child(folium.Element(box))


def _add_status_layer(m: Any, changes: gpd.GeoDataFrame, simplify_m: float | None, show: bool = True) -> None:
    g = _wgs84(changes, simplify_m)
    g = g.assign(status=g["status"].astype(str))
    _add_layer(m, g, name="change status (all periods)", colours=[status_colour(s) for s in g["status"]],
               weight=1.5, fill_opacity=0.6, show=show)


def explore_tracking(tr: TrackResult, *, tiles: str | None = None, simplify_m: float | None = 5.0,
                     layers: bool | None = None) -> folium.Map:
    """An interactive map of a tracking result: the lakes coloured by change status, and (with
    ``layers``) one outline layer per period to switch on and off.

    Parameters
    ----------
    tr
        A :class:`~gli_toolbox.tracking.TrackResult`.
    tiles
        Basemap for folium; ``None`` (default) draws no basemap and needs no network for tiles.
    simplify_m
        Simplification tolerance in metres for layers of more than 500 lakes (default half a
        Sentinel-2 pixel; ``None``: keep every vertex).
    layers
        Add the outline layer of every period (default: when there are at most ``MANY_LAKES`` lakes).

    Returns
    -------
    folium.Map
        Shown inline in Jupyter; ``.save("map.html")`` writes a page.
    """
    folium = _folium()
    m = _new_map([tr.changes.to_crs(4326)] if len(tr.changes) else [], tiles)
    if len(tr.changes):
        _add_status_layer(m, tr.changes, simplify_m)
    if layers is None:
        layers = len(tr.changes) <= MANY_LAKES
    if layers:
        for k, (period, gdf) in enumerate(tr.layers.items()):
            if len(gdf) == 0:
                continue
            g = _wgs84(gdf, simplify_m)
            _add_layer(m, g, name=f"lakes {getattr(period, 'label', period)}", colours=_PERIOD_COLOURS[k % 8],
                       fill=False, show=False)
    present = [s for s in STATUS_COLOURS if s in set(tr.changes["status"].astype(str))] if len(tr.changes) else []
    _legend(m, "lake status", [(f"{s} ({int((tr.changes['status'] == s).sum())})", status_colour(s), True)
                               for s in present])
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def explore_detect(result: DetectResult, *, tiles: str | None = None, simplify_m: float | None = 5.0) -> folium.Map:
    """An interactive map of a detection result: one outline layer per year (or date), the AOI, and
    the lakes coloured by change status when the run covers two periods or more.

    Parameters
    ----------
    result
        A :class:`~gli_toolbox.pipeline.DetectResult`.
    tiles
        Basemap for folium; ``None`` (default) draws no basemap and needs no network for tiles.
    simplify_m
        Simplification tolerance in metres for layers of more than 500 lakes.
    """
    folium = _folium()
    per_scene = bool(getattr(result.config, "per_scene", False)) and bool(result.scene_lakes)
    layers = dict(result.scene_lakes) if per_scene else dict(result.lakes)
    aoi = gpd.GeoDataFrame({"name": ["AOI"]}, geometry=[result.aoi.geometry_wgs84], crs=4326)
    m = _new_map([aoi], tiles)
    _add_layer(m, aoi, name="area of interest", colours="#555555", fill=False, weight=1.5, dash="4 4", tooltip=False)
    entries = [("area of interest", "#555555", False)]
    tr = result.tracking
    several = tr is not None and len(tr.periods) >= 2 and len(tr.changes) > 0
    if several and tr is not None:
        _add_status_layer(m, tr.changes, simplify_m, show=False)
    for k, (period, gdf) in enumerate(layers.items()):
        colour = _PERIOD_COLOURS[k % 8]
        label = f"lakes {getattr(period, 'label', period)} ({len(gdf)})"
        entries.append((label, colour, False))
        if len(gdf) == 0:
            continue
        g = _wgs84(gdf, simplify_m)
        _add_layer(m, g, name=label, colours=colour, fill_opacity=0.15)
    if several and tr is not None:
        entries += [(f"status: {s}", status_colour(s), True) for s in STATUS_COLOURS
                    if s in set(tr.changes["status"].astype(str))]
    _legend(m, "layers", entries)
    folium.LayerControl(collapsed=False).add_to(m)
    return m
