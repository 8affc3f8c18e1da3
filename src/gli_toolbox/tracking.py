"""Match lakes across years (or dates) so that one physical lake keeps one id, and classify change.

Pure core: takes GeoDataFrames in one projected CRS, returns GeoDataFrames / DataFrames.

Matching rule (documented in ``docs/tracking.md``):

* A lake of period *t* is a candidate for a track when it overlaps the track's last known outline,
  or, if either is smaller than ``small_lake_km2``, lies within ``proximity_m`` of it. Tracks not
  seen in the previous period stay candidates, so a lake hidden for a year keeps its id.
* Candidates form connected groups (tracks <-> lakes). In each group tracks are taken in order of
  their last area (largest first, then id); each takes the free lake it overlaps most. A lake left
  over is a **split** from the track it overlaps most and gets a new id; a track left over has
  **merged** into the track that took its best lake. So the id of the largest predecessor survives
  a merge; after a split the largest part keeps the id (it swaps with the part first taken).
* New ids are the GLIMS-style id of the lake when first seen, made unique within the series.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .lakes import area_uncertainty_km2

logger = logging.getLogger(__name__)

__all__ = ["STATUSES", "Status", "TrackResult", "change_status", "decimal_year", "track"]

Status = Literal["new", "vanished", "stable", "growing", "shrinking", "merged", "split"]
#: Pair status (not a change) for a period in which a known lake's place was not seen at all.
NOT_OBSERVED = "not_observed"
STATUSES: tuple[str, ...] = ("new", "vanished", "stable", "growing", "shrinking", "merged", "split")


def decimal_year(key: Any) -> float:
    """Time of a period as a decimal year: ``2019`` -> 2019.0, ``"20200702"`` -> 2020.5.

    >>> decimal_year(2019), round(decimal_year("20200702"), 3)
    (2019.0, 2020.5)
    """
    import datetime as dt

    s = str(key)
    if len(s) == 4:
        return float(s)
    d = dt.date(int(s[:4]), int(s[4:6]), int(s[6:8])) if "-" not in s else dt.date.fromisoformat(s)
    start = dt.date(d.year, 1, 1)
    days = (dt.date(d.year + 1, 1, 1) - start).days
    return d.year + (d - start).days / days


def change_status(a1: float, e1: float, a2: float, e2: float) -> tuple[str, int]:
    """``growing``/``shrinking`` when |a2 - a1| exceeds the combined one-sigma uncertainty
    sqrt(e1² + e2²), else ``stable``. Returns (status, significant 0/1).

    >>> change_status(1.0, 0.05, 1.2, 0.05)
    ('growing', 1)
    >>> change_status(1.0, 0.05, 1.05, 0.05)
    ('stable', 0)
    """
    d = a2 - a1
    if abs(d) > float(np.hypot(e1, e2)):
        return ("growing" if d > 0 else "shrinking"), 1
    return "stable", 0


@dataclass
class _Track:
    id: str
    first: int  # period index
    last: int
    geom: Any  # last known outline
    area: float  # last known area
    obs: dict[int, int] = field(default_factory=dict)  # period index -> row in that period
    merged_into: str | None = None
    split_from: str | None = None
    split_into: list[str] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)
    ended: int | None = None  # period index where it merged away


@dataclass
class TrackResult:
    """Output of :func:`track`."""

    periods: list[Any]
    """Period keys in time order (years as int, dates as ``YYYYMMDD`` strings)."""
    layers: dict[Any, gpd.GeoDataFrame]
    """Input layers with ``lake_id`` replaced by the stable track id."""
    changes: gpd.GeoDataFrame
    """One row per lake (track): see :data:`CHANGE_FIELDS`."""
    areas: pd.DataFrame
    """Long table ``lake_id, year, area_km2, area_err`` (plus ``date`` for per-scene periods)."""
    pairs: pd.DataFrame
    """Status of each lake between consecutive periods: ``lake_id, from, to, status, d_area, signif``."""
    events: pd.DataFrame
    """Merges and splits: ``period, kind, lake_id, other_id``."""

    def explore(self, **kwargs: Any) -> Any:
        """Interactive map (folium) of the lakes by status and period: :func:`gli_toolbox.maps.explore_tracking`."""
        from .maps import explore_tracking

        return explore_tracking(self, **kwargs)


CHANGE_FIELDS = ("lake_id", "first_yr", "last_yr", "n_years", "a_first", "a_last", "d_area", "d_pct",
                 "rate_yr", "status", "signif", "merged_to", "split_from")


def _unique(base: str, used: set[str]) -> str:
    if base not in used:
        return base
    for letter in string.ascii_uppercase:
        if base + letter not in used:
            return base + letter
    k = 2
    while f"{base}{k}" in used:
        k += 1
    return f"{base}{k}"


def _prepare(gdf: gpd.GeoDataFrame, pixel_m: float) -> gpd.GeoDataFrame:
    """Copy with area fields, rows in a canonical order (so input order never changes the result)."""
    g = gdf.copy()
    if "area_km2" not in g.columns:
        g["area_km2"] = g.geometry.area / 1e6
    if "area_err" not in g.columns:
        g["area_err"] = area_uncertainty_km2(g.geometry.length.to_numpy(), pixel_m=pixel_m)
    if "lake_id" not in g.columns:
        g["lake_id"] = ""
    c = g.geometry.representative_point()
    key = pd.DataFrame({"id": g["lake_id"].astype(str).to_numpy(), "x": c.x.to_numpy(), "y": c.y.to_numpy(),
                        "a": g["area_km2"].to_numpy()})
    order = key.sort_values(["id", "x", "y", "a"], kind="stable").index.to_numpy()
    return g.iloc[order].reset_index(drop=True)


def track(
    layers: Mapping[Any, gpd.GeoDataFrame],
    *,
    proximity_m: float = 30.0,
    small_lake_km2: float = 0.05,
    pixel_m: float = 10.0,
    observed: Callable[[Any, Any], bool] | None = None,
) -> TrackResult:
    """Give every lake a stable id across periods and classify its change.

    Parameters
    ----------
    layers
        Lake layers by period key (year ``int`` or date ``"YYYYMMDD"``), all in one projected CRS,
        each with a ``lake_id`` column (used for new ids) and ideally ``area_km2`` / ``area_err``
        (computed from the geometry and ``pixel_m`` when missing).
    proximity_m
        Small lakes match a track within this distance even without overlap (default 30 m, three
        Sentinel-2 pixels: georegistration error between dates is about one pixel).
    small_lake_km2
        Lakes below this area may match by proximity.
    pixel_m
        Pixel size for area uncertainties that have to be computed here.
    observed
        ``observed(period, geometry) -> bool``: was the place of a missing lake actually seen in that
        period? When it says False (cloud all season, frozen all season), the lake is reported
        ``not_observed`` for that period instead of ``vanished``. Without it every absence counts.

    Returns
    -------
    TrackResult
    """
    periods = sorted(layers, key=decimal_year)
    crs = None
    prepared: list[gpd.GeoDataFrame] = []
    for p in periods:
        g = _prepare(layers[p], pixel_m).reset_index(drop=True)
        if crs is None:
            crs = g.crs
        elif g.crs is not None and crs is not None and g.crs != crs:
            raise ValueError(f"layer {p} is in {g.crs}, not {crs}; reproject all layers to one CRS first")
        prepared.append(g)
    if crs is not None and not gpd.GeoSeries([], crs=crs).crs.is_projected:
        raise ValueError("tracking needs a projected CRS in metres; reproject the layers (e.g. to UTM)")

    tracks: list[_Track] = []
    used_ids: set[str] = set()
    events: list[dict[str, Any]] = []
    assigned: list[np.ndarray] = []  # per period: track index per row

    for t, g in enumerate(prepared):
        n = len(g)
        row_track = np.full(n, -1, dtype=np.int64)
        active = [k for k, tr in enumerate(tracks) if tr.ended is None]
        geoms = g.geometry.values
        areas = g["area_km2"].to_numpy(dtype=float)
        if active and n:
            tgeoms = np.array([tracks[k].geom for k in active], dtype=object)
            tarea = np.array([tracks[k].area for k in active])
            tree = shapely.STRtree(tgeoms)
            li, ti = tree.query(geoms, predicate="intersects")
            inter = shapely.area(shapely.intersection(geoms[li], tgeoms[ti])) if len(li) else np.array([])
            keep = inter > 0
            li, ti, inter = li[keep], ti[keep], inter[keep]
            # proximity for small lakes (either side small)
            pl, pt = tree.query(geoms, predicate="dwithin", distance=proximity_m)
            small = (areas[pl] < small_lake_km2) | (tarea[pt] < small_lake_km2)
            pl, pt = pl[small], pt[small]
            known = set(zip(li.tolist(), ti.tolist()))
            extra = [(a, b) for a, b in zip(pl.tolist(), pt.tolist()) if (a, b) not in known]
            if extra:
                el, et = (np.array(x) for x in zip(*extra))
                dist = shapely.distance(geoms[el], tgeoms[et])
                li = np.concatenate([li, el])
                ti = np.concatenate([ti, et])
                # no overlap: rank by closeness with a tiny negative score
                inter = np.concatenate([inter, -dist * 1e-9 - 1e-12])
            m = len(active)
            if len(li):
                graph = coo_matrix((np.ones(len(li)), (li, n + ti)), shape=(n + m, n + m))
                _, comp = connected_components(graph, directed=False)
                edges: dict[int, list[tuple[int, int, float]]] = {}
                for a, b, w in zip(li.tolist(), ti.tolist(), inter.tolist()):
                    edges.setdefault(int(comp[a]), []).append((a, b, w))
                for cid in sorted(edges, key=lambda c: min(e[0] for e in edges[c])):
                    _resolve(edges[cid], t, g, tracks, active, row_track, events, used_ids, periods)
        # unmatched lakes: new tracks
        for new_row in np.flatnonzero(row_track < 0).tolist():
            tid = _unique(str(g.at[new_row, "lake_id"]) or f"L{t}_{new_row}", used_ids)
            used_ids.add(tid)
            tracks.append(_Track(tid, t, t, geoms[new_row], float(areas[new_row]), {t: new_row}))
            row_track[new_row] = len(tracks) - 1
        for row, k in enumerate(row_track.tolist()):
            tr = tracks[k]
            tr.obs[t] = row
            tr.last = t
            tr.geom = geoms[row]
            tr.area = float(areas[row])
        assigned.append(row_track)

    return _build_result(periods, prepared, tracks, assigned, events, crs, observed)


def _resolve(
    edges: list[tuple[int, int, float]],
    t: int,
    g: gpd.GeoDataFrame,
    tracks: list[_Track],
    active: list[int],
    row_track: np.ndarray,
    events: list[dict[str, Any]],
    used_ids: set[str],
    periods: list[Any],
) -> None:
    """Assign the lakes of one connected group of candidates (see module docstring)."""
    best_for_track: dict[int, list[tuple[float, int]]] = {}
    best_for_lake: dict[int, list[tuple[float, int]]] = {}
    for lake, tpos, w in edges:
        best_for_track.setdefault(tpos, []).append((w, lake))
        best_for_lake.setdefault(lake, []).append((w, tpos))
    order = sorted(best_for_track, key=lambda tp: (-tracks[active[tp]].area, tracks[active[tp]].id))
    taken: dict[int, int] = {}  # lake -> tpos
    left_tracks = []
    for tp in order:
        cands = sorted(best_for_track[tp], key=lambda x: (-x[0], x[1]))
        free = [lake for _, lake in cands if lake not in taken]
        if free:
            taken[free[0]] = tp
        else:
            left_tracks.append(tp)
    # A split keeps the id on its largest part: if a left-over lake whose best track is tp is larger
    # than the lake tp took, they swap.
    area = g["area_km2"].to_numpy(dtype=float)
    lake_of = {tp: lake for lake, tp in taken.items()}
    for lake in sorted(best_for_lake, key=lambda lk: (-area[lk], lk)):
        if lake in taken:
            continue
        _, tp = min(best_for_lake[lake], key=lambda x: (-x[0], tracks[active[x[1]]].id))
        current = lake_of.get(tp)
        if current is not None and area[lake] > area[current]:
            del taken[current]
            taken[lake] = tp
            lake_of[tp] = lake
    for lake, tp in taken.items():
        row_track[lake] = active[tp]
    # tracks left over merged into the track that took their best lake
    for tp in left_tracks:
        _, lake = min(best_for_track[tp], key=lambda x: (-x[0], x[1]))
        survivor = tracks[active[taken[lake]]]
        tr = tracks[active[tp]]
        tr.merged_into = survivor.id
        tr.ended = t
        survivor.merged_from.append(tr.id)
        events.append({"period": periods[t], "kind": "merged", "lake_id": tr.id, "other_id": survivor.id})
    # lakes left over split from the track they overlap most
    for lake in sorted(best_for_lake):
        if lake in taken:
            continue
        _, tp = min(best_for_lake[lake], key=lambda x: (-x[0], tracks[active[x[1]]].id))
        parent = tracks[active[tp]]
        tid = _unique(str(g.at[lake, "lake_id"]), used_ids)
        used_ids.add(tid)
        geom = g.geometry.values[lake]
        tracks.append(_Track(tid, t, t, geom, float(g.at[lake, "area_km2"]), {t: lake}, split_from=parent.id))
        parent.split_into.append(tid)
        row_track[lake] = len(tracks) - 1
        events.append({"period": periods[t], "kind": "split", "lake_id": parent.id, "other_id": tid})


def _label(p: Any) -> dict[str, Any]:
    s = str(p)
    if len(s) == 4:
        return {"year": int(s)}
    return {"year": int(s[:4]), "date": f"{s[:4]}-{s[4:6]}-{s[6:8]}"}


def _build_result(
    periods: list[Any],
    prepared: list[gpd.GeoDataFrame],
    tracks: list[_Track],
    assigned: list[np.ndarray],
    events: list[dict[str, Any]],
    crs: Any,
    observed: Callable[[Any, Any], bool] | None = None,
) -> TrackResult:
    per_scene = any(len(str(p)) != 4 for p in periods)
    times = np.array([decimal_year(p) for p in periods])
    # plain arrays: pandas scalar lookups in these loops would dominate the run time
    A = [g["area_km2"].to_numpy(dtype=float) for g in prepared]
    E = [g["area_err"].to_numpy(dtype=float) for g in prepared]
    G = [g.geometry.values for g in prepared]
    last_t = len(periods) - 1

    layers = {}
    for t, p in enumerate(periods):
        g = prepared[t].copy()
        g["lake_id"] = [tracks[int(k)].id for k in assigned[t]]
        layers[p] = g

    area_rows = []
    for tr in tracks:
        for t, r in sorted(tr.obs.items()):
            row = {"lake_id": tr.id, **_label(periods[t]), "area_km2": float(A[t][r]), "area_err": float(E[t][r])}
            area_rows.append(row)
    cols = ["lake_id", "year"] + (["date"] if per_scene else []) + ["area_km2", "area_err"]
    areas = pd.DataFrame(area_rows, columns=cols).sort_values(["lake_id", "year"] + (["date"] if per_scene else []))
    areas = areas.reset_index(drop=True)

    merge_into_at = {(ev["other_id"], ev["period"]) for ev in events if ev["kind"] == "merged"}
    split_at = {(ev["lake_id"], ev["period"]) for ev in events if ev["kind"] == "split"}

    def area_err(t: int, r: int) -> tuple[float, float]:
        return float(A[t][r]), float(E[t][r])

    def seen_missing(tr: _Track, t: int) -> bool:
        """True when the track is absent at t and its last known outline was observed at t."""
        if observed is None:
            return True
        earlier = [s for s in tr.obs if s < t]
        if not earlier:
            return True
        s = max(earlier)
        return bool(observed(periods[t], G[s][tr.obs[s]]))

    pair_rows = []
    for tr in tracks:
        for t in range(1, len(periods)):
            r_prev, r_now = tr.obs.get(t - 1), tr.obs.get(t)
            status: str | None = None
            d, sig = np.nan, 0
            earlier = [s for s in tr.obs if s < t]
            if r_now is not None and earlier:
                s_ = max(earlier)  # last observation before t (bridges a gap)
                (a1, e1), (a2, e2) = area_err(s_, tr.obs[s_]), area_err(t, r_now)
                status, sig = change_status(a1, e1, a2, e2)
                d = a2 - a1
            if tr.ended == t:
                status = "merged"  # this lake merged into another one at t
            elif (tr.id, periods[t]) in merge_into_at and r_now is not None:
                status = "merged"  # another lake merged into this one at t
            elif (tr.id, periods[t]) in split_at or (tr.split_from is not None and tr.first == t):
                status = "split"
            elif r_now is not None and not earlier:
                status = "new"
            elif r_prev is not None and r_now is None and tr.ended is None:
                status = "vanished" if seen_missing(tr, t) else "not_observed"
            if status is not None:
                pair_rows.append({"lake_id": tr.id, "from": periods[t - 1], "to": periods[t], "status": status,
                                  "d_area": d, "signif": sig})
    pairs = pd.DataFrame(pair_rows, columns=["lake_id", "from", "to", "status", "d_area", "signif"])

    rows = []
    geoms = []
    for tr in tracks:
        obs = sorted(tr.obs.items())
        t_first, t_last = obs[0][0], obs[-1][0]
        a = np.array([A[t][r] for t, r in obs], dtype=float)
        e = np.array([E[t][r] for t, r in obs], dtype=float)
        ts = times[[t for t, _ in obs]]
        rate = float(np.polyfit(ts, a, 1)[0]) if len(obs) >= 2 and np.ptp(ts) > 0 else 0.0
        d_area = float(a[-1] - a[0])
        _, sig = change_status(a[0], e[0], a[-1], e[-1])
        if tr.merged_into is not None:
            status = "merged"
        elif t_last < last_t and any(seen_missing(tr, s) for s in range(t_last + 1, last_t + 1)):
            status = "vanished"
        elif tr.split_from is not None or tr.split_into:
            status = "split"
        elif t_first > 0:
            status = "new"
        else:
            status = change_status(a[0], e[0], a[-1], e[-1])[0]
        row = {
            "lake_id": tr.id,
            "first_yr": _label(periods[t_first])["year"],
            "last_yr": _label(periods[t_last])["year"],
            "n_years": len({_label(periods[t])["year"] for t, _ in obs}) if per_scene else len(obs),
            "a_first": float(a[0]),
            "a_last": float(a[-1]),
            "d_area": d_area,
            "d_pct": float(100.0 * d_area / a[0]) if a[0] > 0 else np.nan,
            "rate_yr": rate,
            "status": status,
            "signif": int(sig),
            "merged_to": tr.merged_into or "",
            "split_from": tr.split_from or "",
        }
        if per_scene:
            row["first_dt"] = _label(periods[t_first]).get("date", "")
            row["last_dt"] = _label(periods[t_last]).get("date", "")
            row["n_obs_dt"] = len(obs)
        rows.append(row)
        parts = [G[t][r] for t, r in obs]
        geoms.append(parts[0] if len(parts) == 1 else shapely.union_all(parts))
    changes = gpd.GeoDataFrame(rows, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    if len(changes):
        changes = changes.sort_values("lake_id").reset_index(drop=True)
    else:
        changes = gpd.GeoDataFrame({c: pd.Series([], dtype="object") for c in CHANGE_FIELDS},
                                   geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    ev = pd.DataFrame(events, columns=["period", "kind", "lake_id", "other_id"])
    return TrackResult(periods, layers, changes, areas, pairs, ev)
