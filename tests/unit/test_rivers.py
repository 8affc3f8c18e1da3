"""River flag (contract 5) on shapes with known geometry and on the real Havel river-lake chain."""

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio.features
from affine import Affine
from shapely import affinity
from shapely.geometry import LineString, Point, Polygon, box, shape

from gli_toolbox import rivers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("length,width", [(3000, 50), (8000, 200), (600, 60)])
def test_elongation_of_a_strip_is_length_over_width(length, width):
    got = rivers.elongation([box(0, 0, length, width)], pixel_size_m=10)[0]
    # the two ends shorten the mean distance to the shore by about w/(2l) relative: E ~ (l/w) * (1 + w/l)
    assert got == pytest.approx(length / width, rel=0.06 + width / length)


def test_elongation_of_a_disc_and_a_square_from_their_mean_shore_distance():
    # disc: mean distance to the circle r/3 -> W = 4r/3 -> E = 9*pi/16; square: a/6 -> W = 2a/3 -> E = 9/4
    disc, square = rivers.elongation([Point(0, 0).buffer(400, quad_segs=64), box(0, 0, 600, 600)], pixel_size_m=10)
    assert disc == pytest.approx(9 * math.pi / 16, rel=0.03)
    assert square == pytest.approx(9 / 4, rel=0.03)


def test_elongation_ignores_scale_rotation_and_islands():
    river = LineString([(0, 0), (2000, 900), (4000, -300), (7000, 500)]).buffer(60)
    base = rivers.elongation([river], pixel_size_m=10)[0]
    rotated = affinity.rotate(river, 37, origin="centroid")
    scaled = affinity.scale(river, 3, 3, origin="centroid")
    got = rivers.elongation([rotated, scaled], pixel_size_m=10)
    assert got == pytest.approx([base, base], rel=0.03)
    lake = Point(0, 0).buffer(500)
    with_islands = Polygon(lake.exterior, [Point(x, 0).buffer(60).exterior for x in (-250, 0, 250)])
    assert rivers.elongation([with_islands], pixel_size_m=10)[0] == pytest.approx(
        rivers.elongation([lake], pixel_size_m=10)[0], rel=1e-9)


def test_is_river_needs_both_elongation_and_length():
    meander = LineString([(x, 300 * math.sin(x / 400)) for x in range(0, 6001, 50)]).buffer(40)  # 80 m wide, > 6 km
    long_lake = box(0, 0, 3000, 500)  # E 6
    pit = box(0, 0, 1500, 100)  # E 15 but 1.5 km long
    empty = Polygon()
    got = rivers.is_river([meander, long_lake, pit, empty], pixel_size_m=10)
    assert got.tolist() == [True, False, False, False]
    assert rivers.is_river([pit], pixel_size_m=10, min_length_m=1000).tolist() == [True]


def test_huge_polygons_are_measured_on_a_bounded_grid():
    # a 300 m wide river crossing a 100 km box diagonally: the window is capped, the verdict holds
    river = LineString([(0, 0), (100_000, 100_000)]).buffer(150)
    assert rivers.is_river([river], pixel_size_m=10).tolist() == [True]


def test_havel_river_sections_are_rivers_and_its_lakes_are_not():
    z = np.load(ROOT / "tests" / "data" / "accuracy" / "havel_20170216_labels.npz")
    water = z["label"] == 1
    transform = Affine(*z["transform"])
    geoms = [shape(g) for g, _ in rasterio.features.shapes(water.astype(np.uint8), mask=water, transform=transform,
                                                           connectivity=4)]
    lakes = gpd.GeoSeries([g for g in geoms if g.area >= 5400], crs="EPSG:32633")
    flag = rivers.is_river(lakes, pixel_size_m=10)
    big = lakes.area.sort_values(ascending=False).index[:3]
    centre = lakes.loc[big].centroid
    # the three largest water objects: two river sections of the Havel and the lake between them
    by_x = sorted(zip(centre.x, big))
    assert [bool(flag[i]) for _, i in by_x] == [True, True, False]
    assert flag.sum() == 2


@pytest.mark.parametrize("seed", range(6))
def test_distance_transform_equals_scipy_bit_for_bit(seed):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    mask = ndimage.binary_dilation(rng.random((rng.integers(3, 90), rng.integers(3, 90))) < 0.1 * (seed + 1),
                                   iterations=seed % 3 + 1)
    mask[0] = False  # at least one outside cell
    got = np.sqrt(rivers._squared_edt(mask).astype(np.float64))
    assert np.array_equal(got[mask], ndimage.distance_transform_edt(mask)[mask])
