"""Glacier context of lakes: distance to the nearest glacier outline and a lake type.

Pure core: GeoDataFrames in, GeoDataFrames out; never opens a file. The glacier outlines (e.g. a
Randolph Glacier Inventory region) are reprojected to the lakes' CRS, repaired with ``make_valid``
and searched with a spatial index (shapely ``STRtree``), so thousands of lakes against tens of
thousands of glaciers take seconds, not an all-pairs loop.

Lake types (``lake_type``), after the glacier-fed lake classes supraglacial / ice-contacted /
ice-uncontacted of Ma et al. (2022) and the supraglacial and lake-terminating definitions of the RGI
lake-terminating guidelines (W. Armstrong and T. Bolch, GLIMS-RGI/lake_terminating); see
docs/glacial_context.md:

``supraglacial``
    at least ``supraglacial_min_share`` (default half) of the lake's area lies inside glacier outlines.
``proglacial``
    not supraglacial, and the lake lies within ``contact_m`` of a glacier outline (touching or
    overlapping counts as distance 0): glacier-contact / ice-marginal lakes.
``unconnected``
    farther than ``contact_m`` from every glacier, or no glacier given.
"""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS

logger = logging.getLogger(__name__)

__all__ = [
    "CONTACT_M",
    "LAKE_TYPES",
    "MAX_GLACIER_DIST_M",
    "SUPRAGLACIAL_MIN_SHARE",
    "glacier_context",
    "lake_type_counts",
    "near_glaciers",
]

#: Values of ``lake_type``.
LAKE_TYPES: tuple[str, ...] = ("supraglacial", "proglacial", "unconnected")

#: A lake within this distance (m) of a glacier outline is glacier-connected ("proglacial"). 500 m is
#: the "distance between lake and its mother glacier" criterion for potentially dangerous glacial
#: lakes in the integrated criteria (Table 3, from a bibliometric analysis of earlier studies) of
#: "Changes in glaciers and glacial lakes and the identification of dangerous glacial lakes in the
#: Pumqu River Basin, Xizang (Tibet)", Advances in Meteorology 2014, 903709. It also absorbs the
#: retreat of termini since the RGI outlines were drawn (around 2000).
CONTACT_M = 500.0

#: Lakes farther than this (m) from any glacier are not glacial lakes: the 10 km buffer around the
#: glacier extent of Wang et al. (2020, Earth Syst. Sci. Data 12, 2169,
#: doi:10.5194/essd-12-2169-2020).
MAX_GLACIER_DIST_M = 10_000.0

#: Share of a lake's area inside glacier outlines from which it is supraglacial ("most of its area").
SUPRAGLACIAL_MIN_SHARE = 0.5

_ID_COLUMNS: tuple[str, ...] = ("RGIId", "RGIID", "rgi_id", "glac_id", "GLIMSId", "glims_id")


def _require_projected(crs: Any, what: str) -> CRS:
    if crs is None:
        raise ValueError(f"{what} have no CRS; set it first, e.g. gdf.set_crs('EPSG:32643')")
    crs_obj = CRS.from_user_input(crs)
    if not crs_obj.is_projected:
        raise ValueError(
            f"{what} are in {crs_obj.to_string()}, a geographic CRS; distances need metres: "
            "reproject them first, e.g. lakes.to_crs(lakes.estimate_utm_crs())"
        )
    return crs_obj


def _polygonal(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Valid polygonal geometries: repair invalid ones (``make_valid``) and drop the lines and points
    that repair can leave behind; None or empty stays None."""
    geoms = np.asarray(geoms, dtype=object)
    out = geoms.copy()
    present = ~shapely.is_missing(geoms)
    present[present] = ~shapely.is_empty(geoms[present])
    out[~present] = None
    bad = present.copy()
    bad[present] = ~shapely.is_valid(geoms[present])
    if bad.any():
        logger.info("repairing %d invalid glacier outline(s) with make_valid", int(bad.sum()))
        fixed = shapely.make_valid(geoms[bad])
        out[bad] = fixed
    kinds = shapely.get_type_id(out)  # -1 for None
    # 3 Polygon, 6 MultiPolygon; collections and lower-dimensional results keep their polygon parts
    odd = (kinds != 3) & (kinds != 6) & (kinds != -1)
    for i in np.flatnonzero(odd):
        parts = [p for p in shapely.get_parts(out[i]) if shapely.get_type_id(p) in (3, 6)]
        out[i] = shapely.union_all(parts) if parts else None
    empty = ~shapely.is_missing(out)
    empty[empty] = shapely.is_empty(out[empty])
    out[empty] = None
    return out


def _id_column(glaciers: gpd.GeoDataFrame, id_column: str | None) -> str | None:
    if id_column is None:
        return None
    if id_column == "auto":
        return next((c for c in _ID_COLUMNS if c in glaciers.columns), None)
    if id_column not in glaciers.columns:
        raise KeyError(
            f"glacier id column {id_column!r} not found; the outlines have {list(glaciers.columns)}"
        )
    return id_column


def glacier_context(
    lakes: gpd.GeoDataFrame,
    glaciers: gpd.GeoDataFrame,
    *,
    contact_m: float = CONTACT_M,
    supraglacial_min_share: float = SUPRAGLACIAL_MIN_SHARE,
    id_column: str | None = None,
) -> gpd.GeoDataFrame:
    """A copy of ``lakes`` with ``glac_dist`` (m) and ``lake_type`` from glacier outlines.

    Parameters
    ----------
    lakes
        Lake polygons (or any geometries) in a projected CRS with metre units.
    glaciers
        Glacier outlines in any CRS (reprojected to the lakes' CRS); invalid polygons are repaired.
    contact_m
        Largest lake-to-glacier distance of a glacier-contact (``proglacial``) lake
        (default :data:`CONTACT_M`).
    supraglacial_min_share
        Smallest share of the lake area inside glacier outlines for ``supraglacial``
        (default :data:`SUPRAGLACIAL_MIN_SHARE`, "most of its area").
    id_column
        If given, add ``glac_id`` with this column of the nearest glacier (``"auto"`` picks the
        first of ``RGIId``, ``RGIID``, ``rgi_id``, ``glac_id``, ``GLIMSId`` present).

    Returns
    -------
    GeoDataFrame
        ``lakes`` with ``glac_dist`` (float64, metres from the lake to the nearest glacier outline,
        0 when touching or overlapping, NaN when no glacier was given) and ``lake_type``
        (one of :data:`LAKE_TYPES`). Empty inputs give the same, well-formed columns.

    Raises
    ------
    ValueError
        When the lakes are not in a projected CRS or either layer has no CRS.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> crs = "EPSG:32643"
    >>> glac = gpd.GeoDataFrame(geometry=[box(0, 0, 1000, 1000)], crs=crs)
    >>> lakes = gpd.GeoDataFrame(geometry=[box(100, 100, 200, 200), box(1100, 0, 1200, 100),
    ...                                    box(5000, 0, 5100, 100)], crs=crs)
    >>> out = glacier_context(lakes, glac)
    >>> out.glac_dist.tolist(), out.lake_type.tolist()
    ([0.0, 100.0, 4000.0], ['supraglacial', 'proglacial', 'unconnected'])
    """
    if contact_m < 0:
        raise ValueError(f"contact_m must be >= 0 metres, got {contact_m}")
    if not 0 < supraglacial_min_share <= 1:
        raise ValueError(f"supraglacial_min_share must be in (0, 1], got {supraglacial_min_share}")
    crs = _require_projected(lakes.crs, "the lakes")
    if glaciers.crs is None:
        raise ValueError("the glacier outlines have no CRS; set it first, e.g. glaciers.set_crs('EPSG:4326')")
    id_col = _id_column(glaciers, id_column)

    out = lakes.copy()
    n = len(out)
    dist = np.full(n, np.nan, dtype=np.float64)
    share = np.zeros(n, dtype=np.float64)
    gid: list[Any] = [None] * n

    glac = glaciers if CRS.from_user_input(glaciers.crs) == crs else glaciers.to_crs(crs)
    gpoly = _polygonal(glac.geometry.to_numpy())
    have = ~shapely.is_missing(gpoly)
    gpoly = gpoly[have]
    gids = glac[id_col].to_numpy()[have] if id_col else None

    lake_geoms = out.geometry.to_numpy()
    lake_ok = ~shapely.is_missing(lake_geoms)
    lake_ok[lake_ok] = ~shapely.is_empty(lake_geoms[lake_ok])
    if n and gpoly.size and lake_ok.any():
        tree = shapely.STRtree(gpoly)
        li = np.flatnonzero(lake_ok)
        pairs, d = tree.query_nearest(lake_geoms[li], return_distance=True, all_matches=False)
        dist[li[pairs[0]]] = d
        if gids is not None:
            for lake_pos, glac_pos in zip(li[pairs[0]], pairs[1]):
                gid[lake_pos] = gids[glac_pos]
        # share of each lake's area inside glaciers, only for the lakes that intersect one
        hits = tree.query(lake_geoms[li], predicate="intersects")
        if hits.shape[1]:
            lpos = li[hits[0]]
            inter = shapely.area(shapely.intersection(lake_geoms[lpos], gpoly[hits[1]]))
            inside = np.bincount(lpos, weights=inter, minlength=n)
            # a lake on several (overlapping) outlines: intersect it with their union instead
            multi = np.flatnonzero(np.bincount(lpos, minlength=n) > 1)
            for lake_pos in multi:
                ice = shapely.union_all(gpoly[hits[1][lpos == lake_pos]])
                inside[lake_pos] = shapely.area(shapely.intersection(lake_geoms[lake_pos], ice))
            inside = inside[li]
            area = shapely.area(lake_geoms[li])
            touching = np.zeros(li.size, dtype=bool)
            touching[np.searchsorted(li, np.unique(lpos))] = True
            # a point or line "lake" has no area: it is on the glacier when it intersects one
            frac = np.where(area > 0, inside / np.where(area > 0, area, 1.0), touching * 1.0)
            share[li] = np.clip(frac, 0.0, 1.0)

    lake_type = np.full(n, "unconnected", dtype=object)
    with np.errstate(invalid="ignore"):
        lake_type[dist <= contact_m] = "proglacial"
    lake_type[share >= supraglacial_min_share] = "supraglacial"

    out["glac_dist"] = pd.Series(dist, index=out.index, dtype="float64")
    out["lake_type"] = pd.Series(lake_type, index=out.index, dtype="object")
    if id_col:
        out["glac_id"] = pd.Series(gid, index=out.index, dtype="object")
    counts = pd.Series(lake_type).value_counts().to_dict()
    logger.info("glacier context of %d lakes against %d outlines: %s", n, gpoly.size, counts)
    return out


def near_glaciers(
    lakes_with_context: gpd.GeoDataFrame,
    *,
    max_glacier_dist_m: float = MAX_GLACIER_DIST_M,
) -> gpd.GeoDataFrame:
    """Keep the lakes within ``max_glacier_dist_m`` of a glacier (``glac_dist`` from
    :func:`glacier_context`); lakes with unknown distance (no glaciers) are dropped.

    >>> from shapely.geometry import Point
    >>> g = gpd.GeoDataFrame({"glac_dist": [0.0, 9000.0, 12000.0, np.nan]},
    ...                      geometry=[Point(0, 0)] * 4, crs="EPSG:32643")
    >>> near_glaciers(g).glac_dist.tolist()
    [0.0, 9000.0]
    """
    if "glac_dist" not in lakes_with_context.columns:
        raise KeyError("no glac_dist column: run glacier_context(lakes, glaciers) first")
    if max_glacier_dist_m < 0:
        raise ValueError(f"max_glacier_dist_m must be >= 0 metres, got {max_glacier_dist_m}")
    d = lakes_with_context["glac_dist"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        keep = d <= max_glacier_dist_m
    return lakes_with_context.loc[keep].reset_index(drop=True)


def lake_type_counts(lakes_with_context: gpd.GeoDataFrame) -> dict[str, int]:
    """Number of lakes of each :data:`LAKE_TYPES` value (zeros included), for reports.

    >>> lake_type_counts(gpd.GeoDataFrame({"lake_type": ["proglacial", "proglacial"]}))
    {'supraglacial': 0, 'proglacial': 2, 'unconnected': 0}
    """
    vc = lakes_with_context["lake_type"].value_counts()
    return {t: int(vc.get(t, 0)) for t in LAKE_TYPES}
