"""Status map of a regional inventory: 17,000 lakes, the size of a country's glacier belt.

Compares, in one run, the status map of ``gli_toolbox.figures`` (one point collection per status,
outlines only for lakes visible at the map's scale, in one PatchCollection) with the previous way
(a geopandas ``plot`` of every polygon per status plus the points), drawing both to a 200 dpi PNG.
Prints both times and their ratio; the ratio is what to compare between machines.

The lakes are generated (a benchmark measures speed, not science): circles of log-normal size
(median ~0.01 km2) over a 120 x 120 km UTM area, tracked over two years.

Usage: .venv/bin/python benchmarks/bench_figures.py [N_LAKES]
"""

from __future__ import annotations

import io
import sys
import time

import geopandas as gpd
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gli_toolbox.figures import DPI, STATUS_COLOURS, status_map_figure
from gli_toolbox.tracking import TrackResult, track

CRS = "EPSG:32643"


def inventory(n: int, seed: int = 1) -> TrackResult:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 120_000, n) + 500_000
    y = rng.uniform(0, 120_000, n) + 4_600_000
    r = np.sqrt(rng.lognormal(np.log(0.01e6), 1.0, n) / np.pi)
    geoms = gpd.points_from_xy(x, y).buffer(r, quad_segs=8)
    a = gpd.GeoDataFrame({"lake_id": [f"L{k}" for k in range(n)]}, geometry=geoms, crs=CRS)
    grow = rng.uniform(0.7, 1.3, n)
    b = a.set_geometry(gpd.points_from_xy(x, y).buffer(r * np.sqrt(grow), quad_segs=8)).iloc[: int(n * 0.95)]
    return track({2016: a, 2023: b})


def previous_status_map(res: TrackResult) -> Figure:
    """The status map before this change: every polygon through geopandas, per status, plus points."""
    ch = res.changes
    fig = Figure(figsize=(7.5, 6.5), dpi=120)
    ax = fig.add_subplot()
    km = ch.set_geometry(ch.geometry.scale(1e-3, 1e-3, origin=(0, 0)))
    handles = []
    for status in STATUS_COLOURS:
        sub = km[km["status"] == status]
        if len(sub):
            sub.plot(ax=ax, color=STATUS_COLOURS[status], edgecolor="black", linewidth=0.4)
            handles.append(Patch(facecolor=STATUS_COLOURS[status], edgecolor="black", label=f"{status} ({len(sub)})"))
    pts = km.geometry.representative_point()
    ax.scatter(pts.x, pts.y, s=6, c=[STATUS_COLOURS.get(s, "k") for s in km["status"]], zorder=3)
    ax.set_aspect("equal")
    ax.legend(handles=handles, loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def timed(make, res: TrackResult) -> float:
    t = time.perf_counter()
    make(res).savefig(io.BytesIO(), format="png", dpi=DPI)
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 17_000
    res = inventory(n)
    print(f"{len(res.changes)} lakes, statuses {res.changes['status'].value_counts().to_dict()}")
    new = min(timed(status_map_figure, res) for _ in range(2))
    old = min(timed(previous_status_map, res) for _ in range(2))
    print(f"status map, 200 dpi PNG: previous {old:.2f} s, now {new:.2f} s, ratio previous/now {old / new:.1f}x")


if __name__ == "__main__":
    main()
