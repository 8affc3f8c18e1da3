"""Clouds and cloud shadows for scenes without a usable scene classification (L1C, or providers
without an SCL asset). Pure numpy core: no files, no network.

* Clouds: Sentinel Hub's s2cloudless pixel classifier (LightGBM model shipped in the ``s2cloudless``
  wheel; on the Pareto front of the CMIX intercomparison, Skakun et al. 2022, Remote Sensing of
  Environment, doi:10.1016/j.rse.2022.112990) on ten top-of-atmosphere bands, averaged, thresholded
  and dilated as in Sentinel Hub's examples.
* Cloud shadows: geometric projection of the cloud mask away from the sun over a range of cloud
  heights (Fmask: Zhu & Woodcock 2012, Remote Sensing of Environment 118, 83-94, cloud base
  0.2-12 km), intersected with dark pixels (NIR < 0.15 as in the Earth Engine s2cloudless
  tutorial). By default each cloud object is matched at one height, as in Fmask, with a
  darker-than-surroundings score added here so that lakes are not taken for shadows.

See ``docs/clouds_and_snow.md`` for the parameters, their sources and the measurements.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

logger = logging.getLogger(__name__)

__all__ = [
    "CLOUD_AVERAGE_OVER_PX",
    "CLOUD_DILATION_PX",
    "CLOUD_HEIGHTS_M",
    "CLOUD_THRESHOLD",
    "COARSE_PASS_M",
    "PROB_RESOLUTION_M",
    "S2CLOUDLESS_BANDS",
    "SHADOW_DARK_NIR",
    "SHADOW_MIN_SCORE",
    "SHADOW_RING_PX",
    "cloud_mask",
    "cloud_probability",
    "cloud_shadow",
    "clouds_and_shadows",
    "coarse_clouds_and_shadows",
    "refine_coarse",
    "shadow_offsets_px",
    "shadow_reach_m",
]

#: The ten Sentinel-2 L1C bands the s2cloudless model takes, in its order (``all_bands=False``).
S2CLOUDLESS_BANDS: tuple[str, ...] = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")

#: Cloud probability above which a pixel is cloud: 0.4, the default of ``S2PixelCloudDetector``.
CLOUD_THRESHOLD = 0.4
#: Radius (px) of the disk over which the probability is averaged before thresholding, and of the
#: disk by which the mask is dilated: 4 and 2, the values of Sentinel Hub's s2cloudless examples
#: and of eo-learn's ``get_s2_pixel_cloud_detector`` for 10 m pixels (the bare
#: ``S2PixelCloudDetector`` defaults are 1 and 1).
CLOUD_AVERAGE_OVER_PX = 4
CLOUD_DILATION_PX = 2
#: Lowest and highest cloud base height (m) over which cloud shadows are searched: Fmask's range
#: 0.2-12 km (Zhu & Woodcock 2012, Eq. 21; python-fmask ``matchOneShadow``).
CLOUD_HEIGHTS_M: tuple[float, float] = (200.0, 12000.0)
#: Score a cloud object's projection needs to be accepted as its shadow: the 0.3 that
#: python-fmask's ``matchOneShadow`` requires of its similarity (dark share of the projection),
#: applied here to the dark share minus that of the surrounding ring (see :func:`cloud_shadow`).
SHADOW_MIN_SCORE = 0.3
#: Width (px) of the ring around a projected cloud whose dark share is subtracted.
SHADOW_RING_PX = 3
#: NIR (B08) reflectance below which a pixel is dark enough to be cloud shadow (Earth Engine
#: s2cloudless tutorial, ``NIR_DRK_THRESH = 0.15``).
SHADOW_DARK_NIR = 0.15
#: Resolution (m) at which :func:`clouds_and_shadows` runs s2cloudless: that of B01, B09 and B10.
PROB_RESOLUTION_M = 60.0


def _disk(radius: int) -> NDArray[np.bool_]:
    """Disk of ``radius`` px: the same footprint as ``cv2.circle`` used by s2cloudless."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def _block_mean(a: NDArray[np.float32], block: int) -> NDArray[np.float32]:
    """Mean of the finite values in each ``block`` x ``block`` tile (the last tiles may be partial);
    NaN where a tile has none."""
    h, w = a.shape
    hb, wb = -(-h // block), -(-w // block)
    pad = np.full((hb * block, wb * block), np.nan, dtype=np.float32)
    pad[:h, :w] = a
    tiles = pad.reshape(hb, block, wb, block)
    finite = np.isfinite(tiles)
    total = np.where(finite, tiles, 0).sum(axis=(1, 3), dtype=np.float64)
    count = finite.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def cloud_probability(
    toa: Mapping[str, NDArray[np.floating]], *, block_px: int = 1, **predict_kwargs: Any
) -> NDArray[np.float32]:
    """s2cloudless cloud probability (0-1) of one Sentinel-2 L1C scene.

    Parameters
    ----------
    toa
        Top-of-atmosphere reflectance (0-1, i.e. DN / 10000 after any baseline >= 04.00 offset) of
        each band in :data:`S2CLOUDLESS_BANDS`, all on one grid (resample the 20 m and 60 m bands
        to it first). NaN marks missing pixels. Extra keys are ignored.
    block_px
        Run the model on the mean reflectance of ``block_px`` x ``block_px`` blocks and give every
        pixel its block's probability (1 = every pixel). The model costs about 50 microseconds per
        pixel (some 50 s for 1000 x 1000 px); Sentinel Hub, who trained it on 10 m pixels, run it on
        160 m pixels in production. :func:`clouds_and_shadows` uses 60 m blocks, the resolution of
        the coarsest inputs (B01, B09, B10).
    **predict_kwargs
        Passed to LightGBM's ``Booster.predict`` (e.g. ``num_threads``).

    Returns
    -------
    float32 array
        Cloud probability; NaN where any input band is NaN.

    Raises
    ------
    ValueError
        When a band is missing or the bands are not on one grid.

    Notes
    -----
    The model is trained on L1C (TOA) reflectance; L2A surface reflectance lacks B10 and is not
    a valid input. ``s2cloudless`` is imported here, not at module import, because it pulls in
    sentinelhub (about 3 s).

    Examples
    --------
    >>> clear = [0.12, 0.09, 0.05, 0.09, 0.30, 0.32, 0.10, 0.002, 0.18, 0.09]  # vegetation, TOA
    >>> cloudy = [0.50, 0.48, 0.47, 0.48, 0.52, 0.52, 0.30, 0.05, 0.40, 0.30]
    >>> toa = {b: np.where(np.eye(3, dtype=bool), c, v) for b, v, c in zip(S2CLOUDLESS_BANDS, clear, cloudy)}
    >>> toa["B10"][0, 2] = np.nan
    >>> cloud_probability(toa).round(2)
    array([[1.  , 0.02,  nan],
           [0.02, 1.  , 0.02],
           [0.02, 0.02, 1.  ]], dtype=float32)
    """
    missing = [b for b in S2CLOUDLESS_BANDS if b not in toa]
    if missing:
        raise ValueError(
            f"s2cloudless needs the L1C bands {', '.join(S2CLOUDLESS_BANDS)}; missing {', '.join(missing)}. "
            "Load them too (Earth Search sentinel-2-l1c assets coastal, blue, red, rededge1, nir, nir08, "
            "nir09, cirrus, swir16, swir22)"
        )
    shapes = {b: np.shape(toa[b]) for b in S2CLOUDLESS_BANDS}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
        raise ValueError(
            "s2cloudless needs all bands as 2-D arrays on one grid; got shapes "
            + ", ".join(f"{b} {s}" for b, s in shapes.items())
            + ". Resample the 20 m and 60 m bands to the 10 m grid first"
        )
    if block_px < 1:
        raise ValueError(f"block_px: expected an integer >= 1, got {block_px}")
    bands = [np.asarray(toa[b], dtype=np.float32) for b in S2CLOUDLESS_BANDS]
    finite = np.all([np.isfinite(b) for b in bands], axis=0)
    out = np.full(finite.shape, np.nan, dtype=np.float32)
    if not finite.any():
        return out
    if block_px > 1:
        # a pixel with a missing band is left out of every band's block mean
        bands = [_block_mean(np.where(finite, b, np.nan), block_px) for b in bands]
    stack = np.stack(bands, axis=-1)
    ok = np.isfinite(stack).all(axis=-1)
    try:
        from s2cloudless import S2PixelCloudDetector
    except ImportError:
        from .errors import ConfigError

        raise ConfigError(
            "this scene is Sentinel-2 L1C (no scene classification): its clouds need the optional s2cloudless "
            "model; install it with  pip install 'gli-toolbox[l1c]'  or pass --clouds none"
        ) from None

    detector = S2PixelCloudDetector(all_bands=False)
    # Only the valid pixels (or blocks) go through the model, as a (1, n, 1, 10) "image".
    prob = np.full(ok.shape, np.nan, dtype=np.float32)
    prob[ok] = detector.get_cloud_probability_maps(stack[ok][None, :, None, :], **predict_kwargs)[0, :, 0]
    if block_px > 1:
        h, w = finite.shape
        prob = np.repeat(np.repeat(prob, block_px, axis=0), block_px, axis=1)[:h, :w]
    out[finite] = prob[finite]
    return out


def cloud_mask(
    prob: NDArray[np.floating],
    *,
    threshold: float = CLOUD_THRESHOLD,
    average_over_px: int = CLOUD_AVERAGE_OVER_PX,
    dilation_px: int = CLOUD_DILATION_PX,
) -> NDArray[np.bool_]:
    """Cloud mask from a cloud probability map, as s2cloudless's ``get_mask_from_prob``.

    The probability is averaged over a disk of ``average_over_px`` (edges reflected, NaN pixels
    left out of the average), thresholded (``> threshold``) and the mask dilated by a disk of
    ``dilation_px``. ``0`` skips a step. NaN pixels are never cloud themselves.

    >>> p = np.zeros((3, 3)); p[1, 1] = 0.9
    >>> cloud_mask(p, average_over_px=0, dilation_px=1).astype(int)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    >>> cloud_mask(p, average_over_px=1, dilation_px=0).astype(int)[1, 1]  # 0.9 / 5 < 0.4
    np.int64(0)
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold: a cloud probability lies in 0..1, got {threshold}")
    if average_over_px < 0 or dilation_px < 0:
        raise ValueError(f"average_over_px and dilation_px are radii in pixels >= 0, got {average_over_px}, {dilation_px}")
    p = np.asarray(prob, dtype=np.float32)
    finite = np.isfinite(p)
    if average_over_px > 0:
        k = _disk(average_over_px).astype(np.float32)
        num = ndimage.convolve(np.where(finite, p, 0).astype(np.float32), k, mode="reflect")
        den = ndimage.convolve(finite.astype(np.float32), k, mode="reflect")
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(den > 0, num / np.maximum(den, np.float32(1e-12)), np.nan).astype(np.float32)
    with np.errstate(invalid="ignore"):
        mask = (p > threshold) & finite
    if dilation_px > 0:
        mask = ndimage.binary_dilation(mask, structure=_disk(dilation_px))
    return mask


def shadow_offsets_px(
    *,
    sun_azimuth_deg: float,
    sun_elevation_deg: float,
    pixel_m: float,
    cloud_heights_m: tuple[float, float] = CLOUD_HEIGHTS_M,
    max_px: float | None = None,
) -> NDArray[np.int64]:
    """Row/column offsets (px) from a cloud pixel to its shadow, one per step of at most one pixel
    between the lowest and the highest cloud height (and no farther than ``max_px``, e.g. the
    array's diagonal: a low sun would otherwise ask for hundreds of kilometres).

    On flat ground a cloud at height ``h`` casts its shadow ``h / tan(elevation)`` metres away from
    the sun, i.e. towards azimuth ``sun_azimuth + 180``. On a north-up grid (rows run south) that is
    ``drow = +d cos(az) / pixel``, ``dcol = -d sin(az) / pixel``. The satellite view angle
    (< 12 deg for Sentinel-2) is neglected.

    >>> shadow_offsets_px(sun_azimuth_deg=180, sun_elevation_deg=45, pixel_m=10, cloud_heights_m=(100, 100))
    array([[-10,   0]])
    """
    lo, hi = (float(v) for v in cloud_heights_m)
    if not 0 <= lo <= hi:
        raise ValueError(f"cloud_heights_m: expected (lowest, highest) with 0 <= lowest <= highest, got {cloud_heights_m}")
    if not 0 < sun_elevation_deg <= 90:
        raise ValueError(
            f"sun_elevation_deg: expected 0 < elevation <= 90, got {sun_elevation_deg}; "
            "take it from the item's view:sun_elevation (90 - mean sun zenith angle)"
        )
    if pixel_m <= 0:
        raise ValueError(f"pixel_m: expected > 0, got {pixel_m}")
    az = math.radians(sun_azimuth_deg)
    per_m = 1.0 / math.tan(math.radians(sun_elevation_deg)) / pixel_m  # px of shadow per m of height
    d_lo, d_hi = lo * per_m, hi * per_m
    if max_px is not None:
        d_hi = min(d_hi, max(d_lo, float(max_px)))
    n = max(1, math.ceil(d_hi - d_lo) + 1)
    d = np.linspace(d_lo, d_hi, n)
    # floor(x + 0.5) is monotonic, so steps of <= 1 px give offsets at most 1 px apart
    offs = np.floor(np.stack([d * math.cos(az), -d * math.sin(az)], axis=1) + 0.5).astype(np.int64)
    keep = np.ones(len(offs), dtype=bool)
    keep[1:] = np.any(offs[1:] != offs[:-1], axis=1)  # drop repeats (they are consecutive)
    return offs[keep]


def _shifted(mask: NDArray[np.bool_], dr: int, dc: int) -> NDArray[np.bool_]:
    """``out[r + dr, c + dc] = mask[r, c]``; what leaves the array is dropped."""
    h, w = mask.shape
    out = np.zeros_like(mask, dtype=bool)
    if abs(dr) < h and abs(dc) < w:
        out[max(dr, 0) : h + min(dr, 0), max(dc, 0) : w + min(dc, 0)] = mask[
            max(-dr, 0) : h + min(-dr, 0), max(-dc, 0) : w + min(-dc, 0)
        ]
    return out


#: Most (pixel, offset) pairs scattered at once in :func:`_sweep` (bounds its memory to ~100 MB).
_SWEEP_BLOCK = 4_000_000


def _sweep(mask: NDArray[np.bool_], offsets: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Union of ``mask`` shifted by every offset, for offsets whose consecutive entries are at most
    one pixel apart in each direction (as :func:`shadow_offsets_px` makes them).

    Only the first shift moves the whole mask; for the others the mask's edge pixels (cloud pixels
    with a non-cloud 8-neighbour, or on the array border) are enough: a pixel reached from the
    interior at offset ``k`` is reached from an edge pixel at some offset between the first and
    ``k``. So the cost is (edge pixels x offsets) instead of (area x offsets).
    """
    mask = np.asarray(mask, dtype=bool)
    if offsets.size == 0 or not mask.any():
        return np.zeros_like(mask)
    if np.abs(np.diff(offsets, axis=0)).max(initial=0) > 1:
        raise ValueError("consecutive shadow offsets must be at most one pixel apart")
    out = _shifted(mask, int(offsets[0, 0]), int(offsets[0, 1]))
    edge = mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)
    rr, cc = np.nonzero(edge)
    h, w = mask.shape
    step = max(1, _SWEEP_BLOCK // max(rr.size, 1))
    for i in range(1, len(offsets), step):
        block = offsets[i : i + step]
        r = (rr[None, :] + block[:, 0:1]).ravel()
        c = (cc[None, :] + block[:, 1:2]).ravel()
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        out[r[inside], c[inside]] = True
    return out


def _dark_share(
    rr: NDArray[np.int64], cc: NDArray[np.int64], offsets: NDArray[np.int64],
    cloud: NDArray[np.bool_], dark: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """For each offset: share of the shifted pixels (inside the array, not cloud) that are dark;
    NaN where none is left."""
    h, w = cloud.shape
    r = rr[None, :] + offsets[:, 0:1]
    c = cc[None, :] + offsets[:, 1:2]
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    r, c = np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)
    open_sky = inside & ~cloud[r, c]
    area = open_sky.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, (open_sky & dark[r, c]).sum(axis=1) / np.maximum(area, 1), np.nan)


def _matched(
    cloud: NDArray[np.bool_],
    dark: NDArray[np.bool_],
    offsets: NDArray[np.int64],
    *,
    min_score: float,
    ring_px: int,
    max_sample_px: int,
) -> NDArray[np.bool_]:
    """Projection of each 8-connected cloud object at its best-matching offset.

    Score of an offset = dark share of the projected object minus dark share of a ``ring_px`` ring
    around it (both counted outside cloud and inside the array; a ring with nothing left counts as
    all dark). A shadow is darker than its surroundings, so a small cloud "fitting" inside a large
    dark lake or forest scores about 0, while its true shadow on brighter ground scores near 1.
    The object is projected at the best offset when that score is at least ``min_score``; ties go
    to the lowest cloud. Both shares are estimated on at most ``max_sample_px`` evenly spread pixels.
    """
    h, w = cloud.shape
    labels, _n = ndimage.label(cloud, structure=np.ones((3, 3), bool))
    projected = np.zeros_like(cloud)
    grow = np.ones((3, 3), bool)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        # the object and its ring in a padded box (the ring may leave the array)
        r0, c0 = sl[0].start - ring_px, sl[1].start - ring_px
        obj = np.zeros((sl[0].stop - sl[0].start + 2 * ring_px, sl[1].stop - sl[1].start + 2 * ring_px), bool)
        obj[ring_px:-ring_px or None, ring_px:-ring_px or None] = labels[sl] == i
        ring = ndimage.binary_dilation(obj, structure=grow, iterations=ring_px) & ~obj if ring_px > 0 else obj & False
        rr, cc = np.nonzero(obj)
        gr, gc = np.nonzero(ring)
        rr, cc, gr, gc = rr + r0, cc + c0, gr + r0, gc + c0
        pick = np.linspace(0, rr.size - 1, min(rr.size, max_sample_px)).astype(np.int64)
        inner = _dark_share(rr[pick], cc[pick], offsets, cloud, dark)
        if gr.size:
            pick = np.linspace(0, gr.size - 1, min(gr.size, max_sample_px)).astype(np.int64)
            outer = _dark_share(gr[pick], gc[pick], offsets, cloud, dark)
        else:
            outer = np.zeros(len(offsets))
        score = np.nan_to_num(inner, nan=0.0) - np.nan_to_num(outer, nan=1.0)
        best = int(np.argmax(score))
        if score[best] >= min_score:
            r2, c2 = rr + offsets[best, 0], cc + offsets[best, 1]
            keep = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
            projected[r2[keep], c2[keep]] = True
    return projected


def cloud_shadow(
    cloud: NDArray[np.bool_],
    *,
    dark: NDArray[np.bool_],
    sun_azimuth_deg: float,
    sun_elevation_deg: float,
    pixel_m: float,
    cloud_heights_m: tuple[float, float] = CLOUD_HEIGHTS_M,
    method: Literal["object", "union"] = "object",
    min_score: float = SHADOW_MIN_SCORE,
    ring_px: int = SHADOW_RING_PX,
    max_sample_px: int = 2000,
) -> NDArray[np.bool_]:
    """Cloud shadow: where the cloud mask, projected away from the sun for cloud heights in
    ``cloud_heights_m``, falls on a dark pixel that is not itself cloud.

    Parameters
    ----------
    cloud
        Cloud mask on a north-up grid (no rotation in the transform).
    dark
        Pixels dark enough to be shadow, e.g. ``nir < SHADOW_DARK_NIR``.
    sun_azimuth_deg, sun_elevation_deg
        Sun position, degrees clockwise from north and above the horizon (STAC ``view:sun_azimuth``,
        ``view:sun_elevation``).
    pixel_m
        Pixel size in metres.
    cloud_heights_m
        Lowest and highest cloud height searched (m). Shadows of clouds near the array edge are cast
        outside it: pad the arrays by ``highest / tan(elevation)`` to catch shadows from clouds
        beyond the edge.
    method
        ``"object"`` (default): as in Fmask, each cloud object is projected at its single
        best-matching height; the match score here is the dark share inside the projected shape
        minus that of a ``ring_px`` ring around it, so a lake that merely has room for the cloud's
        shape does not match (only a shape darker than its surroundings does). ``"union"``: every
        height at once (the projection swept over the whole range, like the directional distance
        transform of the Earth Engine s2cloudless tutorial); higher recall, but with a low sun it
        sweeps kilometres of lakes and dark forest into the shadow mask.
    min_score, ring_px, max_sample_px
        ``"object"`` only: the score a match needs (:data:`SHADOW_MIN_SCORE`), the ring width in
        pixels (:data:`SHADOW_RING_PX`), and the number of pixels the shares are estimated on.

    Examples
    --------
    A 1-px cloud 10 m high with the sun in the south at 45 deg casts its shadow one pixel north:

    >>> c = np.zeros((3, 3), bool); c[1, 1] = True
    >>> d = np.zeros((3, 3), bool); d[0, 1] = d[2, 2] = True
    >>> cloud_shadow(c, dark=d, sun_azimuth_deg=180, sun_elevation_deg=45,
    ...              pixel_m=10, cloud_heights_m=(10, 10)).astype(int)
    array([[0, 1, 0],
           [0, 0, 0],
           [0, 0, 0]])
    """
    cloud = np.asarray(cloud, dtype=bool)
    dark = np.asarray(dark, dtype=bool)
    if cloud.shape != dark.shape or cloud.ndim != 2:
        raise ValueError(f"cloud and dark must be 2-D arrays of one shape, got {cloud.shape} and {dark.shape}")
    offsets = shadow_offsets_px(
        sun_azimuth_deg=sun_azimuth_deg, sun_elevation_deg=sun_elevation_deg, pixel_m=pixel_m,
        cloud_heights_m=cloud_heights_m, max_px=math.hypot(*cloud.shape),
    )
    if method == "union":
        projected = _sweep(cloud, offsets)
    elif method == "object":
        projected = _matched(cloud, dark, offsets, min_score=min_score, ring_px=ring_px, max_sample_px=max_sample_px)
    else:
        raise ValueError(f"method: expected 'object' or 'union', got {method!r}")
    return projected & dark & ~cloud


def clouds_and_shadows(
    toa: Mapping[str, NDArray[np.floating]],
    *,
    sun_azimuth_deg: float,
    sun_elevation_deg: float,
    pixel_m: float,
    threshold: float = CLOUD_THRESHOLD,
    average_over_px: int = CLOUD_AVERAGE_OVER_PX,
    dilation_px: int = CLOUD_DILATION_PX,
    cloud_heights_m: tuple[float, float] = CLOUD_HEIGHTS_M,
    dark_nir: float = SHADOW_DARK_NIR,
    method: Literal["object", "union"] = "object",
    prob_resolution_m: float = PROB_RESOLUTION_M,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Cloud and cloud-shadow masks of one L1C scene: s2cloudless clouds (:func:`cloud_probability`,
    :func:`cloud_mask`) and their projected shadows on pixels with ``B08 < dark_nir``
    (:func:`cloud_shadow`).

    Returns
    -------
    cloud, shadow : bool arrays
    """
    prob = cloud_probability(toa, block_px=max(1, round(prob_resolution_m / pixel_m)))
    cloud = cloud_mask(prob, threshold=threshold, average_over_px=average_over_px, dilation_px=dilation_px)
    nir = np.asarray(toa["B08"], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        dark = nir < dark_nir
    shadow = cloud_shadow(
        cloud, dark=dark, sun_azimuth_deg=sun_azimuth_deg, sun_elevation_deg=sun_elevation_deg,
        pixel_m=pixel_m, cloud_heights_m=cloud_heights_m, method=method,
    )
    return cloud, shadow


#: Pixel size (m) of the per-day coarse pass (:func:`coarse_clouds_and_shadows`): that of B01, B09
#: and B10, at which s2cloudless already computes its probability.
COARSE_PASS_M = 60.0


def coarse_clouds_and_shadows(
    toa: Mapping[str, NDArray[np.floating]], *, sun_azimuth_deg: float, sun_elevation_deg: float,
    pixel_m: float = COARSE_PASS_M, threshold: float = CLOUD_THRESHOLD,
    cloud_heights_m: tuple[float, float] = CLOUD_HEIGHTS_M, dark_nir: float = SHADOW_DARK_NIR,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The per-day coarse pass of :func:`clouds_and_shadows`: clouds and the projection of each
    cloud object at its matched height, on a coarse grid (``pixel_m``, 60 m: the resolution of the
    s2cloudless probability).

    The kilometre-scale part of the method (cloud objects and where their shadows fall) runs once
    on a fixed grid over the whole day, so the result cannot depend on where the 10 m chunks are cut;
    :func:`refine_coarse` then finishes on each chunk at 10 m (dilation of the clouds, the dark-pixel
    test of the shadows).

    Returns
    -------
    cloud, projected : bool arrays on the coarse grid (clouds undilated; projected shadow shapes
    before the dark test)

    >>> toa = {b: np.full((8, 8), 0.05, np.float32) for b in S2CLOUDLESS_BANDS}
    >>> [(m.shape, m.dtype) for m in coarse_clouds_and_shadows(toa, sun_azimuth_deg=160, sun_elevation_deg=40)]
    [((8, 8), dtype('bool')), ((8, 8), dtype('bool'))]
    """
    prob = cloud_probability(toa, block_px=1)
    cloud = cloud_mask(prob, threshold=threshold, average_over_px=0, dilation_px=0)
    nir = np.asarray(toa["B08"], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        dark = nir < dark_nir
    offsets = shadow_offsets_px(sun_azimuth_deg=sun_azimuth_deg, sun_elevation_deg=sun_elevation_deg,
                                pixel_m=pixel_m, cloud_heights_m=cloud_heights_m, max_px=math.hypot(*cloud.shape))
    projected = _matched(cloud, dark, offsets, min_score=SHADOW_MIN_SCORE, ring_px=SHADOW_RING_PX, max_sample_px=2000)
    return cloud, projected


def refine_coarse(cloud: NDArray[np.bool_], projected: NDArray[np.bool_], nir: NDArray[np.floating], *,
                  dilation_px: int = CLOUD_DILATION_PX, dark_nir: float = SHADOW_DARK_NIR) -> NDArray[np.bool_]:
    """Finish the coarse pass at 10 m: ``cloud`` and ``projected`` repeated onto the 10 m pixels
    (with at least ``dilation_px`` of margin around the area of interest), clouds dilated by a disk
    of ``dilation_px``, shadows = projected shapes on dark pixels (``nir < dark_nir``) that are not
    cloud. Returns cloud | shadow.

    >>> c = np.zeros((5, 5), bool); c[2, 2] = True
    >>> p = np.zeros((5, 5), bool); p[0, :] = True
    >>> refine_coarse(c, p, np.full((5, 5), 0.1), dilation_px=1).astype(int)
    array([[1, 1, 1, 1, 1],
           [0, 0, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0]])
    """
    cl = ndimage.binary_dilation(cloud, structure=_disk(dilation_px)) if dilation_px > 0 else cloud.copy()
    with np.errstate(invalid="ignore"):
        dark = np.asarray(nir) < dark_nir
    return cl | (projected & dark & ~cl)


def shadow_reach_m(sun_elevation_deg: float, cloud_heights_m: tuple[float, float] = CLOUD_HEIGHTS_M) -> float:
    """Farthest distance (m) at which a cloud of the highest searched height casts its shadow.

    >>> round(shadow_reach_m(45.0))
    12000
    """
    return float(cloud_heights_m[1]) / math.tan(math.radians(max(sun_elevation_deg, 1.0)))
