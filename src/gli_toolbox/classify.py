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

from .water import MIN_REFLECTANCE, blockwise, clear_and_snow, threshold_block

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_RULE", "METHODS", "Method", "MultiRule", "classify_bands", "required_bands"]

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

    seed_mndwi: float = 0.4
    """MNDWI above which a pixel may seed a lake (measured)."""
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
