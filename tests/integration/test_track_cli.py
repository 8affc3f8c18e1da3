"""`gli track` on existing inventories in several formats and CRSs, and the change files of `gli detect`."""

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner
from shapely.geometry import LineString, Polygon, box

from gli_toolbox.cli import cli

ROOT = Path(__file__).resolve().parents[2]
UTM = "EPSG:32643"  # Ile Alatau / northern Tien Shan


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def lakes(*boxes, crs=UTM, **cols):
    g = gpd.GeoDataFrame(cols, geometry=[box(*b) for b in boxes], crs=UTM)
    return g.to_crs(crs)


X0, Y0 = 620000, 4770000  # about 76.4 E, 43.1 N


def test_track_mixed_formats_and_crs(tmp_path):
    a = (X0, Y0, X0 + 400, Y0 + 300)
    b = (X0 + 2000, Y0, X0 + 2200, Y0 + 200)
    lakes(a, b).to_file(tmp_path / "lakes_2016.shp")
    lakes((X0, Y0, X0 + 400, Y0 + 450), b, crs="EPSG:4326").to_file(tmp_path / "glacial_lakes_2018.geojson")
    lakes((X0, Y0, X0 + 400, Y0 + 600), crs="EPSG:32644").to_file(tmp_path / "inv2020.gpkg")
    out = tmp_path / "out"
    res = run("track", tmp_path / "lakes_2016.shp", tmp_path / "glacial_lakes_2018.geojson", tmp_path / "inv2020.gpkg",
              "--out", out)
    assert res.exit_code == 0, res.output
    ch = pd.read_csv(out / "lake_changes.csv")
    assert len(ch) == 2
    big = ch.sort_values("a_first").iloc[-1]
    small = ch.sort_values("a_first").iloc[0]
    assert big.status == "growing" and big.signif == 1 and big.n_years == 3
    assert big.a_first == pytest.approx(0.12, rel=1e-3) and big.a_last == pytest.approx(0.24, rel=1e-3)
    # least-squares rate over 2016, 2018, 2020 with areas 0.12, 0.18, 0.24
    assert big.rate_yr == pytest.approx(0.03, rel=1e-3)  # +0.06 km2 per 2 years
    assert small.status == "vanished" and small.last_yr == 2018
    for y in (2016, 2018, 2020):
        g = gpd.read_file(out / f"lakes_{y}.shp")
        assert g.crs.to_epsg() == 32643  # UTM zone of the data centre (76.4 E)
        assert {"lake_id", "year", "area_km2", "perim_km", "area_err", "lon", "lat"} <= set(g.columns)
        assert big.lake_id in set(g.lake_id)
    areas = pd.read_csv(out / "lake_areas.csv")
    assert list(areas.columns) == ["lake_id", "year", "area_km2", "area_err"]
    assert len(areas) == 5
    changes_shp = gpd.read_file(out / "lake_changes.shp")
    assert set(changes_shp.lake_id) == set(ch.lake_id)
    # geometry of a lake's change record is the union of its outlines
    assert changes_shp.set_index("lake_id").loc[big.lake_id].geometry.area == pytest.approx(400 * 600, rel=1e-3)
    for png in ("total_area.png", "top_changes.png", "status_map.png"):
        assert (out / "figures" / png).stat().st_size > 10_000


def test_year_field_splits_one_file(tmp_path):
    g = lakes((X0, Y0, X0 + 300, Y0 + 300), (X0, Y0, X0 + 300, Y0 + 300), survey=[2019, 2021])
    g.to_file(tmp_path / "all_years.gpkg")
    out = tmp_path / "out"
    res = run("track", tmp_path / "all_years.gpkg", "--year-field", "survey", "--out", out)
    assert res.exit_code == 0, res.output
    ch = pd.read_csv(out / "lake_changes.csv")
    assert len(ch) == 1 and ch.iloc[0].status == "stable" and ch.iloc[0].n_years == 2


def test_existing_ids_are_kept_for_edited_outlines(tmp_path):
    """Partners edit exported outlines in QGIS and re-run the change analysis."""
    out1 = tmp_path / "detect"
    assert run("detect", "--aoi", ROOT / "sample_data/barbellino.geojson", "--stac", ROOT / "sample_data/catalog.json",
               "--years", "2017-2019", "--out", out1).exit_code == 0
    ids = set(gpd.read_file(out1 / "lakes_2017.shp").lake_id)
    edited = gpd.read_file(out1 / "lakes_2019.shp")
    edited["geometry"] = edited.buffer(-10).buffer(0)  # shrink the 2019 outline by one pixel
    edited["note"] = "отредактировано"  # Cyrillic attribute, as partners write
    edited.to_file(tmp_path / "lakes_2019_edited.shp", encoding="UTF-8")
    out2 = tmp_path / "track"
    res = run("track", out1 / "lakes_2017.shp", tmp_path / "lakes_2019_edited.shp", "--out", out2)
    assert res.exit_code == 0, res.output
    ch = pd.read_csv(out2 / "lake_changes.csv")
    assert set(ch.lake_id) == ids
    kept = gpd.read_file(out2 / "lakes_2019.shp")
    assert (kept["note"] == "отредактировано").all()  # the partner's attribute survives, UTF-8 intact
    assert ch.iloc[0].a_last < gpd.read_file(out1 / "lakes_2019.shp").area_km2.sum()


@pytest.mark.parametrize("case,expected", [
    ("no_year", "cannot tell the year"),
    ("mixed", "mixes geometry types"),
    ("empty", "no features"),
    ("same_year", "both for 2019"),
    ("missing", "not found"),
    ("years_and_dates", "per year and some per date"),
    ("table", "no geometry"),
])
def test_track_bad_input(tmp_path, case, expected):
    p = tmp_path / "lakes_2019.gpkg"
    files = [p]
    if case == "no_year":
        p = tmp_path / "lakes.gpkg"
        lakes((X0, Y0, X0 + 100, Y0 + 100)).to_file(p)
        files = [p]
    elif case == "mixed":
        gpd.GeoDataFrame(geometry=[box(X0, Y0, X0 + 100, Y0 + 100), LineString([(X0, Y0), (X0 + 5, Y0 + 5)])],
                         crs=UTM).to_file(p)
    elif case == "empty":
        gpd.GeoDataFrame({"a": []}, geometry=gpd.GeoSeries([], crs=UTM), crs=UTM).to_file(p, geometry_type="Polygon")
    elif case == "same_year":
        lakes((X0, Y0, X0 + 100, Y0 + 100)).to_file(p)
        q = tmp_path / "other_2019.geojson"
        lakes((X0, Y0, X0 + 100, Y0 + 100)).to_file(q)
        files = [p, q]
    elif case == "missing":
        files = [tmp_path / "nope_2019.shp"]
    elif case == "years_and_dates":
        lakes((X0, Y0, X0 + 100, Y0 + 100)).to_file(p)
        q = tmp_path / "lakes_20200801.gpkg"
        lakes((X0, Y0, X0 + 100, Y0 + 100)).to_file(q)
        files = [p, q]
    elif case == "table":
        p = tmp_path / "areas_2019.csv"
        p.write_text("lake_id,area_km2\nA,0.1\n")
        files = [p]
    out = tmp_path / "out"
    res = run("track", *files, "--out", out)
    assert res.exit_code != 0 and expected in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_invalid_geometry_is_repaired_and_reported(tmp_path):
    bowtie = Polygon([(X0, Y0), (X0 + 200, Y0 + 200), (X0 + 200, Y0), (X0, Y0 + 200)])
    gpd.GeoDataFrame(geometry=[bowtie], crs=UTM).to_file(tmp_path / "lakes_2019.gpkg")
    lakes((X0, Y0, X0 + 200, Y0 + 200)).to_file(tmp_path / "lakes_2020.gpkg")
    out = tmp_path / "out"
    res = run("track", tmp_path / "lakes_2019.gpkg", tmp_path / "lakes_2020.gpkg", "--out", out)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "run.json").read_text())
    assert any("repaired 1 invalid geometry" in w and "Self-intersection" in w for w in doc["warnings"])
    g = gpd.read_file(out / "lakes_2019.shp")
    assert g.is_valid.all() and g.area_km2.sum() == pytest.approx(0.02, rel=1e-6)  # two triangles of 200 x 100 / 2


def test_detect_barbellino_reservoir_is_one_growing_lake(tmp_path):
    out = tmp_path / "out"
    res = run("detect", "--aoi", ROOT / "sample_data/barbellino.geojson", "--stac", ROOT / "sample_data/catalog.json",
              "--years", "2017-2019", "--out", out)
    assert res.exit_code == 0, res.output
    ch = pd.read_csv(out / "lake_changes.csv")
    assert len(ch) == 1
    row = ch.iloc[0]
    assert row.status == "growing" and row.signif == 1 and row.first_yr == 2017 and row.last_yr == 2019
    a17 = gpd.read_file(out / "lakes_2017.shp")
    a19 = gpd.read_file(out / "lakes_2019.shp")
    assert a17.lake_id.tolist() == a19.lake_id.tolist() == [row.lake_id]
    assert row.d_area == pytest.approx(a19.area_km2.sum() - a17.area_km2.sum(), abs=1e-6)
    assert abs(row.d_area) > (a17.area_err.iloc[0] ** 2 + a19.area_err.iloc[0] ** 2) ** 0.5


def test_track_reads_every_layer_of_a_detect_geopackage(tmp_path):
    out1 = tmp_path / "detect"
    assert run("detect", "--aoi", ROOT / "sample_data/barbellino.geojson", "--stac", ROOT / "sample_data/catalog.json",
               "--years", "2017-2019", "--out", out1).exit_code == 0
    out2 = tmp_path / "track"
    res = run("track", out1 / "inventory.gpkg", "--out", out2)
    assert res.exit_code == 0, res.output
    a = pd.read_csv(out1 / "lake_changes.csv")
    b = pd.read_csv(out2 / "lake_changes.csv")
    # the same change analysis from the exported GeoPackage as from the detection itself
    assert a[["lake_id", "status", "signif", "first_yr", "last_yr"]].values.tolist() == \
        b[["lake_id", "status", "signif", "first_yr", "last_yr"]].values.tolist()
    assert b.a_last.iloc[0] == pytest.approx(a.a_last.iloc[0])


def test_web_mercator_inputs_give_true_areas(tmp_path):
    lakes((X0, Y0, X0 + 400, Y0 + 300), crs="EPSG:3857").to_file(tmp_path / "lakes_2016.gpkg")
    lakes((X0, Y0, X0 + 400, Y0 + 300), crs="EPSG:3857").to_file(tmp_path / "lakes_2017.gpkg")
    out = tmp_path / "out"
    assert run("track", tmp_path / "lakes_2016.gpkg", tmp_path / "lakes_2017.gpkg", "--out", out).exit_code == 0
    g = gpd.read_file(out / "lakes_2016.shp")
    assert g.crs.to_epsg() == 32643 and g.area_km2.iloc[0] == pytest.approx(0.12, rel=1e-3)
