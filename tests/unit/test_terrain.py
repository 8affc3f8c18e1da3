"""Slope, cast shadows and per-lake terrain on synthetic DEMs with analytic answers.

Real DEMs and the gdaldem comparison are in tests/integration/test_context_realdata.py.
"""

import math

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from gli_toolbox.terrain import (
    STEEP_SLOPE_DEG,
    cast_shadow,
    lake_terrain,
    shadow_reach_m,
    slope_deg,
    steep_objects,
)

PX = 10.0
T = Affine(PX, 0, 400000, 0, -PX, 4700000)  # 10 m UTM, north-up


def plane(shape, *, east_slope, north_slope):
    """Elevation of a plane rising ``east_slope`` m/m eastwards and ``north_slope`` m/m northwards."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    x = cols * PX
    y = -rows * PX  # rows go south
    return 1000.0 + east_slope * x + north_slope * y


def ray_march_shadow(z, *, az_deg, el_deg, px=PX, step_frac=0.125):
    """Independent reference: march each pixel's ray towards the sun in small steps, sampling the
    DEM bilinearly (scipy map_coordinates), and flag it when terrain rises above the ray."""
    n, m = z.shape
    a = math.radians(az_deg)
    drow, dcol = -math.cos(a) / px, math.sin(a) / px
    tan_e = math.tan(math.radians(el_deg))
    s = np.arange(step_frac * px, math.hypot(n, m) * px, step_frac * px)
    out = np.zeros(z.shape, dtype=bool)
    for i in range(n):
        for j in range(m):
            rr, cc = i + drow * s, j + dcol * s
            ok = (rr >= 0) & (rr <= n - 1) & (cc >= 0) & (cc <= m - 1)
            if ok.any():
                zz = ndimage.map_coordinates(z, [rr[ok], cc[ok]], order=1)
                out[i, j] = bool(np.any(zz > z[i, j] + s[ok] * tan_e))
    return out


@pytest.fixture(scope="module")
def hills():
    """60x60 DEM of eight Gaussian hills (50-400 m) on a plain, 10 m pixels."""
    rng = np.random.default_rng(42)
    rows, cols = np.mgrid[0:60, 0:60]
    z = np.full((60, 60), 3000.0)
    for _ in range(8):
        cy, cx = rng.uniform(0, 60, 2)
        r, h = rng.uniform(3, 10), rng.uniform(50, 400)
        z += h * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * r * r))
    return z


# ---------------------------------------------------------------- slope


@pytest.mark.parametrize(("east", "north"), [(0.0, 0.0), (1.0, 0.0), (0.3, -0.4), (-2.0, 1.5)])
def test_slope_of_a_plane_is_atan_of_its_gradient(east, north):
    z = plane((7, 9), east_slope=east, north_slope=north)
    s = slope_deg(z, transform=T)
    expected = math.degrees(math.atan(math.hypot(east, north)))
    assert s.dtype == np.float32
    np.testing.assert_allclose(s[1:-1, 1:-1], expected, atol=1e-4)
    # edges: NaN by default, like gdaldem without -compute_edges
    assert np.isnan(s[0]).all() and np.isnan(s[-1]).all()
    assert np.isnan(s[:, 0]).all() and np.isnan(s[:, -1]).all()


def test_slope_of_a_cone_flank():
    """A cone of height 500 m and radius 1000 m: 26.565 degrees on its flank (away from the apex,
    where the 3x3 window straddles the tip, and from the rim)."""
    rows, cols = np.mgrid[0:241, 0:241]
    r = np.hypot(rows - 120, cols - 120) * PX
    z = np.clip(500.0 * (1 - r / 1000.0), 0, None)
    s = slope_deg(z, transform=T)
    flank = (r > 100) & (r < 900)
    np.testing.assert_allclose(s[flank], math.degrees(math.atan(0.5)), atol=0.3)
    assert np.nanmax(s[r > 1020]) == 0.0


def test_slope_uses_pixel_sizes_of_non_square_pixels():
    z = np.tile(np.arange(5.0) * 20.0, (5, 1))  # +20 m per column
    s = slope_deg(z, transform=Affine(20, 0, 0, 0, -10, 0))
    assert s[2, 2] == pytest.approx(45.0)
    s_wide = slope_deg(z, transform=Affine(40, 0, 0, 0, -10, 0))
    assert s_wide[2, 2] == pytest.approx(math.degrees(math.atan(0.5)), abs=1e-5)


def test_slope_nan_spreads_to_the_3x3_neighbourhood():
    z = plane((9, 9), east_slope=0.5, north_slope=0.0)
    z[4, 4] = np.nan
    s = slope_deg(z, transform=T)
    assert np.isnan(s[3:6, 3:6]).all()
    assert np.isfinite(s[1:-1, 1:-1]).sum() == 7 * 7 - 9


def test_slope_replicated_edges_are_finite_one_sided_estimates():
    z = plane((6, 6), east_slope=1.0, north_slope=0.0)
    s = slope_deg(z, transform=T, edges="replicate")
    assert np.isfinite(s).all()
    np.testing.assert_allclose(s[1:-1, 1:-1], 45.0, atol=1e-4)
    # on the west edge the padded column repeats itself: half the gradient
    assert s[2, 0] == pytest.approx(math.degrees(math.atan(0.5)), abs=1e-4)


def test_slope_refuses_degree_and_rotated_grids():
    z = np.zeros((3, 3))
    with pytest.raises(ValueError, match="degrees; reproject"):
        slope_deg(z, transform=Affine(0.00083333, 0, 10.6, 0, -0.00083333, 46.9))
    with pytest.raises(ValueError, match="rotated"):
        slope_deg(z, transform=Affine(10, 1, 0, 1, -10, 0))
    with pytest.raises(ValueError, match="edges"):
        slope_deg(z, transform=T, edges="wrap")  # type: ignore[arg-type]


# ---------------------------------------------------------------- cast shadow


@pytest.mark.parametrize(
    ("az", "wall"),
    [(90, "east"), (270, "west"), (0, "north"), (180, "south")],
)
def test_step_casts_a_shadow_of_length_h_over_tan_elevation(az, wall):
    """A 100 m step at one edge, sun behind it at 30 degrees: the shadow reaches
    100 / tan(30) = 173.2 m, i.e. the 17 pixel centres 10..170 m from the step."""
    n = 40
    z = np.zeros((n, n))
    sl = {"east": (slice(None), -1), "west": (slice(None), 0), "north": (0, slice(None)), "south": (-1, slice(None))}
    z[sl[wall]] = 100.0
    shadow = cast_shadow(z, transform=T, sun_azimuth_deg=az, sun_elevation_deg=30)
    length_px = 100.0 / math.tan(math.radians(30)) / PX
    expected_count = math.floor(length_px)  # 17
    lines = shadow if wall in ("east", "west") else shadow.T
    counts = lines.sum(axis=1)
    assert (counts == expected_count).all()
    assert not shadow[sl[wall]].any()  # the step itself is lit


def test_diagonal_wall_shadow_matches_the_analytic_band():
    """A 60 m wall along the NW-SE diagonal, sun from the NE at 20 degrees: pixels whose
    perpendicular distance from the wall is below 60 / tan(20) = 164.8 m are shaded (boundary
    pixels within one pixel diagonal may go either way after interpolation)."""
    n = 60
    rows, cols = np.mgrid[0:n, 0:n]
    # signed distance (m) towards the NE from the line through the centre pixel (x east, y north)
    u = ((cols - 30) * PX + (30 - rows) * PX) / math.sqrt(2)
    z = np.where(u >= 0, 60.0, 0.0)
    shadow = cast_shadow(z, transform=T, sun_azimuth_deg=45, sun_elevation_deg=20)
    reach = 60 / math.tan(math.radians(20))
    expected = (u < 0) & (-u < reach)
    ambiguous = np.abs(-u - reach) < PX * math.sqrt(2)
    assert (shadow == expected)[~ambiguous].all()
    assert not shadow[u >= 0].any()


def test_cone_tip_shadow_length():
    """A 300 m cone of 400 m radius with the sun from the south at 25 degrees: the tip's shadow ends
    300 / tan(25) = 643 m north of the apex."""
    rows, cols = np.mgrid[0:181, 0:101]
    r = np.hypot(rows - 140, cols - 50) * PX
    z = np.clip(300.0 * (1 - r / 400.0), 0, None)
    shadow = cast_shadow(z, transform=T, sun_azimuth_deg=180, sun_elevation_deg=25)
    north_line = shadow[:140, 50]  # pixels due north of the apex
    tip_m = (140 - np.flatnonzero(north_line).min()) * PX
    assert tip_m == pytest.approx(300 / math.tan(math.radians(25)), abs=PX)
    assert not shadow[141:, :].any()  # nothing south of the apex faces away from a southern sun


def test_tilted_plane_is_shaded_only_when_steeper_than_the_sun():
    z = plane((30, 30), east_slope=-math.tan(math.radians(30)), north_slope=0.0)  # faces east, 30 deg
    assert not cast_shadow(z, transform=T, sun_azimuth_deg=90, sun_elevation_deg=5).any()  # faces the sun
    west_sun = cast_shadow(z, transform=T, sun_azimuth_deg=270, sun_elevation_deg=20)
    assert west_sun[:, 1:].all() and not west_sun[:, 0].any()  # nothing lies west of the edge
    assert not cast_shadow(z, transform=T, sun_azimuth_deg=270, sun_elevation_deg=40).any()


def test_flat_dem_has_no_shadow():
    z = np.full((50, 70), 4200.0)
    for az in (0, 33, 90, 181, 300):
        assert not cast_shadow(z, transform=T, sun_azimuth_deg=az, sun_elevation_deg=5).any()


@pytest.mark.parametrize(("az", "el"), [(90, 20), (135, 15), (200, 30), (333, 10)])
def test_shadow_agrees_with_an_independent_ray_march(hills, az, el):
    ours = cast_shadow(hills, transform=T, sun_azimuth_deg=az, sun_elevation_deg=el)
    ref = ray_march_shadow(hills, az_deg=az, el_deg=el)
    assert ref.sum() > 1000  # the case has real shadows
    assert (ours == ref).mean() > 0.98
    # the few disagreements sit on the reference's shadow edges (one pixel either way)
    edge = ndimage.binary_dilation(ref, np.ones((3, 3))) & ndimage.binary_dilation(~ref, np.ones((3, 3)))
    assert ((ours != ref) & ~edge).sum() <= 0.005 * ref.size


def test_south_up_grid_gives_the_mirrored_answer(hills):
    north_up = cast_shadow(hills, transform=T, sun_azimuth_deg=120, sun_elevation_deg=15)
    south_up_t = Affine(PX, 0, 400000, 0, PX, 4700000 - 60 * PX)
    south_up = cast_shadow(hills[::-1], transform=south_up_t, sun_azimuth_deg=120, sun_elevation_deg=15)
    assert north_up.any()
    np.testing.assert_array_equal(south_up[::-1], north_up)


def test_shadow_is_nan_safe_and_crosses_no_data_gaps():
    z = np.zeros((5, 30))
    z[:, -1] = 145.0  # step on the east edge, sun from the east at 45 degrees: 145 m reach
    z[:, 20:25] = np.nan  # a no-data gap between the step and part of the shaded ground
    shadow = cast_shadow(z, transform=T, sun_azimuth_deg=90, sun_elevation_deg=45)
    assert not shadow[:, 20:25].any()  # no data is never "in shadow"
    # pixel centres 10..140 m from the step (columns 15..28) are shaded, also beyond the gap
    expected = np.isin(np.arange(30), [15, 16, 17, 18, 19, 25, 26, 27, 28])
    assert (shadow == expected).all()


def test_sun_below_horizon_and_at_zenith():
    z = np.array([[1.0, np.nan], [3.0, 4.0]])
    np.testing.assert_array_equal(
        cast_shadow(z, transform=T, sun_azimuth_deg=0, sun_elevation_deg=-2), np.isfinite(z)
    )
    assert not cast_shadow(z, transform=T, sun_azimuth_deg=0, sun_elevation_deg=90).any()


def test_shadow_reach():
    assert shadow_reach_m(1000.0, sun_elevation_deg=30) == pytest.approx(1000 / math.tan(math.radians(30)))
    assert shadow_reach_m(-5.0, sun_elevation_deg=30) == 0.0
    with pytest.raises(ValueError, match="sun elevation"):
        shadow_reach_m(100.0, sun_elevation_deg=0)


# ---------------------------------------------------------------- per-lake terrain


def test_lake_terrain_medians_match_scipy_and_ignore_nan():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, size=(40, 40))
    dem = rng.normal(4000, 300, size=(40, 40))
    slope = rng.uniform(0, 45, size=(40, 40))
    elev, slp = lake_terrain(labels, dem, slope)
    np.testing.assert_allclose(elev, ndimage.median(dem, labels, index=np.arange(1, 6)))
    np.testing.assert_allclose(slp, ndimage.median(slope, labels, index=np.arange(1, 6)))
    # NaN pixels are ignored, a lake without valid pixels gets NaN
    dem[labels == 2] = np.nan
    slope[(labels == 3) & (np.arange(40)[None, :] < 20)] = np.nan
    elev, slp = lake_terrain(labels, dem, slope, index=[3, 2, 9])
    assert np.isnan(elev[1]) and np.isnan(slp[2]) and np.isnan(elev[2])
    expected = np.nanmedian(np.where(labels == 3, slope, np.nan))
    assert slp[0] == pytest.approx(expected)


def test_lake_terrain_needs_one_grid():
    with pytest.raises(ValueError, match="resample the DEM"):
        lake_terrain(np.zeros((3, 3), int), np.zeros((3, 4)), np.zeros((3, 3)))


def test_steep_objects_flags_median_slope_above_threshold():
    labels = np.array([[1, 1, 1, 2, 2], [3, 3, 0, 2, 2], [4, 0, 0, 0, 0]])
    slope = np.array([[5.0, 50.0, 6.0, 30.0, 31.0], [np.nan, np.nan, 0, 2.0, 40.0], [10.0, 0, 0, 0, 0]])
    flags = steep_objects(labels, slope, max_slope_deg=10.0)
    # 1: median 6 (one steep pixel does not condemn a lake); 2: median 30.5; 3: unknown -> kept;
    # 4: exactly at the threshold -> kept
    assert flags.tolist() == [False, True, False, False]
    assert steep_objects(labels, slope).tolist() == steep_objects(labels, slope, max_slope_deg=STEEP_SLOPE_DEG).tolist()
    assert steep_objects(labels, slope, max_slope_deg=5.0, index=[4, 1]).tolist() == [True, True]
