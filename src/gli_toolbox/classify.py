"""Water classification of one acquisition: the method-independent entry point of the engine.

Two methods, both purely per pixel (the result of a pixel depends on that pixel's values only, so it
cannot depend on chunking):

``"threshold"``
    One index above one fixed cut (NDWI > 0.2 by default): :func:`gli_toolbox.water.classify_observation`.
    ``water`` and ``maybe`` are the same.
``"multi"``
    Several indices and reflectances with two levels, for seeded growth (hysteresis) by the lake
    extraction: ``water`` is a confident *seed* test, ``maybe`` a permissive *grow* test; a lake is a
    connected group of ``maybe`` pixels that contains at least one ``water`` pixel (the seed-and-grow
    segmentation of Li and Sheng 2012, as hysteresis thresholding, Canny 1986). See :class:`MultiRule`
    for each test and the source of each constant, and ``docs/accuracy.md`` for the evidence.

Both return ``(water, maybe, observed, snow)``; clear-sky, snow/ice and observation semantics are
those of :func:`gli_toolbox.water.classify_observation` for every method.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .water import (
    BLOCK_PX,
    MIN_REFLECTANCE,
    SNOW_MIN_NDSI,
    SNOW_MIN_NIR,
    blockwise,
    clear_and_snow,
    reflectance_table,
    row_blocks,
    threshold_block,
)

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_RULE", "METHODS", "Method", "MultiRule", "classify_bands", "count_observations", "required_bands",
           "season_classes"]

Method = Literal["threshold", "multi"]
#: Accepted classification methods.
METHODS: tuple[str, ...] = ("threshold", "multi")


@dataclass(frozen=True)
class MultiRule:
    """Constants of the ``"multi"`` method (reflectances are surface or top-of-atmosphere, 0..1).

    A clear, snow-free pixel (see :func:`gli_toolbox.water.classify_observation`) is

    *water (seed)* when MNDWI > ``seed_mndwi`` **and** NDWI > ``seed_ndwi`` **and**
    SWIR1 < ``seed_max_swir16``: water absorbs shortwave infrared
    almost completely, so open water of any turbidity has a high MNDWI (Xu 2006) and SWIR
    reflectances of a few percent, while vegetation, shadowed forest and wet rock keep SWIR1 above
    that. The NDWI condition (McFeeters 1996) rejects the snow-like bright surfaces and dark conifer
    stands whose MNDWI is positive.

    *maybe (grow)* when it is water, or when MNDWI > ``grow_mndwi`` **and** NDWI > ``grow_ndwi`` and
    NIR < ``grow_max_nir`` and SWIR1 < ``grow_max_swir16``: the zero cuts of both indices (their
    original definitions: water is where the index is positive) with the NIR ceiling of the Fmask
    water test (Zhu and Woodcock 2012: NIR < 0.11), so shore pixels and the low-NDWI parts of a
    turbid lake can join a lake that has a confident seed, but never start one.

    The seed cuts were measured on the tuning half of the Havel scene (``benchmarks/accuracy.py``
    ``--tune``), then checked on held-out scenes; ``docs/accuracy.md`` has the numbers.
    """

    seed_mndwi: float = 0.5
    """MNDWI above which a pixel may seed a lake (measured: at 0.4 forest cast shadows seed lakes)."""
    seed_ndwi: float = 0.0
    """NDWI above which a pixel may seed a lake (McFeeters 1996: water is NDWI > 0)."""
    seed_max_swir16: float = 0.05
    """SWIR1 reflectance below which a pixel may seed a lake (measured)."""
    grow_mndwi: float = 0.0
    """MNDWI above which a pixel may join a seeded lake (Xu 2006: water is MNDWI > 0)."""
    grow_ndwi: float = 0.0
    """NDWI above which a pixel may join a seeded lake (McFeeters 1996)."""
    grow_max_nir: float = 0.11
    """NIR reflectance below which a pixel may join a seeded lake (Fmask water test, Zhu & Woodcock 2012)."""
    grow_max_swir16: float = 0.11
    """SWIR1 reflectance below which a pixel may join a seeded lake (same ceiling as NIR: measured)."""


#: The constants used by ``method="multi"``.
DEFAULT_RULE = MultiRule()


def required_bands(method: str = "threshold", index: str = "ndwi") -> tuple[str, ...]:
    """Sentinel-2 common band names a method reads (SWIR1 always: it feeds the snow/ice test).

    >>> required_bands("threshold", "ndwi")
    ('green', 'nir', 'swir16')
    >>> required_bands("multi")
    ('green', 'nir', 'swir16')
    """
    _check_method(method)
    return ("green", "nir", "swir16")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")


def _nd(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """Normalized difference of two floored float32 blocks (denominator > 0 or NaN)."""
    num = np.subtract(a, b, dtype=np.float32)
    den = np.add(a, b, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        np.divide(num, den, out=num)
    return num


def multi_block(
    green: NDArray[np.floating], nir: NDArray[np.floating], swir16: NDArray[np.floating],
    *, scl: NDArray[np.integer] | None, masked: NDArray[np.bool_] | None,
    rule: MultiRule = DEFAULT_RULE,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """The ``"multi"`` tests on one block: ``(water, maybe, observed, snow)``; see :class:`MultiRule`.

    >>> w, m, o, s = multi_block(np.array([0.06, 0.08, 0.05]), np.array([0.02, 0.07, 0.15]),
    ...                          np.array([0.01, 0.04, 0.20]), scl=None, masked=None)
    >>> w.astype(int), m.astype(int), o.astype(int)
    (array([1, 0, 0]), array([1, 1, 0]), array([1, 1, 1]))
    >>> # a turbid pixel (NDWI 0.07, MNDWI 0.33) grows but does not seed; bright rock (NIR 0.15) does neither
    """
    clear, snow = clear_and_snow(green, nir, swir16, scl=scl, masked=masked)
    lo = np.float32(MIN_REFLECTANCE)
    g = np.maximum(green, lo, dtype=np.float32)
    n = np.maximum(nir, lo, dtype=np.float32)
    s1 = np.maximum(swir16, lo, dtype=np.float32)
    observed = clear & ~snow
    observed &= np.isfinite(s1)
    ndwi = _nd(g, n)
    mndwi = _nd(g, s1)
    with np.errstate(invalid="ignore"):
        water = mndwi > rule.seed_mndwi
        water &= ndwi > rule.seed_ndwi
        water &= s1 < rule.seed_max_swir16
        water &= observed
        maybe = mndwi > rule.grow_mndwi
        maybe &= ndwi > rule.grow_ndwi
        maybe &= n < rule.grow_max_nir
        maybe &= s1 < rule.grow_max_swir16
        maybe &= observed
        maybe |= water
    return water, maybe, observed, snow


def classify_bands(
    bands: Mapping[str, NDArray[np.floating]],
    *,
    scl: NDArray[np.integer] | None = None,
    masked: NDArray[np.bool_] | None = None,
    method: str = "threshold",
    threshold: float = 0.2,
    index: str = "ndwi",
    rule: MultiRule = DEFAULT_RULE,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """Water (seed), maybe-water (grow), observed and snow/ice of one acquisition.

    Parameters
    ----------
    bands
        Reflectances by common name (float32), at least :func:`required_bands` ``(method, index)``.
    scl, masked
        Optional scene classification and extra invalid mask (terrain or detector cloud shadow).
    method
        ``"threshold"`` (``index`` above ``threshold``) or ``"multi"`` (:class:`MultiRule`; ``threshold``
        and ``index`` are not used).
    threshold, index
        The fixed-threshold test.
    rule
        Constants of ``"multi"``; the default is :data:`DEFAULT_RULE`.

    Returns
    -------
    water, maybe, observed, snow : bool arrays
        ``water`` ⊆ ``maybe`` ⊆ ``observed``; ``snow`` is disjoint from ``observed``. For
        ``"threshold"``, ``maybe`` is ``water`` (the same array).

    Examples
    --------
    >>> b = {"green": np.array([[0.06, 0.08]]), "nir": np.array([[0.02, 0.07]]), "swir16": np.array([[0.01, 0.04]])}
    >>> [a.astype(int).tolist() for a in classify_bands(b, method="multi")]
    [[[1, 0]], [[1, 1]], [[1, 1]], [[0, 0]]]
    >>> [a.astype(int).tolist() for a in classify_bands(b, method="threshold", threshold=0.2)]
    [[[1, 0]], [[1, 0]], [[1, 1]], [[0, 0]]]
    """
    _check_method(method)
    missing = [b for b in required_bands(method, index) if b not in bands and not (b == "swir16" and method == "threshold")]
    if missing:
        raise ValueError(f"method {method!r} needs the bands {', '.join(missing)}")
    if method == "threshold":
        if index == "mndwi" and bands.get("swir16") is None:
            raise ValueError("MNDWI needs the SWIR1 band")
        water, observed, snow = blockwise(threshold_block, [bands["green"], bands["nir"], bands.get("swir16")],
                                          scl=scl, masked=masked, n_out=3, threshold=threshold, index=index)
        return water, water, observed, snow
    kwargs: dict[str, Any] = {"rule": rule}
    water, maybe, observed, snow = blockwise(
        multi_block, [bands["green"], bands["nir"], bands["swir16"]],
        scl=scl, masked=masked, n_out=4, **kwargs,
    )
    return water, maybe, observed, snow


_FUSED: dict[str, Any] = {}
#: Rows per call of the compiled kernel: absent masks are replaced by constant arrays of this many rows.
_FUSED_BLOCK_PX = 1 << 18


def _fused_kernels() -> dict[str, Any]:
    """The per-pixel loops of :func:`count_observations`, compiled by Numba on first use (cached on disk).

    Each performs, pixel by pixel and in float32, exactly the operations of the numpy path
    (:func:`gli_toolbox.water.reflectance_table`, :func:`gli_toolbox.water.threshold_block`,
    :func:`multi_block`): the same reflectance arithmetic, NaN-free validity from the DN, the floor,
    normalized differences, the same float32 cuts; no fast-math, so the counts are bit-identical
    (tested). The per-pixel tests are branch-free so that LLVM vectorizes them (``error_model="numpy"``:
    a division by zero gives inf/NaN as in numpy instead of raising).
    """
    if _FUSED:
        return _FUSED
    import numba

    jit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @jit
    def count_kernel(g_dn, n_dn, s_dn, scl, masked, inside, nodata, offs, inv, snow_ndsi, snow_nir, req_s,  # pragma: no cover
                     lo, multi, use_mndwi, thr, seed_m, seed_n, seed_s1, grow_m, grow_n, grow_nir, grow_s1,
                     water_count, maybe_count, valid_count, snow_count):
        # one kernel for both methods, calling no other compiled function: Numba caches on disk only
        # functions that call none (a closure calling another was compiled again in every process)
        rows, cols = g_dn.shape
        n_obs = 0
        sat = np.uint16(65535)
        # the observed flags of a row, summed after it: a sum inside the pixel loop (an int64
        # reduction over bytes) kept LLVM from vectorizing it well and doubled the kernel's time
        row_observed = np.empty(cols, np.uint8)
        for i in range(rows):
            for j in range(cols):
                gd, nd, sd, c = g_dn[i, j], n_dn[i, j], s_dn[i, j], scl[i, j]
                g_ok = (gd != nodata) & (gd != sat)
                n_ok = (nd != nodata) & (nd != sat)
                s_ok = (sd != nodata) & (sd != sat)
                g_ok &= s_ok | ~req_s  # SWIR1 required: a pixel without it is not clear
                # reflectance exactly as water.reflectance_table computes it
                g = (np.float32(gd) + offs) / inv
                n = (np.float32(nd) + offs) / inv
                s = (np.float32(sd) + offs) / inv
                den = g + s
                snow = (n > snow_nir) & s_ok & (den != np.float32(0.0)) & ((g - s) / den > snow_ndsi)
                # water.SCL_MASKED: 0 1 3 8 9 10; snow/ice 11
                clear = (g_ok & n_ok & (c != 0) & (c != 1) & (c != 3) & (c != 8) & (c != 9) & (c != 10)
                         & ~masked[i, j] & inside[i, j])
                snow = (snow | (c == 11)) & clear
                gf = max(g, lo)
                nf = max(n, lo)
                sf = max(s, lo)
                if multi:  # loop-invariant: LLVM hoists it out of the loop
                    observed = clear & ~snow & s_ok
                    ndwi = (gf - nf) / (gf + nf)
                    mndwi = (gf - sf) / (gf + sf)
                    seed = observed & (mndwi > seed_m) & (ndwi > seed_n) & (sf < seed_s1)
                    grow = seed | (observed & (mndwi > grow_m) & (ndwi > grow_n) & (nf < grow_nir) & (sf < grow_s1))
                else:
                    other = sf if use_mndwi else nf
                    observed = clear & ~snow & (s_ok | ~use_mndwi)
                    seed = observed & ((gf - other) / (gf + other) > thr)
                    grow = seed
                water_count[i, j] += seed
                maybe_count[i, j] += grow
                valid_count[i, j] += observed
                snow_count[i, j] += snow
                row_observed[j] = observed
            for j in range(cols):
                n_obs += row_observed[j]
        return n_obs

    @jit
    def season_kernel(water, maybe, valid, inside, fraction, out):  # pragma: no cover
        # branch-free, and the tallies summed in a second loop over the row: both keep the pixel
        # loop vectorized (a lookup table of the needed count and the sums inside it made it 10x slower)
        rows, cols = valid.shape
        n_inside = 0
        n_water = 0
        n_never = 0
        for i in range(rows):
            for j in range(cols):
                v = valid[i, j]
                # count >= ceil(fraction * v - 1e-9) <=> count >= fraction * v - 1e-9 (counts are integers)
                need = fraction * np.float64(v) - 1e-9
                w = np.float64(water[i, j]) >= need
                m = np.float64(maybe[i, j]) >= need
                c = np.uint8(w) | (np.uint8(m & ~w) << np.uint8(1))
                out[i, j] = c if (inside[i, j] & (v > 0)) else np.uint8(255)
            for j in range(cols):
                ins = inside[i, j]
                n_inside += ins
                n_water += out[i, j] == 1
                n_never += ins & (valid[i, j] == 0)
        return n_inside, n_water, n_never

    _FUSED.update(count=count_kernel, season=season_kernel)
    return _FUSED


def count_observations(
    dn: Mapping[str, NDArray[np.uint16]],
    *,
    scale: float,
    offset: float,
    nodata: int = 0,
    scl: NDArray[np.integer] | None = None,
    masked: NDArray[np.bool_] | None = None,
    inside: NDArray[np.bool_] | None = None,
    method: str = "threshold",
    threshold: float = 0.2,
    index: str = "ndwi",
    rule: MultiRule = DEFAULT_RULE,
    require_swir16: bool = False,
    water_count: NDArray[np.integer],
    maybe_count: NDArray[np.integer],
    valid_count: NDArray[np.integer],
    snow_count: NDArray[np.integer],
    block_px: int = BLOCK_PX,
) -> int:
    """Add one acquisition to the per-pixel counts, from digital numbers, in one cache-sized pass;
    return the number of pixels observed (clear, not snow, inside).

    The fused form of :func:`gli_toolbox.water.to_reflectance` (per band) followed by
    :func:`classify_bands` and ``count += mask``: for 2-D uint16 DN (and uint8 SCL) a Numba-compiled,
    vectorized loop goes from DN to counts in one pass with no full-size temporary (about 3x a plain
    copy of the inputs, 20x faster than the previous full-array code: ``benchmarks/bench_kernel.py``);
    other inputs go block by block through the numpy path. Pixels outside ``inside`` (e.g. the AOI)
    are not counted. With ``require_swir16`` a pixel without a valid SWIR1 value is not clear (as
    when the caller masks it, which the engine does: every method reads SWIR1 for the snow test).
    Results equal the unfused calls bit for bit (tested).

    Examples
    --------
    >>> dn = {"green": np.array([[600, 1000]], np.uint16), "nir": np.array([[200, 2500]], np.uint16),
    ...       "swir16": np.array([[100, 1800]], np.uint16)}
    >>> counts = [np.zeros((1, 2), np.uint16) for _ in range(4)]
    >>> count_observations(dn, scale=1e-4, offset=0.0, method="multi", water_count=counts[0], maybe_count=counts[1],
    ...                    valid_count=counts[2], snow_count=counts[3])
    2
    >>> [c.tolist() for c in counts]
    [[[1, 0]], [[1, 0]], [[1, 1]], [[0, 0]]]
    """
    _check_method(method)
    table = reflectance_table(scale=scale, offset=offset, nodata=nodata)
    names = required_bands(method, index)
    missing = [b for b in names if b not in dn]
    if missing:
        raise ValueError(f"method {method!r} needs the bands {', '.join(missing)}")
    shape = dn[names[0]].shape
    dns = [dn[b] for b in names]
    fast = (all(d.dtype == np.uint16 and d.ndim == 2 for d in dns) and (scl is None or scl.dtype == np.uint8)
            and (method == "multi" or index in ("ndwi", "mndwi")))
    if fast:
        kernels = _fused_kernels()
        f32 = np.float32
        common = (np.uint16(nodata), f32(offset / scale), f32(1.0 / scale), f32(SNOW_MIN_NDSI), f32(SNOW_MIN_NIR),
                  bool(require_swir16), f32(MIN_REFLECTANCE))
        kernel = kernels["count"]
        params: tuple[Any, ...] = (method == "multi", index == "mndwi", f32(threshold),
                                   f32(rule.seed_mndwi), f32(rule.seed_ndwi), f32(rule.seed_max_swir16),
                                   f32(rule.grow_mndwi), f32(rule.grow_ndwi), f32(rule.grow_max_nir),
                                   f32(rule.grow_max_swir16))
        rows = max(1, _FUSED_BLOCK_PX // max(shape[1], 1))
        # absent masks: constant blocks (SCL 4 = vegetation: clear, not snow), allocated once per call
        const = {"scl": np.full((rows, shape[1]), 4, np.uint8), "masked": np.zeros((rows, shape[1]), bool),
                 "inside": np.ones((rows, shape[1]), bool)}
        n_observed = 0
        for sl in row_blocks(shape, rows * shape[1]):
            n_rows = sl.stop - sl.start
            opt = [const[k][:n_rows] if a is None else a[sl] for k, a in (("scl", scl), ("masked", masked), ("inside", inside))]
            n_observed += int(kernel(*(d[sl] for d in dns), *opt, *common, *params,
                                     water_count[sl], maybe_count[sl], valid_count[sl], snow_count[sl]))
        return n_observed
    n_observed = 0
    for sl in row_blocks(shape, block_px):
        g, n, s1 = (np.take(table, d[sl]) for d in dns)
        sc = None if scl is None else scl[sl]
        mk = None if masked is None else masked[sl]
        if require_swir16:
            no_swir = ~np.isfinite(s1)
            mk = no_swir if mk is None else mk | no_swir
        if method == "threshold":
            water, observed, snow = threshold_block(g, n, s1, scl=sc, masked=mk, threshold=threshold, index=index)
            maybe = water
        else:
            water, maybe, observed, snow = multi_block(g, n, s1, scl=sc, masked=mk, rule=rule)
        if inside is not None:
            ins = inside[sl]
            observed &= ins
            snow &= ins
            water &= ins
            if maybe is not water:
                maybe &= ins
        water_count[sl] += water
        maybe_count[sl] += maybe
        valid_count[sl] += observed
        snow_count[sl] += snow
        n_observed += int(np.count_nonzero(observed))
    return n_observed


def season_classes(
    water_count: NDArray[np.integer],
    maybe_count: NDArray[np.integer],
    valid_count: NDArray[np.integer],
    *,
    inside: NDArray[np.bool_],
    min_water_fraction: float = 0.5,
) -> tuple[NDArray[np.uint8], dict[str, int]]:
    """The season's class of each pixel from its counts, in one compiled pass, and its tallies.

    The same classes as :func:`gli_toolbox.water.composite_classes` (1 water, 2 possible water,
    0 not water, 255 never observed) with pixels outside ``inside`` set to 255 (tested equal); the
    tallies are ``inside_px``, ``water_px`` (class 1) and ``never_observed_px`` (inside, never
    validly observed).

    >>> c, n = season_classes(np.array([[2, 0, 0, 0, 3]], np.uint8), np.array([[2, 2, 1, 0, 3]], np.uint8),
    ...                       np.array([[3, 3, 3, 0, 3]], np.uint8), inside=np.array([[1, 1, 1, 1, 0]], bool))
    >>> c.tolist(), n
    ([[1, 2, 0, 255, 255]], {'inside_px': 4, 'water_px': 1, 'never_observed_px': 1})
    """
    out = np.empty(valid_count.shape, np.uint8)
    if valid_count.ndim != 2 or valid_count.size == 0:
        from .water import composite_classes

        out[...] = composite_classes(water_count, maybe_count, valid_count, min_water_fraction=min_water_fraction)
        out[~inside] = 255
        return out, {"inside_px": int(inside.sum()), "water_px": int((out == 1).sum()),
                     "never_observed_px": int(((valid_count == 0) & inside).sum())}
    n_in, n_water, n_never = _fused_kernels()["season"](water_count, maybe_count, valid_count,
                                                        np.ascontiguousarray(inside, dtype=bool),
                                                        float(min_water_fraction), out)
    return out, {"inside_px": int(n_in), "water_px": int(n_water), "never_observed_px": int(n_never)}
