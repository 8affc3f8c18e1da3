"""``report.html``: one self-contained page per run that a partner can read and forward.

The page holds the area, the period, the scenes used per year with the share of the area they
observed, lake counts and total area per period with uncertainty, the largest changes, new and
vanished lakes, warnings and incomplete periods, and how to cite the method. Figures are embedded as
base64 PNG and the style sheet is inline: the page makes no request to any server (no fonts,
scripts, tiles or images from elsewhere), so it opens the same offline or as an e-mail attachment.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import geopandas as gpd

    from .tracking import TrackResult

logger = logging.getLogger(__name__)

__all__ = ["CITATIONS", "build_report", "run_area_name", "write_report"]

#: What to cite for the method and its defaults (also listed in docs/methods.md).
CITATIONS = (
    ("Water index NDWI", ("McFeeters, S. K. (1996): The use of the Normalized Difference Water Index (NDWI) in the "
     "delineation of open water features. International Journal of Remote Sensing 17(7), 1425-1432.")),
    ("Water index MNDWI", ("Xu, H. (2006): Modification of normalised difference water index (NDWI) to enhance open "
     "water features in remotely sensed imagery. International Journal of Remote Sensing 27(14), 3025-3033.")),
    ("Minimum lake area, season, glacier distance", ("Wang, X., Guo, X., Yang, C., et al. (2020): Glacial lake "
     "inventory of high-mountain Asia in 1990 and 2018 derived from Landsat images. Earth System Science Data 12, "
     "2169-2182. doi:10.5194/essd-12-2169-2020")),
    ("Area uncertainty", ("Hanshaw, M. N. and Bookhagen, B. (2014): Glacial areas, lake areas, and snow lines from "
     "1975 to 2012. The Cryosphere 8, 359-376. doi:10.5194/tc-8-359-2014")),
    ("Snow and ice test (NDSI)", ("Hall, D. K., Riggs, G. A. and Salomonson, V. V. (1995): Development of methods "
     "for mapping global snow cover using MODIS data. Remote Sensing of Environment 54, 127-140.")),
)
#: Cited as well for ``method="multi"`` (the default): seeded growth and the NIR water test.
MULTI_CITATIONS = (
    ("Seeded water test (method multi)", ("Li, J. and Sheng, Y. (2012): An automated scheme for glacial lake "
     "dynamics mapping using Landsat imagery and digital elevation models: a case study in the Himalayas. "
     "International Journal of Remote Sensing 33(16), 5194-5213.")),
    ("NIR water test (method multi)", ("Zhu, Z. and Woodcock, C. E. (2012): Object-based cloud and cloud shadow "
     "detection in Landsat imagery. Remote Sensing of Environment 118, 83-94.")),
)


def _method(params: Mapping[str, Any]) -> str:
    """The water classification of a run, as a partner reads it.

    >>> _method({"method": "multi"})[:45]
    'multi: seeded test on NDWI, MNDWI, NIR, SWIR1'
    >>> _method({"method": "threshold", "index": "mndwi", "ndwi_threshold": 0.1})
    'threshold: MNDWI above 0.1'
    """
    if params.get("method", "threshold") == "multi":
        return "multi: seeded test on NDWI, MNDWI, NIR, SWIR1 (docs/accuracy.md)"
    return f"threshold: {str(params.get('index', 'ndwi')).upper()} above {params.get('ndwi_threshold', 0.2):g}"

_CSS = """
body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;max-width:1000px;margin:24px auto;padding:0 16px;color:#222;
line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{font-size:1.25em;border-bottom:2px solid #0072B2;padding-bottom:2px;margin-top:1.6em}
.sub{color:#555;margin-top:4px}table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#eef4fa}td.n{text-align:right}
img{max-width:100%;height:auto;border:1px solid #ddd;margin:8px 0}.warn{background:#fff4e0;border-left:4px solid #E69F00;
padding:6px 10px;margin:6px 0}.bad{background:#fde8e0;border-left:4px solid #D55E00;padding:6px 10px;margin:6px 0}
.ok{background:#e6f4ee;border-left:4px solid #009E73;padding:6px 10px}dl{display:grid;grid-template-columns:max-content auto;
gap:2px 14px}dt{font-weight:bold}dd{margin:0}small{color:#666}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return f'<img alt="{_e(fig.axes[0].get_title() if fig.axes else "figure")}" ' \
           f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">'


def _table(df: pd.DataFrame, *, numeric: dict[str, str] | None = None, max_rows: int = 50) -> str:
    numeric = numeric or {}
    if len(df) == 0:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = []
    for _, r in df.head(max_rows).iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            if c in numeric and isinstance(v, (int, float, np.number)) and not pd.isna(v):
                cells.append(f'<td class="n">{format(v, numeric[c])}</td>')
            else:
                cells.append(f"<td>{'' if (not isinstance(v, str) and pd.isna(v)) else _e(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p><small>{len(df) - max_rows} more rows in the CSV files.</small></p>" if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _label(p: Any) -> str:
    return str(getattr(p, "label", p))


def run_area_name(run: Mapping[str, Any]) -> str | None:
    """Name of the run's area: its AOI file name without extension, or None.

    >>> run_area_name({"aoi": {"source": "data/ala_archa.geojson"}})
    'ala archa'
    """
    src = (run.get("aoi") or {}).get("source")
    if src:
        return Path(str(src)).stem.replace("_", " ")
    return None


def _scenes_section(run: Mapping[str, Any]) -> str:
    years = run.get("years") or {}
    if not years:
        return ""
    aoi_km2 = float((run.get("aoi") or {}).get("area_km2") or 0.0)
    px_km2 = float((run.get("grid") or {}).get("pixel_area_m2") or 100.0) / 1e6
    aoi_px = aoi_km2 / px_km2 if px_km2 else 0.0
    rows = []
    for year, rec in years.items():
        scenes = rec.get("scenes") or []
        days = sorted({s.get("day", "") for s in scenes})
        clouds = [s.get("cloud_pct") for s in scenes if s.get("cloud_pct") is not None]
        never = rec.get("never_observed_pixels_in_aoi")
        coverage = (100.0 * (1 - never / aoi_px)) if (never is not None and aoi_px > 0) else np.nan
        rows.append({
            "period": year,
            "season": " – ".join(str(x)[:10] for x in rec.get("season", [])),
            "scenes found": len(scenes),
            "days used": rec.get("days_used", 0),
            "days failed": len(rec.get("days_failed") or []),
            "cloud cover (%)": (f"{min(clouds):.0f}" if round(min(clouds)) == round(max(clouds))
                                else f"{min(clouds):.0f}–{max(clouds):.0f}") if clouds else "",
            "AOI observed (%)": coverage,
            "acquisition days": ", ".join(days[:12]) + (" …" if len(days) > 12 else ""),
            "note": rec.get("reason", ""),
        })
    return ("<h2>Scenes used per year</h2><p>Sentinel-2 scenes of the season that passed the cloud limit; "
            "<em>AOI observed</em> is the share of the area with at least one clear, snow-free observation.</p>"
            + _table(pd.DataFrame(rows), numeric={"AOI observed (%)": ".1f"}))


def _per_period(layers: Mapping[Any, gpd.GeoDataFrame], incomplete: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for period, g in layers.items():
        err = float(np.sqrt((g["area_err"].astype(float) ** 2).sum())) if "area_err" in g.columns and len(g) else 0.0
        rows.append({"period": _label(period), "lakes": len(g),
                     "total area (km²)": float(g["area_km2"].sum()) if len(g) else 0.0, "±1σ (km²)": err,
                     "edge lakes (lower bound)": int((g["edge"] == 1).sum()) if "edge" in g.columns else "",
                     "complete": "no" if _label(period) in incomplete else "yes"})
    return pd.DataFrame(rows)


def _change_tables(tr: TrackResult) -> str:
    ch = tr.changes
    if len(ch) == 0:
        return "<h2>Changes</h2><p>No lakes.</p>"
    cols = [c for c in ("lake_id", "status", "first_yr", "last_yr", "a_first", "a_last", "d_area", "d_pct") if c in ch]
    fmt = {"a_first": ".4f", "a_last": ".4f", "d_area": "+.4f", "d_pct": "+.1f"}
    multi = ch[pd.to_numeric(ch.get("n_years", 2), errors="coerce") >= 2] if "n_years" in ch else ch
    top = multi.reindex(multi["d_area"].abs().sort_values(ascending=False, kind="stable").index).head(15)
    new = ch[ch["status"] == "new"].sort_values("a_last", ascending=False)
    gone = ch[ch["status"] == "vanished"].sort_values("a_first", ascending=False)
    names = {"a_first": "first area (km²)", "a_last": "last area (km²)", "d_area": "change (km²)", "d_pct": "change (%)",
             "first_yr": "first seen", "last_yr": "last seen"}

    def tab(df: pd.DataFrame) -> str:
        d = pd.DataFrame(df[cols]).rename(columns=names)
        return _table(d, numeric={names.get(k, k): v for k, v in fmt.items()}, max_rows=30)

    counts = ch["status"].astype(str).value_counts()
    summary = ", ".join(f"{_e(s)}: {n}" for s, n in counts.items())
    return (f"<h2>Changes {(_label(tr.periods[0]))}–{_label(tr.periods[-1])}</h2><p>{len(ch)} lake{'' if len(ch) == 1 else 's'}: {summary}. "
            "A lake is growing or shrinking only when its area change exceeds the combined one-sigma uncertainty; "
            "a lake whose place was not observed in a period (cloud, snow, failed reading) is never counted as "
            "vanished because of it."
            + (" <i>not_assessed</i>: a lake seen in one period only that merged into another lake right after it "
               "(see <code>lake_pairs.csv</code>), or a series of one period." if "not_assessed" in counts else "")
            + "</p><h3>Largest changes</h3>" + tab(top)
            + f"<h3>New lakes ({len(new)})</h3>" + tab(new) + f"<h3>Vanished lakes ({len(gone)})</h3>" + tab(gone))


def _warnings_section(run: Mapping[str, Any]) -> str:
    parts = ["<h2>Warnings and incomplete periods</h2>"]
    incomplete = run.get("incomplete") or {}
    if incomplete:
        for period, lines in incomplete.items():
            items = "".join(f"<li>{_e(x)}</li>" for x in (lines if isinstance(lines, list) else [lines]))
            parts.append(f'<div class="bad"><b>{_e(period)} is incomplete</b>: lakes there are not comparable '
                         f"with other periods.<ul>{items}</ul></div>")
    warnings = list(run.get("warnings") or [])
    for w in warnings:
        parts.append(f'<div class="warn">{_e(w)}</div>')
    skipped = run.get("skipped_assets") or []
    if skipped:
        parts.append(f'<div class="warn">{len(skipped)} scene reading(s) failed and were skipped; '
                     "see <code>skipped_assets</code> in run.json.</div>")
    if not incomplete and not warnings and not skipped:
        parts.append('<p class="ok">No warnings: every period was read completely.</p>')
    return "".join(parts)


def _cite_section(run: Mapping[str, Any], periods: list[str]) -> str:
    version = (run.get("software") or {}).get("gli-toolbox", "")
    years = sorted({p[:4] for p in periods})
    multi = (run.get("parameters") or {}).get("method") == "multi"
    items = "".join(f"<li><b>{_e(what)}</b>: {_e(ref)}</li>"
                    for what, ref in (*CITATIONS, *(MULTI_CITATIONS if multi else ())))
    data = (f"<p>Imagery: contains modified Copernicus Sentinel data {', '.join(years)}.</p>" if years else "")
    return ("<h2>How to cite</h2>"
            f"<p>Lakes mapped with gli-toolbox {_e(version)} (Sentinel-2 water index composite per season, "
            "lake tracking with stable GLIMS-style ids). Please cite the software version and the method sources "
            f"below; every parameter of this run is in <code>run.json</code>.</p><ul>{items}</ul>{data}")


def build_report(run: Mapping[str, Any], *, layers: Mapping[Any, gpd.GeoDataFrame],
                 tracking: TrackResult | None = None, area_name: str | None = None) -> str:
    """The HTML text of ``report.html``.

    Parameters
    ----------
    run
        The run record (what ``run.json`` holds) of ``gli detect`` or ``gli track``.
    layers
        Lake layers by period (year or date), with ``area_km2`` and ``area_err``.
    tracking
        The tracking result, for the change sections and figures (none with a single period).
    area_name
        Name of the area in the title; default: the AOI file name.
    """
    from .figures import status_map_figure, top_changes_figure, total_area_figure

    area_name = area_name or run_area_name(run) or "area"
    params = run.get("parameters") or {}
    periods = [_label(p) for p in layers]
    incomplete = run.get("incomplete") or {}
    requested = params.get("years") or []
    created = run.get("created") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    aoi = run.get("aoi") or {}
    facts = [("area", area_name)]
    if aoi.get("area_km2") is not None:
        facts.append(("area of interest", f"{float(aoi['area_km2']):,.2f} km² ({aoi.get('source', '')})"))
    if aoi.get("bounds_wgs84"):
        b = aoi["bounds_wgs84"]
        facts.append(("extent (WGS84)", f"{b[0]:.3f}–{b[2]:.3f}° E, {b[1]:.3f}–{b[3]:.3f}° N"))
    if run.get("inputs"):
        facts.append(("inventories tracked", ", ".join(map(str, run["inputs"]))))
    facts.append(("periods", f"{periods[0]}–{periods[-1]} ({len(periods)} with lakes mapped)" if periods else "none"))
    if requested:
        facts.append(("years requested", ", ".join(map(str, requested))))
    if params.get("months"):
        facts.append(("season", f"months {params['months'][0]}–{params['months'][1]} of each year"))
    if params.get("method") is not None or params.get("index") is not None:  # gli detect (gli track has none)
        facts.append(("water method", _method(params)))
    for key, name in (("min_area_m2", "minimum lake area (m²)"),
                      ("max_cloud_pct", "maximum scene cloud cover (%)"), ("collection", "collection")):
        if params.get(key) is not None:
            facts.append((name, params[key]))
    if (run.get("stac") or {}).get("location"):
        facts.append(("STAC", run["stac"]["location"]))
    zones = run.get("zones") or []
    if len(zones) > 1:  # each zone part on its own grid; the layers in one CRS
        grid = run.get("grid") or {}
        facts.append(("grids", ", ".join(f"UTM {z.get('zone')} ({z.get('crs')})" for z in zones)
                      + (f", {grid['resolution_m']:g} m" if grid.get("resolution_m") else "")))
        if grid.get("crs_of_layers"):
            facts.append(("layers in", grid["crs_of_layers"]))
    elif (run.get("grid") or {}).get("crs"):
        facts.append(("grid", f"{run['grid']['crs']}, {run['grid'].get('resolution_m', '')} m"))
    facts.append(("created", created))
    body = [f"<h1>Glacial lakes — {_e(area_name)}</h1>",
            f'<p class="sub">gli-toolbox report, {_e(run.get("command", "detect"))} run of {_e(created[:10])}</p>',
            "<h2>Area and period</h2><dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>",
            _scenes_section(run),
            "<h2>Lakes per period</h2><p>Total area with its one-sigma uncertainty (lake errors added in "
            "quadrature). Lakes touching the area's border or unobserved pixels are lower bounds.</p>"
            + _table(_per_period(layers, incomplete), numeric={"total area (km²)": ".4f", "±1σ (km²)": ".4f"},
                     max_rows=200)]
    if tracking is not None and len(tracking.periods):
        body.append(_png(total_area_figure(tracking, area_name=area_name, periods=requested or None)))
        if len(tracking.periods) >= 2:
            body.append(_change_tables(tracking))
            body.append(_png(top_changes_figure(tracking, area_name=area_name, periods=requested or None)))
        body.append(_png(status_map_figure(tracking, area_name=area_name)))
    body.append(_warnings_section(run))
    body.append(_cite_section(run, periods))
    body.append("<p><small>Files: lakes_&lt;period&gt;.shp and inventory.gpkg (one layer per period), "
                "lake_changes.csv, lake_areas.csv, run.json (every parameter and scene). Field meanings and "
                "units are in the gli-toolbox documentation, page <em>Output fields</em>.</small></p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Glacial lakes — {_e(area_name)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def write_report(path: str | Path, run: Mapping[str, Any], *, layers: Mapping[Any, gpd.GeoDataFrame],
                 tracking: TrackResult | None = None, area_name: str | None = None) -> Path:
    """Write :func:`build_report`'s page to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(build_report(run, layers=layers, tracking=tracking, area_name=area_name), encoding="utf-8")
    return path
