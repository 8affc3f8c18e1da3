"""Bad and unusual input, tried as a new user would (issue 7): AOIs with heights, Google Earth
KML/KMZ, several layers, the antimeridian; Python API argument types."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import MultiPolygon, Polygon, box

from gli_toolbox import DetectConfig
from gli_toolbox.aoi import as_aoi, read_aoi
from gli_toolbox.cli import cli
from gli_toolbox.errors import AoiError, ConfigError, GliError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CATALOG = SAMPLE / "catalog.json"
BARBELLINO = SAMPLE / "barbellino.geojson"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _barbellino_2d():
    return read_aoi(BARBELLINO).geometry_wgs84


def _with_heights(geom, z=2210.0):
    return shapely.force_3d(geom, z)


# Google Earth writes lon,lat,altitude triples inside Folder/Placemark/Polygon.
_KML = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>Barbellino</name>
<Folder><name>My lakes</name><Placemark><name>AOI</name><Polygon><altitudeMode>clampToGround</altitudeMode>
<outerBoundaryIs><LinearRing><coordinates>{coords}</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>
</Folder></Document></kml>
"""


def _kml_text(geom) -> str:
    ring = geom.geoms[0].exterior if geom.geom_type == "MultiPolygon" else geom.exterior
    return _KML.format(coords=" ".join(f"{x:.7f},{y:.7f},2210" for x, y in ring.coords))


def _same_area(a, b, tol=1e-6) -> None:
    assert a.geometry_wgs84.symmetric_difference(b).area / b.area < tol


def test_geojson_with_heights_reads_as_2d(tmp_path):
    ref = _barbellino_2d()
    p = tmp_path / "z.geojson"
    gpd.GeoDataFrame(geometry=[_with_heights(ref)], crs="EPSG:4326").to_file(p)
    assert gpd.read_file(p).has_z.all()  # the file really has heights
    aoi = read_aoi(p)
    assert not aoi.geometry_wgs84.has_z
    _same_area(aoi, ref)


def test_polygonz_shapefile_reads_as_2d(tmp_path):
    ref = _barbellino_2d()
    p = tmp_path / "z.shp"
    gpd.GeoDataFrame(geometry=[_with_heights(ref)], crs="EPSG:4326").to_file(p)
    import pyogrio

    assert "Z" in pyogrio.read_info(p)["geometry_type"]
    aoi = read_aoi(p)
    assert not aoi.geometry_wgs84.has_z
    _same_area(aoi, ref)


@pytest.mark.parametrize("suffix", [".kml", ".kmz"])
def test_google_earth_kml_and_kmz_run_end_to_end(tmp_path, suffix):
    ref = _barbellino_2d()
    text = _kml_text(ref)
    if suffix == ".kml":
        p = tmp_path / "aoi.kml"
        p.write_text(text, encoding="utf-8")
    else:
        p = tmp_path / "aoi.kmz"
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("doc.kml", text)
    aoi = read_aoi(p)
    assert not aoi.geometry_wgs84.has_z
    _same_area(aoi, Polygon(ref.geoms[0].exterior) if ref.geom_type == "MultiPolygon" else Polygon(ref.exterior), tol=1e-4)  # 7 decimals in the KML
    out = tmp_path / "out"
    res = run("detect", "--aoi", p, "--stac", CATALOG, "--years", "2019", "--out", out)
    assert res.exit_code == 0, res.output
    assert (out / "lakes_2019.shp").exists()


def test_geopackage_with_several_layers_is_refused_with_their_names_then_chosen(tmp_path):
    p = tmp_path / "project.gpkg"
    gpd.GeoDataFrame(geometry=[box(74.0, 42.0, 74.01, 42.01)], crs="EPSG:4326").to_file(p, layer="roads_buffer")
    gpd.GeoDataFrame(geometry=[_barbellino_2d()], crs="EPSG:4326").to_file(p, layer="aoi_barbellino")
    with pytest.raises(AoiError, match="2 layers .*roads_buffer.*--aoi-layer"):
        read_aoi(p)
    res = run("search", "--aoi", p, "--stac", CATALOG, "--years", "2019")
    assert res.exit_code == 1 and "aoi_barbellino" in res.output and "--aoi-layer" in res.output
    assert "Traceback" not in res.output
    with pytest.raises(AoiError, match="no layer 'lakes'.*aoi_barbellino"):
        read_aoi(p, layer="lakes")
    _same_area(read_aoi(p, layer="aoi_barbellino"), _barbellino_2d())
    res = run("search", "--aoi", p, "--aoi-layer", "aoi_barbellino", "--stac", CATALOG, "--years", "2019")
    assert res.exit_code == 0, res.output
    assert "S2" in res.output
    out = tmp_path / "out"
    res = run("detect", "--aoi", p, "--aoi-layer", "aoi_barbellino", "--stac", CATALOG, "--years", "2019",
              "--out", out)
    assert res.exit_code == 0, res.output
    assert (out / "lakes_2019.shp").exists()


def test_rfc7946_split_across_antimeridian_is_refused_with_one_line(tmp_path):
    split = MultiPolygon([box(179.8, 66.0, 180.0, 66.1), box(-180.0, 66.0, -179.8, 66.1)])
    p = tmp_path / "chukotka.geojson"
    gpd.GeoDataFrame(geometry=[split], crs="EPSG:4326").to_file(p)
    res = run("detect", "--aoi", p, "--years", "2019", "--stac", "http://127.0.0.1:9/unused", "--out", tmp_path / "o")
    assert res.exit_code == 1
    assert "antimeridian" in res.output and "one AOI file for the part east of 180" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_one_ring_spanning_more_than_180_degrees_is_refused(tmp_path):
    # drawn across 180 in a tool that does not split: the ring goes the long way round
    ring = Polygon([(179.8, 66.0), (-179.8, 66.0), (-179.8, 66.1), (179.8, 66.1)])
    with pytest.raises(AoiError, match="split it at 180 degrees"):
        as_aoi(ring)
    p = tmp_path / "ring.geojson"
    gpd.GeoDataFrame(geometry=[ring], crs="EPSG:4326").to_file(p)
    res = run("search", "--aoi", p, "--years", "2019", "--stac", "http://127.0.0.1:9/unused")
    assert res.exit_code == 1 and "split it at 180 degrees" in res.output


def test_aoi_next_to_the_antimeridian_on_one_side_is_accepted():
    aoi = as_aoi(box(179.5, 66.0, 179.99, 66.1))
    assert aoi.centre[0] > 179


# --------------------------------------------------------------------------------------------------
# Python API types


@pytest.mark.parametrize(("value", "years"), [
    ("2019", (2019,)),
    ("2017-2019", (2017, 2018, 2019)),
    (2019, (2019,)),
    (range(2017, 2020), (2017, 2018, 2019)),
    ((2017, 2019), (2017, 2019)),  # a tuple is the explicit set of years, not a range
    ([2019, 2017], (2017, 2019)),
])
def test_years_accepts_the_clear_forms(value, years):
    assert DetectConfig(years=value).years == years


@pytest.mark.parametrize(("value", "match"), [
    (2.5, "float"),
    ("2019/2020", "expected YYYY"),
    ((2017, "2019"), "'2019' in"),
    ([], "at least one year"),
    (True, "bool"),
    (2012, "start in 2015"),
    (None, "NoneType"),
])
def test_years_of_wrong_type_say_what_to_pass(value, match):
    with pytest.raises(ConfigError, match=match) as info:
        DetectConfig(years=value)
    assert isinstance(info.value, GliError)


@pytest.mark.parametrize(("value", "months"), [("7-9", (7, 9)), (8, (8, 8)), ((7, 9), (7, 9)), ([6, 8], (6, 8))])
def test_months_accepts_text_int_and_pair(value, months):
    assert DetectConfig(years=2019, months=value).months == months


@pytest.mark.parametrize("value", ["July", 13, (9, 7), 7.5, (7, 8, 9)])
def test_months_wrong_say_what_to_pass(value):
    with pytest.raises(ConfigError, match="months"):
        DetectConfig(years=2019, months=value)


def test_cli_and_api_read_a_range_text_the_same_way():
    from gli_toolbox.config import parse_years

    assert DetectConfig(years="2017-2019").years == parse_years("2017-2019") == (2017, 2018, 2019)


def test_geodataframe_and_geoseries_as_aoi_run_detect():
    from gli_toolbox import detect

    gdf = gpd.read_file(BARBELLINO).to_crs("EPSG:32632")  # any CRS: reprojected
    res = detect(gdf, years="2019", months="7-9", stac=str(CATALOG), progress=False)
    assert len(res.lakes[2019]) >= 1
    aoi = as_aoi(gdf.geometry)
    _same_area(aoi, _barbellino_2d())


def test_aoi_of_wrong_type_or_without_crs_says_what_to_pass():
    with pytest.raises(AoiError, match="expected a file path, a GeoDataFrame"):
        as_aoi(12345)
    with pytest.raises(AoiError, match="no CRS"):
        as_aoi(gpd.GeoDataFrame(geometry=[box(74, 42, 74.1, 42.1)]))
    with pytest.raises(AoiError, match="not a GeoJSON geometry"):
        as_aoi({"type": "Polygon"})


def test_track_with_one_layer_warns_and_claims_no_status(tmp_path):
    import json

    src = tmp_path / "lakes_2019.gpkg"
    gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=[box(500000, 4400000, 500300, 4400200),
                                                     box(501000, 4400000, 501100, 4400100)],
                     crs="EPSG:32643").to_file(src)
    out = tmp_path / "o"
    res = run("track", src, "--out", out)
    assert res.exit_code == 0, res.output
    assert "change needs two periods" in res.output
    changes = gpd.read_file(out / "lake_changes.shp")
    assert len(changes) == 2 and (changes["status"] == "not_assessed").all()  # not "stable"
    doc = json.loads((out / "run.json").read_text())
    assert doc["status_counts"] == {"not_assessed": 2} and any("two periods" in w for w in doc["warnings"])


@pytest.mark.parametrize(("damage", "why"), [
    (lambda b: b[: len(b) * 2 // 3], "the file is damaged or truncated"),
    (lambda b: b"this is not a GeoTIFF" * 10, "not a readable raster"),
])
def test_damaged_band_file_is_named_with_what_is_wrong(tmp_path, damage, why):
    import json
    import shutil

    cat = tmp_path / "cat"
    shutil.copytree(SAMPLE, cat, ignore=shutil.ignore_patterns("*.py"))
    green = next((cat / "sentinel-2-c1-l2a").glob("*20190723*/B03.tif"))
    green.write_bytes(damage(green.read_bytes()))
    out = tmp_path / "out"
    res = run("detect", "--aoi", cat / "barbellino.geojson", "--stac", cat / "catalog.json", "--years", "2017-2019",
              "--out", out)
    assert res.exit_code == 3, res.output
    (line,) = json.loads((out / "run.json").read_text())["incomplete"]["2019"]
    assert f"{green}: {why}" in line
    assert "AssertionError" not in res.output and "CPLE_" not in res.output


def test_secrets_from_the_environment_are_redacted(monkeypatch):
    from gli_toolbox.errors import redact

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    text = ("cannot read s3://eodata/Sentinel-2/B03.jp2 with key AKIAIOSFODNN7EXAMPLE / "
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY; https://u:pw@host/x?token=abc123")
    clean = redact(text)
    for secret in ("AKIAIOSFODNN7EXAMPLE", "bPxRfiCYEXAMPLEKEY", "abc123", "u:pw"):
        assert secret not in clean
    assert "s3://eodata/Sentinel-2/B03.jp2" in clean


def test_kml_pins_next_to_the_polygon_are_ignored(tmp_path, caplog):
    ref = _barbellino_2d()
    text = _kml_text(ref).replace(
        "</Folder>",
        "<Placemark><name>camp</name><Point><coordinates>10.04,46.06,2300</coordinates></Point></Placemark></Folder>",
    )
    p = tmp_path / "with_pin.kml"
    p.write_text(text, encoding="utf-8")
    aoi = read_aoi(p)
    assert aoi.geometry_wgs84.geom_type in ("Polygon", "MultiPolygon")
    assert "not polygons (pins, paths) are ignored" in caplog.text
