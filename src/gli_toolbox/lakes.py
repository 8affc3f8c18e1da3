"""Lake objects from a water mask: cleaning in raster space, polygons and inventory attributes.

Pure core: takes arrays plus keyword-only georeferencing (``transform``, ``crs``) and returns a
GeoDataFrame; never opens a file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage

# LAKE_FIELDS, area_uncertainty_km2 and glims_id live in attributes.py (the one home of lake
# attributes); re-exported here for code that imports them from lakes.
from .attributes import LAKE_FIELDS, area_uncertainty_km2, glims_id
from .water import lookup

logger = logging.getLogger(__name__)

__all__ = [
    "LAKE_FIELDS",
    "LakeParams",
    "area_uncertainty_km2",
    "clean_water_mask",
    "empty_lakes",
    "extract_lakes",
    "glims_id",
    "label_lakes",
]

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)

def _label_sizes(labels: NDArray[np.integer], n: int, *, block_px: int = 1 << 18) -> NDArray[np.int64]:
    """Pixel count of labels 0..n, counted in row blocks (np.bincount copies its input to int64,
    which on the whole raster would cost 8 bytes per pixel)."""
    sizes = np.zeros(n + 1, dtype=np.int64)
    rows = max(1, block_px // max(labels.shape[1], 1))
    for r in range(0, labels.shape[0], rows):
        sizes += np.bincount(labels[r:r + rows].ravel(), minlength=n + 1)
    return sizes


def clean_water_mask(water: NDArray[np.bool_], *, max_hole_px: int) -> NDArray[np.bool_]:
    """Fill holes (islands, unobserved gaps) of at most ``max_hole_px`` pixels inside water bodies.

    Water is 4-connected, so background is taken 8-connected; background touching the array border
    is never a hole.

    >>> m = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
    >>> clean_water_mask(m, max_hole_px=1).astype(int)
    array([[1, 1, 1],
           [1, 1, 1],
           [1, 1, 1]])
    >>> clean_water_mask(m, max_hole_px=0).astype(int)[1, 1]
    np.int64(0)
    """
    if max_hole_px <= 0 or not water.any():
        return water.copy()
    bg_labels, n = ndimage.label(~water, structure=_EIGHT)
    if n == 0:
        return water.copy()
    sizes = _label_sizes(bg_labels, n)
    border = np.unique(np.concatenate([bg_labels[0], bg_labels[-1], bg_labels[:, 0], bg_labels[:, -1]]))
    fill = sizes <= max_hole_px
    fill[0] = False
    fill[border] = False
    out = lookup(fill, bg_labels)
    del bg_labels
    out |= water
    return out


def label_lakes(water: NDArray[np.bool_], *, min_area_px: int) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """Label 4-connected water objects and drop those below ``min_area_px`` (in raster space, before
    any polygon is made). Returns labels 1..n (0 = no lake) and the pixel count of each label.

    >>> lab, counts = label_lakes(np.array([[1, 1, 0], [0, 0, 0], [0, 0, 1]], dtype=bool), min_area_px=2)
    >>> lab
    array([[1, 1, 0],
           [0, 0, 0],
           [0, 0, 0]], dtype=int32)
    >>> counts.tolist()
    [0, 2]
    """
    labels, n = ndimage.label(water, structure=_FOUR)
    counts = _label_sizes(labels, n)
    keep = counts >= max(min_area_px, 1)
    keep[0] = False
    new_ids = np.zeros(n + 1, dtype=np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    labels = labels.astype(np.int32, copy=False)
    lookup(new_ids, labels, out=labels)  # relabel in place
    new_counts = np.concatenate([[0], counts[keep]]).astype(np.int64)
    return labels, new_counts


def empty_lakes(crs: Any, *, extra_fields: tuple[str, ...] = ()) -> gpd.GeoDataFrame:
    """A well-formed lake layer with no rows (the fields and CRS are still there)."""
    dtypes = {
        "lake_id": "object", "year": "int64", "area_km2": "float64", "perim_km": "float64",
        "area_err": "float64", "lon": "float64", "lat": "float64", "n_obs": "int64", "edge": "int64",
        "n_scenes": "int64",
    }
    cols = {k: pd.Series([], dtype=v) for k, v in dtypes.items()}
    for f in extra_fields:
        cols[f] = pd.Series([], dtype="object")
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


@dataclass(frozen=True)
class LakeParams:
    """Parameters of lake extraction (minimum mapping unit, hole filling, slope filter).

    Examples
    --------
    >>> LakeParams(min_area_m2=5400).hole_m2
    5400
    >>> LakeParams(min_area_m2=5400, max_hole_m2=0).hole_m2
    0
    """

    #: Minimum mapping unit (m2): smaller objects are removed in raster space, before any polygon.
    min_area_m2: float
    #: Holes (islands, unobserved gaps) inside water up to this area (m2) are filled; ``None`` =
    #: ``min_area_m2``; 0 fills none.
    max_hole_m2: float | None = None
    #: With terrain rasters, objects whose median slope is steeper (degrees) are removed (raster
    #: space); ``None`` keeps all.
    max_slope_deg: float | None = None

    def __post_init__(self) -> None:
        if not (self.min_area_m2 >= 0):
            raise ValueError(f"min_area_m2 must be >= 0, got {self.min_area_m2}")
        if self.max_hole_m2 is not None and not (self.max_hole_m2 >= 0):
            raise ValueError(f"max_hole_m2 must be >= 0 or None, got {self.max_hole_m2}")
        if self.max_slope_deg is not None and not (0 <= self.max_slope_deg <= 90):
            raise ValueError(f"max_slope_deg must be within 0-90 degrees or None, got {self.max_slope_deg}")

    @property
    def hole_m2(self) -> float:
        """The effective maximum hole area (m2)."""
        return self.min_area_m2 if self.max_hole_m2 is None else self.max_hole_m2


def extract_lakes(
    water_class: NDArray[np.uint8],
    valid_count: NDArray[np.integer] | None = None,
    *,
    transform: Affine,
    crs: Any,
    params: LakeParams,
    aoi_mask: NDArray[np.bool_] | None = None,
    dem: NDArray[np.floating] | None = None,
    slope: NDArray[np.floating] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> gpd.GeoDataFrame:
    """Lake polygons with inventory attributes from an in-memory water class raster.

    A thin wrapper over the chunked engine of :mod:`gli_toolbox.stitch` (one chunk): the same code
    path as regional runs from on-disk rasters, so both give the same lakes.

    Parameters
    ----------
    water_class
        uint8 array: 1 water, 2 possible water (kept only when 4-connected to water: hysteresis),
        0 not water, 255 never validly observed (see :func:`water.composite`).
    valid_count
        Number of valid observations per pixel (for ``n_obs``); ``None`` gives ``n_obs = 1``.
    transform, crs
        Georeferencing of the arrays; the CRS must be projected with metre units.
    params
        Minimum mapping unit, hole filling and slope filter (:class:`LakeParams`); objects below the
        minimum mapping unit or on steeper median slopes are removed in raster space.
    aoi_mask
        True inside the area of interest; a lake touching its outside gets ``edge = 1``.
    dem, slope
        Elevation (m) and slope (degrees) on the same grid: adds ``elev_m`` and ``slope_deg`` (medians
        under the lake) and enables ``params.max_slope_deg``.
    attributes
        Constant fields added to every row (e.g. ``year``, ``n_scenes``, ``date``).

    Returns
    -------
    GeoDataFrame
        One row per lake with :data:`LAKE_FIELDS` (those given in ``attributes``) in ``crs``.
        ``area_km2`` is the pixel count times the pixel area, which equals the polygon area.

    Examples
    --------
    >>> from affine import Affine
    >>> wc = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=np.uint8)
    >>> gdf = extract_lakes(wc, transform=Affine(10, 0, 500000, 0, -10, 4000000), crs="EPSG:32643",
    ...                     params=LakeParams(min_area_m2=300))
    >>> gdf.loc[0, "area_km2"], gdf.loc[0, "perim_km"], int(gdf.loc[0, "edge"])
    (np.float64(0.0004), np.float64(0.08), 1)
    """
    from .stitch import extract_grid_lakes

    return extract_grid_lakes(water_class, valid_count, transform=transform, crs=crs, params=params,
                              aoi_mask=aoi_mask, dem=dem, slope=slope, attributes=attributes)


