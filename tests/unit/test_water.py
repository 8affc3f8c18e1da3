"""Water index, reflectance, SCL validity and the seasonal composite against independent numbers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gli_toolbox import water


def test_ndwi_matches_float64_formula():
    rng = np.random.default_rng(0)
    g = rng.uniform(0, 0.6, (50, 40))
    n = rng.uniform(0, 0.6, (50, 40))
    got = water.ndwi(g.astype(np.float32), n.astype(np.float32))
    expected = (g - n) / (g + n)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_index_is_nan_where_undefined():
    g = np.array([[0.0, np.nan, 0.1]], dtype=np.float32)
    n = np.array([[0.0, 0.1, np.nan]], dtype=np.float32)
    assert np.isnan(water.ndwi(g, n)).all()


def test_mndwi_uses_swir():
    assert water.mndwi(np.array([0.3]), np.array([0.1]))[0] == pytest.approx(0.5)


def test_reflectance_c1_offset_roundtrip():
    # Collection-1 DN = reflectance * 10000 + 1000
    refl = np.array([[0.0, 0.05, 0.2, 0.9]])
    dn = np.round(refl * 10000 + 1000).astype(np.uint16)
    got = water.to_reflectance(dn, scale=1e-4, offset=-0.1)
    np.testing.assert_allclose(got, refl, atol=1e-6)


def test_reflectance_nodata_and_saturation_are_nan():
    dn = np.array([[0, 65535, 1500]], dtype=np.uint16)
    got = water.to_reflectance(dn, scale=1e-4, offset=0.0)
    assert np.isnan(got[0, 0]) and np.isnan(got[0, 1]) and got[0, 2] == pytest.approx(0.15)


@pytest.mark.parametrize("cls,valid", [(0, False), (1, False), (2, True), (3, False), (4, True), (5, True),
                                       (6, True), (7, True), (8, False), (9, False), (10, False), (11, True)])
def test_scl_classes(cls, valid):
    assert bool(water.scl_valid(np.array([cls], dtype=np.uint8))[0]) is valid


def test_offset_heuristic_detects_removed_offset_over_water():
    # Dark water without offset: DN 100-400 -> clearly removed; with offset: >= 1000
    without = np.array([150, 220, 400, 1800, 2500] * 20, dtype=np.uint16)
    assert water.offset_already_removed(without)
    assert not water.offset_already_removed(without + 1000)


def test_water_observation_masks_invalid():
    idx = np.array([[0.5, 0.5, 0.1, np.nan]], dtype=np.float32)
    valid = np.array([[True, False, True, True]])
    w, o = water.water_observation(idx, valid, threshold=0.2)
    assert w.tolist() == [[True, False, False, False]]
    assert o.tolist() == [[True, False, True, False]]


@settings(max_examples=50, deadline=None)
@given(arrays(np.uint16, (4, 5), elements=st.integers(0, 20)), arrays(np.uint16, (4, 5), elements=st.integers(0, 20)),
       st.sampled_from([0.25, 0.5, 0.75, 1.0]))
def test_composite_equals_fraction_rule(a, b, frac):
    valid = np.maximum(a, b)
    wat = np.minimum(a, b)
    got = water.composite(wat, valid, min_water_fraction=frac)
    for (i, j), v in np.ndenumerate(valid):
        if v == 0:
            assert got[i, j] == 255
        else:
            assert got[i, j] == int(wat[i, j] / v >= frac)


def test_snow_is_neither_water_nor_dry_observation():
    green = np.array([[0.06, 0.80, 0.80, 0.10]], dtype=np.float32)
    nir = np.array([[0.02, 0.70, 0.70, 0.30]], dtype=np.float32)
    swir = np.array([[0.01, 0.05, 0.05, 0.20]], dtype=np.float32)
    scl = np.array([[6, 11, 5, 4]], dtype=np.uint8)
    w, o, s = water.classify_observation(green, nir, swir, scl=scl, threshold=0.2)
    assert w.tolist() == [[True, False, False, False]]
    assert o.tolist() == [[True, False, False, True]]  # SCL 11 and NDSI-snow are not observations
    assert s.tolist() == [[False, True, True, False]]


def test_frozen_date_does_not_erase_lake_in_composite():
    # one lake pixel: open water on 2 dates, frozen (SCL 11) on 3 dates -> still water for the year
    wc = np.zeros((1, 1), np.uint16)
    vc = np.zeros((1, 1), np.uint16)
    for scl, g, n, s in [(6, 0.06, 0.02, 0.01)] * 2 + [(11, 0.8, 0.7, 0.05)] * 3:
        w, o, _ = water.classify_observation(np.full((1, 1), g), np.full((1, 1), n), np.full((1, 1), s),
                                             scl=np.full((1, 1), scl, np.uint8), threshold=0.2)
        wc += w
        vc += o
    assert water.composite(wc, vc)[0, 0] == 1
    # frozen all season: never observed as open water -> 255, not "no lake"
    assert water.composite(np.zeros((1, 1), np.uint16), np.zeros((1, 1), np.uint16))[0, 0] == 255


def test_masked_pixels_are_not_observed():
    g = np.full((1, 2), 0.06)
    n = np.full((1, 2), 0.02)
    w, o, _ = water.classify_observation(g, n, masked=np.array([[True, False]]), threshold=0.2)
    assert o.tolist() == [[False, True]] and w.tolist() == [[False, True]]


def test_negative_reflectance_does_not_make_water():
    # green -0.01 (DN 900 with the -0.1 offset) over NIR 0.005: the raw NDWI would be 3.0
    green = water.to_reflectance(np.array([[900]], dtype=np.uint16), scale=1e-4, offset=-0.1)
    nir = np.array([[0.005]], dtype=np.float32)
    w, o, _ = water.classify_observation(green, nir, threshold=0.2)
    assert o[0, 0] and not w[0, 0]
    # dark water with a slightly negative NIR is still water
    w2, _, _ = water.classify_observation(np.array([[0.05]]), np.array([[-0.002]]), threshold=0.2)
    assert w2[0, 0]


# ---- the blockwise kernel (issue 12, benchmark 4) gives the same bits as the full-array code it replaced
def _previous_to_reflectance(dn, *, scale, offset, nodata=0):
    out = dn.astype(np.float32)
    out += np.float32(offset / scale)
    out /= np.float32(1.0 / scale)
    out[(dn == nodata) | (dn == 65535)] = np.nan
    return out


def _previous_nd(a, b):
    a32, b32 = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    num, den = a32 - b32, a32 + b32
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den == 0, np.float32(1), den), np.float32(np.nan)).astype(np.float32)


def _previous_classify(green, nir, swir16, *, scl, masked, threshold, index):
    clear = np.isfinite(green) & np.isfinite(nir) & ~np.isin(scl, (0, 1, 3, 8, 9, 10)) & ~masked
    with np.errstate(invalid="ignore"):
        snow = ((scl == 11) | ((_previous_nd(green, swir16) > 0.4) & (np.asarray(nir) > 0.11))) & clear
        g = np.maximum(green, 1e-4)
        other = swir16 if index == "mndwi" else nir
        idx = _previous_nd(g, np.maximum(other, 1e-4))
        observed = clear & ~snow & np.isfinite(idx)
        return observed & (idx > threshold), observed, snow


@pytest.mark.parametrize("offset", [0.0, -0.1])
def test_blockwise_kernel_is_bit_identical_to_the_previous_code(offset):
    rng = np.random.default_rng(11)
    shape = (523, 389)  # not a multiple of the block size
    dn = {k: rng.integers(0, 5000, shape).astype(np.uint16) for k in ("g", "n", "s")}
    for v in dn.values():
        v[rng.random(shape) < 0.01] = 0
        v[rng.random(shape) < 0.01] = 65535
        v[rng.random(shape) < 0.02] = 1000  # reflectance exactly 0 with the offset
    scl = rng.integers(0, 256, shape).astype(np.uint8)  # also undefined SCL values
    masked = rng.random(shape) < 0.05
    refl = {}
    for k, v in dn.items():
        refl[k] = water.to_reflectance(v, scale=1e-4, offset=offset)
        assert np.array_equal(refl[k], _previous_to_reflectance(v, scale=1e-4, offset=offset), equal_nan=True)
    assert np.array_equal(water.scl_valid(scl), ~np.isin(scl, water.SCL_MASKED))
    for index in ("ndwi", "mndwi"):
        for t in (-0.1, 0.0, 0.2):
            got = water.classify_observation(refl["g"], refl["n"], refl["s"], scl=scl, masked=masked, threshold=t,
                                             index=index)
            want = _previous_classify(refl["g"], refl["n"], refl["s"], scl=scl, masked=masked, threshold=t, index=index)
            for a, b in zip(got, want):
                assert np.array_equal(a, b)


@settings(max_examples=50, deadline=None)
@given(arrays(np.uint16, (4, 5), elements=st.integers(0, 9)), arrays(np.uint16, (4, 5), elements=st.integers(0, 9)),
       arrays(np.uint16, (4, 5), elements=st.integers(0, 9)), st.sampled_from([0.25, 0.5, 1.0]))
def test_composite_classes_follow_the_seed_and_grow_shares(a, b, c, frac):
    water_c = np.minimum(np.minimum(a, b), c)  # seed <= grow <= valid
    maybe_c = np.minimum(np.maximum(a, b), c)
    valid = c
    got = water.composite_classes(water_c, maybe_c, valid, min_water_fraction=frac)
    for (i, j), v in np.ndenumerate(valid):
        if v == 0:
            want = 255
        elif water_c[i, j] / v >= frac:
            want = 1
        elif maybe_c[i, j] / v >= frac:
            want = 2
        else:
            want = 0
        assert got[i, j] == want


def test_seeded_growth_keeps_possible_water_connected_to_a_seed_only():
    c = np.array([[2, 2, 0, 2, 1],
                  [0, 2, 0, 2, 0],
                  [2, 1, 0, 0, 2],
                  [255, 0, 2, 2, 2]], dtype=np.uint8)
    got = water.seeded_growth(c)
    # left group (2,2,2,1 and the 2 under it) holds a seed; the right top column too; bottom right not;
    # (2,0) touches the seed (2,1) by an edge
    want = np.array([[1, 1, 0, 1, 1],
                     [0, 1, 0, 1, 0],
                     [1, 1, 0, 0, 0],
                     [255, 0, 0, 0, 0]], dtype=np.uint8)
    assert np.array_equal(got, want)
    diag = np.array([[1, 0], [0, 2]], dtype=np.uint8)  # diagonal contact is not a connection
    assert water.seeded_growth(diag).tolist() == [[1, 0], [0, 0]]
