"""The water classifier of contract 4 (classify_bands / required_bands) against independent numbers."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio.enums import Resampling
from scipy import ndimage as ndi

from gli_toolbox import classify, water

ROOT = Path(__file__).resolve().parents[2]


def _bands(g, n, s):
    return {"green": np.asarray(g, np.float32), "nir": np.asarray(n, np.float32), "swir16": np.asarray(s, np.float32)}


def _reference_threshold(g, n, s, scl, masked, threshold, index):
    """The fixed-threshold rule written out in float64 from its definition (docs/methods.md)."""
    g64, n64, s64 = (np.asarray(x, np.float64) for x in (g, n, s))
    clear = np.isfinite(g64) & np.isfinite(n64) & ~np.isin(scl, (0, 1, 3, 8, 9, 10)) & ~masked
    with np.errstate(all="ignore"):
        ndsi = (g64 - s64) / (g64 + s64)
        snow = ((scl == 11) | ((ndsi > 0.4) & (n64 > 0.11))) & clear
        gf, other = np.maximum(g64, 1e-4), np.maximum(s64 if index == "mndwi" else n64, 1e-4)
        idx = (gf - other) / (gf + other)
        observed = clear & ~snow & np.isfinite(idx)
        return observed & (idx > threshold), observed, snow


def test_threshold_method_is_classify_observation_and_the_written_rule():
    rng = np.random.default_rng(3)
    shape = (300, 211)
    g, n, s = (rng.uniform(-0.01, 0.6, shape).astype(np.float32) for _ in range(3))
    g[rng.random(shape) < 0.01] = np.nan
    scl = rng.integers(0, 12, shape).astype(np.uint8)
    masked = rng.random(shape) < 0.05
    for index in ("ndwi", "mndwi"):
        w, m, o, sn = classify.classify_bands(_bands(g, n, s), scl=scl, masked=masked, method="threshold",
                                              threshold=0.2, index=index)
        w2, o2, sn2 = water.classify_observation(g, n, s, scl=scl, masked=masked, threshold=0.2, index=index)
        assert np.array_equal(w, w2) and np.array_equal(o, o2) and np.array_equal(sn, sn2)
        assert np.array_equal(m, w)
        rw, ro, rs = _reference_threshold(g, n, s, scl, masked, 0.2, index)
        # float64 vs float32 may differ only for indices within rounding of the cut
        assert (w != rw).sum() <= 3 and np.array_equal(o, ro) and (sn != rs).sum() <= 3


@pytest.mark.parametrize("name,g,n,s,seed,grow", [
    ("clear lake", 0.06, 0.02, 0.01, True, True),
    ("turbid grey-green proglacial lake: NDWI 0.05, MNDWI 0.6", 0.105, 0.095, 0.026, True, True),
    ("shore pixel, half water: MNDWI 0.33, NDWI 0.05", 0.08, 0.072, 0.04, False, True),
    ("shadowed conifer forest: MNDWI 0.1, NDWI -0.2", 0.05, 0.075, 0.041, False, False),
    ("wet dark rock: both indices below 0", 0.05, 0.06, 0.07, False, False),
    ("bright moraine", 0.20, 0.25, 0.30, False, False),
    ("vegetation", 0.06, 0.30, 0.15, False, False),
])
def test_multi_on_typical_spectra(name, g, n, s, seed, grow):
    w, m, o, sn = classify.classify_bands(_bands([[g]], [[n]], [[s]]), method="multi")
    assert bool(w[0, 0]) is seed, name
    assert bool(m[0, 0]) is grow, name
    assert o[0, 0] and not sn[0, 0]


def test_multi_snow_ice_and_clouds_are_not_observations():
    # fresh snow / lake ice: NDSI 0.8, NIR 0.7 -> snow; MNDWI alone would call it water
    w, m, o, sn = classify.classify_bands(_bands([[0.8, 0.06]], [[0.7, 0.02]], [[0.09, 0.01]]), method="multi",
                                          scl=np.array([[4, 9]], np.uint8))
    assert sn.tolist() == [[True, False]]
    assert o.tolist() == [[False, False]] and not m.any() and not w.any()


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (6, 7), elements=st.floats(-0.03125, 0.875, width=32)),
       arrays(np.float32, (6, 7), elements=st.floats(-0.03125, 0.875, width=32)),
       arrays(np.float32, (6, 7), elements=st.floats(-0.03125, 0.875, width=32)),
       arrays(np.uint8, (6, 7), elements=st.integers(0, 12)))
def test_multi_levels_nest(g, n, s, scl):
    w, m, o, sn = classify.classify_bands(_bands(g, n, s), scl=scl, method="multi")
    assert not (w & ~m).any() and not (m & ~o).any() and not (o & sn).any()


def test_results_do_not_depend_on_chunks_or_blocks():
    rng = np.random.default_rng(5)
    shape = (257, 301)
    b = _bands(*(rng.uniform(0, 0.4, shape) for _ in range(3)))
    scl = rng.integers(0, 12, shape).astype(np.uint8)
    for method in classify.METHODS:
        whole = classify.classify_bands(b, scl=scl, method=method)
        # four chunks of odd sizes, classified separately and put back together
        parts = [[classify.classify_bands({k: v[r, c] for k, v in b.items()}, scl=scl[r, c], method=method)
                  for c in (np.s_[:100], np.s_[100:])] for r in (np.s_[:37], np.s_[37:])]
        for i in range(4):
            glued = np.block([[parts[0][0][i], parts[0][1][i]], [parts[1][0][i], parts[1][1][i]]])
            assert np.array_equal(glued, whole[i])


def test_required_bands_and_errors():
    assert classify.required_bands("threshold", "mndwi") == ("green", "nir", "swir16")
    assert set(classify.required_bands("multi")) == {"green", "nir", "swir16"}
    with pytest.raises(ValueError, match="method"):
        classify.required_bands("otsu")
    with pytest.raises(ValueError, match="swir16"):
        classify.classify_bands({"green": np.zeros(2), "nir": np.zeros(2)}, method="multi")


def _barbellino(date: str) -> tuple[dict, np.ndarray]:
    d = next((ROOT / "sample_data" / "sentinel-2-c1-l2a").glob(f"S2A_T32TNS_{date}T*_L2A"))
    bands = {}
    for k, f in [("green", "B03"), ("nir", "B08"), ("swir16", "B11")]:
        with rasterio.open(d / f"{f}.tif") as src:
            bands[k] = water.to_reflectance(src.read(1), scale=1e-4, offset=-0.1)
    with rasterio.open(d / "SCL.tif") as src:
        scl = src.read(1, out_shape=bands["green"].shape, resampling=Resampling.nearest)
    return bands, scl


@pytest.mark.parametrize("date", ["20170703", "20190723"])
def test_multi_beats_the_default_threshold_on_the_labelled_reservoir(date):
    bands, scl = _barbellino(date)
    label = np.load(ROOT / "tests" / "data" / "accuracy" / f"barbellino_{date}_labels.npz")["label"]
    truth, known = label == 1, label != 255

    def iou(water_, maybe):
        lab, _ = ndi.label(maybe)
        kept = np.isin(lab, np.unique(lab[water_ & (lab > 0)]))
        tp = (kept & truth).sum()
        return tp / ((kept & known) | truth).sum()

    w, m, _, _ = classify.classify_bands(bands, scl=scl, method="multi")
    t, _, _, _ = classify.classify_bands(bands, scl=scl, method="threshold", threshold=0.2)
    assert iou(w, m) >= 0.98
    assert iou(w, m) >= iou(t, t)


def _counts_numpy(dn, *, offset, scl, masked, inside, method, index, threshold=0.2):
    refl = {k: water.to_reflectance(v, scale=1e-4, offset=offset) for k, v in dn.items()}
    w, m, o, s = classify.classify_bands(refl, scl=scl, masked=masked, method=method, threshold=threshold, index=index)
    if inside is not None:
        o, s = o & inside, s & inside
        w, m = w & o, m & o
    return [a.astype(np.uint16) for a in (w, m, o, s)]


@pytest.mark.parametrize("method,index", [("threshold", "ndwi"), ("threshold", "mndwi"), ("multi", "ndwi")])
@pytest.mark.parametrize("with_masks", [True, False])
def test_fused_counts_equal_reflectance_then_classify(method, index, with_masks):
    rng = np.random.default_rng(17)
    shape = (97, 1300)  # several kernel calls of whole rows, a partial last one
    dn = {}
    for k in ("green", "nir", "swir16"):
        v = rng.integers(0, 3500, shape).astype(np.uint16)
        v[rng.random(shape) < 0.02] = 0
        v[rng.random(shape) < 0.02] = 65535
        v[rng.random(shape) < 0.05] = 1000
        dn[k] = v
    dn["green"][:3] = dn["swir16"][:3]  # zero denominators of the snow test
    scl = rng.integers(0, 256, shape).astype(np.uint8) if with_masks else None
    masked = rng.random(shape) < 0.1 if with_masks else None
    inside = rng.random(shape) < 0.9 if with_masks else None
    for offset in (0.0, -0.1):
        want = _counts_numpy(dn, offset=offset, scl=scl, masked=masked, inside=inside, method=method, index=index)
        got = [np.full(shape, 7, np.uint16) for _ in range(4)]  # counts add to what is there
        classify.count_observations(dn, scale=1e-4, offset=offset, scl=scl, masked=masked, inside=inside,
                                    method=method, index=index, threshold=0.2, water_count=got[0],
                                    maybe_count=got[1], valid_count=got[2], snow_count=got[3])
        for name, a, b in zip(("water", "maybe", "observed", "snow"), got, want):
            assert np.array_equal(a - 7, b), (name, offset)
        assert want[0].any() and want[2].any() and want[3].any()  # the cases are exercised


def test_fused_counts_on_real_pixels_match_the_numpy_path():
    d = next((ROOT / "sample_data" / "sentinel-2-c1-l2a").glob("S2A_T32TNS_20190723T*_L2A"))
    dn = {}
    for k, f in [("green", "B03"), ("nir", "B08"), ("swir16", "B11")]:
        with rasterio.open(d / f"{f}.tif") as src:
            dn[k] = src.read(1, out_shape=(42, 24), resampling=Resampling.nearest)
    with rasterio.open(d / "SCL.tif") as src:
        scl = src.read(1, out_shape=(42, 24), resampling=Resampling.nearest)
    for method in classify.METHODS:
        got = [np.zeros((42, 24), np.uint16) for _ in range(4)]
        classify.count_observations(dn, scale=1e-4, offset=-0.1, scl=scl, method=method, water_count=got[0],
                                    maybe_count=got[1], valid_count=got[2], snow_count=got[3])
        want = _counts_numpy(dn, offset=-0.1, scl=scl, masked=None, inside=None, method=method, index="ndwi")
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
        assert got[0].sum() > 150  # the reservoir


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("fraction", [0.5, 0.34, 1.0, 2 / 3, 0.7, 0.1])
def test_season_classes_equal_the_numpy_composite(dtype, fraction):
    """The compiled season pass gives water.composite_classes, 255 outside, and the right tallies."""
    from gli_toolbox.classify import season_classes
    from gli_toolbox.water import composite_classes

    rng = np.random.default_rng(7)
    valid = rng.integers(0, 61, (97, 131)).astype(dtype)  # counts where f * v lands on and near integers
    maybe = (rng.random(valid.shape) * (valid + 1)).astype(dtype)
    water = np.minimum(maybe, (rng.random(valid.shape) * (valid + 1)).astype(dtype))
    inside = rng.random(valid.shape) > 0.2
    got, tallies = season_classes(water, maybe, valid, inside=inside, min_water_fraction=fraction)
    want = composite_classes(water, maybe, valid, min_water_fraction=fraction)
    want[~inside] = 255
    np.testing.assert_array_equal(got, want)
    assert set(np.unique(got)) == {0, 1, 2, 255}
    assert tallies == {"inside_px": int(inside.sum()), "water_px": int((want == 1).sum()),
                       "never_observed_px": int(((valid == 0) & inside).sum())}


def test_count_observations_returns_the_observed_pixels():
    from gli_toolbox.classify import count_observations

    rng = np.random.default_rng(3)
    dn = {b: rng.integers(0, 3000, (40, 50)).astype(np.uint16) for b in ("green", "nir", "swir16")}
    scl = rng.choice(np.array([0, 4, 6, 8, 9, 11], np.uint8), (40, 50))
    counts = [np.zeros((40, 50), np.uint8) for _ in range(4)]
    n = count_observations(dn, scale=1e-4, offset=0.0, scl=scl, method="multi", water_count=counts[0],
                           maybe_count=counts[1], valid_count=counts[2], snow_count=counts[3])
    assert n == int(counts[2].sum()) > 0
