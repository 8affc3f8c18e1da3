"""End-to-end runs of the ``gli`` CLI on the bundled real sample, and every bad input."""

import json
import shutil
import socket
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
from click.testing import CliRunner

from gli_toolbox.cli import cli
from gli_toolbox.lakes import LAKE_FIELDS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CATALOG = SAMPLE / "catalog.json"
BARBELLINO = SAMPLE / "barbellino.geojson"


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    res = run("detect", "--aoi", BARBELLINO, "--stac", CATALOG, "--years", "2017-2019", "--out", out, "--save-masks")
    assert res.exit_code == 0, res.output
    return out, res


def test_outputs_exist_for_both_barbellino_years(sample_run):
    out, res = sample_run
    for year in (2017, 2019):
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            assert (out / f"lakes_{year}{ext}").exists()
        assert (out / f"water_{year}.tif").exists()
        with rasterio.open(out / f"nobs_{year}.tif") as src, rasterio.open(out / f"water_{year}.tif") as wsrc:
            nobs, wat = src.read(1), wsrc.read(1)
            assert src.dtypes[0] == "uint16" and src.crs.to_epsg() == 32632
            # one scene per year: 1 valid observation exactly where the class is 0 or 1
            assert ((nobs == 1) == (wat != 255)).all() and nobs.max() == 1
    assert not (out / "lakes_2018.shp").exists()  # no scene in 2018: no layer rather than an empty one
    assert (out / "inventory.gpkg").exists() and (out / "run.json").exists()
    assert "2018" in res.output  # said which year had no scenes


def test_fields_crs_and_gpkg_layers(sample_run):
    out, _ = sample_run
    import pyogrio

    layers = {name for name, _ in pyogrio.list_layers(out / "inventory.gpkg")}
    # per-year layers, the change layer, all periods for QGIS's temporal controller, QGIS styles
    assert layers == {"lakes_2017", "lakes_2019", "lake_changes", "lakes_all", "layer_styles"}
    for year in (2017, 2019):
        gdf = gpd.read_file(out / f"lakes_{year}.shp")
        assert list(gdf.columns[:-1]) == list(LAKE_FIELDS)
        assert gdf.crs.to_epsg() == 32632  # UTM zone of the AOI centre (10.04 E)
        assert len(gdf) >= 1 and (gdf.year == year).all()
        assert gdf.lake_id.str.fullmatch(r"GL\d{6}[EW]\d{5}[NS][A-Z]?").all()
        assert (gdf.n_scenes == 1).all()
        gpkg = gpd.read_file(out / "inventory.gpkg", layer=f"lakes_{year}")
        assert sorted(gpkg.lake_id) == sorted(gdf.lake_id)


def test_lake_area_equals_water_pixels_times_pixel_area(sample_run):
    out, _ = sample_run
    for year in (2017, 2019):
        gdf = gpd.read_file(out / f"lakes_{year}.shp")
        with rasterio.open(out / f"water_{year}.tif") as src:
            mask = src.read(1)
            assert src.crs.to_epsg() == 32632 and src.nodata == 255 and src.dtypes[0] == "uint8"
            pixel_area = abs(src.transform.a * src.transform.e)
            from scipy import ndimage

            wet = (mask == 1) | (mask == 2)  # water, or possible water (kept only when it grows from water)
            holes = ndimage.binary_fill_holes(wet) & ~wet
            for _, lake in gdf.iterrows():
                inside = rasterio.features.geometry_mask([lake.geometry], mask.shape, src.transform, invert=True)
                # every polygon pixel is (possible) water in the yearly mask, or an island filled as a hole
                assert wet[inside & ~holes].all()
                assert (mask[inside] == 1).any()  # a lake holds confident water: it is seeded
                assert (inside & holes).sum() * pixel_area < 5400
                assert lake.area_km2 == pytest.approx(inside.sum() * pixel_area / 1e6)
                assert lake.geometry.area == pytest.approx(inside.sum() * pixel_area, rel=1e-6)
            # confident water left outside the lakes is only in objects below the 5400 m2 minimum mapping unit
            covered = rasterio.features.geometry_mask(list(gdf.geometry), mask.shape, src.transform, invert=True)
            rest, _ = ndimage.label(wet & ~covered)
            sizes = np.bincount(rest.ravel())
            seeded = np.unique(rest[(mask == 1) & ~covered])
            seeded = seeded[seeded > 0]
            assert len(seeded) == 0 or sizes[seeded].max() * pixel_area < 5400


def test_reservoir_grows_and_touches_edge_in_2019(sample_run):
    out, _ = sample_run
    a17 = gpd.read_file(out / "lakes_2017.shp").area_km2.sum()
    a19 = gpd.read_file(out / "lakes_2019.shp").area_km2.sum()
    assert a19 > a17 * 1.2
    assert gpd.read_file(out / "lakes_2019.shp").edge.max() == 1


def test_run_json_records_scenes_and_parameters(sample_run):
    out, _ = sample_run
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["parameters"]["years"] == [2017, 2018, 2019]
    assert run_doc["software"]["gli-toolbox"]
    ids = [s["id"] for s in run_doc["years"]["2017"]["scenes"]]
    assert ids == ["S2A_T32TNS_20170703T101021_L2A"]
    assert run_doc["years"]["2017"]["scenes"][0]["cloud_pct"] is not None
    assert run_doc["years"]["2017"]["scenes"][0]["reflectance_offset"] == -0.1
    assert "2018" in " ".join(run_doc["warnings"])


def test_existing_output_folder_is_refused_then_overwritten_keeping_user_files(sample_run, tmp_path):
    out = tmp_path / "o"
    assert run("detect", "--aoi", BARBELLINO, "--stac", CATALOG, "--years", "2019", "--out", out).exit_code == 0
    (out / "my_edits.shp").write_text("partner's work")
    before = (out / "run.json").read_text()
    inode = (out / "run.json").stat().st_ino
    res = run("detect", "--aoi", BARBELLINO, "--stac", CATALOG, "--years", "2019", "--out", out)
    assert res.exit_code != 0 and "--overwrite" in res.output and "Traceback" not in res.output
    assert (out / "run.json").read_text() == before
    res = run("detect", "--aoi", BARBELLINO, "--stac", CATALOG, "--years", "2019", "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (out / "my_edits.shp").read_text() == "partner's work"
    assert (out / "run.json").stat().st_ino != inode  # replaced by the new run


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD_CASES = {
    "missing aoi": (["--aoi", "nope.geojson"], "not found"),
    "years malformed": (["--years", "2016_2023"], "expected YYYY"),
    "years reversed": (["--years", "2019-2017"], "comes after"),
    "years too early": (["--years", "2012-2016"], "2015"),
    "months": (["--months", "7-13"], "out of range"),
    "stac unreachable": (["--stac", "http://127.0.0.1:{port}/v1"], "cannot reach"),
    "stac missing file": (["--stac", "no_catalog.json"], "no such file"),
    "no scenes": (["--months", "1-1"], "no scenes found"),
    "bad crs": (["--crs", "EPSG:4326"], "projected CRS"),
    "collection typo": (["--collection", "sentinel-2-c1-l2b"], "available: sentinel-2-c1-l2a"),
    "web mercator": (["--crs", "3857"], "stretches areas"),
    "out under a file": (["--out", "{file}/out"], "is a file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_one_line_nonzero_no_output(case, tmp_path):
    extra, expected = BAD_CASES[case]
    args = {"--aoi": str(BARBELLINO), "--stac": str(CATALOG), "--years": "2019", "--out": str(tmp_path / "out")}
    (tmp_path / "afile").write_text("x")
    for k, v in zip(extra[::2], extra[1::2]):
        args[k] = v.replace("{port}", str(_free_port())).replace("{file}", str(tmp_path / "afile"))
    flat = ["detect"] + [x for kv in args.items() for x in kv]
    res = run(*flat)
    assert res.exit_code != 0
    assert expected in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.partial-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    error_lines = [line for line in res.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1


def test_corrupt_asset_is_skipped_and_recorded(tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(SAMPLE, cat, ignore=shutil.ignore_patterns("*.py"))
    green = next((cat / "sentinel-2-c1-l2a").glob("*20190723*/B03.tif"))
    green.write_bytes(b"this is not a GeoTIFF" * 10)
    out = tmp_path / "out"
    res = run("detect", "--aoi", cat / "barbellino.geojson", "--stac", cat / "catalog.json", "--years", "2017-2019", "--out", out)
    assert res.exit_code == 3, res.output  # finished but incomplete (contract 6)
    assert "B03.tif: not a readable raster" in res.output
    doc = json.loads((out / "run.json").read_text())
    assert any("20190723" in s["scenes"] for s in doc["skipped_assets"])
    assert (out / "lakes_2017.shp").exists() and not (out / "lakes_2019.shp").exists()
    # the year whose only scene failed is incomplete (not "no scene"), with one readable line
    assert doc["complete"] is False and list(doc["incomplete"]) == ["2019"]
    (line,) = doc["incomplete"]["2019"]
    assert line.startswith("2019-07-23 S2A_T32TNS_20190723T101031_L2A: cannot read")


def test_per_scene_layers(tmp_path):
    out = tmp_path / "ps"
    res = run("detect", "--aoi", BARBELLINO, "--stac", CATALOG, "--years", "2017-2019", "--out", out, "--per-scene")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("lakes_*.shp")) == ["lakes_20170703.shp", "lakes_20190723.shp"]
    gdf = gpd.read_file(out / "lakes_20190723.shp")
    assert (gdf["date"] == "2019-07-23").all() and (gdf.n_scenes == 1).all()


def test_search_lists_scenes():
    res = run("search", "--aoi", BARBELLINO, "--stac", CATALOG, "--years", "2017-2019")
    assert res.exit_code == 0
    assert "S2A_T32TNS_20170703T101021_L2A" in res.output and "2018: 0 scenes" in res.output
    # the plan: scenes, zone parts, chunks, pixels, bytes and time
    plan_lines = [ln for ln in res.output.splitlines() if ln.startswith("plan:")]
    assert plan_lines[0].startswith("plan: 2 scenes on 2 days; 1 UTM zone part(s) (32N), 1 chunks")
    assert "of band data to decode; estimated" in plan_lines[1]


def test_mndwi_option_gives_lakes(tmp_path):
    res = run("detect", "--aoi", BARBELLINO, "--stac", CATALOG, "--years", "2019", "--out", tmp_path / "m",
              "--index", "mndwi", "--threshold", "0")
    assert res.exit_code == 0, res.output
    assert len(gpd.read_file(tmp_path / "m" / "lakes_2019.shp")) >= 1


def test_aoi_parts_far_apart_are_accepted_on_their_own_zone_grids(tmp_path):
    """The 20,000 km2 limit is gone: parts 700 km apart in zones 42N and 44N are each mapped on
    their own small grid (the bounding box of both, 60 million pixels, is never allocated)."""
    import geopandas as gpd
    from shapely.geometry import box

    from gli_toolbox.config import DetectConfig
    from gli_toolbox.grids import zone_parts
    from gli_toolbox.pipeline import estimate

    parts = [box(70.0, 39.0, 70.01, 39.01), box(78.0, 43.0, 78.01, 43.01)]
    p = tmp_path / "two_parts.geojson"
    gpd.GeoDataFrame(geometry=parts, crs="EPSG:4326").to_file(p)
    # accepted: the run gets as far as the (unreachable) STAC API
    res = run("detect", "--aoi", p, "--years", "2019", "--stac", "http://127.0.0.1:9/unused", "--out", tmp_path / "o")
    assert res.exit_code != 0 and "cannot reach STAC API" in res.output and "km2" not in res.output
    zones = zone_parts(gpd.read_file(p).union_all(), crs=None, resolution_m=10.0)
    assert [z.crs for z in zones] == ["EPSG:32642", "EPSG:32644"]
    est = estimate([], zones, DetectConfig(years=(2019,)))
    # each part is about 1 km2 = 10,000 px of 10 m: the grids hold a few chunks' worth, not the bbox
    assert est.chunks == 2 and est.pixels < 2 * 200 * 200

    # the plan counts, per chunk, only the days whose scenes cover it (as its chunk task reads them):
    # day 1 sees the west part, day 2 the east one, day 3 both; every day on every chunk would be 6
    import datetime as dt
    from types import SimpleNamespace

    from shapely.geometry import mapping

    from gli_toolbox.pipeline import YearPlan, estimate_seconds

    def scene(*boxes):
        return [SimpleNamespace(item=SimpleNamespace(geometry=mapping(b.buffer(0.1)))) for b in boxes]

    days = {dt.date(2019, 7, 1): scene(parts[0]), dt.date(2019, 7, 2): scene(parts[1]),
            dt.date(2019, 7, 3): scene(parts[0], parts[1])}
    est = estimate([YearPlan(2019, "2019-07-01", "2019-09-30", days, [])], zones, DetectConfig(years=(2019,)))
    assert est.days == 3 and est.chunk_days == 4 and est.pixel_days == 2 * est.pixels
    assert est.seconds == estimate_seconds(pixels=est.pixels, chunks=2, pixel_days=2 * est.pixels, chunk_days=4,
                                           seasons=1)
