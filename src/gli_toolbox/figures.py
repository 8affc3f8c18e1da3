"""Report figures of lake change (PNG, 200 dpi): total area per period, the lakes that changed most,
a status map, and a water mask with its legend.

Uses matplotlib's object API with the Agg canvas, so it works headless and never touches pyplot state.
The figures hold on real series: one period, gaps (a period with no valid observation breaks the
line instead of being bridged), dozens of periods (tick labels chosen to fit the axis) and tens of
thousands of lakes (the status map draws every lake as one point of one collection and only the
outlines large enough to be seen at the map scale).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.collections import PatchCollection
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath
from matplotlib.ticker import MaxNLocator

from .styles import OKABE_ITO as _OKABE_ITO
from .styles import STATUS_STYLES
from .tracking import TrackResult

logger = logging.getLogger(__name__)

__all__ = [
    "DPI", "MASK_CLASSES", "OKABE_ITO", "STATUS_COLOURS", "mask_figure", "status_colour", "status_map_figure",
    "top_changes_figure", "total_area_figure", "write_figures",
]

#: Resolution of saved figures (dots per inch).
DPI = 200

#: The Okabe & Ito (2008) colour-blind-safe palette, by name (one home: :mod:`gli_toolbox.styles`).
OKABE_ITO = {k: v.upper() for k, v in _OKABE_ITO.items()}

#: Colour of each lake status: the same as in the QGIS styles (:data:`gli_toolbox.styles.STATUS_STYLES`),
#: so the report, the interactive map and QGIS agree (growing vermillion, shrinking blue, stable
#: green, new orange, vanished purple, not observed grey). ``not_assessed`` is white with a black edge
#: in QGIS; on a white figure it is drawn light grey.
STATUS_COLOURS = {k: ("#DDDDDD" if k == "not_assessed" else colour.upper()) for k, (colour, _) in STATUS_STYLES.items()}
_STATUS_ORDER = ("new", "growing", "stable", "shrinking", "vanished", "not_observed", "not_assessed", "merged", "split")

#: Water class raster values, their names and colours (contract of the yearly composite).
MASK_CLASSES = (
    (0, "land (observed, no water)", "#E8E2D0"),
    (1, "water", OKABE_ITO["blue"]),
    (2, "possible water", OKABE_ITO["sky_blue"]),
    (255, "never observed (cloud, snow, outside the area)", "#BDBDBD"),
)

#: Lines of the per-lake figure: colour-blind-safe colours, cycled with line styles.
_LINE_COLOURS = [OKABE_ITO[k] for k in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple",
                                         "sky_blue", "black", "yellow")]


def status_colour(status: str) -> str:
    """Colour of a lake status; unknown statuses are dark grey.

    >>> status_colour("growing"), status_colour("something else")
    ('#D55E00', '#4D4D4D')
    """
    return STATUS_COLOURS.get(str(status), "#4D4D4D")


def _label(p: Any) -> str:
    return str(getattr(p, "label", p))


def _as_time(p: Any) -> Any:
    """A period as a plot coordinate: int year or a datetime for a date."""
    s = _label(p)
    if len(s) == 4:
        return int(s)
    return dt.datetime(int(s[:4]), int(s[4:6]), int(s[6:8]))


def _timeline(res: TrackResult, periods: Iterable[Any] | None) -> tuple[list[Any], set[Any], bool]:
    """All periods to show (observed and requested-but-missing) and the observed ones.

    A requested year without a valid observation is a visible gap. Years nobody asked for (an
    inventory series of 2016, 2019, 2023 given to ``gli track``) are not gaps, and dates (per-scene
    series) are irregular by nature: only requested years can make gaps, in yearly series.
    """
    observed = {_as_time(p) for p in res.periods}
    yearly = all(isinstance(t, int) for t in observed)
    asked = {_as_time(p) for p in (periods or [])}
    wanted = set(observed) | ({t for t in asked if isinstance(t, int)} if yearly else set())
    return sorted(wanted), observed, yearly


def _format_time_axis(ax: Any, yearly: bool) -> None:
    if yearly:
        ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True, min_n_ticks=1))
        # years as years: two close years (2019, 2020) otherwise read "-1, 0" with "+2.02e3" aside
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.set_xlabel("year")
    else:
        loc = AutoDateLocator(minticks=2, maxticks=8)
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(loc))
        ax.set_xlabel("acquisition date")


def _title(what: str, area_name: str | None) -> str:
    return f"{what} — {area_name}" if area_name else what


def _period_key(areas: pd.DataFrame) -> pd.Series:
    if "date" in areas.columns:
        return pd.to_datetime(areas["date"]).dt.to_pydatetime()  # type: ignore[no-any-return]
    return areas["year"].astype(int)


def _series(values: Mapping[Any, float], timeline: Sequence[Any]) -> np.ndarray:
    return np.array([values.get(t, np.nan) for t in timeline], dtype=float)


def total_area_figure(res: TrackResult, *, area_name: str | None = None, periods: Iterable[Any] | None = None) -> Figure:
    """Total lake area per period with one-sigma error bars (added in quadrature) over the lake count.

    Parameters
    ----------
    res
        A tracking result.
    area_name
        Name of the area, shown in the title.
    periods
        Periods that were asked for (e.g. the years of the run). Those without any valid observation
        are drawn as grey bands and the line is broken there, never drawn through them.
    """
    timeline, observed, yearly = _timeline(res, periods)
    areas = res.areas.copy()
    areas["_t"] = list(_period_key(areas))
    g = areas.groupby("_t").agg(total=("area_km2", "sum"), err=("area_err", lambda e: float(np.sqrt((e**2).sum()))),
                                n=("lake_id", "count"))
    total = {t: (float(g.at[t, "total"]) if t in g.index else 0.0) for t in observed}  # observed, no lake -> 0
    err = {t: (float(g.at[t, "err"]) if t in g.index else 0.0) for t in observed}
    count = {t: (int(g.at[t, "n"]) if t in g.index else 0) for t in observed}
    y, e, n = _series(total, timeline), _series(err, timeline), _series(count, timeline)

    fig = Figure(figsize=(8, 5.2), dpi=DPI, layout="constrained")
    ax, axn = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot(timeline, y, "-", color=OKABE_ITO["blue"], linewidth=1.5, marker="o", markersize=4,
            label="total lake area", gid="total_area_line")
    ok = ~np.isnan(y)
    ax.errorbar([t for t, k in zip(timeline, ok) if k], y[ok], yerr=e[ok], fmt="none", ecolor=OKABE_ITO["blue"],
                elinewidth=1, capsize=3, alpha=0.7, label="±1σ uncertainty")
    axn.bar([t for t, k in zip(timeline, ok) if k], n[ok], color=OKABE_ITO["grey"],
            width=0.7 if yearly else 5.0)
    missing = [t for t, k in zip(timeline, ok) if not k]
    for k, t in enumerate(missing):
        for a in (ax, axn):
            a.axvspan(t - 0.5, t + 0.5, color="#DDDDDD", zorder=0, label="no valid observation" if (a is ax and k == 0) else None)
    ax.set_ylabel("total lake area (km²)")
    axn.set_ylabel("lakes")
    axn.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    ax.set_ylim(bottom=0)
    _format_time_axis(axn, yearly)
    if yearly and timeline:
        axn.set_xlim(timeline[0] - 0.6, timeline[-1] + 0.6)
    first, last = (_label(res.periods[0]), _label(res.periods[-1])) if res.periods else ("", "")
    ax.set_title(_title(f"Total glacial lake area {first}–{last}" if first != last else f"Total glacial lake area {first}",
                        area_name))
    for a in (ax, axn):
        a.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def _largest(res: TrackResult, n: int) -> pd.DataFrame:
    ch = res.changes
    col = "n_obs_dt" if "n_obs_dt" in ch.columns else "n_years"
    multi = ch[pd.to_numeric(ch[col], errors="coerce") >= 2]
    return multi.reindex(multi["d_area"].abs().sort_values(ascending=False, kind="stable").index).head(n)


def top_changes_figure(res: TrackResult, n: int = 10, *, area_name: str | None = None,
                       periods: Iterable[Any] | None = None) -> Figure:
    """Area over time of the ``n`` lakes with the largest absolute area change.

    A lake's line is broken at periods within its span where it has no outline (not observed), so a
    gap is never bridged by an interpolated line.
    """
    top = _largest(res, n)
    fig = Figure(figsize=(9, 5), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    if len(top) == 0:
        ax.text(0.5, 0.5, "no lake was observed in two periods", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(_title("Lakes with the largest area change", area_name))
        return fig
    timeline, _, yearly = _timeline(res, periods)
    areas = res.areas.copy()
    areas["_t"] = list(_period_key(areas))
    by_lake = {k: v for k, v in areas.groupby("lake_id")}
    for k, (_, row) in enumerate(top.iterrows()):
        a = by_lake[row["lake_id"]]
        seen = dict(zip(a["_t"], a["area_km2"]))
        errs = dict(zip(a["_t"], a["area_err"]))
        span = [t for t in timeline if min(seen) <= t <= max(seen)]
        colour = _LINE_COLOURS[k % len(_LINE_COLOURS)]
        style = ("-", "--", ":")[(k // len(_LINE_COLOURS)) % 3]
        ax.plot(span, _series(seen, span), linestyle=style, marker="o", markersize=3.5, color=colour,
                label=f"{row['lake_id']} ({row['status']}, {row['d_area']:+.3f} km²)", gid=f"lake:{row['lake_id']}")
        ts = [t for t in span if t in seen]
        ax.errorbar(ts, [seen[t] for t in ts], yerr=[errs[t] for t in ts], fmt="none", ecolor=colour,
                    elinewidth=0.8, capsize=2, alpha=0.6)
    _format_time_axis(ax, yearly)
    ax.set_ylabel("lake area (km²)")
    ax.set_title(_title(f"The {len(top)} lake{'s' if len(top) != 1 else ''} with the largest area change", area_name))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="lake_id (status, change)",
              title_fontsize=8)
    return fig


def _polygon_path(geom: Any) -> MplPath:
    """A matplotlib path of a (multi)polygon with holes (even-odd filling), coordinates in km."""
    import shapely

    verts, codes = [], []
    for poly in shapely.get_parts(geom):
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords) / 1e3
            verts.append(xy)
            c = np.full(len(xy), MplPath.LINETO, dtype=np.uint8)
            c[0] = MplPath.MOVETO
            c[-1] = MplPath.CLOSEPOLY
            codes.append(c)
    return MplPath(np.concatenate(verts), np.concatenate(codes))


def status_map_figure(res: TrackResult, *, area_name: str | None = None, max_outlines: int = 2000) -> Figure:
    """Map of every lake coloured by its status over the series.

    Every lake is a point (its representative point, one scatter per status) so that small lakes stay
    visible at regional scale; outlines are drawn in one collection for the lakes large enough to be
    seen at the map's scale (at most ``max_outlines``, largest first). Cost grows with the number of
    lakes only through the point collection: 17,000 lakes draw in well under a second.
    """
    import shapely

    ch = res.changes
    fig = Figure(figsize=(7.5, 6.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    first, last = (_label(res.periods[0]), _label(res.periods[-1])) if res.periods else ("", "")
    ax.set_title(_title(f"Lake status {first}–{last}" if first != last else f"Lakes {first}", area_name))
    if len(ch) == 0:
        ax.text(0.5, 0.5, "no lakes", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    geoms = ch.geometry.values
    pts = shapely.get_coordinates(shapely.point_on_surface(geoms)) / 1e3
    status = ch["status"].astype(str).to_numpy()
    x0, y0, x1, y1 = shapely.total_bounds(geoms) / 1e3
    extent = max(x1 - x0, y1 - y0, 1e-3)
    bx0, by0, bx1, by1 = shapely.bounds(geoms).T / 1e3
    size = np.maximum(bx1 - bx0, by1 - by0)
    # an outline is worth drawing when it spans more than ~1/150 of the map (a few screen pixels)
    big = np.flatnonzero(size > extent / 150)
    big = big[np.argsort(-size[big], kind="stable")][:max_outlines]
    if len(big):
        patches = [PathPatch(_polygon_path(geoms[i])) for i in big]
        coll = PatchCollection(patches, facecolors=[status_colour(s) for s in status[big]], edgecolors="black",
                               linewidths=0.3, alpha=0.85, zorder=2)
        coll.set_gid("outlines")
        ax.add_collection(coll)
    handles = []
    present = [s for s in _STATUS_ORDER if s in set(status)] + sorted(set(status) - set(_STATUS_ORDER))
    for s in present:
        sel = status == s
        ax.scatter(pts[sel, 0], pts[sel, 1], s=7 if len(ch) < 2000 else 3, c=status_colour(s), linewidths=0,
                   zorder=3, gid=f"status:{s}", rasterized=len(ch) > 5000)
        handles.append(Patch(facecolor=status_colour(s), edgecolor="black", label=f"{s} ({int(sel.sum())})"))
    pad = 0.04 * extent
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad, y1 + pad)
    crs = ch.crs
    crs_name = crs.name if crs is not None else "unknown CRS"
    ax.set_xlabel(f"easting (km, {crs_name})")
    ax.set_ylabel("northing (km)")
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.legend(handles=handles, title=f"status (lakes, total {len(ch)})", loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=8, title_fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def mask_figure(water_class: np.ndarray, *, transform: Any = None, title: str = "Water mask",
                area_name: str | None = None) -> Figure:
    """A water class raster (0 land, 1 water, 2 possible water, 255 never observed) with a legend
    naming each class and its share of the pixels."""
    from matplotlib.colors import to_rgba

    fig = Figure(figsize=(7, 5.5), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    values = [v for v, _, _ in MASK_CLASSES]
    unknown = sorted(set(np.unique(water_class).tolist()) - set(values))
    if unknown:
        raise ValueError(f"water class values {unknown} are not among {values}")
    cmap = ListedColormap([to_rgba(c) for _, _, c in MASK_CLASSES])
    norm = BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 255.5], cmap.N)
    extent = None
    if transform is not None:
        h, w = water_class.shape
        extent = (transform.c / 1e3, (transform.c + transform.a * w) / 1e3,
                  (transform.f + transform.e * h) / 1e3, transform.f / 1e3)
        ax.set_xlabel("easting (km)")
        ax.set_ylabel("northing (km)")
        ax.ticklabel_format(useOffset=False, style="plain")
    else:
        ax.set_xlabel("column (pixels)")
        ax.set_ylabel("row (pixels)")
    ax.imshow(water_class, cmap=cmap, norm=norm, interpolation="nearest", extent=extent)
    total = max(water_class.size, 1)
    handles = []
    for v, name, colour in MASK_CLASSES:
        k = int((water_class == v).sum())
        if k or v in (0, 1, 255):
            handles.append(Patch(facecolor=colour, edgecolor="black", label=f"{name}: {100 * k / total:.1f}%"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="class (share of pixels)",
              title_fontsize=8)
    ax.set_title(_title(title, area_name))
    return fig


def write_figures(res: TrackResult, folder: Path, *, area_name: str | None = None,
                  periods: Iterable[Any] | None = None) -> list[Path]:
    """Write ``total_area.png``, ``top_changes.png`` and ``status_map.png`` (200 dpi) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    periods = list(periods or [])
    figs = {
        "total_area.png": total_area_figure(res, area_name=area_name, periods=periods),
        "top_changes.png": top_changes_figure(res, area_name=area_name, periods=periods),
        "status_map.png": status_map_figure(res, area_name=area_name),
    }
    out = []
    for name, fig in figs.items():
        path = folder / name
        fig.savefig(path, dpi=DPI)
        out.append(path)
    return out

