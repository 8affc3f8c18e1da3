"""Snow, cloud and cloud-shadow filters on real Sentinel-2 data: false lakes before and after.

Data (real pixels, see tests/data/snow_clouds/README.md and sample_data/README.md):

* Romania: 140 L2A dates 2015-08..2021-01 over 1 x 1 km of Carpathian forest (no lake), 20 m cube
  with B3, B8A, B11 and SCL (nrt 0.1.0 test data).
* Patagonia: one 6-band 20 m scene of steppe (no water; xarray-spatial sample).
* Havel: the sample L1C item (no SCL) with all ten s2cloudless bands.
* UKIS: a 512 x 512 Sentinel-2 patch with hand-labelled clouds and cloud shadows (ukis-csmask).

The numbers asserted here are the ones reported in docs/clouds_and_snow.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
from affine import Affine

from gli_toolbox import clouds, lakes, water

DATA = Path(__file__).resolve().parents[1] / "data" / "snow_clouds"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MIN_AREA_M2 = 5400.0  # DetectConfig.min_area_m2 default
THRESHOLD = 0.2  # DetectConfig.ndwi_threshold default


# ----------------------------------------------------------------------------------------------
# Romania: snow and shadow dates in a forest without a lake
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def romania() -> dict[str, np.ndarray]:
    with np.load(DATA / "romania_20m.npz") as d:
        return {k: d[k] for k in d.files}


def _romania_grid(r: dict[str, np.ndarray]) -> dict:
    x, y = r["x"], r["y"]
    px = float(x[1] - x[0])
    assert px == 20.0 and float(y[1] - y[0]) == -20.0
    # x/y are cell centres
    return {"transform": Affine(px, 0, float(x[0]) - px / 2, 0, -px, float(y[0]) + px / 2), "crs": str(r["crs"]),
                "params": lakes.LakeParams(min_area_m2=MIN_AREA_M2)}


def _romania_table(r: dict[str, np.ndarray]) -> dict[int, dict[str, int]]:
    """Per year: false water pixels and false lakes of the bare index maps ("before") and of the
    pipeline's classify_observation + composite ("after")."""
    grid = _romania_grid(r)
    years = np.array([int(t[:4]) for t in r["time"]])
    table: dict[int, dict[str, int]] = {}
    for year in np.unique(years):
        idx = np.flatnonzero(years == year)
        shape = r["B3"].shape[1:]
        any0 = np.zeros(shape, bool)
        any2 = np.zeros(shape, bool)
        wc = np.zeros(shape, np.uint16)
        vc = np.zeros(shape, np.uint16)
        snow_obs = 0
        date_lakes_before = date_lakes_after = 0
        max_date_px_before = max_date_px_after = 0
        for i in idx:
            green = water.to_reflectance(r["B3"][i], scale=1e-4, offset=0.0)
            nir = water.to_reflectance(r["B8A"][i], scale=1e-4, offset=0.0)
            swir = water.to_reflectance(r["B11"][i], scale=1e-4, offset=0.0)
            nd = water.ndwi(green, nir)
            with np.errstate(invalid="ignore"):
                any0 |= nd > 0
                any2 |= nd > THRESHOLD
            w, o, snow = water.classify_observation(green, nir, swir, scl=r["SCL"][i], threshold=THRESHOLD)
            wc += w
            vc += o
            snow_obs += int(snow.sum())
            # single-date maps, as `--per-scene` would make them
            date_lakes_before += len(lakes.extract_lakes((nd > THRESHOLD).astype(np.uint8), **grid))
            date_lakes_after += len(lakes.extract_lakes(np.where(o, w, 255).astype(np.uint8), **grid))
            max_date_px_before = max(max_date_px_before, int((nd > THRESHOLD).sum()))
            max_date_px_after = max(max_date_px_after, int(w.sum()))
        yearly = water.composite(wc, vc)
        table[int(year)] = {
            "dates": len(idx),
            "any_ndwi0_px": int(any0.sum()),
            "any_ndwi0_lakes": len(lakes.extract_lakes(any0.astype(np.uint8), **grid)),
            "any_ndwi02_px": int(any2.sum()),
            "any_ndwi02_lakes": len(lakes.extract_lakes(any2.astype(np.uint8), **grid)),
            "date_lakes_before": date_lakes_before,
            "date_lakes_after": date_lakes_after,
            "max_date_px_before": max_date_px_before,
            "max_date_px_after": max_date_px_after,
            "snow_obs": snow_obs,
            "yearly_water_px": int((yearly == 1).sum()),
            "yearly_lakes": len(lakes.extract_lakes(yearly, vc, **grid)),
            "never_observed_px": int((yearly == water.NEVER_OBSERVED).sum()),
        }
    return table


def _reference_lakes(water_px: np.ndarray, *, min_px: int = 14, max_hole_px: int = 14) -> int:
    """Number of lakes in a boolean map, by the documented rule written out with scipy only (not
    with gli's lake code): background holes (8-connected, not touching the border) of at most
    ``max_hole_px`` are filled, then 4-connected water objects of at least ``min_px`` count."""
    from scipy import ndimage

    bg, n = ndimage.label(~water_px, structure=np.ones((3, 3)))
    sizes = np.bincount(bg.ravel(), minlength=n + 1)
    border = np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))
    fill = sizes <= max_hole_px
    fill[0] = False
    fill[border] = False
    filled = water_px | fill[bg]
    lab, _ = ndimage.label(filled)
    return int((np.bincount(lab.ravel())[1:] >= min_px).sum())


@pytest.fixture(scope="module")
def romania_table(romania) -> dict[int, dict[str, int]]:
    return _romania_table(romania)


def test_romania_copy_is_the_20m_cube(romania) -> None:
    assert romania["B3"].shape == (140, 50, 50) and romania["SCL"].dtype == np.uint8
    assert romania["time"][0] == "2015-08-01" and romania["time"][-1] == "2021-01-01"
    assert set(np.unique(romania["SCL"]).tolist()) == {2, 3, 4, 5, 6, 7, 8, 9, 10, 11}


@pytest.mark.skipif(not (SHARED / "s2_l2a_romania_timeseries").is_dir(), reason="shared/data not beside the checkout")
def test_romania_copy_equals_the_shared_netcdf(romania) -> None:
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    ds = xr.open_dataset(SHARED / "s2_l2a_romania_timeseries" / "sentinel2_cube_subset_romania_20m.nc", engine="h5netcdf")
    for name in ("B3", "B8A", "B11", "SCL"):
        np.testing.assert_array_equal(ds[name].values, romania[name].astype(np.float32))


def test_romania_yearly_maps_have_no_lakes_after_filtering(romania_table) -> None:
    for year, row in romania_table.items():
        assert row["yearly_lakes"] == 0 and row["yearly_water_px"] == 0, year


def test_romania_bare_ndwi_gives_false_lakes_before(romania_table) -> None:
    # the "before": a yearly "water on any date" map makes lakes out of snow, cloud and shadow dates
    assert sum(r["any_ndwi0_lakes"] for r in romania_table.values()) == 12
    assert sum(r["any_ndwi02_lakes"] for r in romania_table.values()) == 14
    assert sum(r["date_lakes_before"] for r in romania_table.values()) == 17
    # after: single dates still hold 7 false lakes (winter slopes in terrain shadow that Sen2Cor
    # labels water, SCL 6), which the yearly composite removes
    assert sum(r["date_lakes_after"] for r in romania_table.values()) == 7


def test_romania_numbers_per_year_against_an_independent_reference(romania, romania_table) -> None:
    """The table's "before" numbers recomputed from the raw digital numbers with numpy/scipy only, and
    the "after" numbers bounded by them (filtering only ever removes water)."""
    years = np.array([int(str(t)[:4]) for t in romania["time"]])
    assert sorted(romania_table) == sorted(set(years.tolist()))
    for year, row in romania_table.items():
        idx = np.flatnonzero(years == year)
        assert row["dates"] == len(idx)
        g = romania["B3"][idx].astype(np.float64)
        n = romania["B8A"][idx].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            nd = (g - n) / (g + n)  # NDWI (McFeeters 1996); the reflectance scale cancels
        any0, any2, date2 = (nd > 0).any(axis=0), (nd > THRESHOLD).any(axis=0), nd > THRESHOLD
        assert row["any_ndwi0_px"] == int(any0.sum()) and row["any_ndwi02_px"] == int(any2.sum())
        assert row["any_ndwi0_lakes"] == _reference_lakes(any0)
        assert row["any_ndwi02_lakes"] == _reference_lakes(any2)
        assert row["date_lakes_before"] == sum(_reference_lakes(d) for d in date2)
        assert row["max_date_px_before"] == int(date2.sum(axis=(1, 2)).max(initial=0))
        assert row["date_lakes_after"] <= row["date_lakes_before"]
        assert row["max_date_px_after"] <= row["max_date_px_before"]
        # never observed: masked by SCL on every date of the year (snow is an observation, not water)
        masked_all = np.isin(romania["SCL"][idx], (0, 1, 3, 8, 9, 10)).all(axis=0)
        assert row["never_observed_px"] >= int(masked_all.sum())
        assert (row["never_observed_px"] == 0) == (year != 2021)  # only the single winter date of 2021


def test_romania_after_water_is_a_subset_of_the_bare_index(romania) -> None:
    for i in range(len(romania["time"])):
        green, nir, swir = (water.to_reflectance(romania[b][i], scale=1e-4, offset=0.0) for b in ("B3", "B8A", "B11"))
        w, o, _ = water.classify_observation(green, nir, swir, scl=romania["SCL"][i], threshold=THRESHOLD)
        with np.errstate(invalid="ignore"):
            assert not (w & ~(water.ndwi(green, nir) > THRESHOLD)).any()
        assert not (w & ~o).any()


def test_romania_snow_dates_are_not_counted_as_observations(romania, romania_table) -> None:
    # SCL 11 and the NDSI test together take snow/ice out of the observations
    scl_snow = int((romania["SCL"] == water.SCL_SNOW).sum())
    assert scl_snow == 7771
    total_snow = sum(r["snow_obs"] for r in romania_table.values())
    assert total_snow == 13151  # SCL 11 plus 5380 NDSI snow observations that SCL did not flag


def test_romania_bare_composite_alone_already_has_no_yearly_lakes(romania) -> None:
    # Honest control: on this site the 50 % composite by itself (every date valid, no SCL, no
    # snow test) also gives no yearly lake; the masks matter for single dates (17 -> 7 false lakes).
    grid = _romania_grid(romania)
    years = np.array([int(t[:4]) for t in romania["time"]])
    for year in np.unique(years):
        idx = np.flatnonzero(years == year)
        nd = np.stack([water.ndwi(romania["B3"][i] / 1e4, romania["B8A"][i] / 1e4) for i in idx])
        wclass = water.composite((nd > THRESHOLD).sum(axis=0), np.full(nd.shape[1:], len(idx)))
        assert len(lakes.extract_lakes(wclass, **grid)) == 0, year


# ----------------------------------------------------------------------------------------------
# Patagonia: dry steppe, no water
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def patagonia() -> tuple[dict[str, np.ndarray], dict]:
    with rasterio.open(DATA / "patagonia_B02_B03_B04_B07_B11_B12_20m.tif") as src:
        dn = src.read()
        grid = {"transform": src.transform, "crs": f"EPSG:{src.crs.to_epsg()}", "params": lakes.LakeParams(min_area_m2=MIN_AREA_M2)}
    names = ("B02", "B03", "B04", "NIR", "B11", "B12")
    return {n: water.to_reflectance(a, scale=1e-4, offset=0.0) for n, a in zip(names, dn)}, grid


@pytest.mark.parametrize("index", ["ndwi", "mndwi"])
def test_patagonia_has_no_lakes_with_the_defaults(patagonia, index: str) -> None:
    # No B08 in this stack: the NIR band is labelled Band 07 (783 nm, the closest band to B08's
    # 842 nm) in the source metadata; MNDWI uses B11 and needs no NIR at all.
    b, grid = patagonia
    w, o, snow = water.classify_observation(b["B03"], b["NIR"], b["B11"], threshold=THRESHOLD, index=index)
    assert o.all() and not snow.any() and not w.any()
    assert len(lakes.extract_lakes(np.where(o, w, 255).astype(np.uint8), o.astype(np.uint16), **grid)) == 0


def test_patagonia_index_range_before(patagonia) -> None:
    b, grid = patagonia
    nd = water.ndwi(b["B03"], b["NIR"])
    md = water.mndwi(b["B03"], b["B11"])
    assert float(nd.max()) == pytest.approx(0.0114, abs=1e-4) and float(md.max()) == pytest.approx(0.0990, abs=1e-4)
    # even "index > 0" finds only a few scattered pixels and no lake of 14 px
    assert int((nd > 0).sum()) == 6 and int((md > 0).sum()) == 21
    assert len(lakes.extract_lakes((nd > 0).astype(np.uint8), **grid)) == 0
    assert len(lakes.extract_lakes((md > 0).astype(np.uint8), **grid)) == 0


# ----------------------------------------------------------------------------------------------
# Havel L1C: s2cloudless clouds and projected shadows must not cost the big lakes
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def havel(sample_data: Path) -> dict:
    item_path = sample_data / "sentinel-2-l1c" / "S2A_33UUU_20170216_0_L1C" / "S2A_33UUU_20170216_0_L1C.json"
    item = json.loads(item_path.read_text())
    toa: dict[str, np.ndarray] = {}
    transform = None
    for asset in item["assets"].values():
        rb = asset["raster:bands"][0]
        with rasterio.open(item_path.parent / asset["href"]) as src:
            dn = src.read(1)
            k = round(src.res[0] / 10)
            if k == 1:
                transform = src.transform
        # nearest-neighbour to the 10 m grid (the 20/60 m grids share its origin); the 60 m grid
        # has 101 rows (6060 m) for 604 rows of 10 m (6040 m): the extra 20 m are cut
        dn = np.repeat(np.repeat(dn, k, axis=0), k, axis=1)[:604, :786]
        toa[asset["eo:bands"][0]["name"]] = water.to_reflectance(dn, scale=rb["scale"], offset=rb["offset"], nodata=rb["nodata"])
    p = item["properties"]
    return {"toa": toa, "transform": transform, "sun": (p["view:sun_azimuth"], p["view:sun_elevation"])}


#: What ``gli_toolbox.detect("sample_data/havel.geojson", years=(2017,), months=(2, 2),
#: stac="sample_data/catalog.json", collection="sentinel-2-l1c")`` returned before cloud masking
#: was wired into the pipeline: 3 lakes, 2.4561 km2, on a 329 x 540 px grid at (339070, 5820740).
HAVEL_LAKES_UNMASKED = {"GL012639E52488N": 0.3591, "GL012653E52495N": 0.0061, "GL012676E52500N": 2.0909}


@pytest.fixture(scope="module")
def havel_grid(sample_data: Path) -> dict:
    """The pipeline's processing grid and AOI mask for havel.geojson (load.output_grid, aoi_mask)."""
    import shapely.geometry

    from gli_toolbox import load

    fc = json.loads((sample_data / "havel.geojson").read_text())
    aoi = shapely.geometry.shape(fc["features"][0]["geometry"])
    grid = load.output_grid(aoi, crs=None, resolution_m=10.0)
    return {"transform": grid.affine, "crs": f"EPSG:{grid.crs.epsg}", "inside": load.aoi_mask(grid, aoi)}


@pytest.fixture(scope="module")
def havel_masks(havel) -> dict[str, np.ndarray]:
    toa = havel["toa"]
    az, el = havel["sun"]
    prob = clouds.cloud_probability(toa, block_px=6)
    cloud, shadow = clouds.clouds_and_shadows(toa, sun_azimuth_deg=az, sun_elevation_deg=el, pixel_m=10)
    union = clouds.cloud_shadow(cloud, dark=toa["B08"] < clouds.SHADOW_DARK_NIR, sun_azimuth_deg=az,
                                sun_elevation_deg=el, pixel_m=10, method="union")
    return {"prob": prob, "cloud": cloud, "shadow": shadow, "union": union}


def _havel_lakes(havel, havel_grid, masked: np.ndarray | None):
    """The pipeline's water map of the Havel AOI, rebuilt from the core functions on its grid (a
    window of the sample's 10 m crop), with ``masked`` pixels taken out."""
    t, gt = havel["transform"], havel_grid["transform"]
    r0 = round((t.f - gt.f) / 10)
    c0 = round((gt.c - t.c) / 10)
    inside = havel_grid["inside"]
    h, w = inside.shape
    win = (slice(r0, r0 + h), slice(c0, c0 + w))
    toa = havel["toa"]
    wat, obs, _snow = water.classify_observation(
        toa["B03"][win], toa["B08"][win], toa["B11"][win], masked=None if masked is None else masked[win], threshold=THRESHOLD
    )
    obs &= inside
    wat &= obs
    wclass = water.composite(wat.astype(np.uint16), obs.astype(np.uint16))
    wclass[~inside] = water.NEVER_OBSERVED
    return lakes.extract_lakes(wclass, obs.astype(np.uint16), transform=gt, crs=havel_grid["crs"],
                               params=lakes.LakeParams(min_area_m2=MIN_AREA_M2), aoi_mask=inside)


def _areas(gdf) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in zip(gdf["lake_id"], gdf["area_km2"])}


def test_havel_sample_has_the_s2cloudless_bands_and_computed_sun(havel) -> None:
    assert set(clouds.S2CLOUDLESS_BANDS) <= set(havel["toa"])
    assert havel["sun"] == (163.29, 23.93)  # NOAA equations, crop centre, 2017-02-16 10:21:01 UTC


def test_havel_rebuilt_water_map_equals_detect_without_masks(havel, havel_grid) -> None:
    assert havel_grid["inside"].shape == (329, 540) and (havel_grid["transform"].c, havel_grid["transform"].f) == (339070, 5820740)
    assert _areas(_havel_lakes(havel, havel_grid, None)) == HAVEL_LAKES_UNMASKED


def test_havel_cloud_fraction(havel_masks) -> None:
    # A hazy winter scene with thin cloud in the north-west: s2cloudless (60 m blocks, threshold
    # 0.4, averaged over 4 px, dilated by 2 px) calls about a third of the crop cloud.
    prob, cloud = havel_masks["prob"], havel_masks["cloud"]
    assert float(np.nanmean(prob > 0.4)) == pytest.approx(0.327, abs=0.005)
    assert float(cloud.mean()) == pytest.approx(0.360, abs=0.005)
    nw = cloud[:300, :390].mean()
    se = cloud[300:, 390:].mean()
    assert nw > 0.6 and se < 0.2  # the thin cloud is where one sees it


def test_havel_lakes_survive_cloud_and_object_shadow_masking(havel, havel_grid, havel_masks) -> None:
    cloud, shadow = havel_masks["cloud"], havel_masks["shadow"]
    assert float(shadow.mean()) == pytest.approx(0.0081, abs=0.001)
    got = _areas(_havel_lakes(havel, havel_grid, cloud | shadow))
    assert set(got) == set(HAVEL_LAKES_UNMASKED)  # the same 3 lakes
    # masking removes lake area, at most the masked pixels inside the unmasked lakes (10 m: 1e-4 km2)
    unmasked = _havel_lakes(havel, havel_grid, None)
    t, gt = havel["transform"], havel_grid["transform"]
    r0, c0 = round((t.f - gt.f) / 10), round((gt.c - t.c) / 10)
    h, w = havel_grid["inside"].shape
    in_lakes = rasterio.features.geometry_mask(unmasked.geometry, out_shape=(h, w), transform=gt, invert=True)
    masked_in_lakes = int((in_lakes & (cloud | shadow)[r0:r0 + h, c0:c0 + w]).sum()) * 1e-4
    lost = sum(HAVEL_LAKES_UNMASKED.values()) - sum(got.values())
    assert 0 < lost <= masked_in_lakes + 1e-9
    # clouds alone cost nothing
    assert _areas(_havel_lakes(havel, havel_grid, cloud)) == HAVEL_LAKES_UNMASKED


def test_havel_union_shadow_would_erase_the_lakes(havel, havel_grid, havel_masks) -> None:
    # With a 24 deg sun, 12 km clouds project 27 km; swept over every height, the shadow mask
    # covers the dark lakes: why cloud_shadow defaults to the object match.
    cloud, union = havel_masks["cloud"], havel_masks["union"]
    assert float(union.mean()) > 0.15
    got = _havel_lakes(havel, havel_grid, cloud | union)
    assert float(got["area_km2"].sum()) < 0.5


# ----------------------------------------------------------------------------------------------
# UKIS: labelled cloud shadows
# ----------------------------------------------------------------------------------------------

#: ukis-csmask label classes (its tests reclassify 0 -> cloud shadow, 4 -> cloud, 1-3 -> clear).
UKIS_SHADOW, UKIS_CLOUD = 0, 4
#: Pixel size and sun elevation are unknown (no georeferencing): 30 m (ukis-csmask's working
#: resolution) and 45 deg only scale the searched displacement, 6.7-400 px for 0.2-12 km clouds.
UKIS_PIXEL_M, UKIS_ELEVATION = 30.0, 45.0


@pytest.fixture(scope="module")
def ukis() -> dict[str, np.ndarray]:
    with np.load(DATA / "ukis_sentinel2_nir_labels.npz") as d:
        nir = d["nir_dn"].astype(np.float32) / 10000.0
        msk = d["msk"]
    return {"nir": nir, "cloud": msk == UKIS_CLOUD, "truth": msk == UKIS_SHADOW}


def _pr(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = int((pred & truth).sum())
    return tp / max(int(pred.sum()), 1), tp / int(truth.sum())


def _ukis_shadow(u, azimuth: float, method: str = "object") -> np.ndarray:
    return clouds.cloud_shadow(u["cloud"], dark=u["nir"] < clouds.SHADOW_DARK_NIR, sun_azimuth_deg=azimuth,
                               sun_elevation_deg=UKIS_ELEVATION, pixel_m=UKIS_PIXEL_M, method=method)


def test_ukis_labels(ukis) -> None:
    assert ukis["cloud"].sum() == 49597 and ukis["truth"].sum() == 28583


def test_ukis_shadow_direction_search_and_precision_recall(ukis) -> None:
    truth = ukis["truth"]
    # darkness alone (no geometry): every dark pixel that is not cloud
    p_dark, r_dark = _pr((ukis["nir"] < clouds.SHADOW_DARK_NIR) & ~ukis["cloud"], truth)
    assert (round(p_dark, 3), round(r_dark, 3)) == (0.950, 0.574)
    # search the sun azimuth: coarse 30 deg, then 5 deg around the best
    def f1(az: float) -> float:
        p, r = _pr(_ukis_shadow(ukis, az), truth)
        return 2 * p * r / (p + r) if p + r else 0.0
    coarse = max(range(0, 360, 30), key=f1)
    best = max(range(coarse - 15, coarse + 16, 5), key=f1)
    assert 145 <= best <= 165  # sun from the south-south-east, as the shadows show
    p, r = _pr(_ukis_shadow(ukis, best), truth)
    assert p >= 0.99 and r >= 0.48  # measured 0.993 / 0.486 at 155 deg
    assert p > p_dark
    # the opposite sun direction finds far less: the geometry matters
    _, r_opposite = _pr(_ukis_shadow(ukis, best + 180), truth)
    assert r_opposite < 0.12
    # the union of all heights: more recall, less precision
    p_u, r_u = _pr(_ukis_shadow(ukis, best, "union"), truth)
    assert p_u >= 0.95 and r_u >= 0.54 and p_u < p
