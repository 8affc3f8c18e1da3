"""Report figures of lake change (PNG): total area per year, the lakes that changed most, a status map.

Uses matplotlib's object API with the Agg canvas, so it works headless and never touches pyplot state.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .tracking import STATUSES, TrackResult

logger = logging.getLogger(__name__)

__all__ = ["STATUS_COLOURS", "status_map_figure", "top_changes_figure", "total_area_figure", "write_figures"]

STATUS_COLOURS = {
    "new": "#1b9e77", "vanished": "#7f7f7f", "stable": "#6baed6", "growing": "#d62728",
    "shrinking": "#ff7f0e", "merged": "#9467bd", "split": "#8c564b",
    "not_observed": "#d9d9d9", "not_assessed": "#ffffff",
}


def _time_axis(areas: pd.DataFrame) -> tuple[pd.Series, str]:
    if "date" in areas.columns:
        return pd.to_datetime(areas["date"]), "acquisition date"
    return areas["year"], "year"


def total_area_figure(res: TrackResult) -> Figure:
    """Total lake area per period with one-sigma error bars (errors added in quadrature)."""
    areas = res.areas.copy()
    key = "date" if "date" in areas.columns else "year"
    g = areas.groupby(key).agg(total=("area_km2", "sum"), err=("area_err", lambda e: float(np.sqrt((e**2).sum()))),
                               n=("lake_id", "count")).reset_index()
    x = pd.to_datetime(g[key]) if key == "date" else g[key]
    fig = Figure(figsize=(7, 4.2), dpi=120)
    ax = fig.add_subplot()
    ax.errorbar(x, g["total"], yerr=g["err"], fmt="o-", capsize=4, color="#1f77b4", label="total lake area ±1σ")
    for xi, yi, ni in zip(x, g["total"], g["n"]):
        ax.annotate(f"{ni} lake{'' if ni == 1 else 's'}", (xi, yi), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    ax.set_xlabel("acquisition date" if key == "date" else "year")
    ax.set_ylabel("total lake area (km²)")
    ax.set_title("Total glacial lake area")
    if key == "year":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        fig.autofmt_xdate()
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def top_changes_figure(res: TrackResult, n: int = 10) -> Figure:
    """Area over time of the ``n`` lakes with the largest absolute area change."""
    ch = res.changes
    fig = Figure(figsize=(8, 4.8), dpi=120)
    ax = fig.add_subplot()
    multi = ch[ch["n_years"] >= 2] if "n_obs_dt" not in ch.columns else ch[ch["n_obs_dt"] >= 2]
    top = multi.reindex(multi["d_area"].abs().sort_values(ascending=False).index).head(n)
    if len(top) == 0:
        ax.text(0.5, 0.5, "no lake was observed in two periods", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    colours = [cmap(k) for k in range(10)]
    for k, (_, row) in enumerate(top.iterrows()):
        a = res.areas[res.areas["lake_id"] == row["lake_id"]]
        x, _ = _time_axis(a)
        # one colour per lake; dashed lines for lakes that lost area
        ax.errorbar(x, a["area_km2"], yerr=a["area_err"], marker="o", capsize=3, color=colours[k % len(colours)],
                    linestyle="--" if row["d_area"] < 0 else "-",
                    label=f"{row['lake_id']} ({row['status']}, {row['d_area']:+.3f} km²)")
    _, xlabel = _time_axis(res.areas)
    ax.set_xlabel(xlabel)
    if xlabel == "year":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        fig.autofmt_xdate()
    ax.set_ylabel("lake area (km²)")
    ax.set_title(f"Lakes with the largest area change (top {len(top)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="lake (status, change)\n— gain   - - loss",
              title_fontsize=8)
    fig.tight_layout()
    return fig


def status_map_figure(res: TrackResult) -> Figure:
    """Map of every lake (union of its outlines) coloured by its status over the series."""
    ch = res.changes
    fig = Figure(figsize=(7.5, 6.5), dpi=120)
    ax = fig.add_subplot()
    if len(ch) == 0:
        ax.text(0.5, 0.5, "no lakes", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    km = ch.set_geometry(ch.geometry.scale(1e-3, 1e-3, origin=(0, 0)))  # metres -> km for the axes
    handles = []
    for status in STATUSES:
        sub = km[km["status"] == status]
        if len(sub):
            sub.plot(ax=ax, color=STATUS_COLOURS[status], edgecolor="black", linewidth=0.4)
            handles.append(Patch(facecolor=STATUS_COLOURS[status], edgecolor="black", label=f"{status} ({len(sub)})"))
    # mark small lakes with points so they stay visible at regional scale
    pts = km.geometry.representative_point()
    ax.scatter(pts.x, pts.y, s=6, c=[STATUS_COLOURS.get(s, "k") for s in km["status"]], zorder=3)
    crs_name = ch.crs.name if ch.crs is not None else "unknown CRS"
    ax.set_xlabel(f"easting (km, {crs_name})")
    ax.set_ylabel("northing (km)")
    ax.set_title(f"Lake status {res.periods[0]}–{res.periods[-1]}")
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.legend(handles=handles, title="status (lakes)", loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_figures(res: TrackResult, folder: Path) -> list[Path]:
    """Write ``total_area.png``, ``top_changes.png`` and ``status_map.png`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, make in (("total_area.png", total_area_figure), ("top_changes.png", top_changes_figure),
                       ("status_map.png", status_map_figure)):
        fig = make(res)
        path = folder / name
        fig.savefig(path)
        out.append(path)
    return out
