"""Water detection on arrays: reflectance, validity from the scene classification, water indices,
the fixed-threshold test and the seasonal composite. Pure numpy: no files, no network.

Per-pixel work runs in cache-sized row blocks (:func:`blockwise`) with table lookups for
reflectance and SCL, so no full-size temporaries are made. The method-independent entry point
(fixed threshold or the multi-index seed/grow test) is :mod:`gli_toolbox.classify`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "BLOCK_PX",
    "MAYBE_WATER",
    "NEVER_OBSERVED",
    "SCL_FLAGS",
    "SCL_MASKED",
    "SCL_SNOW",
    "blockwise",
    "classify_observation",
    "clear_and_snow",
    "composite",
    "composite_classes",
    "mndwi",
    "ndwi",
    "normalized_difference",
    "offset_already_removed",
    "reflectance_table",
    "row_blocks",
    "scl_valid",
    "seeded_growth",
    "snow_index_mask",
    "threshold_block",
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


#: Pixels per block of the blockwise kernels: a few float32 temporaries of this size stay in the CPU
#: cache, so each numpy operation costs compute, not a pass over main memory (issue 12, benchmark 4).
BLOCK_PX = 1 << 15


def row_blocks(shape: tuple[int, ...], block_px: int = BLOCK_PX) -> Iterator[slice]:
    """Slices of whole rows (first axis) holding about ``block_px`` pixels each.

    >>> list(row_blocks((5, 4), block_px=8))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    per_row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    rows = max(1, block_px // max(per_row, 1))
    n = shape[0] if shape else 1
    for r in range(0, n, rows):
        yield slice(r, min(r + rows, n))


def reflectance_table(*, scale: float, offset: float, nodata: int = 0) -> NDArray[np.float32]:
    """Reflectance of every uint16 digital number (65,536 entries, 256 kB): ``dn * scale + offset``
    computed exactly as :func:`to_reflectance` does element-wise; NaN at nodata and saturation.

    >>> reflectance_table(scale=1e-4, offset=-0.1)[[0, 1000, 2000, 65535]]
    array([nan, 0. , 0.1, nan], dtype=float32)
    """
    # (dn + offset/scale) * scale keeps the offset exact in float32 (DN 1000 -> 0.0, not -7e-9)
    table = np.arange(1 << 16, dtype=np.float32)
    table += np.float32(offset / scale)
    table /= np.float32(1.0 / scale)  # divide by the quantification value (10000): 1000 DN -> 0.1 exactly
    table[nodata] = np.nan
    table[SATURATED_DN] = np.nan
    return table


def to_reflectance(dn: NDArray[np.integer], *, scale: float, offset: float, nodata: int = 0) -> NDArray[np.float32]:
    """Convert digital numbers to reflectance: ``dn * scale + offset``; NaN at nodata and saturation.

    uint16 input goes through a 65,536-entry table (:func:`reflectance_table`), block by block: one
    float32 output and no full-size temporaries.

    >>> to_reflectance(np.array([[0, 1000, 2000]], dtype=np.uint16), scale=1e-4, offset=-0.1)
    array([[nan, 0. , 0.1]], dtype=float32)
    """
    if dn.dtype == np.uint16:
        table = reflectance_table(scale=scale, offset=offset, nodata=nodata)
        out = np.empty(dn.shape, dtype=np.float32)
        if dn.ndim == 0:
            out[...] = table[dn]
            return out
        for sl in row_blocks(dn.shape):
            np.take(table, dn[sl], out=out[sl])
        return out
    out = dn.astype(np.float32)
    out += np.float32(offset / scale)
    out /= np.float32(1.0 / scale)
    out[(dn == nodata) | (dn == SATURATED_DN)] = np.nan
    return out


def normalized_difference(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """``(a - b) / (a + b)`` as float32; NaN where an input is NaN or the denominator is 0.

    >>> normalized_difference(np.array([[0.75, 0.25, 0.0]]), np.array([[0.25, 0.75, 0.0]]))
    array([[ 0.5, -0.5,  nan]], dtype=float32)
    """
    a32 = np.asarray(a, dtype=np.float32)
    b32 = np.asarray(b, dtype=np.float32)
    out = np.subtract(a32, b32, dtype=np.float32)
    den = np.add(a32, b32, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, den, out=out)
    if not np.all(den):
        out[den == 0] = np.nan
    return out


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


#: Flags of every possible SCL byte (256 entries): bit 0 usable observation, bit 1 snow/ice. One
#: table lookup replaces ``np.isin`` over the masked classes and the ``== 11`` test.
SCL_CLEAR_BIT = np.uint8(1)
SCL_SNOW_BIT = np.uint8(2)
SCL_FLAGS: NDArray[np.uint8] = np.full(256, SCL_CLEAR_BIT, dtype=np.uint8)
SCL_FLAGS[list(SCL_MASKED)] = 0
SCL_FLAGS[SCL_SNOW] |= SCL_SNOW_BIT
SCL_FLAGS.setflags(write=False)


def scl_valid(scl: NDArray[np.integer]) -> NDArray[np.bool_]:
    """True where the scene classification marks a usable observation (not cloud, shadow, cirrus,
    saturated or no data). Snow/ice stays valid.

    >>> scl_valid(np.array([[0, 4, 6], [8, 9, 11], [3, 10, 1]], dtype=np.uint8)).astype(int)
    array([[0, 1, 1],
           [0, 0, 1],
           [0, 0, 0]])
    """
    scl = np.asarray(scl)
    if scl.dtype == np.uint8:
        return (SCL_FLAGS[scl] & SCL_CLEAR_BIT).astype(bool)
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


def _scl_flags(scl: NDArray[np.integer]) -> NDArray[np.uint8]:
    """:data:`SCL_FLAGS` of a block of scene classification values (any integer dtype)."""
    if scl.dtype == np.uint8:
        return SCL_FLAGS[scl]
    flags = (~np.isin(scl, SCL_MASKED)).astype(np.uint8)
    flags[scl == SCL_SNOW] |= SCL_SNOW_BIT
    return flags


def clear_and_snow(
    green: NDArray[np.floating], nir: NDArray[np.floating], swir16: NDArray[np.floating] | None,
    *, scl: NDArray[np.integer] | None, masked: NDArray[np.bool_] | None,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Clear pixels and snow/ice of one block (see :func:`classify_observation`); ``snow`` ⊆ ``clear``.

    >>> c, s = clear_and_snow(np.array([0.1, 0.8, np.nan]), np.array([0.05, 0.7, 0.1]), np.array([0.1, 0.1, 0.1]),
    ...                       scl=np.array([4, 4, 4], dtype=np.uint8), masked=None)
    >>> c.astype(int), s.astype(int)
    (array([1, 1, 0]), array([0, 1, 0]))
    """
    clear = np.isfinite(green)
    clear &= np.isfinite(nir)
    if scl is not None:
        flags = _scl_flags(scl)
        clear &= (flags & SCL_CLEAR_BIT).astype(bool)
        snow = (flags & SCL_SNOW_BIT).astype(bool)
    else:
        snow = np.zeros(clear.shape, dtype=bool)
    if masked is not None:
        clear &= ~masked
    if swir16 is not None:
        snow |= snow_index_mask(green, nir, swir16)
    snow &= clear
    return clear, snow


def threshold_block(
    green: NDArray[np.floating], nir: NDArray[np.floating], swir16: NDArray[np.floating] | None,
    *, scl: NDArray[np.integer] | None, masked: NDArray[np.bool_] | None, threshold: float, index: str,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """The fixed-threshold test on one block: ``(water, observed, snow)``; see :func:`classify_observation`."""
    clear, snow = clear_and_snow(green, nir, swir16, scl=scl, masked=masked)
    # Since baseline 04.00 reflectance can be slightly negative (dark water, deep shadow); floor it
    # so that the index stays within -1..1 (a negative green over a dark NIR would give NDWI > 1).
    g = np.maximum(green, MIN_REFLECTANCE)
    if index == "mndwi":
        if swir16 is None:
            raise ValueError("MNDWI needs the SWIR1 band")
        idx = mndwi(g, np.maximum(swir16, MIN_REFLECTANCE))
    else:
        idx = ndwi(g, np.maximum(nir, MIN_REFLECTANCE))
    clear &= ~snow
    water, observed = water_observation(idx, clear, threshold=threshold)
    return water, observed, snow


def blockwise(
    kernel: Callable[..., tuple[NDArray[np.bool_], ...]],
    bands: Sequence[NDArray[Any] | None],
    *,
    scl: NDArray[np.integer] | None,
    masked: NDArray[np.bool_] | None,
    n_out: int,
    block_px: int = BLOCK_PX,
    **kwargs: Any,
) -> tuple[NDArray[np.bool_], ...]:
    """Run a per-pixel ``kernel(*bands, scl=, masked=, **kwargs)`` over row blocks of about
    ``block_px`` pixels and assemble its ``n_out`` boolean outputs: the temporaries of a block stay
    in the CPU cache. Per-pixel kernels give the same result whatever the blocks.

    >>> w, = blockwise(lambda a, scl, masked: (a > 1,), [np.arange(6).reshape(3, 2)], scl=None, masked=None,
    ...                n_out=1, block_px=2)
    >>> w.astype(int)
    array([[0, 0],
           [1, 1],
           [1, 1]])
    """
    arrays = [None if b is None else np.asarray(b) for b in bands]
    present = [a for a in arrays if a is not None] + [a for a in (scl, masked) if a is not None]
    shape = np.broadcast_shapes(*(a.shape for a in present))
    full = np.broadcast_arrays(*present)
    it = iter(full)
    arrays = [None if a is None else next(it) for a in arrays]
    scl_b = next(it) if scl is not None else None
    masked_b = next(it) if masked is not None else None
    outs = tuple(np.empty(shape, dtype=bool) for _ in range(n_out))
    if len(shape) == 0:
        res = kernel(*arrays, scl=scl_b, masked=masked_b, **kwargs)
        for o, r in zip(outs, res):
            o[...] = r
        return outs
    for sl in row_blocks(shape, block_px):
        res = kernel(*(None if a is None else a[sl] for a in arrays),
                     scl=None if scl_b is None else scl_b[sl], masked=None if masked_b is None else masked_b[sl],
                     **kwargs)
        for o, r in zip(outs, res):
            o[sl] = r
    return outs


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
    """Water, open-surface observation and snow/ice of one acquisition (the ``"threshold"`` method).

    A pixel is *clear* when its reflectances are finite, its scene classification (if any) is not
    cloud, shadow, cirrus, saturated or no data, and ``masked`` (e.g. terrain or detector cloud
    shadow) is False. A clear pixel is *snow/ice* when SCL says 11, or (with SWIR1) the NDSI test of
    :func:`snow_index_mask` holds. Snow/ice is not an observation of open water: a lake frozen on one
    date neither counts as water nor as "not water" then. The rest is *observed*; it is *water* when
    the index exceeds ``threshold``. Computed block by block (:func:`blockwise`);
    :func:`gli_toolbox.classify.classify_bands` with ``method="threshold"`` gives the same arrays.

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
    if index == "mndwi" and swir16 is None:
        raise ValueError("MNDWI needs the SWIR1 band")
    water, observed, snow = blockwise(threshold_block, [green, nir, swir16], scl=scl, masked=masked, n_out=3,
                                      threshold=threshold, index=index)
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


#: Yearly class of a pixel where only the permissive (grow) test reached the water share (contract 3).
MAYBE_WATER = 2


def composite_classes(
    water_count: NDArray[np.integer],
    maybe_count: NDArray[np.integer],
    valid_count: NDArray[np.integer],
    *,
    min_water_fraction: float = 0.5,
) -> NDArray[np.uint8]:
    """Seasonal class for seeded growth: 1 water (seed share >= ``min_water_fraction``), 2 possible
    water (only the grow share reaches it), 0 not water, 255 never observed.

    With ``maybe_count`` equal to ``water_count`` (the ``threshold`` method) it is :func:`composite`.

    >>> composite_classes(np.array([[2, 0, 0, 0]]), np.array([[2, 2, 1, 0]]), np.array([[3, 3, 3, 0]]))
    array([[  1,   2,   0, 255]], dtype=uint8)
    """
    out = composite(water_count, valid_count, min_water_fraction=min_water_fraction)
    maybe = composite(maybe_count, valid_count, min_water_fraction=min_water_fraction)
    out[(out == 0) & (maybe == 1)] = MAYBE_WATER
    return out


def seeded_growth(classes: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Resolve possible water by seeded growth (hysteresis): a class-2 pixel becomes water (1) when
    its 4-connected group of class 1 and 2 pixels holds a class-1 pixel, else not water (0);
    1, 0 and 255 stay. Whole-array version (the lake extraction does the same across chunks).

    >>> seeded_growth(np.array([[1, 2, 0, 2, 2], [0, 2, 0, 255, 0]], dtype=np.uint8))
    array([[  1,   1,   0,   0,   0],
           [  0,   1,   0, 255,   0]], dtype=uint8)
    """
    from scipy import ndimage

    out = np.array(classes, dtype=np.uint8, copy=True)
    maybe = out == MAYBE_WATER
    if not maybe.any():
        return out
    labels, n = ndimage.label((out == 1) | maybe)
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[labels[out == 1]] = True
    seeded[0] = False
    out[maybe] = np.where(seeded[labels[maybe]], np.uint8(1), np.uint8(0))
    return out
