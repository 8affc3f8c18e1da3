"""Lake extraction as it was before the chunked engine (commit f2a345e), kept to compare results and speed.

Pure core: takes arrays plus keyword-only georeferencing (``transform``, ``crs``) and returns a
GeoDataFrame; never opens a file.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely.geometry
from affine import Affine
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from scipy import ndimage

from gli_toolbox.water import NEVER_OBSERVED, lookup

logger = logging.getLogger(__name__)

__all__ = [
    "LAKE_FIELDS",
    "area_uncertainty_km2",
    "clean_water_mask",
    "empty_lakes",
    "extract_lakes",
    "glims_id",
    "label_lakes",
]

#: Attribute fields of a lake layer, in order (all <= 10 characters for shapefiles).
LAKE_FIELDS: tuple[str, ...] = (
    "lake_id", "year", "area_km2", "perim_km", "area_err", "lon", "lat", "n_obs", "edge", "n_scenes",
)

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)

#: Hanshaw & Bookhagen (2014, The Cryosphere 8, 359-376): one-sigma share of the edge pixels'
#: area that is misclassified, used for area uncertainty from perimeter and pixel size.
_HANSHAW_BOOKHAGEN_SIGMA = 0.6872


def glims_id(lon: float, lat: float) -> str:
    """GLIMS-style lake id from a WGS84 point: ``GL`` + lon and lat in thousandths of a degree.

    >>> glims_id(70.5494, 36.3651)
    'GL070549E36365N'
    >>> glims_id(-72.05, -49.3)
    'GL072050W49300S'
    """
    ew = "E" if lon >= 0 else "W"
    ns = "N" if lat >= 0 else "S"
    return f"GL{round(abs(lon) * 1000):06d}{ew}{round(abs(lat) * 1000):05d}{ns}"


def area_uncertainty_km2(perimeter_m: NDArray[np.floating] | float, *, pixel_m: float) -> NDArray[np.float64]:
    """One-sigma area uncertainty (km2) from the perimeter, after Hanshaw & Bookhagen (2014):
    ``(P / G) * (G**2 / 2) * 0.6872`` with perimeter ``P`` and pixel size ``G`` in metres.

    >>> float(area_uncertainty_km2(400.0, pixel_m=10.0))
    0.0013744
    """
    p = np.asarray(perimeter_m, dtype=np.float64)
    return (p / pixel_m) * (pixel_m**2 / 2.0) * _HANSHAW_BOOKHAGEN_SIGMA / 1e6


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


def _unique_ids(ids: list[str]) -> list[str]:
    """Make ids unique by a letter suffix on repeats (two lakes within 0.001 degree)."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        k = seen.get(i, 0)
        seen[i] = k + 1
        out.append(i if k == 0 else f"{i}{string.ascii_uppercase[(k - 1) % 26]}")
    return out


def extract_lakes(
    water_class: NDArray[np.uint8],
    valid_count: NDArray[np.integer] | None = None,
    *,
    transform: Affine,
    crs: Any,
    min_area_m2: float,
    max_hole_m2: float | None = None,
    aoi_mask: NDArray[np.bool_] | None = None,
    attributes: Mapping[str, Any] | None = None,
    dem: NDArray[np.floating] | None = None,
    slope: NDArray[np.floating] | None = None,
    max_slope_deg: float | None = None,
) -> gpd.GeoDataFrame:
    """Lake polygons with inventory attributes from a water class raster.

    Parameters
    ----------
    water_class
        uint8 array: 1 water, 0 not water, 255 never validly observed (see :func:`water.composite`).
    valid_count
        Number of valid observations per pixel (for ``n_obs``); ``None`` gives ``n_obs = 1``.
    transform, crs
        Georeferencing of the arrays; the CRS must be projected with metre units.
    min_area_m2
        Minimum mapping unit; smaller objects are removed in raster space.
    max_hole_m2
        Holes up to this area are filled (default ``min_area_m2``).
    aoi_mask
        True inside the area of interest; a lake touching its outside gets ``edge = 1``.
    attributes
        Constant fields added to every row (e.g. ``year``, ``n_scenes``, ``date``).
    dem, slope
        Elevation (m) and slope (degrees) on the same grid: adds ``elev_m`` and ``slope_deg`` (medians
        under the lake) and, with ``max_slope_deg``, removes objects whose median slope is steeper,
        in raster space before vectorizing.

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
    ...                     min_area_m2=300)
    >>> gdf.loc[0, "area_km2"], gdf.loc[0, "perim_km"], int(gdf.loc[0, "edge"])
    (np.float64(0.0004), np.float64(0.08), 1)
    """
    attributes = dict(attributes or {})
    crs_obj = CRS.from_user_input(crs)
    if not crs_obj.is_projected:
        raise ValueError(f"lake areas need a projected CRS in metres, got {crs_obj.to_string()}; pass e.g. a UTM zone")
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    pixel_m = float(np.sqrt(pixel_area))
    min_px = int(np.ceil(min_area_m2 / pixel_area - 1e-9))
    hole_m2 = min_area_m2 if max_hole_m2 is None else max_hole_m2
    water = clean_water_mask(water_class == 1, max_hole_px=int(hole_m2 // pixel_area))
    if aoi_mask is not None:
        water &= aoi_mask
    labels, counts = label_lakes(water, min_area_px=min_px)
    del water
    terrain_cols: dict[str, NDArray[np.float64]] = {}
    if dem is not None and slope is not None and len(counts) > 1:
        from gli_toolbox.terrain import lake_terrain

        elev, slp = lake_terrain(labels, dem, slope)
        if max_slope_deg is not None:
            steep = np.concatenate([[True], slp > max_slope_deg])  # index 0 = background
            if steep[1:].any():
                logger.info("removed %d water object(s) on slopes > %g deg", int(steep[1:].sum()), max_slope_deg)
                keep_ids = np.flatnonzero(~steep)
                remap = np.zeros(len(counts), dtype=np.int32)
                remap[keep_ids] = np.arange(1, len(keep_ids) + 1, dtype=np.int32)
                labels = remap[labels]
                counts = np.concatenate([[0], counts[keep_ids]])
                elev, slp = elev[keep_ids - 1], slp[keep_ids - 1]
        terrain_cols = {"elev_m": np.round(elev, 1), "slope_deg": np.round(slp, 2)}
    n = len(counts) - 1
    extra = tuple(k for k in attributes if k not in LAKE_FIELDS)
    if n == 0:
        empty = empty_lakes(crs_obj, extra_fields=extra)
        if dem is not None and slope is not None:
            empty = empty.assign(elev_m=pd.Series([], dtype="float64"), slope_deg=pd.Series([], dtype="float64"))
        return empty

    # Per lake, in its own bounding window grown by one pixel (memory stays proportional to the
    # largest lake, not to the raster): the polygon (rasterio traces pixel edges, so its area is the
    # pixel count times the pixel area), the edge flag and the fewest valid observations.
    geoms: list[Any] = []
    edge = np.zeros(n, dtype=np.int64)
    n_obs = np.ones(n, dtype=np.int64)
    with rasterio.Env():  # one GDAL environment for all lakes, not one per rasterio.features.shapes call
        _per_lake(labels, water_class, valid_count, aoi_mask, transform, geoms, edge, n_obs)
    polys = gpd.GeoSeries(geoms, crs=crs_obj)

    area_km2 = counts[1:] * pixel_area / 1e6
    perim_m = polys.length.to_numpy()
    reps = polys.representative_point()
    to_wgs84 = Transformer.from_crs(crs_obj, "EPSG:4326", always_xy=True)
    lon, lat = to_wgs84.transform(reps.x.to_numpy(), reps.y.to_numpy())
    lake_ids = _unique_ids([glims_id(x, y) for x, y in zip(lon, lat)])

    data: dict[str, Any] = {
        "lake_id": lake_ids,
        "area_km2": area_km2,
        "perim_km": perim_m / 1000.0,
        "area_err": area_uncertainty_km2(perim_m, pixel_m=pixel_m),
        "lon": np.round(lon, 6),
        "lat": np.round(lat, 6),
        "n_obs": n_obs,
        "edge": edge,
        **terrain_cols,
    }
    for k, v in attributes.items():
        data[k] = [v] * n
    order = [f for f in LAKE_FIELDS if f in data] + list(terrain_cols) + list(extra)
    gdf = gpd.GeoDataFrame({k: data[k] for k in order}, geometry=polys.values, crs=crs_obj)
    return gdf.sort_values("lake_id", kind="stable").reset_index(drop=True)


def _per_lake(
    labels: NDArray[np.int32],
    water_class: NDArray[np.uint8],
    valid_count: NDArray[np.integer] | None,
    aoi_mask: NDArray[np.bool_] | None,
    transform: Affine,
    geoms: list[Any],
    edge: NDArray[np.int64],
    n_obs: NDArray[np.int64],
) -> None:
    """Fill ``geoms``, ``edge`` and ``n_obs`` lake by lake, each in its window grown by one pixel."""
    ny, nx = labels.shape
    for i, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        r0, r1 = max(rows.start - 1, 0), min(rows.stop + 1, ny)
        c0, c1 = max(cols.start - 1, 0), min(cols.stop + 1, nx)
        lake = labels[r0:r1, c0:c1] == i
        parts = [shapely.geometry.shape(g) for g, _ in rasterio.features.shapes(
            lake.astype(np.uint8), mask=lake, transform=transform * Affine.translation(c0, r0), connectivity=4)]
        geoms.append(parts[0] if len(parts) == 1 else shapely.union_all(parts))
        # edge: touching the raster border, the AOI outline or a never-observed pixel
        bad = water_class[r0:r1, c0:c1] == NEVER_OBSERVED
        if aoi_mask is not None:
            bad |= ~aoi_mask[r0:r1, c0:c1]
        on_border = rows.start == 0 or cols.start == 0 or rows.stop == ny or cols.stop == nx
        edge[i - 1] = int(on_border or bool((ndimage.binary_dilation(lake, structure=_FOUR) & bad).any()))
        if valid_count is not None:
            n_obs[i - 1] = int(valid_count[r0:r1, c0:c1][lake].min())
