"""Glacial context on real data (tests/data/context, see its README for sources and licences).

- slope against ``gdaldem slope`` (GDAL, an independent implementation of Horn 1981) on SRTM clips;
- cast shadows on the same DEMs: more shadow for a lower sun, on slopes facing away from the sun,
  containing the self-shadow of ``gdaldem hillshade``;
- glacier context on real RGI 6 outlines (Hintereisferner, invalid High Mountain Asia outlines);
- the Everest Landsat 7 clip fed to the pure core (NDWI -> extract_lakes -> glacier_context):
  how many water objects a bare NDWI threshold gives and what the glacier filters make of them.

The measured numbers are printed (``pytest -s``) and reported in docs/glacial_context.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject
from scipy import ndimage

from gli_toolbox import lakes, water
from gli_toolbox.glaciers import CONTACT_M, glacier_context, lake_type_counts, near_glaciers
from gli_toolbox.terrain import (
    STEEP_SLOPE_DEG,
    cast_shadow,
    lake_terrain,
    shadow_reach_m,
    slope_deg,
    steep_objects,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "context"

# file, UTM zone to reproject geographic clips to (None: already projected in metres)
DEMS = {
    "hintereisferner": ("hef_srtm.tif", 32632),
    "baltoro": ("baltoro_srtm_clip.tif", 32643),
    "chhota_shigri": ("dem_chhota_shigri.tif", None),
}


def _gdaldem() -> str:
    exe = shutil.which("gdaldem")
    if exe is None:
        reason = "gdaldem not installed (apt-get install gdal-bin)"
        if os.environ.get("GLI_REQUIRE_SERVICES") == "1":
            pytest.fail(f"GLI_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return exe


def load_dem(name: str) -> tuple[np.ndarray, rasterio.Affine, CRS]:
    """A DEM as float64 metres with NaN for no data, reprojected (bilinear) to UTM if geographic."""
    fname, epsg = DEMS[name]
    with rasterio.open(DATA / fname) as src:
        z = src.read(1).astype(np.float64)
        if src.nodata is not None:
            z[z == src.nodata] = np.nan
        if epsg is None:
            return z, src.transform, src.crs
        dst_crs = CRS.from_epsg(epsg)
        t, w, h = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *src.bounds)
        out = np.full((h, w), np.nan)
        reproject(
            z, out, src_transform=src.transform, src_crs=src.crs, dst_transform=t, dst_crs=dst_crs,
            resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan,
        )
        return out, t, dst_crs


@pytest.fixture(scope="module", params=list(DEMS))
def dem(request, tmp_path_factory):
    """(name, elevations, transform, crs, path of the same grid as a GeoTIFF for gdaldem)."""
    z, t, crs = load_dem(request.param)
    path = tmp_path_factory.mktemp(request.param) / "dem.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1, dtype="float64",
        crs=crs, transform=t, nodata=np.nan,
    ) as dst:
        dst.write(z, 1)
    return request.param, z, t, crs, path


def gdaldem(mode: str, src: Path, *args: str) -> np.ndarray:
    out = src.with_name(f"{mode}{'_'.join(args).replace('-', '')}.tif")
    subprocess.run([_gdaldem(), mode, "-q", *args, str(src), str(out)], check=True)
    with rasterio.open(out) as ds:
        a = ds.read(1).astype(np.float64)
        if ds.nodata is not None and mode != "hillshade":
            a[a == ds.nodata] = np.nan
    return a


# ---------------------------------------------------------------- slope


def test_slope_equals_gdaldem(dem):
    name, z, t, _, path = dem
    ref = gdaldem("slope", path)
    ours = slope_deg(z, transform=t)
    both = np.isfinite(ref) & np.isfinite(ours)
    assert both.mean() > 0.9
    np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(ref))  # same NaN/edge pattern
    diff = np.abs(ours - ref)[both]
    print(f"\n{name}: slope vs gdaldem over {both.sum()} px: max |diff| {diff.max():.2e} deg, "
          f"mean slope {ours[both].mean():.1f} deg")
    assert diff.max() < 0.01
    assert 15 < ours[both].mean() < 40  # real high-mountain terrain, not a flat or garbage grid


def test_steep_objects_on_real_slopes_match_gdaldem_medians(dem):
    """Blocks of 4x4 pixels as stand-in objects: flags equal the medians of gdaldem's slope."""
    _, z, t, _, path = dem
    ref = gdaldem("slope", path)
    rows, cols = np.indices(z.shape)
    labels = (rows // 4) * ((z.shape[1] + 3) // 4) + cols // 4 + 1
    ours = steep_objects(labels, slope_deg(z, transform=t), max_slope_deg=25.0)
    index = np.arange(1, labels.max() + 1)
    med = np.array([np.nanmedian(ref[labels == i]) if np.isfinite(ref[labels == i]).any() else np.nan for i in index])
    with np.errstate(invalid="ignore"):
        expected = med > 25.0
    assert 0.2 < expected.mean() < 0.9
    np.testing.assert_array_equal(ours, expected)
    elev, slp = lake_terrain(labels, z, ref, index=index)
    np.testing.assert_allclose(slp, med)
    assert np.nanmin(elev) > 1000 and np.nanmax(elev) < 9000


def test_default_slope_limit_removes_shadow_regions(dem):
    """If every cast-shadow region were mistaken for water (the classic NDWI false positive), the
    default slope limit would drop nearly all of them: they lie on steep slopes."""
    name, z, t, _, _ = dem
    slope = slope_deg(z, transform=t)
    for az, elev in ((150, 20), (150, 35)):
        shadow = cast_shadow(z, transform=t, sun_azimuth_deg=az, sun_elevation_deg=elev)
        labels, n = ndimage.label(shadow)
        steep = steep_objects(labels, slope)  # default STEEP_SLOPE_DEG
        size = np.bincount(labels.ravel())[1:]
        print(f"\n{name} az {az} el {elev}: {n} shadow regions, {steep.sum()} on median slopes > "
              f"{STEEP_SLOPE_DEG:g} deg ({size[steep].sum() / size.sum():.1%} of their area); "
              f"terrain below {STEEP_SLOPE_DEG:g} deg: {(slope < STEEP_SLOPE_DEG).sum() / np.isfinite(slope).sum():.1%}")
        assert n > 100
        assert steep.mean() > 0.95 and size[steep].sum() / size.sum() > 0.99


# ---------------------------------------------------------------- cast shadows


def test_lower_sun_casts_more_shadow(dem):
    name, z, t, _, _ = dem
    fractions = []
    valid = np.isfinite(z)
    for elev in (10, 20, 35, 50, 70):
        shadow = cast_shadow(z, transform=t, sun_azimuth_deg=150, sun_elevation_deg=elev)
        assert not (shadow & ~valid).any()
        fractions.append(shadow[valid].mean())
    print(f"\n{name}: shadow fraction at sun elevation 10/20/35/50/70 deg, azimuth 150: "
          + " / ".join(f"{f:.3f}" for f in fractions))
    assert (np.diff(fractions) <= 0).all() and fractions[0] > 2 * fractions[2] > 0
    assert fractions[0] > 0.3 and fractions[-1] < 0.01


def test_flattened_dem_has_no_shadow(dem):
    _, z, t, _, _ = dem
    flat = np.where(np.isfinite(z), np.nanmean(z), np.nan)
    assert not cast_shadow(flat, transform=t, sun_azimuth_deg=150, sun_elevation_deg=5).any()


@pytest.mark.parametrize(("az", "elev"), [(135, 20), (225, 25), (160, 35)])
def test_shadows_lie_on_slopes_facing_away_from_the_sun(dem, az, elev):
    """Aspect from gdaldem: shadowed pixels mostly face away from the sun, far more than the DEM as a
    whole."""
    name, z, t, _, path = dem
    aspect = gdaldem("aspect", path)
    shadow = cast_shadow(z, transform=t, sun_azimuth_deg=az, sun_elevation_deg=elev)
    ok = np.isfinite(aspect) & (aspect >= 0)
    away = np.cos(np.radians(aspect - az)) < 0
    share_shadow = away[shadow & ok].mean()
    share_all = away[ok].mean()
    print(f"\n{name} az {az} el {elev}: shadow {shadow[ok].mean():.3f}; facing away: "
          f"{share_shadow:.2f} of shadow vs {share_all:.2f} of all")
    assert share_shadow > 0.8
    assert share_shadow > share_all + 0.25


@pytest.mark.parametrize(("az", "elev"), [(135, 15), (135, 30), (225, 20)])
def test_cast_shadow_contains_gdaldem_self_shadow(dem, az, elev):
    """Where gdaldem hillshade is fully dark (the slope faces away from the sun more steeply than
    the sun is high) our cast shadow is set too; cast shadows add the projected shadows."""
    name, z, t, _, path = dem
    hs = gdaldem("hillshade", path, "-az", str(az), "-alt", str(elev))
    inner = np.zeros(z.shape, dtype=bool)
    inner[1:-1, 1:-1] = True
    self_shadow = (hs == 1) & inner & np.isfinite(z)
    shadow = cast_shadow(z, transform=t, sun_azimuth_deg=az, sun_elevation_deg=elev)
    contained = (shadow & self_shadow).sum() / self_shadow.sum()
    print(f"\n{name} az {az} el {elev}: self-shadow {self_shadow.mean():.3f}, cast {shadow.mean():.3f}, "
          f"self-shadow inside cast {contained:.3f}")
    assert self_shadow.sum() > 100
    assert contained > 0.8
    assert shadow.sum() > self_shadow.sum()


def test_shadow_needs_margin_on_the_sun_side():
    """Cropping the DEM on its sun-facing side loses shadows cast from the cropped terrain, but
    results agree beyond shadow_reach_m from the crop edge."""
    z, t, _ = load_dem("baltoro")
    full = cast_shadow(z, transform=t, sun_azimuth_deg=180, sun_elevation_deg=30)
    cut = 300  # crop the southern rows
    part = cast_shadow(z[:-cut], transform=t, sun_azimuth_deg=180, sun_elevation_deg=30)
    relief = np.nanmax(z) - np.nanmin(z)
    reach_px = int(np.ceil(shadow_reach_m(relief, sun_elevation_deg=30) / abs(t.e)))
    safe = z.shape[0] - cut - reach_px
    assert safe > 0
    np.testing.assert_array_equal(part[:safe], full[:safe])
    assert (part != full[:-cut]).any()  # near the cut, shadows from the cropped ridges are missing


# ---------------------------------------------------------------- glaciers on real outlines


@pytest.fixture(scope="module")
def hef():
    return gpd.read_file(DATA / "Hintereisferner_RGI6.shp").to_crs("EPSG:32632")


def test_hintereisferner_lakes_at_known_distances(hef):
    ice = hef.geometry.iloc[0]
    inner = ice.buffer(-300).representative_point()  # well inside the tongue
    ring = {d: shapely.get_exterior_ring(ice.buffer(d, quad_segs=64)) for d in (150, 400, 2500, 12000)}
    geoms = [inner.buffer(60)] + [ring[d].interpolate(0.3, normalized=True) for d in ring]
    lk = gpd.GeoDataFrame({"name": ["on_ice", "d150", "d400", "d2500", "d12000"]}, geometry=geoms, crs=hef.crs)
    # the outlines come in WGS84 like a real RGI file
    out = glacier_context(lk, gpd.read_file(DATA / "Hintereisferner_RGI6.shp"), id_column="auto")
    assert out.glac_dist.tolist() == pytest.approx([0, 150, 400, 2500, 12000], abs=2.0)
    assert out.lake_type.tolist() == ["supraglacial", "proglacial", "proglacial", "unconnected", "unconnected"]
    assert set(out.glac_id) == {"RGI60-11.00897"}
    assert near_glaciers(out).name.tolist() == ["on_ice", "d150", "d400", "d2500"]
    assert CONTACT_M == 500.0


def test_invalid_rgi_outlines_are_usable():
    outlines = gpd.read_file(DATA / "rgi60_hma_invalid_outlines.gpkg")
    assert (~outlines.is_valid).all()  # real self-intersecting RGI 6 polygons
    crs = outlines.estimate_utm_crs()
    repaired = outlines.to_crs(crs).make_valid()
    inside = repaired.geometry.apply(lambda g: g.buffer(-200).representative_point().buffer(50))
    outside = repaired.geometry.apply(lambda g: shapely.get_exterior_ring(g.convex_hull.buffer(700)).interpolate(0.5, normalized=True))
    lk = gpd.GeoDataFrame(geometry=list(inside) + list(outside), crs=crs)
    out = glacier_context(lk, outlines, id_column="auto")
    n = len(outlines)
    assert (out.lake_type.iloc[:n] == "supraglacial").all()
    assert out.glac_id.iloc[:n].tolist() == outlines.RGIID.tolist()
    # points 700 m outside each outline's convex hull are at least 700 m from that glacier
    assert (out.glac_dist.iloc[n:] >= 699).all()


# ---------------------------------------------------------------- Everest: Landsat 7 + RGI 6


def test_everest_water_objects_before_and_after_glacier_filters():
    with rasterio.open(DATA / "everest_l7_20001030_green_nir.tif") as src:
        green = src.read(1).astype(np.float32)
        nir = src.read(2).astype(np.float32)
        t, crs = src.transform, src.crs
    rgi = gpd.read_file(DATA / "everest_rgi60_outlines.gpkg")
    index = water.ndwi(green, nir)
    wc = np.where(np.isfinite(index), (index > 0.2).astype(np.uint8), water.NEVER_OBSERVED).astype(np.uint8)
    objs = lakes.extract_lakes(wc, transform=t, crs=crs, params=lakes.LakeParams(min_area_m2=5400))
    ctx = glacier_context(objs, rgi, id_column="auto")
    near = near_glaciers(ctx)
    counts = lake_type_counts(ctx)
    area = ctx.groupby("lake_type").area_km2.sum().round(2).to_dict()
    print(f"\nEverest L7 2000-10-30, NDWI > 0.2 on raw counts, >= 5400 m2: {len(objs)} water objects, "
          f"{(index > 0.2).mean():.1%} of pixels; within 10 km of a glacier: {len(near)}; "
          f"types {counts}; area km2 {area}; glac_dist max {ctx.glac_dist.max():.0f} m")

    # the classic false-positive setting: hundreds of water objects for a handful of real lakes
    assert len(objs) > 300
    # independent check of the classification on the image grid: rasterized outlines and a
    # Euclidean distance transform between pixel centres
    ice = rasterio.features.rasterize(
        ((g, 1) for g in rgi.to_crs(crs).geometry), out_shape=green.shape, transform=t, dtype=np.uint8
    ).astype(bool)
    labels = rasterio.features.rasterize(
        ((g, i + 1) for i, g in enumerate(ctx.geometry)), out_shape=green.shape, transform=t, dtype=np.int32
    )
    idx = np.arange(1, len(ctx) + 1)
    share = ndimage.mean(ice.astype(float), labels, idx)
    supra = (ctx.lake_type == "supraglacial").to_numpy()
    disagree = supra != (share >= 0.5)
    assert disagree.mean() < 0.02  # pixel-centre rasterization blurs a few borderline objects
    assert (np.abs(share[disagree] - 0.5) <= 0.1).all()
    edt = ndimage.distance_transform_edt(~ice) * abs(t.a)
    pixel_dist = ndimage.minimum(edt, labels, idx)
    far = ctx.glac_dist.to_numpy() > 0
    # centre-to-centre distances between pixels inside each shape can only be longer, by < 2 pixels
    excess = pixel_dist[far] - ctx.glac_dist.to_numpy()[far]
    assert excess.min() >= -1e-6 and excess.max() < 2 * abs(t.a)
    # every object lies within 10 km of a glacier here: distance filtering cannot help in this scene
    assert len(near) == len(ctx) == len(objs)
    assert counts["supraglacial"] > 0 and counts["proglacial"] > 0
