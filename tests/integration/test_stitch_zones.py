"""Lakes from on-disk zone rasters (contract 3): chunking, UTM-zone borders and a Dask cluster."""

import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import Point

from gli_toolbox import stitch
from gli_toolbox.lakes import LakeParams, extract_lakes

SEAM_LON = 72.0  # border between UTM zones 42N (EPSG:32642) and 43N (EPSG:32643)


def write(path, arr, transform, crs):
    profile = {"driver": "GTiff", "height": arr.shape[0], "width": arr.shape[1], "count": 1, "dtype": arr.dtype,
               "crs": crs, "transform": transform, "tiled": True, "blockxsize": 16, "blockysize": 16,
               "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr, 1)
    return path


def ellipse_wgs84(lon, lat, rx_m, ry_m):
    """An ellipse with semi-axes in metres around lon/lat, as a WGS84 polygon (local azimuthal projection)."""
    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    shape = shapely.affinity.scale(Point(0, 0).buffer(1.0, 128), rx_m, ry_m)
    tr = Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)
    return shapely.transform(shape, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def zone_arrays(lakes_wgs84, epsg, *, side, west_part, bounds_wgs84):
    """Class/nobs rasters of one zone part: pixel centres west (or east) of the seam are inside."""
    crs = CRS.from_epsg(epsg)
    to_zone = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x0, y0 = to_zone.transform(bounds_wgs84[0], bounds_wgs84[3])
    x1, y1 = to_zone.transform(bounds_wgs84[2], bounds_wgs84[1])
    t = Affine(10, 0, np.floor(min(x0, x1) / 10) * 10, 0, -10, np.ceil(max(y0, y1) / 10) * 10)
    ny = nx = side
    cols, rows = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    xs, ys = t * (cols, rows)
    lon, _ = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    inside = (lon < SEAM_LON) if west_part is True else (lon >= SEAM_LON) if west_part is False else np.ones_like(lon, bool)
    water = np.zeros((ny, nx), bool)
    for lake in lakes_wgs84:
        poly = shapely.transform(lake, lambda xy: np.column_stack(to_zone.transform(xy[:, 0], xy[:, 1])))
        water |= rasterio.features.rasterize([(poly, 1)], out_shape=(ny, nx), transform=t, dtype="uint8") == 1
    cls = np.where(inside, water.astype(np.uint8), np.uint8(255)).astype(np.uint8)
    nobs = np.where(inside, 5, 0).astype(np.uint16)
    return cls, nobs, t, crs


@pytest.fixture(scope="module")
def region():
    """A 700 m x 440 m lake across the 72E seam, a small lake split into two sub-MMU halves by the seam,
    and a lake inside zone 43N."""
    big = ellipse_wgs84(SEAM_LON + 0.0005, 41.0, 350, 220)
    small = ellipse_wgs84(SEAM_LON, 41.01, 45, 40)  # ~5,600 m2: each half below a 4,000 m2 MMU
    east = ellipse_wgs84(SEAM_LON + 0.012, 41.004, 80, 60)
    lakes = [big, small, east]
    bounds = (SEAM_LON - 0.016, 40.992, SEAM_LON + 0.016, 41.016)
    return lakes, bounds


def zone_files(tmp_path, region, *, extra_seed_gap=False):
    lakes, bounds = region
    zones = []
    for name, epsg, west in (("a", 32642, True), ("b", 32643, False)):
        cls, nobs, t, crs = zone_arrays(lakes, epsg, side=320, west_part=west, bounds_wgs84=bounds)
        if west:
            ys, xs = np.nonzero(cls == 1)
            nobs[ys[len(ys) // 2], xs[len(xs) // 2]] = 2  # the joined lake's n_obs comes from zone 42N
        zones.append(stitch.ZoneRaster(write(tmp_path / f"class_{name}.tif", cls, t, crs),
                                       write(tmp_path / f"nobs_{name}.tif", nobs, t, crs)))
    return zones


PARAMS = LakeParams(min_area_m2=4000, max_hole_m2=0)


def test_single_zone_on_disk_equals_in_memory(tmp_path, region):
    lakes, bounds = region
    cls, nobs, t, crs = zone_arrays(lakes, 32643, side=320, west_part=None, bounds_wgs84=bounds)
    zone = stitch.ZoneRaster(write(tmp_path / "c.tif", cls, t, crs), write(tmp_path / "n.tif", nobs, t, crs))
    mem = extract_lakes(cls, nobs, transform=t, crs=crs, params=PARAMS, attributes={"year": 2020})
    assert len(mem) == 3
    for chunk in (7, 256, 1024):
        disk = stitch.extract_zone_lakes([zone], PARAMS, attributes={"year": 2020}, chunk_px=chunk)
        assert disk.crs == mem.crs  # single-zone runs stay on the zone's UTM CRS
        pd.testing.assert_frame_equal(disk.drop(columns="geometry"), mem.drop(columns="geometry"))
        assert disk.geometry.geom_equals_exact(mem.geometry, 0).all()


def test_lake_cut_by_zone_border_is_one_lake_with_true_area(tmp_path, region):
    lakes, bounds = region
    zones = zone_files(tmp_path, region)
    out = stitch.extract_zone_lakes(zones, PARAMS, attributes={"year": 2020}, chunk_px=64)
    assert out.crs.coordinate_operation.method_name == "Albers Equal Area"
    assert len(out) == 3 and out.lake_id.is_unique
    assert shapely.is_valid(out.geometry.values).all() and (out.geom_type == "Polygon").all()

    # reference: each lake whole on the 43N grid (one zone, one chunk)
    cls_ref, nobs_ref, t, crs = zone_arrays(lakes, 32643, side=320, west_part=None, bounds_wgs84=bounds)
    ref = extract_lakes(cls_ref, nobs_ref, transform=t, crs=crs, params=PARAMS).to_crs(out.crs)
    # areas: the sum of each part's pixels on its own grid (independently counted here), close to the
    # area of the same lake on one grid; the reprojected outline within a pixel of the one-grid outline
    counts = {}
    for z in zones:
        with rasterio.open(z.class_path) as src:
            c = src.read(1)
            lab = rasterio.features.rasterize(
                [(shapely.transform(lk, lambda xy, tr=Transformer.from_crs("EPSG:4326", src.crs, always_xy=True):  # noqa: B008
                                    np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))), i + 1)
                 for i, lk in enumerate(lakes)], out_shape=c.shape, transform=src.transform, dtype="int32")
            for i in range(len(lakes)):
                counts[i] = counts.get(i, 0) + int(((lab == i + 1) & (c == 1)).sum())
    for i, lake in enumerate(lakes):
        centre = Transformer.from_crs("EPSG:4326", out.crs, always_xy=True).transform(*lake.centroid.coords[0])
        row = out[out.intersects(Point(centre))].iloc[0]
        r = ref[ref.intersects(Point(centre))].iloc[0]
        assert row.area_km2 == pytest.approx(counts[i] * 100 / 1e6, abs=1e-12)
        assert abs(row.area_km2 - r.area_km2) <= r.area_err  # pixelization of two grids vs one
        assert row.geometry.area / 1e6 == pytest.approx(row.area_km2, abs=row.area_err)  # equal-area output
        assert shapely.hausdorff_distance(row.geometry, r.geometry) < 15
        assert abs(row.lon - r.lon) < 0.0005 and abs(row.lat - r.lat) < 0.0005
        assert row.lake_id == r.lake_id
        assert row.edge == r.edge == 0  # the seam is no edge: the other zone observes across it
    big = out.loc[out.area_km2.idxmax()]
    assert big.n_obs == 2
    # the same layer whatever the chunk size
    again = stitch.extract_zone_lakes(zones, PARAMS, attributes={"year": 2020}, chunk_px=1024)
    pd.testing.assert_frame_equal(again.drop(columns="geometry"), out.drop(columns="geometry"))
    assert again.geometry.geom_equals_exact(out.geometry, 0).all()


def test_halves_below_the_minimum_mapping_unit_are_joined_before_it_applies(tmp_path, region):
    zones = zone_files(tmp_path, region)
    out = stitch.extract_zone_lakes(zones, PARAMS, chunk_px=100)
    small = out.loc[out.area_km2.idxmin()]
    assert 0.004 <= small.area_km2 < 0.008
    alone = [stitch.extract_zone_lakes([z], PARAMS, chunk_px=100) for z in zones]
    assert all((a.area_km2 < 0.004).sum() == 0 for a in alone)  # each half alone is below the MMU
    assert sum(len(a) for a in alone) == 3  # the big lake's two halves and the lake inside 43N


def test_dask_cluster_gives_the_serial_result(tmp_path, region):
    distributed = pytest.importorskip("distributed")
    zones = zone_files(tmp_path, region)
    serial = stitch.extract_zone_lakes(zones, PARAMS, chunk_px=64)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        par = stitch.extract_zone_lakes(zones, PARAMS, chunk_px=64, client=client)
        cls = np.zeros((40, 40), np.uint8)
        cls[5:30, 3:33] = 1
        t = Affine(10, 0, 400000, 0, -10, 4700000)
        mem = stitch.extract_grid_lakes(cls, transform=t, crs="EPSG:32643", params=PARAMS, chunk_px=9, client=client)
    pd.testing.assert_frame_equal(par.drop(columns="geometry"), serial.drop(columns="geometry"))
    assert par.geometry.geom_equals_exact(serial.geometry, 0).all()
    assert mem.area_km2.tolist() == [pytest.approx(25 * 30 * 100 / 1e6)]


def test_possible_water_is_grown_from_a_seed_across_the_zone_border(tmp_path, region):
    """The 43N half of the big lake is only "possible water" (class 2): its seed lies in 42N. The small
    lake is class 2 on both sides: never seeded, it is no lake."""
    zones = zone_files(tmp_path, region)
    full = stitch.extract_zone_lakes(zones, PARAMS, chunk_px=64)
    with rasterio.open(zones[1].class_path) as src:
        cls, profile = src.read(1), src.profile
    cls[cls == 1] = 2
    with rasterio.open(zones[0].class_path) as src:
        cls_a, profile_a = src.read(1), src.profile
    lakes, _ = region
    small_a = rasterio.features.rasterize(
        [(shapely.transform(lakes[1], lambda xy, tr=Transformer.from_crs("EPSG:4326", profile_a["crs"], always_xy=True):  # noqa: B008
                            np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))), 1)],
        out_shape=cls_a.shape, transform=profile_a["transform"], dtype="uint8") == 1
    cls_a[small_a & (cls_a == 1)] = 2
    for path, arr, prof in ((tmp_path / "class_b2.tif", cls, profile), (tmp_path / "class_a2.tif", cls_a, profile_a)):
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(arr, 1)
    grown = stitch.extract_zone_lakes([stitch.ZoneRaster(tmp_path / "class_a2.tif", zones[0].nobs_path),
                                       stitch.ZoneRaster(tmp_path / "class_b2.tif", zones[1].nobs_path)],
                                      PARAMS, chunk_px=64)
    big_full = full.loc[full.area_km2.idxmax()]
    assert len(grown) == 1  # the big lake only: the east lake lost its seed, the small one never had one
    big = grown.iloc[0]
    assert big.area_km2 == big_full.area_km2
    assert big.geometry.equals(big_full.geometry)
