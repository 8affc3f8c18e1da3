"""Lake extraction on small rasters with known answers."""

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gli_toolbox import lakes
from gli_toolbox.lakes import LAKE_FIELDS, LakeParams, extract_lakes

T = Affine(10, 0, 400000, 0, -10, 4700000)  # 10 m UTM 43N, Tien Shan
CRS = "EPSG:32643"


@pytest.fixture
def basic_image():
    """10x10 raster with a 3x3 block of water in the middle (rasterio's classic fixture)."""
    img = np.zeros((10, 10), dtype=np.uint8)
    img[2:5, 2:5] = 1
    return img


def test_block_area_perimeter_and_error(basic_image):
    gdf = extract_lakes(basic_image, transform=T, crs=CRS, params=LakeParams(min_area_m2=100))
    assert len(gdf) == 1
    row = gdf.iloc[0]
    assert row.area_km2 == pytest.approx(9 * 100 / 1e6)
    assert row.perim_km == pytest.approx(0.12)
    assert row.area_err == pytest.approx(12 * 50 * 0.6872 / 1e6)  # (P/G)*(G^2/2)*0.6872
    assert row.geometry.area == pytest.approx(900)
    assert row.edge == 0
    assert gdf.crs.to_epsg() == 32643
    # representative point lies inside the polygon and lon/lat come from it
    assert row.lake_id == lakes.glims_id(row.lon, row.lat)
    assert row.lake_id.startswith("GL07") and row.lake_id.endswith("N")


def test_minimum_mapping_unit_removes_small_objects(basic_image):
    img = basic_image.copy()
    img[8, 8] = 1
    assert len(extract_lakes(img, transform=T, crs=CRS, params=LakeParams(min_area_m2=200))) == 1
    assert len(extract_lakes(img, transform=T, crs=CRS, params=LakeParams(min_area_m2=100))) == 2
    assert len(extract_lakes(img, transform=T, crs=CRS, params=LakeParams(min_area_m2=1000))) == 0


def test_holes_are_filled_up_to_size():
    img = np.zeros((9, 9), dtype=np.uint8)
    img[1:8, 1:8] = 1
    img[4, 4] = 0  # one-pixel island
    filled = extract_lakes(img, transform=T, crs=CRS, params=LakeParams(min_area_m2=100, max_hole_m2=100))
    kept = extract_lakes(img, transform=T, crs=CRS, params=LakeParams(min_area_m2=100, max_hole_m2=0))
    assert filled.iloc[0].area_km2 == pytest.approx(49e-4)
    assert kept.iloc[0].area_km2 == pytest.approx(48e-4)
    assert len(kept.iloc[0].geometry.interiors) == 1
    assert kept.iloc[0].geometry.area == pytest.approx(4800)


def test_edge_flags_border_unobserved_and_aoi(basic_image):
    img = basic_image.copy()
    img[0:2, 7:9] = 1  # touches the top border
    gdf = extract_lakes(img, transform=T, crs=CRS, params=LakeParams(min_area_m2=100))
    assert sorted(gdf.edge.tolist()) == [0, 1]
    img2 = basic_image.copy()
    img2[5, 3] = 255  # unobserved pixel next to the lake
    assert extract_lakes(img2, transform=T, crs=CRS, params=LakeParams(min_area_m2=100)).iloc[0].edge == 1
    aoi = np.ones((10, 10), dtype=bool)
    aoi[:, 5:] = False  # AOI boundary right next to the block
    assert extract_lakes(basic_image, transform=T, crs=CRS, params=LakeParams(min_area_m2=100), aoi_mask=aoi).iloc[0].edge == 1


def test_n_obs_is_minimum_over_lake(basic_image):
    counts = np.full((10, 10), 7, dtype=np.uint16)
    counts[3, 3] = 2
    gdf = extract_lakes(basic_image, counts, transform=T, crs=CRS, params=LakeParams(min_area_m2=100))
    assert gdf.iloc[0].n_obs == 2


def test_empty_result_is_well_formed():
    gdf = extract_lakes(np.zeros((5, 5), dtype=np.uint8), transform=T, crs=CRS, params=LakeParams(min_area_m2=100),
                        attributes={"year": 2020, "n_scenes": 3})
    assert len(gdf) == 0
    assert gdf.crs.to_epsg() == 32643
    for f in LAKE_FIELDS:
        assert f in gdf.columns


def test_geographic_crs_is_refused(basic_image):
    with pytest.raises(ValueError, match="projected CRS"):
        extract_lakes(basic_image, transform=Affine(0.0001, 0, 70, 0, -0.0001, 40), crs="EPSG:4326", params=LakeParams(min_area_m2=1))


def test_glims_ids_are_unique_when_points_collide():
    from gli_toolbox.attributes import unique_ids

    assert unique_ids(["GL1", "GL1", "GL2", "GL1"]) == ["GL1", "GL1A", "GL2", "GL1B"]


def test_area_error_method():
    # 100 m x 100 m square at 10 m: P = 400 m -> 40 edge pixels * 50 m2 * 0.6872
    assert float(lakes.area_uncertainty_km2(400.0, pixel_m=10.0)) == pytest.approx(40 * 50 * 0.6872 / 1e6)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, (12, 12), elements=st.sampled_from([0, 1])))
def test_polygon_area_equals_pixel_count(mask):
    gdf = extract_lakes(mask, transform=T, crs=CRS, params=LakeParams(min_area_m2=100, max_hole_m2=0))
    # Independent: scipy labels of the same mask, 4-connected
    from scipy import ndimage

    _, n = ndimage.label(mask == 1)
    assert len(gdf) == n
    assert gdf.area.sum() == pytest.approx(100.0 * (mask == 1).sum())
    np.testing.assert_allclose(gdf.geometry.area.to_numpy() / 1e6, gdf.area_km2.to_numpy())
    assert gdf.lake_id.is_unique
    assert shapely.is_valid(gdf.geometry.values).all()
