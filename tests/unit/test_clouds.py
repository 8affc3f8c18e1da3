"""Cloud probability, cloud mask and cloud-shadow projection against known geometry and against
s2cloudless itself (an independent implementation: OpenCV filters, LightGBM called directly)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from gli_toolbox import clouds

# TOA reflectance spectra in S2CLOUDLESS_BANDS order: clear vegetation and a bright cloud.
CLEAR = [0.12, 0.09, 0.05, 0.09, 0.30, 0.32, 0.10, 0.002, 0.18, 0.09]
CLOUDY = [0.50, 0.48, 0.47, 0.48, 0.52, 0.52, 0.30, 0.05, 0.40, 0.30]


def _square(shape: tuple[int, int], r0: int, c0: int, size: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


# ----------------------------------------------------------------------------------------------
# shadow geometry
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["object", "union"])
def test_square_cloud_shadow_sun_southeast_45deg(method: str) -> None:
    # Sun at azimuth 135 (south-east), 45 deg up: a cloud at height h casts its shadow h metres
    # away towards the north-west, i.e. h / sqrt(2) north and h / sqrt(2) west. With h = 100 sqrt(2) m
    # and 10 m pixels that is exactly 10 rows up and 10 columns left.
    cloud = _square((40, 40), 20, 20, 5)
    expected = _square((40, 40), 10, 10, 5)
    lake = _square((40, 40), 30, 2, 6)  # dark, but not where the shadow falls
    got = clouds.cloud_shadow(
        cloud, dark=expected | lake, sun_azimuth_deg=135, sun_elevation_deg=45, pixel_m=10,
        cloud_heights_m=(100 * math.sqrt(2), 100 * math.sqrt(2)), method=method,
    )
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "azimuth,elevation,height,pixel,expected",
    [
        (180, 45, 100, 10, (-10, 0)),  # sun due south: shadow due north (up)
        (0, 45, 100, 10, (10, 0)),  # sun due north (southern hemisphere): shadow south (down)
        (90, 45, 100, 10, (0, -10)),  # sun east: shadow west (left)
        (270, 45, 100, 10, (0, 10)),  # sun west: shadow east (right)
        (180, 30, 100, 10, (-17, 0)),  # 100 / tan(30 deg) = 173.2 m -> 17 px
        (135, 60, 3000, 20, (-61, -61)),  # 3000 / tan 60 = 1732 m; /sqrt 2 /20 = 61.2 px
    ],
)
def test_shadow_offsets_known_answers(azimuth, elevation, height, pixel, expected) -> None:
    offs = clouds.shadow_offsets_px(
        sun_azimuth_deg=azimuth, sun_elevation_deg=elevation, pixel_m=pixel, cloud_heights_m=(height, height)
    )
    assert offs.tolist() == [list(expected)]


@settings(max_examples=60, deadline=None)
@given(
    az=st.floats(0, 360, exclude_max=True),
    el=st.floats(5, 89),
    lo=st.floats(0, 3000),
    extra=st.floats(0, 9000),
)
def test_offsets_follow_the_anti_solar_direction_one_pixel_apart(az, el, lo, extra) -> None:
    offs = clouds.shadow_offsets_px(sun_azimuth_deg=az, sun_elevation_deg=el, pixel_m=30, cloud_heights_m=(lo, lo + extra))
    # consecutive offsets are neighbours (no gaps in the swept shadow) and never repeat
    steps = np.abs(np.diff(offs, axis=0))
    if len(offs) > 1:
        assert (steps.max(axis=1) == 1).all()
    else:  # lowest and highest cloud fall on one pixel: their projections are less than a pixel apart per axis
        d = extra / math.tan(math.radians(el)) / 30
        assert d * max(abs(math.sin(math.radians(az))), abs(math.cos(math.radians(az)))) < 1.0 + 1e-9
    # first and last offsets are the projections of the lowest and highest cloud (x east, y north)
    for (drow, dcol), h in ((offs[0], lo), (offs[-1], lo + extra)):
        d = h / math.tan(math.radians(el)) / 30
        east, north = -d * math.sin(math.radians(az)), -d * math.cos(math.radians(az))
        assert abs(dcol - east) <= 0.5 + 1e-9 and abs(-drow - north) <= 0.5 + 1e-9


def test_offsets_stop_at_max_px_for_a_grazing_sun() -> None:
    # 12 km clouds at 1 deg elevation: 687 km; on a 100 x 100 px array 142 px are enough
    offs = clouds.shadow_offsets_px(sun_azimuth_deg=180, sun_elevation_deg=1, pixel_m=10, cloud_heights_m=(0, 12000),
                                    max_px=math.hypot(100, 100))
    assert offs[-1].tolist() == [-141, 0] and len(offs) < 150
    cloud = _square((100, 100), 90, 40, 5)
    shadow = clouds.cloud_shadow(cloud, dark=np.ones((100, 100), bool), sun_azimuth_deg=180, sun_elevation_deg=1,
                                 pixel_m=10, cloud_heights_m=(0, 12000), method="union")
    assert shadow[:90, 40:45].all() and shadow.sum() == 90 * 5


def _brute_union(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mask)
    for r, c in zip(*np.nonzero(mask)):
        for dr, dc in offsets:
            if 0 <= r + dr < mask.shape[0] and 0 <= c + dc < mask.shape[1]:
                out[r + dr, c + dc] = True
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    az=st.floats(0, 360, exclude_max=True),
    el=st.floats(10, 80),
    hi=st.floats(0, 400),
)
def test_union_sweep_equals_brute_force(seed, az, el, hi) -> None:
    rng = np.random.default_rng(seed)
    cloud = ndimage.binary_opening(rng.random((23, 31)) < 0.5) | (rng.random((23, 31)) < 0.05)
    offs = clouds.shadow_offsets_px(sun_azimuth_deg=az, sun_elevation_deg=el, pixel_m=10, cloud_heights_m=(0, hi),
                                    max_px=math.hypot(23, 31))
    dark = np.ones_like(cloud)
    got = clouds.cloud_shadow(cloud, dark=dark, sun_azimuth_deg=az, sun_elevation_deg=el, pixel_m=10,
                              cloud_heights_m=(0, hi), method="union")
    np.testing.assert_array_equal(got, _brute_union(cloud, offs) & ~cloud)


def test_object_match_finds_the_true_height_in_the_fmask_range() -> None:
    # An L-shaped cloud whose real shadow (height 2000 m, sun az 160 deg, elevation 35 deg, 20 m px)
    # lies on bright ground; dark noise elsewhere. Searching 0.2-12 km must land on 2000 m.
    shape = (240, 220)
    cloud = np.zeros(shape, bool)
    cloud[200:220, 120:160] = True
    cloud[180:220, 120:135] = True
    (dr, dc), = clouds.shadow_offsets_px(sun_azimuth_deg=160, sun_elevation_deg=35, pixel_m=20, cloud_heights_m=(2000, 2000))
    true_shadow = np.zeros(shape, bool)
    rr, cc = np.nonzero(cloud)
    assert (rr + dr).min() >= 0 and (cc + dc).min() >= 0  # the shadow lies inside the array
    true_shadow[rr + dr, cc + dc] = True
    true_shadow &= ~cloud
    noise = np.random.default_rng(7).random(shape) < 0.05
    got = clouds.cloud_shadow(cloud, dark=true_shadow | noise, sun_azimuth_deg=160, sun_elevation_deg=35, pixel_m=20)
    assert (got & true_shadow).sum() == true_shadow.sum()  # all of the shadow
    assert (got & ~true_shadow).sum() <= 0.06 * true_shadow.sum()  # and only noise inside its outline


def test_object_match_takes_at_most_one_cloud_shape_from_a_lake_the_union_sweeps_it() -> None:
    # A small cloud over land south of a big dark lake, no real shadow (thin cloud). Inside the lake
    # the projected shape is no darker than its ring, so it does not match there; at the lake shore
    # it can (ring half on land): at most one cloud-sized bite. The union sweeps a stripe across.
    shape = (120, 120)
    cloud = _square(shape, 90, 60, 4)
    lake = np.zeros(shape, bool)
    lake[5:60, 10:110] = True
    kw = {"dark": lake, "sun_azimuth_deg": 180, "sun_elevation_deg": 40, "pixel_m": 10, "cloud_heights_m": (200, 12000)}
    assert clouds.cloud_shadow(cloud, method="object", **kw).sum() <= cloud.sum()
    assert clouds.cloud_shadow(cloud, method="union", **kw).sum() == 4 * 55  # 4 px wide, all 55 lake rows


def test_shadow_is_never_cloud_and_needs_dark() -> None:
    cloud = _square((30, 30), 10, 10, 6)
    shadow = clouds.cloud_shadow(cloud, dark=np.zeros((30, 30), bool), sun_azimuth_deg=180, sun_elevation_deg=45,
                                 pixel_m=10, method="union")
    assert not shadow.any()
    shadow = clouds.cloud_shadow(cloud, dark=np.ones((30, 30), bool), sun_azimuth_deg=180, sun_elevation_deg=45,
                                 pixel_m=10, cloud_heights_m=(0, 50), method="union")
    assert shadow.any() and not (shadow & cloud).any()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sun_elevation_deg": 0}, "sun_elevation_deg"),
        ({"sun_elevation_deg": -5}, "view:sun_elevation"),
        ({"pixel_m": 0}, "pixel_m"),
        ({"cloud_heights_m": (5000, 200)}, "lowest <= highest"),
        ({"method": "fmask"}, "'object' or 'union'"),
    ],
)
def test_shadow_bad_parameters_say_what_is_expected(kwargs, match) -> None:
    args = {"dark": np.ones((5, 5), bool), "sun_azimuth_deg": 180, "sun_elevation_deg": 45, "pixel_m": 10}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        clouds.cloud_shadow(np.ones((5, 5), bool), **args)


def test_shadow_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="one shape"):
        clouds.cloud_shadow(np.ones((5, 5), bool), dark=np.ones((5, 6), bool), sun_azimuth_deg=180,
                            sun_elevation_deg=45, pixel_m=10)


# ----------------------------------------------------------------------------------------------
# cloud mask and probability against s2cloudless itself
# ----------------------------------------------------------------------------------------------


def _smooth_field(shape: tuple[int, int], seed: int) -> np.ndarray:
    p = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 3)
    return ((p - p.min()) / (p.max() - p.min())).astype(np.float32)


@pytest.mark.parametrize("average,dilation,threshold", [(4, 2, 0.4), (1, 1, 0.4), (22, 11, 0.55), (2, 5, 0.6)])
def test_cloud_mask_equals_s2cloudless_get_mask_from_prob(average: int, dilation: int, threshold: float) -> None:
    from s2cloudless import S2PixelCloudDetector

    p = _smooth_field((120, 90), seed=average)
    det = S2PixelCloudDetector(threshold=threshold, average_over=average, dilation_size=dilation)
    expected = det.get_mask_from_prob(p[None])[0].astype(bool)
    got = clouds.cloud_mask(p, threshold=threshold, average_over_px=average, dilation_px=dilation)
    assert 0.1 < expected.mean() < 0.9
    np.testing.assert_array_equal(got, expected)


def test_cloud_mask_nan_is_not_cloud_and_not_averaged() -> None:
    p = np.full((9, 9), 0.9, dtype=np.float32)
    p[:, :4] = np.nan
    got = clouds.cloud_mask(p, average_over_px=2, dilation_px=0)
    assert not got[:, :4].any() and got[:, 4:].all()  # NaN left out: the mean stays 0.9


def test_cloud_mask_bad_threshold() -> None:
    with pytest.raises(ValueError, match="0..1"):
        clouds.cloud_mask(np.zeros((3, 3)), threshold=40)


def _toa(shape: tuple[int, int], cloudy: np.ndarray) -> dict[str, np.ndarray]:
    return {b: np.where(cloudy, c, v).astype(np.float32) for b, v, c in zip(clouds.S2CLOUDLESS_BANDS, CLEAR, CLOUDY)}


def test_cloud_probability_is_the_lightgbm_model_per_pixel() -> None:
    from s2cloudless import S2PixelCloudDetector

    rng = np.random.default_rng(11)
    toa = {b: rng.uniform(0.0, 0.6, (17, 13)).astype(np.float32) for b in clouds.S2CLOUDLESS_BANDS}
    toa["B03"] = np.zeros((17, 13), np.float32)  # extra bands are ignored
    stack = np.stack([toa[b] for b in clouds.S2CLOUDLESS_BANDS], axis=-1)[None]
    expected = S2PixelCloudDetector(all_bands=False).get_cloud_probability_maps(stack)[0]
    np.testing.assert_allclose(clouds.cloud_probability(toa), expected, rtol=0, atol=1e-6)


def test_cloud_probability_nan_where_any_band_missing() -> None:
    toa = _toa((4, 4), np.eye(4, dtype=bool))
    toa["B09"][0, 3] = np.nan
    p = clouds.cloud_probability(toa)
    assert np.isnan(p[0, 3]) and np.isfinite(p).sum() == 15
    assert (p[np.eye(4, dtype=bool)] > 0.9).all() and (p[np.isfinite(p) & ~np.eye(4, dtype=bool)] < 0.1).all()


def test_cloud_probability_blocks_use_the_block_mean() -> None:
    # a 6x6 block that is half cloud, half clear gets the probability of the mean spectrum
    cloudy = np.zeros((6, 12), bool)
    cloudy[:, :3] = True
    toa = _toa((6, 12), cloudy)
    got = clouds.cloud_probability(toa, block_px=6)
    mean_left = {b: np.full((1, 1), (v + c) / 2, np.float32) for b, v, c in zip(clouds.S2CLOUDLESS_BANDS, CLEAR, CLOUDY)}
    clear = {b: np.full((1, 1), v, np.float32) for b, v in zip(clouds.S2CLOUDLESS_BANDS, CLEAR)}
    np.testing.assert_allclose(got[:, :6], clouds.cloud_probability(mean_left)[0, 0], atol=1e-6)
    np.testing.assert_allclose(got[:, 6:], clouds.cloud_probability(clear)[0, 0], atol=1e-6)


def test_cloud_probability_missing_band_names_the_assets() -> None:
    toa = _toa((3, 3), np.zeros((3, 3), bool))
    del toa["B10"], toa["B01"]
    with pytest.raises(ValueError, match=r"missing B01, B10.*cirrus"):
        clouds.cloud_probability(toa)


def test_cloud_probability_bands_on_different_grids() -> None:
    toa = _toa((6, 6), np.zeros((6, 6), bool))
    toa["B09"] = toa["B09"][::6, ::6]
    with pytest.raises(ValueError, match="Resample the 20 m and 60 m bands"):
        clouds.cloud_probability(toa)


def test_clouds_and_shadows_end_to_end_on_synthetic_scene() -> None:
    # A 60 x 60 px (10 m) clear scene with a 12 x 12 px cloud 300 m up; its shadow (NIR 0.05)
    # falls 300 m / tan(45 deg) = 300 m = 30 px north of it with the sun due south.
    shape = (60, 60)
    cloud = _square(shape, 40, 24, 12)
    toa = _toa(shape, cloud)
    truth = _square(shape, 10, 24, 12) & ~cloud
    toa["B08"] = np.where(truth, np.float32(0.05), toa["B08"])
    c, s = clouds.clouds_and_shadows(toa, sun_azimuth_deg=180, sun_elevation_deg=45, pixel_m=10, prob_resolution_m=10)
    # s2cloudless' averaging and dilation grow the cloud by a pixel or two
    assert cloud.sum() <= c.sum() <= (ndimage.binary_dilation(cloud, iterations=3)).sum() and c[cloud].all()
    assert s.sum() > 0.5 * truth.sum() and not (s & ~truth).any()
