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

Status (``lake_changes``) describes the lake's area over the series (``new``, ``vanished``,
``growing``, ``shrinking``, ``stable``, ``not_observed``; ``not_assessed`` with one period); merges
and splits are counted in their own fields, so a lake can be ``growing`` and have split once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .attributes import area_uncertainty_km2, unique_id
from .periods import Period

logger = logging.getLogger(__name__)

__all__ = ["CHANGE_FIELDS", "PAIR_STATUSES", "STATUSES", "Status", "TrackResult", "change_status", "decimal_year",
           "track"]

Status = Literal["new", "vanished", "stable", "growing", "shrinking", "not_observed", "not_assessed"]
#: Status of a lake over the series (``lake_changes``): what happened to its area. Merges and splits
#: are reported apart (``n_merges``, ``n_splits``, ``merged_to``, ``split_from``, ``lake_events.csv``).
STATUSES: tuple[str, ...] = ("new", "vanished", "stable", "growing", "shrinking", "not_observed", "not_assessed")
#: Pair status (not a change) for a period in which a known lake's place was not seen at all.
NOT_OBSERVED = "not_observed"
#: Series status when only one period was given: ids, but no change can be assessed.
NOT_ASSESSED = "not_assessed"
#: Status between consecutive periods (``lake_pairs.csv``): the series statuses but ``not_assessed``,
#: plus ``merged`` for the period in which a lake merged into another (it has no area of its own).
PAIR_STATUSES: tuple[str, ...] = ("new", "vanished", "stable", "growing", "shrinking", "not_observed", "merged")


def decimal_year(key: Any) -> float:
    """Time of a period as a decimal year: ``2019`` -> 2019.0, ``"20200702"`` -> 2020.5.

    >>> decimal_year(2019), round(decimal_year("20200702"), 3)
    (2019.0, 2020.5)
    """
    return Period.of(key).decimal_year


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
    """Period keys in time order, as given (years as int, dates as ``YYYYMMDD`` strings, or
    :class:`~gli_toolbox.periods.Period`, which :func:`~gli_toolbox.inventories.track_inventories` uses)."""
    layers: dict[Any, gpd.GeoDataFrame]
    """Input layers with ``lake_id`` replaced by the stable track id."""
    changes: gpd.GeoDataFrame
    """One row per lake (track): see :data:`CHANGE_FIELDS`."""
    areas: pd.DataFrame
    """Long table ``lake_id, year, area_km2, area_err`` (plus ``date`` for per-scene periods)."""
    pairs: pd.DataFrame
    """Status of each lake between consecutive periods: ``lake_id, from, to, status, d_area, signif, event``."""
    events: pd.DataFrame
    """Merges and splits: ``period, kind, lake_id, other_id``."""
    run: Any = None
    """The run record (:class:`~gli_toolbox.records.TrackRecord`) when made by
    :func:`~gli_toolbox.inventories.track_inventories`; None from :func:`track` alone."""

    def layer(self, period: Any) -> gpd.GeoDataFrame:
        """The layer of ``period`` given as ``2019``, ``"20190723"`` or a :class:`~gli_toolbox.periods.Period`,
        whatever key type the layers were given with."""
        want = Period.of(period)
        for key, g in self.layers.items():
            if Period.of(key) == want:
                return g
        raise KeyError(f"no layer for {want}; periods are {', '.join(str(p) for p in self.periods)}")

    def explore(self, **kwargs: Any) -> Any:
        """Interactive map (folium) of the lakes by status and period: :func:`gli_toolbox.maps.explore_tracking`."""
        from .maps import explore_tracking

        return explore_tracking(self, **kwargs)


CHANGE_FIELDS = ("lake_id", "first_yr", "last_yr", "n_years", "a_first", "a_last", "d_area", "d_pct",
                 "rate_yr", "status", "signif", "merged_to", "split_from", "n_merges", "n_splits")


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
        Lake layers by period key (year ``int``, date ``"YYYYMMDD"`` or :class:`~gli_toolbox.periods.Period`),
        all in one projected CRS, each with a ``lake_id`` column (used for new ids) and ideally
        ``area_km2`` / ``area_err`` (computed from the geometry and ``pixel_m`` when missing).
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
        ``periods`` and the keys of ``layers`` are the keys given, in time order.
    """
    periods = sorted(layers, key=Period.of)
    prepared, crs = _prepare_all(layers, periods, pixel_m)
    series = _Series(periods)
    for t, g in enumerate(prepared):
        series.add_period(t, g, proximity_m=proximity_m, small_lake_km2=small_lake_km2)
    return _build_result(periods, prepared, series.tracks, series.assigned, series.events, crs, observed)


def _prepare_all(layers: Mapping[Any, gpd.GeoDataFrame], periods: list[Any],
                 pixel_m: float) -> tuple[list[gpd.GeoDataFrame], Any]:
    """Prepared layers in time order and their common CRS (refused when not one projected CRS)."""
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
    return prepared, crs


def _candidates(
    geoms: np.ndarray, areas: np.ndarray, tgeoms: np.ndarray, tarea: np.ndarray, *,
    proximity_m: float, small_lake_km2: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate (lake, track) pairs and their score: the overlap area, or for small lakes within
    ``proximity_m`` without overlap a tiny negative score that ranks closer pairs first."""
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
        inter = np.concatenate([inter, -dist * 1e-9 - 1e-12])
    return li, ti, inter


def _groups(li: np.ndarray, ti: np.ndarray, w: np.ndarray, n: int, m: int) -> list[list[tuple[int, int, float]]]:
    """Connected groups of candidate pairs (lakes 0..n-1, tracks 0..m-1), ordered by their first lake."""
    graph = coo_matrix((np.ones(len(li)), (li, n + ti)), shape=(n + m, n + m))
    _, comp = connected_components(graph, directed=False)
    edges: dict[int, list[tuple[int, int, float]]] = {}
    for a, b, x in zip(li.tolist(), ti.tolist(), w.tolist()):
        edges.setdefault(int(comp[a]), []).append((a, b, x))
    return [edges[c] for c in sorted(edges, key=lambda c: min(e[0] for e in edges[c]))]


@dataclass
class _GroupMatch:
    """Decision for one group: lake -> track position, merges (track, lake it merged into), splits
    (lake, parent track position), all in the order they are applied."""

    taken: dict[int, int]
    merges: list[tuple[int, int]]
    splits: list[tuple[int, int]]


def _match_group(
    edges: list[tuple[int, int, float]], track_area: Callable[[int], float], track_id: Callable[[int], str],
    lake_area: np.ndarray,
) -> _GroupMatch:
    """Assign the lakes of one connected group of candidates (see module docstring). Pure."""
    best_for_track: dict[int, list[tuple[float, int]]] = {}
    best_for_lake: dict[int, list[tuple[float, int]]] = {}
    for lake, tpos, w in edges:
        best_for_track.setdefault(tpos, []).append((w, lake))
        best_for_lake.setdefault(lake, []).append((w, tpos))
    order = sorted(best_for_track, key=lambda tp: (-track_area(tp), track_id(tp)))
    taken: dict[int, int] = {}  # lake -> tpos
    left_tracks = []
    for tp in order:
        cands = sorted(best_for_track[tp], key=lambda x: (-x[0], x[1]))
        free = [lake for _, lake in cands if lake not in taken]
        if free:
            taken[free[0]] = tp
        else:
            left_tracks.append(tp)

    def best_track(lake: int) -> int:
        return min(best_for_lake[lake], key=lambda x: (-x[0], track_id(x[1])))[1]

    # A split keeps the id on its largest part: if a left-over lake whose best track is tp is larger
    # than the lake tp took, they swap.
    lake_of = {tp: lake for lake, tp in taken.items()}
    for lake in sorted(best_for_lake, key=lambda lk: (-lake_area[lk], lk)):
        if lake in taken:
            continue
        tp = best_track(lake)
        current = lake_of.get(tp)
        if current is not None and lake_area[lake] > lake_area[current]:
            del taken[current]
            taken[lake] = tp
            lake_of[tp] = lake
    # tracks left over merged into the track that took their best lake
    merges = [(tp, min(best_for_track[tp], key=lambda x: (-x[0], x[1]))[1]) for tp in left_tracks]
    # lakes left over split from the track they overlap most
    splits = [(lake, best_track(lake)) for lake in sorted(best_for_lake) if lake not in taken]
    return _GroupMatch(taken, merges, splits)


class _Series:
    """The tracks of a series, built period by period: the only place that changes them."""

    def __init__(self, periods: list[Any]) -> None:
        self.periods = periods
        self.tracks: list[_Track] = []
        self.used_ids: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.assigned: list[np.ndarray] = []  # per period: track index per row

    def _new_track(self, base: str, t: int, geom: Any, area: float, row: int, split_from: str | None = None) -> int:
        tid = unique_id(base, self.used_ids)
        self.used_ids.add(tid)
        self.tracks.append(_Track(tid, t, t, geom, area, {t: row}, split_from=split_from))
        return len(self.tracks) - 1

    def add_period(self, t: int, g: gpd.GeoDataFrame, *, proximity_m: float, small_lake_km2: float) -> None:
        """Match the lakes of period ``t`` to the tracks, record merges and splits, start new tracks."""
        n = len(g)
        row_track = np.full(n, -1, dtype=np.int64)
        active = [k for k, tr in enumerate(self.tracks) if tr.ended is None]
        geoms = g.geometry.values
        areas = g["area_km2"].to_numpy(dtype=float)
        if active and n:
            tgeoms = np.array([self.tracks[k].geom for k in active], dtype=object)
            tarea = np.array([self.tracks[k].area for k in active])
            li, ti, w = _candidates(geoms, areas, tgeoms, tarea, proximity_m=proximity_m,
                                    small_lake_km2=small_lake_km2)
            if len(li):
                for edges in _groups(li, ti, w, n, len(active)):
                    match = _match_group(edges, lambda tp: self.tracks[active[tp]].area,
                                         lambda tp: self.tracks[active[tp]].id, areas)
                    self._apply(match, t, g, active, row_track)
        # unmatched lakes: new tracks
        for new_row in np.flatnonzero(row_track < 0).tolist():
            base = str(g.at[new_row, "lake_id"]) or f"L{t}_{new_row}"
            row_track[new_row] = self._new_track(base, t, geoms[new_row], float(areas[new_row]), new_row)
        for row, k in enumerate(row_track.tolist()):
            tr = self.tracks[k]
            tr.obs[t] = row
            tr.last = t
            tr.geom = geoms[row]
            tr.area = float(areas[row])
        self.assigned.append(row_track)

    def _apply(self, match: _GroupMatch, t: int, g: gpd.GeoDataFrame, active: list[int], row_track: np.ndarray) -> None:
        for lake, tp in match.taken.items():
            row_track[lake] = active[tp]
        for tp, lake in match.merges:
            survivor = self.tracks[active[match.taken[lake]]]
            tr = self.tracks[active[tp]]
            tr.merged_into = survivor.id
            tr.ended = t
            survivor.merged_from.append(tr.id)
            self.events.append({"period": self.periods[t], "kind": "merged", "lake_id": tr.id, "other_id": survivor.id})
        for lake, tp in match.splits:
            parent = self.tracks[active[tp]]
            k = self._new_track(str(g.at[lake, "lake_id"]), t, g.geometry.values[lake], float(g.at[lake, "area_km2"]),
                                lake, split_from=parent.id)
            parent.split_into.append(self.tracks[k].id)
            row_track[lake] = k
            self.events.append({"period": self.periods[t], "kind": "split", "lake_id": parent.id,
                                "other_id": self.tracks[k].id})


@dataclass
class _Obs:
    """Per-period plain arrays (pandas scalar lookups in the result loops would dominate the run time)."""

    A: list[np.ndarray]
    E: list[np.ndarray]
    G: list[np.ndarray]

    def area_err(self, t: int, r: int) -> tuple[float, float]:
        return float(self.A[t][r]), float(self.E[t][r])


def _seen_missing(tr: _Track, t: int, periods: list[Any], obs: _Obs,
                  observed: Callable[[Any, Any], bool] | None) -> bool:
    """True when the track is absent at t and its last known outline was observed at t."""
    if observed is None:
        return True
    earlier = [s for s in tr.obs if s < t]
    if not earlier:
        return True
    s = max(earlier)
    return bool(observed(periods[t], obs.G[s][tr.obs[s]]))


def _build_result(
    periods: list[Any],
    prepared: list[gpd.GeoDataFrame],
    tracks: list[_Track],
    assigned: list[np.ndarray],
    events: list[dict[str, Any]],
    crs: Any,
    observed: Callable[[Any, Any], bool] | None = None,
) -> TrackResult:
    obs = _Obs([g["area_km2"].to_numpy(dtype=float) for g in prepared],
               [g["area_err"].to_numpy(dtype=float) for g in prepared],
               [g.geometry.values for g in prepared])
    pers = [Period.of(p) for p in periods]
    per_scene = any(p.per_scene for p in pers)
    layers = {}
    for t, p in enumerate(periods):
        g = prepared[t].copy()
        g["lake_id"] = [tracks[int(k)].id for k in assigned[t]]
        layers[p] = g
    answers: dict[tuple[int, int], bool] = {}

    def seen(tr: _Track, t: int) -> bool:  # asked by the change and the pair tables: look once
        key = (id(tr), t)
        if key not in answers:
            answers[key] = _seen_missing(tr, t, periods, obs, observed)
        return answers[key]

    return TrackResult(
        periods, layers, _change_table(pers, tracks, obs, crs, seen), _area_table(pers, tracks, obs, per_scene),
        _pair_table(periods, tracks, events, obs, seen), pd.DataFrame(events, columns=["period", "kind", "lake_id", "other_id"]),
    )


def _area_table(pers: list[Period], tracks: list[_Track], obs: _Obs, per_scene: bool) -> pd.DataFrame:
    """Long table ``lake_id, year[, date], area_km2, area_err``."""
    rows = []
    for tr in tracks:
        for t, r in sorted(tr.obs.items()):
            when = {"year": pers[t].year, **({"date": pers[t].iso} if pers[t].per_scene else {})}
            rows.append({"lake_id": tr.id, **when, "area_km2": float(obs.A[t][r]), "area_err": float(obs.E[t][r])})
    keys = ["lake_id", "year"] + (["date"] if per_scene else [])
    areas = pd.DataFrame(rows, columns=keys + ["area_km2", "area_err"]).sort_values(keys)
    return areas.reset_index(drop=True)


def _pair_event(tr: _Track, t: int, r_now: int | None, key: Any, merge_into_at: set[tuple[str, Any]],
                split_at: set[tuple[str, Any]]) -> str:
    """``merged`` / ``split`` when the track took part in a merge / split at t, else ``""``."""
    if tr.ended == t or ((tr.id, key) in merge_into_at and r_now is not None):
        return "merged"  # this lake merged into another one at t, or another lake into this one
    if (tr.id, key) in split_at or (tr.split_from is not None and tr.first == t):
        return "split"  # it split at t, or it was split off at t
    return ""


def _pair_status(tr: _Track, t: int, r_prev: int | None, r_now: int | None, earlier: bool,
                 seen: Callable[[_Track, int], bool]) -> str | None:
    """Status of a track between periods t-1 and t that is not an area change (None: see the change)."""
    if tr.ended == t:
        return "merged"  # no area of its own any more: it is part of the lake it merged into
    if r_now is not None and not earlier:
        return "new"
    if r_prev is not None and r_now is None and tr.ended is None:
        return "vanished" if seen(tr, t) else NOT_OBSERVED
    return None


def _pair_table(periods: list[Any], tracks: list[_Track], events: list[dict[str, Any]], obs: _Obs,
                seen: Callable[[_Track, int], bool]) -> pd.DataFrame:
    """Status of each lake between consecutive periods: ``lake_id, from, to, status, d_area, signif, event``
    (``event``: ``merged`` / ``split`` when the lake took part in one at ``to``, else empty)."""
    merge_into_at = {(ev["other_id"], ev["period"]) for ev in events if ev["kind"] == "merged"}
    split_at = {(ev["lake_id"], ev["period"]) for ev in events if ev["kind"] == "split"}
    rows = []
    for tr in tracks:
        for t in range(1, len(periods)):
            r_prev, r_now = tr.obs.get(t - 1), tr.obs.get(t)
            status: str | None = None
            d, sig = np.nan, 0
            earlier = [s for s in tr.obs if s < t]
            if r_now is not None and earlier:
                s_ = max(earlier)  # last observation before t (bridges a gap)
                (a1, e1), (a2, e2) = obs.area_err(s_, tr.obs[s_]), obs.area_err(t, r_now)
                status, sig = change_status(a1, e1, a2, e2)
                d = a2 - a1
            status = _pair_status(tr, t, r_prev, r_now, bool(earlier), seen) or status
            if status is not None:
                rows.append({"lake_id": tr.id, "from": periods[t - 1], "to": periods[t], "status": status,
                             "d_area": d, "signif": sig,
                             "event": _pair_event(tr, t, r_now, periods[t], merge_into_at, split_at)})
    return pd.DataFrame(rows, columns=["lake_id", "from", "to", "status", "d_area", "signif", "event"])


def _series_status(tr: _Track, t_first: int, t_last: int, last_t: int, a: np.ndarray, e: np.ndarray,
                   seen: Callable[[_Track, int], bool]) -> str:
    """What happened to the lake's area over the series (see ``docs/tracking.md``); merges and splits
    do not override it (they have their own fields)."""
    if last_t == 0:
        return NOT_ASSESSED  # one period: change needs two
    gone_at_end = t_last < last_t and tr.merged_into is None
    if gone_at_end and any(seen(tr, s) for s in range(t_last + 1, last_t + 1)):
        return "vanished"
    if t_first > 0:
        return "new"
    if gone_at_end:
        return NOT_OBSERVED  # absent at the end, but its place was never seen empty
    if len(a) < 2:
        return NOT_ASSESSED  # merged into another lake after its only observation
    return change_status(a[0], e[0], a[-1], e[-1])[0]


def _rates(tracks: list[_Track], obs: _Obs, times: np.ndarray) -> list[float]:
    """Least-squares area trend (km2 per year) of each track, 0 with fewer than two distinct times.
    One ``np.polyfit`` per observation pattern (tracks seen in the same periods share the design
    matrix), not one per lake."""
    rates = [0.0] * len(tracks)
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, tr in enumerate(tracks):
        groups.setdefault(tuple(sorted(tr.obs)), []).append(k)
    for ts_idx, ks in groups.items():
        ts = times[list(ts_idx)]
        if len(ts_idx) < 2 or np.ptp(ts) <= 0:
            continue
        a = np.array([[obs.A[t][tracks[k].obs[t]] for k in ks] for t in ts_idx], dtype=float)
        slopes = np.polyfit(ts, a, 1)[0]
        for k, v in zip(ks, np.atleast_1d(slopes).tolist()):
            rates[k] = float(v)
    return rates


def _outline_unions(tracks: list[_Track], obs: _Obs, n_periods: int) -> np.ndarray:
    """Union of each track's outlines over the series (one vectorized ``union_all`` along periods)."""
    parts = np.full((len(tracks), n_periods), None, dtype=object)
    for k, tr in enumerate(tracks):
        for t, r in tr.obs.items():
            parts[k, t] = obs.G[t][r]
    out = np.empty(len(tracks), dtype=object)
    n_obs = np.array([len(tr.obs) for tr in tracks], dtype=np.int64)
    single = n_obs == 1
    if single.any():
        firsts = [next(iter(tracks[k].obs.items())) for k in np.flatnonzero(single)]
        out[single] = [obs.G[t][r] for t, r in firsts]
    if (~single).any():
        out[~single] = shapely.union_all(parts[~single], axis=1)
    return out


def _change_table(pers: list[Period], tracks: list[_Track], obs: _Obs, crs: Any,
                  seen: Callable[[_Track, int], bool]) -> gpd.GeoDataFrame:
    """One row per lake with :data:`CHANGE_FIELDS` and the union of its outlines."""
    per_scene = any(p.per_scene for p in pers)
    times = np.array([p.decimal_year for p in pers])
    last_t = len(pers) - 1
    rates = _rates(tracks, obs, times)
    rows = []
    for k, tr in enumerate(tracks):
        ob = sorted(tr.obs.items())
        t_first, t_last = ob[0][0], ob[-1][0]
        a = np.array([obs.A[t][r] for t, r in ob], dtype=float)
        e = np.array([obs.E[t][r] for t, r in ob], dtype=float)
        rate = rates[k]
        d_area = float(a[-1] - a[0])
        _, sig = change_status(a[0], e[0], a[-1], e[-1])
        row = {
            "lake_id": tr.id,
            "first_yr": pers[t_first].year,
            "last_yr": pers[t_last].year,
            "n_years": len({pers[t].year for t, _ in ob}) if per_scene else len(ob),
            "a_first": float(a[0]),
            "a_last": float(a[-1]),
            "d_area": d_area,
            "d_pct": float(100.0 * d_area / a[0]) if a[0] > 0 else np.nan,
            "rate_yr": rate,
            "status": _series_status(tr, t_first, t_last, last_t, a, e, seen),
            "signif": int(sig),
            "merged_to": tr.merged_into or "",
            "split_from": tr.split_from or "",
            "n_merges": len(tr.merged_from) + (tr.merged_into is not None),
            "n_splits": len(tr.split_into) + (tr.split_from is not None),
        }
        if per_scene:
            row["first_dt"] = pers[t_first].iso
            row["last_dt"] = pers[t_last].iso
            row["n_obs_dt"] = len(ob)
        rows.append(row)
    changes = gpd.GeoDataFrame(rows, geometry=gpd.GeoSeries(_outline_unions(tracks, obs, len(pers)), crs=crs), crs=crs)
    if len(changes):
        return changes.sort_values("lake_id").reset_index(drop=True)
    return gpd.GeoDataFrame({c: pd.Series([], dtype="object") for c in CHANGE_FIELDS},
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)
