"""Chunked lake extraction: results independent of the chunk size, checked against whole-array scipy."""

import numpy as np
import pandas as pd
import pytest
import rasterio.features
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from gli_toolbox import stitch
from gli_toolbox.lakes import LakeParams, extract_lakes

T = Affine(10, 0, 400000, 0, -10, 4700000)  # 10 m UTM 43N, Tien Shan
CRS = "EPSG:32643"


def reference(cls, nobs, *, min_px, hole_px):
    """Whole-array computation with scipy, written independently of the chunked code."""
    cand, _ = ndimage.label((cls == 1) | (cls == 2))  # scipy's default structure is 4-connected
    seeds = np.unique(cand[cls == 1])
    water = np.isin(cand, seeds[seeds > 0])
    if hole_px > 0:
        bg, n = ndimage.label(~water, structure=np.ones((3, 3)))
        size = np.bincount(bg.ravel(), minlength=n + 1)
        border = np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))
        fill = np.flatnonzero(size <= hole_px)
        fill = fill[(fill > 0) & ~np.isin(fill, border)]
        water |= np.isin(bg, fill)
    lab, n = ndimage.label(water)
    lakes = []
    padded_bad = np.pad(cls == 255, 1, constant_values=True)  # beyond the raster border counts as edge
    for i in range(1, n + 1):
        m = lab == i
        if m.sum() < min_px:
            continue
        near = ndimage.binary_dilation(np.pad(m, 1), structure=ndimage.generate_binary_structure(2, 1))
        lakes.append({"mask": m, "n_obs": int(nobs[m].min()), "edge": int((near & padded_bad).any())})
    return lakes


def as_raster(gdf, shape):
    """Rasterize the lake polygons back (pixel-edge outlines: exactly the lake pixels)."""
    if len(gdf) == 0:
        return np.zeros(shape, np.int32)
    return rasterio.features.rasterize(((g, i + 1) for i, g in enumerate(gdf.geometry)), out_shape=shape,
                                       transform=T, dtype="int32")


def check_against_reference(gdf, cls, nobs, *, min_px, hole_px):
    ref = reference(cls, nobs, min_px=min_px, hole_px=hole_px)
    assert len(gdf) == len(ref)
    out = as_raster(gdf, cls.shape)
    assert (out > 0).sum() == sum(int(r["mask"].sum()) for r in ref)
    for r in ref:
        ids = np.unique(out[r["mask"]])
        assert len(ids) == 1 and ids[0] > 0  # one output lake covers exactly this reference lake
        row = gdf.iloc[ids[0] - 1]
        assert (out == ids[0]).sum() == r["mask"].sum()
        assert row.area_km2 == pytest.approx(r["mask"].sum() * 100 / 1e6)
        assert row.n_obs == r["n_obs"]
        assert row.edge == r["edge"]
    assert gdf.lake_id.is_unique
    assert shapely.is_valid(gdf.geometry.values).all()


classes = arrays(np.uint8, st.tuples(st.integers(1, 18), st.integers(1, 18)),
                 elements=st.sampled_from([0, 0, 1, 1, 1, 2, 2, 255]))


@settings(max_examples=150, deadline=None)
@given(cls=classes, chunk=st.integers(1, 9), min_px=st.integers(1, 4), hole_px=st.integers(0, 3), seed=st.integers(0, 99))
def test_chunked_equals_whole_array_reference(cls, chunk, min_px, hole_px, seed):
    nobs = np.random.default_rng(seed).integers(0, 9, cls.shape).astype(np.uint16)
    params = LakeParams(min_area_m2=min_px * 100, max_hole_m2=hole_px * 100)
    gdf = stitch.extract_grid_lakes(cls, nobs, transform=T, crs=CRS, params=params, chunk_px=chunk)
    check_against_reference(gdf, cls, nobs, min_px=min_px, hole_px=hole_px)
    whole = stitch.extract_grid_lakes(cls, nobs, transform=T, crs=CRS, params=params)
    assert_same_layer(gdf, whole)


def assert_same_layer(a, b):
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert a.geometry.geom_equals_exact(b.geometry, 0).all()  # same vertices in the same order


def test_hysteresis_keeps_possible_water_only_when_connected_to_water():
    cls = np.zeros((6, 8), np.uint8)
    cls[1:3, 1:4] = 2
    cls[2, 2] = 1  # seed: the 2s around it grow the lake
    cls[1:3, 5:7] = 2  # no seed: dropped
    cls[4, 1:4] = 2  # touches the first lake only diagonally: 4-connectivity keeps it apart
    cls[3, 0] = 1
    gdf = extract_lakes(cls, transform=T, crs=CRS, params=LakeParams(min_area_m2=100, max_hole_m2=0))
    assert sorted(gdf.area_km2.round(6).tolist()) == [0.0001, 0.0006]


def lake_field(shape=(60, 70)):
    """A ring-shaped lake with an island and an unobserved gap, plus small lakes, 255 patches."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    cls = np.zeros(shape, np.uint8)
    r = np.hypot(yy - 28, xx - 33)
    cls[r < 17] = 1
    cls[(r > 12) & (r < 14)] = 2
    cls[r < 4] = 0  # island (filled if small enough)
    cls[29, 20] = 255  # unobserved gap inside the lake
    cls[2:5, 2:6] = 1
    cls[50:58, 60:63] = 2
    cls[55, 61] = 1
    cls[0:3, 40:70] = 255
    return cls


@pytest.mark.parametrize("chunk", [7, 13, 29, 256, 1024, 2048])
@pytest.mark.parametrize("hole_m2", [0, 100, 6000])
def test_lake_cut_by_chunk_borders_is_the_same_lake(chunk, hole_m2):
    cls = lake_field()
    nobs = (np.arange(cls.size).reshape(cls.shape) % 7 + 1).astype(np.uint16)
    dem = np.linspace(3000, 3500, cls.size, dtype=np.float32).reshape(cls.shape)
    slope = (np.arange(cls.size).reshape(cls.shape) % 23).astype(np.float32)
    p = LakeParams(min_area_m2=300, max_hole_m2=hole_m2)
    one = stitch.extract_grid_lakes(cls, nobs, transform=T, crs=CRS, params=p, dem=dem, slope=slope,
                                    attributes={"year": 2021})
    cut = stitch.extract_grid_lakes(cls, nobs, transform=T, crs=CRS, params=p, dem=dem, slope=slope,
                                    attributes={"year": 2021}, chunk_px=chunk)
    assert len(one) == 3
    assert_same_layer(cut, one)
    big = one.loc[one.area_km2.idxmax()]
    assert len(big.geometry.interiors) == (0 if hole_m2 >= 6000 else 1 + (hole_m2 == 0))
    # terrain medians of the stitched lake over all its pixels, against numpy on the whole array
    out = as_raster(one, cls.shape)
    m = out == one.area_km2.idxmax() + 1
    assert big.elev_m == pytest.approx(round(float(np.median(dem[m])), 1))
    assert big.slope_deg == pytest.approx(round(float(np.median(slope[m])), 2))


@pytest.mark.parametrize("chunk", [5, 16, 1000])
def test_slope_filter_is_independent_of_chunking(chunk):
    cls = lake_field()
    dem = np.zeros(cls.shape, np.float32)
    slope = np.where(np.arange(cls.shape[1]) < 35, 5.0, 30.0).astype(np.float32)[None, :].repeat(cls.shape[0], 0)
    p = LakeParams(min_area_m2=300, max_slope_deg=20)
    one = extract_lakes(cls, transform=T, crs=CRS, params=p, dem=dem, slope=slope)
    cut = stitch.extract_grid_lakes(cls, transform=T, crs=CRS, params=p, dem=dem, slope=slope, chunk_px=chunk)
    assert_same_layer(cut, one)
    assert len(one) == 2  # the lake on 30 degree slopes is removed


DIAGONAL_OPENING = np.array([
    [0, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 1, 1, 0, 0],
    [0, 1, 0, 0, 1, 0, 0],
    [0, 1, 0, 0, 1, 0, 0],
    [0, 1, 1, 1, 0, 0, 0],  # the inside reaches the outside only diagonally, (3, 3) -> (4, 4)
    [0, 0, 0, 0, 0, 0, 0],
], dtype=np.uint8)


@pytest.mark.parametrize("flip", range(8))
@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7])
def test_background_is_eight_connected_across_chunk_borders_and_corners(flip, chunk):
    cls = np.rot90(DIAGONAL_OPENING, flip % 4)
    cls = np.ascontiguousarray(cls.T if flip >= 4 else cls)
    nobs = np.ones(cls.shape, np.uint16)
    params = LakeParams(min_area_m2=100, max_hole_m2=400)
    gdf = stitch.extract_grid_lakes(cls, nobs, transform=T, crs=CRS, params=params, chunk_px=chunk)
    check_against_reference(gdf, cls, nobs, min_px=1, hole_px=4)
    assert gdf.area_km2.sum() == pytest.approx(11e-4)  # the 2x2 inside is not a hole: not filled


@settings(max_examples=100, deadline=None)
@given(cls=classes, inside=arrays(bool, 18, elements=st.booleans()), chunk=st.integers(1, 9))
def test_aoi_mask_keeps_every_piece_of_a_seeded_lake(cls, inside, chunk):
    """The AOI cut comes after hysteresis and hole filling: a piece of a seeded lake left without a
    class-1 pixel by the cut is still a lake (reference: scipy on the seeded water, then the cut)."""
    aoi = np.resize(inside, cls.shape)
    nobs = np.ones(cls.shape, np.uint16)
    params = LakeParams(min_area_m2=100, max_hole_m2=0)
    gdf = stitch.extract_grid_lakes(cls, nobs, transform=T, crs=CRS, params=params, aoi_mask=aoi, chunk_px=chunk)
    cand, _ = ndimage.label((cls == 1) | (cls == 2))
    seeds = np.unique(cand[cls == 1])
    water = np.isin(cand, seeds[seeds > 0]) & aoi
    _, n = ndimage.label(water)
    assert len(gdf) == n
    assert (as_raster(gdf, cls.shape) > 0).sum() == water.sum()


@settings(max_examples=60, deadline=None)
@given(lab=arrays(np.int32, st.tuples(st.integers(1, 25), st.integers(1, 25)), elements=st.integers(0, 6)),
       origin=st.tuples(st.integers(0, 5000), st.integers(0, 5000)))
def test_packed_polygons_have_the_vertices_of_polygonizing_the_whole_window(lab, origin):
    lab, n = ndimage.label(lab > 0)  # 4-connected components, as the lake pass gives them
    lab = lab.astype(np.int32)
    labels = np.arange(1, n + 1)
    boxes = np.array([[s[0].start, s[0].stop, s[1].start, s[1].stop] for s in ndimage.find_objects(lab)]).reshape(-1, 4)
    got = stitch._polygons(lab, labels, boxes, *origin)
    want = {int(v): shapely.geometry.shape(g) for g, v in rasterio.features.shapes(
        lab, mask=lab > 0, connectivity=4, transform=Affine.translation(origin[1], origin[0]))}
    assert sorted(got) == sorted(want)
    for k, g in want.items():
        assert shapely.to_wkb(got[k]) == shapely.to_wkb(g)


@settings(max_examples=80, deadline=None)
@given(cand=arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20))), seed=st.integers(0, 999))
def test_candidates_merged_through_holes_are_labelled_as_scipy_labels_them(cand, seed):
    holes = np.flatnonzero(np.random.default_rng(seed).random(cand.size) < 0.2).astype(np.int32)
    lab, n = ndimage.label(cand)
    got, m = stitch._kernels()["fill_labels"](lab.astype(np.int32), n, holes)
    filled = cand.copy()
    filled.reshape(-1)[holes] = True
    want, k = ndimage.label(filled)
    assert m == k
    assert np.array_equal(got, want)  # same components, same numbering (raster order of first pixel)
