"""Water detection on arrays: reflectance, validity from the scene classification, water indices,
and the seasonal composite. Pure numpy: no files, no network.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "NEVER_OBSERVED",
    "SCL_MASKED",
    "SCL_SNOW",
    "classify_observation",
    "composite",
    "mndwi",
    "ndwi",
    "normalized_difference",
    "offset_already_removed",
    "scl_valid",
    "snow_index_mask",
    "to_reflectance",
    "water_observation",
]

#: Sentinel-2 L2A scene classification classes that are not a usable observation:
#: 0 no data, 1 saturated or defective, 3 cloud shadow, 8 cloud medium probability,
#: 9 cloud high probability, 10 thin cirrus (ESA, Sentinel-2 L2A Product Specification).
SCL_MASKED: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
#: Snow and ice (class 11): a valid observation that is not open water; counted separately.
SCL_SNOW = 11
#: Value of a yearly water class where a pixel was never validly observed.
NEVER_OBSERVED = 255
#: DN used by Sentinel-2 for saturated pixels.
SATURATED_DN = 65535


_T = TypeVar("_T", bound=np.generic)


def lookup(table: NDArray[_T], index: NDArray[np.integer], *, out: NDArray[_T] | None = None,
           block_px: int = 1 << 18) -> NDArray[_T]:
    """``table[index]`` computed in row blocks: numpy converts integer indices to int64 first, which on
    a whole raster costs 8 bytes per pixel; per block it is a fixed few MB. ``out`` may be ``index``
    itself (relabelling in place).

    >>> lookup(np.array([0, 10, 20], dtype=np.uint8), np.array([[2, 1], [0, 2]], dtype=np.uint16))
    array([[20, 10],
           [ 0, 20]], dtype=uint8)
    """
    if out is None:
        out = np.empty(index.shape, dtype=table.dtype)
    if index.ndim != 2:
        out[...] = table[index]
        return out
    rows = max(1, block_px // max(index.shape[1], 1))
    for r in range(0, index.shape[0], rows):
        out[r:r + rows] = table[index[r:r + rows]]
    return out


def to_reflectance(dn: NDArray[np.integer], *, scale: float, offset: float, nodata: int = 0) -> NDArray[np.float32]:
    """Convert digital numbers to reflectance: ``dn * scale + offset``; NaN at nodata and saturation.

    >>> to_reflectance(np.array([[0, 1000, 2000]], dtype=np.uint16), scale=1e-4, offset=-0.1)
    array([[nan, 0. , 0.1]], dtype=float32)
    """
    # (dn + offset/scale) * scale keeps the offset exact in float32 (DN 1000 -> 0.0, not -7e-9)
    out = dn.astype(np.float32)
    out += np.float32(offset / scale)
    out /= np.float32(1.0 / scale)  # divide by the quantification value (10000): 1000 DN -> 0.1 exactly
    out[(dn == nodata) | (dn == SATURATED_DN)] = np.nan
    return out


def normalized_difference(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """``(a - b) / (a + b)`` as float32; NaN where an input is NaN or the denominator is 0.

    >>> normalized_difference(np.array([[0.75, 0.25, 0.0]]), np.array([[0.25, 0.75, 0.0]]))
    array([[ 0.5, -0.5,  nan]], dtype=float32)
    """
    a32 = np.asarray(a, dtype=np.float32)
    b32 = np.asarray(b, dtype=np.float32)
    num = a32 - b32
    den = a32 + b32
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den != 0, num / np.where(den == 0, np.float32(1), den), np.float32(np.nan))
    return out.astype(np.float32, copy=False)


def ndwi(green: NDArray[np.floating], nir: NDArray[np.floating]) -> NDArray[np.float32]:
    """Normalized Difference Water Index (McFeeters 1996): ``(green - nir) / (green + nir)``.

    >>> ndwi(np.full((3, 3), 0.06), np.full((3, 3), 0.02))[1, 1]
    np.float32(0.5)
    """
    return normalized_difference(green, nir)


def mndwi(green: NDArray[np.floating], swir16: NDArray[np.floating]) -> NDArray[np.float32]:
    """Modified NDWI (Xu 2006): ``(green - swir1) / (green + swir1)``.

    >>> mndwi(np.full((3, 3), 0.125), np.full((3, 3), 0.375))[0, 0]
    np.float32(-0.5)
    """
    return normalized_difference(green, swir16)


def scl_valid(scl: NDArray[np.integer]) -> NDArray[np.bool_]:
    """True where the scene classification marks a usable observation (not cloud, shadow, cirrus,
    saturated or no data). Snow/ice stays valid.

    >>> scl_valid(np.array([[0, 4, 6], [8, 9, 11], [3, 10, 1]], dtype=np.uint8)).astype(int)
    array([[0, 1, 1],
           [0, 0, 1],
           [0, 0, 0]])
    """
    return ~np.isin(scl, SCL_MASKED)


def offset_already_removed(dn: NDArray[np.integer], *, nodata: int = 0, max_share_below: float = 0.01) -> bool:
    """Heuristic for items whose metadata claim the 1000-DN offset is still in the pixels.

    With the offset present a DN below 1000 means negative reflectance, which Sen2Cor only produces
    on a tiny share of pixels. If more than ``max_share_below`` of the valid DNs are below 1000, the
    offset was already removed (the Earth Search case of Element84/earth-search#66 and #71).

    >>> offset_already_removed(np.array([[0, 1200, 1500], [1100, 1300, 1400]], dtype=np.uint16))
    False
    >>> offset_already_removed(np.array([[0, 120, 150], [1100, 300, 1400]], dtype=np.uint16))
    True
    """
    valid = dn[dn != nodata]
    if valid.size == 0:
        return False
    return bool(np.count_nonzero(valid < 1000) > max_share_below * valid.size)


def water_observation(
    index: NDArray[np.floating], valid: NDArray[np.bool_], *, threshold: float
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Water and validity of one acquisition: a pixel is observed when ``valid`` and the index is
    finite; it is water when observed and the index is above ``threshold``.

    >>> w, v = water_observation(np.array([[0.5, -0.2, np.nan]]), np.array([[True, True, True]]), threshold=0.2)
    >>> w.astype(int), v.astype(int)
    (array([[1, 0, 0]]), array([[1, 1, 0]]))
    """
    observed = valid & np.isfinite(index)
    with np.errstate(invalid="ignore"):
        water = observed & (index > threshold)
    return water, observed


#: Floor for reflectances entering a water index (negative values exist since baseline 04.00).
MIN_REFLECTANCE = 1e-4

#: NDSI above which a pixel with NIR reflectance above ``SNOW_MIN_NIR`` is snow or ice
#: (SNOMAP, Hall, Riggs and Salomonson 1995; Dozier 1989). The NIR test keeps water, which also has
#: a high NDSI, out of the snow class.
SNOW_MIN_NDSI = 0.4
SNOW_MIN_NIR = 0.11


def snow_index_mask(green: NDArray[np.floating], nir: NDArray[np.floating], swir16: NDArray[np.floating]) -> NDArray[np.bool_]:
    """Snow/ice from reflectance: NDSI = (green - SWIR1) / (green + SWIR1) > 0.4 and NIR > 0.11.

    >>> snow_index_mask(np.array([[0.8, 0.05]]), np.array([[0.7, 0.02]]), np.array([[0.1, 0.01]])).astype(int)
    array([[1, 0]])
    """
    ndsi = normalized_difference(green, swir16)
    with np.errstate(invalid="ignore"):
        return (ndsi > SNOW_MIN_NDSI) & (np.asarray(nir) > SNOW_MIN_NIR)


def classify_observation(
    green: NDArray[np.floating],
    nir: NDArray[np.floating],
    swir16: NDArray[np.floating] | None = None,
    *,
    scl: NDArray[np.integer] | None = None,
    masked: NDArray[np.bool_] | None = None,
    threshold: float,
    index: str = "ndwi",
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """Water, open-surface observation and snow/ice of one acquisition.

    A pixel is *clear* when its reflectances are finite, its scene classification (if any) is not
    cloud, shadow, cirrus, saturated or no data, and ``masked`` (e.g. terrain or detector cloud
    shadow) is False. A clear pixel is *snow/ice* when SCL says 11, or (with SWIR1) the NDSI test of
    :func:`snow_index_mask` holds. Snow/ice is not an observation of open water: a lake frozen on one
    date neither counts as water nor as "not water" then. The rest is *observed*; it is *water* when
    the index exceeds ``threshold``.

    Returns
    -------
    water, observed, snow : bool arrays

    Examples
    --------
    >>> g = np.array([[0.06, 0.10, 0.80]]); n = np.array([[0.02, 0.20, 0.70]]); s = np.array([[0.01, 0.15, 0.05]])
    >>> w, o, sn = classify_observation(g, n, s, threshold=0.2)
    >>> w.astype(int), o.astype(int), sn.astype(int)
    (array([[1, 0, 0]]), array([[1, 1, 0]]), array([[0, 0, 1]]))
    """
    clear = np.isfinite(green) & np.isfinite(nir)
    if scl is not None:
        clear &= scl_valid(scl)
    if masked is not None:
        clear &= ~masked
    snow = np.zeros_like(clear)
    if scl is not None:
        snow |= scl == SCL_SNOW
    if swir16 is not None:
        snow |= snow_index_mask(green, nir, swir16)
    snow &= clear
    # Since baseline 04.00 reflectance can be slightly negative (dark water, deep shadow); floor it
    # so that the index stays within -1..1 (a negative green over a dark NIR would give NDWI > 1).
    g = np.maximum(green, MIN_REFLECTANCE)
    if index == "mndwi":
        if swir16 is None:
            raise ValueError("MNDWI needs the SWIR1 band")
        idx = mndwi(g, np.maximum(swir16, MIN_REFLECTANCE))
    else:
        idx = ndwi(g, np.maximum(nir, MIN_REFLECTANCE))
    water, observed = water_observation(idx, clear & ~snow, threshold=threshold)
    return water, observed, snow


def composite(
    water_count: NDArray[np.integer],
    valid_count: NDArray[np.integer],
    *,
    min_water_fraction: float = 0.5,
) -> NDArray[np.uint8]:
    """Seasonal water class from per-pixel counts: 1 water, 0 not water, 255 never validly observed.

    A pixel is water when ``water_count / valid_count >= min_water_fraction``, so one cloudy, snowy
    or flooded date does not create or erase a lake.

    >>> composite(np.array([[2, 1, 0]]), np.array([[3, 3, 0]]))
    array([[  1,   0, 255]], dtype=uint8)
    """
    wc = np.asarray(water_count)
    vc = np.asarray(valid_count)
    # water_count >= f * valid_count  <=>  water_count >= ceil(f * valid_count) for integer counts:
    # a lookup table over the (few) possible counts avoids full-size float temporaries
    top = int(vc.max()) if vc.size else 0
    need = np.ceil(min_water_fraction * np.arange(top + 1) - 1e-9).astype(vc.dtype)
    out = (wc >= lookup(need, vc)).astype(np.uint8)
    out[vc == 0] = NEVER_OBSERVED
    return out
