"""Terrain from a DEM: slope, cast shadows and per-lake elevation and slope.

Pure core: numpy arrays plus keyword-only georeferencing (``transform``) in, arrays out; never opens a
file. The DEM must be on a projected grid in metres (reproject a geographic DEM first), north-up or
south-up but not rotated.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
from affine import Affine
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "STEEP_SLOPE_DEG",
    "cast_shadow",
    "lake_terrain",
    "shadow_reach_m",
    "slope_deg",
    "steep_objects",
]

#: Water objects whose median terrain slope exceeds this many degrees cannot be lakes (a lake surface
#: is flat). 10 degrees is the slope limit attributed to the automatic glacial-lake classification of
#: Gardelle, Arnaud & Berthier (2011, Global and Planetary Change 75, 47-55,
#: doi:10.1016/j.gloplacha.2010.10.003) in the Google Earth Engine code of the first author of
#: Bazilova & Kaab (2022, Remote Sensing 14, 5973); see docs/glacial_context.md for the caveat and the
#: real-data measurements.
STEEP_SLOPE_DEG = 10.0

# A pixel size below this many CRS units is almost surely in degrees, not metres.
_MIN_PIXEL_M = 0.01


def _pixel_sizes(transform: Affine) -> tuple[float, float]:
    """Pixel width and height in CRS units (positive); refuses rotated or degree-sized grids."""
    if transform.b != 0 or transform.d != 0:
        raise ValueError(
            f"the DEM grid is rotated ({transform!r}); warp it to a north-up grid first "
            "(rasterio.warp.reproject)"
        )
    dx, dy = abs(float(transform.a)), abs(float(transform.e))
    if dx == 0 or dy == 0:
        raise ValueError(f"the DEM transform has a zero pixel size ({transform!r})")
    if dx < _MIN_PIXEL_M or dy < _MIN_PIXEL_M:
        raise ValueError(
            f"DEM pixel size {dx:g} x {dy:g} looks like degrees; reproject the DEM to a projected CRS "
            "in metres (e.g. the scene's UTM zone) before computing slope or shadows"
        )
    return dx, dy


def _as_float_dem(dem: ArrayLike) -> NDArray[np.float64]:
    z = np.asarray(dem, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"the DEM must be a 2-D array, got shape {z.shape}")
    return z


def slope_deg(
    dem: ArrayLike,
    *,
    transform: Affine,
    edges: Literal["nan", "replicate"] = "nan",
) -> NDArray[np.float32]:
    """Terrain slope in degrees with Horn's (1981) 3x3 finite differences (as ``gdaldem slope``).

    For the window ``a b c / d e f / g h i``:
    ``dz/dx = ((c + 2f + i) - (a + 2d + g)) / (8 dx)``, ``dz/dy = ((g + 2h + i) - (a + 2b + c)) / (8 dy)``
    and ``slope = atan(hypot(dz/dx, dz/dy))``.

    Parameters
    ----------
    dem
        2-D elevations in metres; NaN marks no data.
    transform
        Affine transform of the DEM in a projected CRS with metre units (not rotated).
    edges
        ``"nan"`` (default, like ``gdaldem`` without ``-compute_edges``): the outer ring of pixels,
        which lacks a full window, is NaN. ``"replicate"``: the DEM is padded by repeating its edge
        values, so edge slopes are one-sided estimates.

    Returns
    -------
    ndarray of float32
        Slope in degrees, NaN where the pixel or any of its 8 neighbours is NaN.

    Examples
    --------
    >>> from affine import Affine
    >>> plane = np.array([[0.0, 10.0, 20.0]] * 3)   # rises 10 m per 10 m pixel eastwards
    >>> slope_deg(plane, transform=Affine(10, 0, 0, 0, -10, 0))[1, 1]
    np.float32(45.0)
    """
    z = _as_float_dem(dem)
    dx, dy = _pixel_sizes(transform)
    if edges not in ("nan", "replicate"):
        raise ValueError(f"edges must be 'nan' or 'replicate', got {edges!r}")
    out = np.full(z.shape, np.nan, dtype=np.float32)
    if edges == "replicate":
        zp = np.pad(z, 1, mode="edge")
        target = out
    else:
        if z.shape[0] < 3 or z.shape[1] < 3:
            return out
        zp = z
        target = out[1:-1, 1:-1]
    a, b, c = zp[:-2, :-2], zp[:-2, 1:-1], zp[:-2, 2:]
    d, f = zp[1:-1, :-2], zp[1:-1, 2:]
    g, h, i = zp[2:, :-2], zp[2:, 1:-1], zp[2:, 2:]
    e = zp[1:-1, 1:-1]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx)
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * dy)
    s = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    s[np.isnan(e)] = np.nan  # the centre is not part of Horn's stencil but must be valid too
    target[...] = s
    return out


def shadow_reach_m(relief_m: float, *, sun_elevation_deg: float) -> float:
    """Longest horizontal distance (m) over which terrain of ``relief_m`` can cast a shadow.

    A chunk processed with :func:`cast_shadow` needs at least this much DEM margin on its sun-facing
    side (relief = highest elevation near the chunk minus the lowest elevation inside it).

    >>> round(shadow_reach_m(3000.0, sun_elevation_deg=45.0))
    3000
    """
    if not 0 < sun_elevation_deg <= 90:
        raise ValueError(f"sun elevation must be in (0, 90] degrees, got {sun_elevation_deg}")
    return max(float(relief_m), 0.0) / math.tan(math.radians(sun_elevation_deg))


def cast_shadow(
    dem: ArrayLike,
    *,
    transform: Affine,
    sun_azimuth_deg: float,
    sun_elevation_deg: float,
) -> NDArray[np.bool_]:
    """Pixels in the cast shadow of the terrain: the ray towards the sun meets higher ground.

    A pixel at elevation ``z`` is in shadow when some terrain at horizontal distance ``s`` towards the
    sun is higher than ``z + s * tan(elevation)``. The array is swept line by line away from the sun
    (one pixel along the axis closest to the sun direction per step) carrying the highest "horizon"
    seen so far, linearly interpolated between the two pixels straddling the ray; the cost is a few
    whole-row numpy operations per row or column, independent of the sun elevation.

    Parameters
    ----------
    dem
        2-D elevations in metres; NaN marks no data.
    transform
        Affine transform of the DEM in a projected CRS with metre units (not rotated).
    sun_azimuth_deg
        Direction towards the sun, degrees clockwise from grid north (the scene's mean sun azimuth).
    sun_elevation_deg
        Sun elevation above the horizon in degrees (90 minus the sun zenith angle).

    Returns
    -------
    ndarray of bool
        True where the pixel is in cast shadow. NaN pixels are never in shadow and never cast one.
        Terrain outside the array is unknown, so pixels within :func:`shadow_reach_m` of the
        sun-facing border may be missed: give the DEM that much margin and crop afterwards.
        Sun elevations at or below 0 put every valid pixel in shadow.

    Notes
    -----
    Self-shadow (slopes facing away from the sun more steeply than the sun is high) is included,
    since the neighbour towards the sun then blocks the ray.

    Examples
    --------
    >>> from affine import Affine
    >>> wall = np.zeros((3, 5)); wall[:, 4] = 25.0   # a 25 m step on the east edge, 10 m pixels
    >>> cast_shadow(wall, transform=Affine(10, 0, 0, 0, -10, 0), sun_azimuth_deg=90,
    ...             sun_elevation_deg=45).astype(int)   # shadow length 25 m / tan(45) = 25 m
    array([[0, 0, 1, 1, 0],
           [0, 0, 1, 1, 0],
           [0, 0, 1, 1, 0]])
    """
    z = _as_float_dem(dem)
    _pixel_sizes(transform)  # refuses rotated and degree grids
    valid = np.isfinite(z)
    if z.size == 0:
        return np.zeros(z.shape, dtype=bool)
    if sun_elevation_deg <= 0:
        return valid.copy()
    if sun_elevation_deg >= 90:
        return np.zeros(z.shape, dtype=bool)

    az = math.radians(sun_azimuth_deg % 360.0)
    # pixel steps per metre travelled towards the sun (handles flipped axes through the signs)
    dcol = math.sin(az) / float(transform.a)
    drow = math.cos(az) / float(transform.e)
    if abs(dcol) >= abs(drow):
        # sweep along columns: lines are columns, ordered from the sun side
        work = z.T
        dom, lat = dcol, drow
    else:
        work = z
        dom, lat = drow, dcol
    # make index 0 of axis 0 the line nearest the sun: a step towards the sun is then index - 1
    if dom > 0:
        work = work[::-1]
    work = np.ascontiguousarray(work)
    step_m = 1.0 / abs(dom)
    lateral = lat / abs(dom)  # lateral pixel offset of the next line towards the sun, |lateral| <= 1
    drop = step_m * math.tan(math.radians(sun_elevation_deg))

    height = _sweep_horizon(work, lateral=lateral, drop=drop)

    with np.errstate(invalid="ignore"):
        shadow_work = height > work  # NaN elevations compare False
    if dom > 0:
        shadow_work = shadow_work[::-1]
    shadow = shadow_work.T if abs(dcol) >= abs(drow) else shadow_work
    return np.ascontiguousarray(shadow)


def _sweep_horizon(z: NDArray[np.float64], *, lateral: float, drop: float) -> NDArray[np.float64]:
    """Horizon height for every pixel: the highest ``z(q) - s(q) * tan(elev)`` over the terrain ``q``
    towards the sun, where line ``k - 1`` is one step towards the sun from line ``k`` and the ray moves
    ``lateral`` pixels along axis 1 per step. ``-inf`` where nothing lies towards the sun."""
    n, m = z.shape
    k0 = math.floor(lateral)
    frac = lateral - k0
    blockers = np.where(np.isfinite(z), z, -np.inf)
    height = np.empty_like(z)
    height[0] = -np.inf
    top = blockers[0].copy()  # max(terrain, horizon) of the previous line
    # rays that leave the array see nothing beyond it
    pos = np.arange(m) + lateral
    leaves = (pos < -1e-9) | (pos > m - 1 + 1e-9)
    v0 = np.empty(m)
    v1 = np.empty(m)
    for k in range(1, n):
        _shift_into(v0, top, k0)
        if frac > 1e-12:
            _shift_into(v1, top, k0 + 1)
            h = v0 * (1.0 - frac)
            h += v1 * frac
            # next to no-data terrain without a horizon (-inf) keep the known neighbour
            lost = np.isneginf(h)
            if lost.any():
                h[lost] = np.maximum(v0[lost], v1[lost])
        else:
            h = v0.copy()
        h[leaves] = -np.inf
        h -= drop
        height[k] = h
        np.maximum(blockers[k], h, out=top)
    return height


def _shift_into(out: NDArray[np.float64], src: NDArray[np.float64], k: int) -> None:
    """``out[i] = src[i + k]``, ``-inf`` where ``i + k`` falls outside."""
    m = src.shape[0]
    if k == 0:
        out[:] = src
    elif k > 0:
        out[: m - k] = src[k:]
        out[m - k :] = -np.inf
    else:
        out[-k:] = src[: m + k]
        out[:-k] = -np.inf


def _label_medians(
    labels: NDArray[np.integer], values: NDArray[np.floating], index: NDArray[np.int64]
) -> NDArray[np.float64]:
    """NaN-ignoring median of ``values`` for each label in ``index`` (NaN where a label has no
    finite value), fully vectorized: one sort of the labelled pixels."""
    lab = labels.ravel()
    val = values.ravel()
    keep = np.isfinite(val) & np.isin(lab, index)
    lab, val = lab[keep], val[keep]
    out = np.full(index.shape, np.nan, dtype=np.float64)
    if lab.size == 0:
        return out
    order = np.lexsort((val, lab))
    lab_s, val_s = lab[order], val[order].astype(np.float64)
    uniq, start, count = np.unique(lab_s, return_index=True, return_counts=True)
    lo = start + (count - 1) // 2
    hi = start + count // 2
    med = (val_s[lo] + val_s[hi]) / 2.0
    pos = np.searchsorted(index, uniq) if np.all(index[:-1] <= index[1:]) else None
    if pos is not None:
        out[pos] = med
    else:  # unsorted index: map label -> position
        lookup = {int(v): i for i, v in enumerate(index)}
        out[[lookup[int(u)] for u in uniq]] = med
    return out


def _index_of(labels: NDArray[np.integer], index: ArrayLike | None) -> NDArray[np.int64]:
    if index is None:
        top = int(labels.max()) if labels.size else 0
        return np.arange(1, top + 1, dtype=np.int64)
    return np.atleast_1d(np.asarray(index, dtype=np.int64))


def lake_terrain(
    labels: ArrayLike,
    dem: ArrayLike,
    slope: ArrayLike,
    *,
    index: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Median surface elevation (m) and median terrain slope (degrees) under each labelled lake.

    Parameters
    ----------
    labels
        Integer lake labels (0 = no lake), e.g. from :func:`gli_toolbox.lakes.label_lakes`.
    dem, slope
        Elevation (m) and slope (degrees, e.g. :func:`slope_deg`) on the same grid as ``labels``;
        NaN pixels are ignored.
    index
        Labels to report, in output order (default ``1 .. labels.max()``).

    Returns
    -------
    elev_m, slope_deg : ndarray of float64
        One value per entry of ``index``; NaN where a lake has no valid DEM pixel.

    Examples
    --------
    >>> lab = np.array([[1, 1, 0], [2, 2, 2], [0, 0, 0]])
    >>> dem = np.array([[4000., 4002., 0.], [3000., 3001., 3005.], [0., 0., 0.]])
    >>> elev, slp = lake_terrain(lab, dem, np.array([[1., 3., 9.], [0., 2., 1.], [9., 9., 9.]]))
    >>> elev.tolist(), slp.tolist()
    ([4001.0, 3001.0], [2.0, 1.0])
    """
    lab = np.asarray(labels)
    z = np.asarray(dem, dtype=np.float64)
    s = np.asarray(slope, dtype=np.float64)
    if not (lab.shape == z.shape == s.shape):
        raise ValueError(
            f"labels {lab.shape}, dem {z.shape} and slope {s.shape} must share one grid; "
            "resample the DEM to the lake grid first"
        )
    idx = _index_of(lab, index)
    return _label_medians(lab, z, idx), _label_medians(lab, s, idx)


def steep_objects(
    labels: ArrayLike,
    slope: ArrayLike,
    *,
    max_slope_deg: float = STEEP_SLOPE_DEG,
    index: ArrayLike | None = None,
) -> NDArray[np.bool_]:
    """True for each water object whose median terrain slope is above ``max_slope_deg``: too steep
    to hold a lake (shadowed slopes, wet rock, snow in shade).

    Parameters
    ----------
    labels
        Integer object labels (0 = background).
    slope
        Slope in degrees on the same grid (NaN ignored).
    max_slope_deg
        Steepest median slope a lake may sit on (default :data:`STEEP_SLOPE_DEG`).
    index
        Labels to judge, in output order (default ``1 .. labels.max()``).

    Returns
    -------
    ndarray of bool
        One flag per entry of ``index``. An object without any valid slope pixel is not flagged
        (it cannot be judged, so it is kept).

    Examples
    --------
    >>> lab = np.array([[1, 1, 0], [0, 2, 2], [0, 0, 0]])
    >>> slp = np.array([[2., 4., 30.], [30., 35., 40.], [30., 30., 30.]])
    >>> steep_objects(lab, slp, max_slope_deg=10).tolist()
    [False, True]
    """
    lab = np.asarray(labels)
    s = np.asarray(slope, dtype=np.float64)
    if lab.shape != s.shape:
        raise ValueError(f"labels {lab.shape} and slope {s.shape} must share one grid")
    med = _label_medians(lab, s, _index_of(lab, index))
    with np.errstate(invalid="ignore"):
        return med > max_slope_deg
