"""`gli detect --dem/--glaciers` wiring on the real Barbellino sample with DEM and glacier files of
known shape (flat and tilted planes, a glacier polygon at a known distance), so the expected
attributes are known exactly."""

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from shapely.geometry import box

from gli_toolbox.cli import cli

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["detect", "--aoi", str(ROOT / "sample_data/barbellino.geojson"), "--stac", str(ROOT / "sample_data/catalog.json"),
        "--years", "2017-2019"]


def write_dem(path, z):
    """30 m DEM in UTM 32N covering Barbellino plus 6 km on every side."""
    x0, y1 = 574500, 5108200
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1, dtype="float32",
                       crs="EPSG:32632", transform=from_origin(x0, y1, 30, 30), nodata=-9999) as dst:
        dst.write(z.astype("float32"), 1)


def run(*extra):
    return CliRunner().invoke(cli, ARGS + [str(e) for e in extra], catch_exceptions=False)


def test_flat_dem_gives_elevation_and_no_shadow(tmp_path):
    write_dem(tmp_path / "flat.tif", np.full((420, 420), 1870.0))
    out = tmp_path / "out"
    res = run("--dem", tmp_path / "flat.tif", "--out", out)
    assert res.exit_code == 0, res.output
    g = gpd.read_file(out / "lakes_2019.shp")
    assert len(g) == 1 and g.elev_m.iloc[0] == pytest.approx(1870.0) and g.slope_deg.iloc[0] == pytest.approx(0.0)
    doc = json.loads((out / "run.json").read_text())
    days = doc["terrain"]["days"]
    assert set(days) == {"2017-07-03", "2019-07-23"}
    assert all(d["shadow_share_of_aoi"] == 0 for d in days.values())
    assert all(30 < d["sun_elevation"] < 70 for d in days.values())  # July morning in the Alps
    # same lake as without a DEM
    ref = tmp_path / "ref"
    assert run("--out", ref).exit_code == 0
    assert gpd.read_file(ref / "lakes_2019.shp").area_km2.sum() == pytest.approx(g.area_km2.sum())


def test_steep_dem_removes_water_and_casts_shadow(tmp_path):
    # plane rising 1 m per m towards the south-east (45 degrees): every water object is "too steep",
    # and the morning sun in the south-east is blocked nowhere, but a wall to the south-east is.
    yy, xx = np.mgrid[0:420, 0:420]
    write_dem(tmp_path / "steep.tif", 1000.0 + 30.0 * (xx + yy))
    out = tmp_path / "out"
    res = run("--dem", tmp_path / "steep.tif", "--out", out)
    assert res.exit_code == 0, res.output
    for y in (2017, 2019):
        assert len(gpd.read_file(out / f"lakes_{y}.shp")) == 0
    # a 3 km high block starting ~1 km south-east of the lake shades it under the ~60 degree July sun
    # (sun angles computed for the sample items: azimuth ~141 degrees)
    z = np.full((420, 420), 1870.0)
    z[240:, 240:] = 5000.0
    write_dem(tmp_path / "wall.tif", z)
    out2 = tmp_path / "out2"
    res = run("--dem", tmp_path / "wall.tif", "--max-slope-deg", "90", "--out", out2)
    assert res.exit_code == 0, res.output
    doc = json.loads((out2 / "run.json").read_text())
    shares = [d["shadow_share_of_aoi"] for d in doc["terrain"]["days"].values()]
    assert min(shares) > 0.4
    ref = tmp_path / "ref"
    assert run("--out", ref).exit_code == 0
    assert gpd.read_file(out2 / "lakes_2019.shp").area_km2.sum() < gpd.read_file(ref / "lakes_2019.shp").area_km2.sum()


def test_glacier_distance_type_and_filter(tmp_path):
    # a glacier whose southern edge lies 2,000 m north of the AOI's northern edge (y = 5102120)
    glacier = gpd.GeoDataFrame({"RGIId": ["RGI60-11.99999"]}, geometry=[box(580000, 5104120, 581500, 5105000)],
                               crs="EPSG:32632").to_crs("EPSG:4326")
    glacier.to_file(tmp_path / "glacier.gpkg")
    out = tmp_path / "out"
    res = run("--glaciers", tmp_path / "glacier.gpkg", "--out", out)
    assert res.exit_code == 0, res.output
    g = gpd.read_file(out / "lakes_2019.shp")
    lake_top = g.geometry.iloc[0].bounds[3]
    assert g.glac_dist.iloc[0] == pytest.approx(5104120 - lake_top, abs=1.0)
    assert g.lake_type.iloc[0] == "unconnected"
    out2 = tmp_path / "out2"
    res = run("--glaciers", tmp_path / "glacier.gpkg", "--max-glacier-dist-m", "1000", "--out", out2)
    assert res.exit_code == 0, res.output
    assert len(gpd.read_file(out2 / "lakes_2019.shp")) == 0


def test_dem_outside_area_is_one_line_error(tmp_path):
    write_dem(tmp_path / "flat.tif", np.full((420, 420), 1870.0))
    with rasterio.open(tmp_path / "flat.tif") as src:
        z = src.read(1)
    with rasterio.open(tmp_path / "far.tif", "w", driver="GTiff", width=420, height=420, count=1, dtype="float32",
                       crs="EPSG:32632", transform=from_origin(300000, 5000000, 30, 30)) as dst:
        dst.write(z, 1)
    out = tmp_path / "out"
    res = run("--dem", tmp_path / "far.tif", "--out", out)
    assert res.exit_code != 0 and "covers only" in res.output and not out.exists()
    # nothing left beside it either: no hidden work folder (it was left, empty, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.tif", "flat.tif"]

