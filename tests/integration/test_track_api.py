"""The library calls behind ``gli track`` and the run records: ``track_inventories`` +
``write_track_outputs``, warnings classes, ``DetectRecord`` reproducing ``run.json``, imports."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Polygon, box

import gli_toolbox
from gli_toolbox.export import write_track_outputs
from gli_toolbox.periods import Period
from gli_toolbox.records import (
    DetectRecord,
    GliWarning,
    NoSceneWarning,
    PeriodRecord,
    RepairedGeometryWarning,
    RunRecord,
    TrackingSummary,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
UTM = "EPSG:32643"
X0, Y0 = 620000, 4770000


def lakes(*boxes, crs=UTM):
    return gpd.GeoDataFrame(geometry=[box(*b) for b in boxes], crs=UTM).to_crs(crs)


def test_track_inventories_from_geodataframes_then_written(tmp_path):
    layers = {2016: lakes((X0, Y0, X0 + 400, Y0 + 300)),
              "20180801": lakes((X0, Y0, X0 + 400, Y0 + 450), crs="EPSG:4326")}
    with pytest.raises(gli_toolbox.GliError, match="per year and some per date"):
        gli_toolbox.track_inventories(layers)
    layers = {2016: lakes((X0, Y0, X0 + 400, Y0 + 300)), 2018: lakes((X0, Y0, X0 + 400, Y0 + 450), crs="EPSG:4326")}
    res = gli_toolbox.track_inventories(layers)
    assert res.periods == [Period.of(2016), Period.of(2018)]
    row = res.changes.iloc[0]
    assert row.status == "growing" and row.a_last == pytest.approx(0.18)
    # area uncertainty with the DetectConfig resolution (10 m) by default
    assert res.layers[Period.of(2016)].area_err.iloc[0] == pytest.approx(1400 / 10 * 50 * 0.6872 / 1e6)
    assert res.layer(2018) is res.layers[Period.of("2018")] and res.layer("2016") is res.layers[Period.of(2016)]
    with pytest.raises(KeyError, match="no layer for 2017"):
        res.layer(2017)
    run = res.run.to_dict()
    assert run["periods"] == ["2016", "2018"] and run["inputs"] == ["GeoDataFrame 2016", "GeoDataFrame 2018"]
    written = write_track_outputs(res, tmp_path / "out")
    names = {p.name for p in written}
    assert {"lakes_2016.shp", "lakes_2018.shp", "lake_changes.csv", "run.json", "inventory.gpkg"} <= names
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc["status_counts"] == {"growing": 1} and doc["command"] == "track"
    assert "lake_changes.csv" in doc["outputs"]


def test_layers_sharing_a_utm_zone_next_to_their_centre_keep_it():
    """Layers of a run over the 42N/43N border come in 42N (the AOI centre's zone) though the lakes'
    centre may fall in 43N: tracking keeps 42N, so the areas of unedited lakes stay those of the
    layers (it moved them to 43N, changing them by up to 0.1 %). Layers in Web Mercator (metres,
    but not areas) still go to the UTM zone of their centre."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32642", always_xy=True).transform(72.05, 41.5)  # in 43N
    layer = gpd.GeoDataFrame(geometry=[box(x, y, x + 400, y + 300)], crs="EPSG:32642")
    res = gli_toolbox.track_inventories({2019: layer, 2020: layer})
    assert res.changes.crs.to_epsg() == 32642
    assert res.layer(2019)["area_km2"].iloc[0] == pytest.approx(0.12, rel=1e-9)
    mercator = {2019: layer.to_crs("EPSG:3857"), 2020: layer.to_crs("EPSG:3857")}
    assert gli_toolbox.track_inventories(mercator).changes.crs.to_epsg() == 32643


def test_repaired_geometry_is_a_filterable_warning_with_the_same_text_in_run_json(tmp_path):
    bowtie = Polygon([(X0, Y0), (X0 + 300, Y0 + 300), (X0 + 300, Y0), (X0, Y0 + 300)])
    layers = {2016: lakes((X0, Y0, X0 + 300, Y0 + 300)),
              2017: gpd.GeoDataFrame(geometry=[bowtie], crs=UTM)}
    with pytest.warns(RepairedGeometryWarning, match="repaired 1 invalid geometry") as caught:
        res = gli_toolbox.track_inventories(layers)
    assert [str(w.message) for w in caught if issubclass(w.category, GliWarning)] == res.run.warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", RepairedGeometryWarning)  # filtered by kind, as with pystac-client
        again = gli_toolbox.track_inventories(layers)
    assert again.run.warnings == res.run.warnings


def test_run_record_warn_issues_and_records_once():
    rec = RunRecord()
    with pytest.warns(NoSceneWarning, match="no scene in 2018"):
        rec.warn(NoSceneWarning, "no scene in 2018")
    assert issubclass(NoSceneWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.warn(NoSceneWarning, "no scene in 2018")  # already recorded: not repeated
    assert rec.warnings == ["no scene in 2018"]


def test_detect_record_reproduces_the_run_json_of_detect():
    res = gli_toolbox.detect(SAMPLE / "barbellino.geojson", years=(2017, 2018, 2019), stac=str(SAMPLE / "catalog.json"),
                             progress=False)
    run = res.run
    rec = DetectRecord(
        created=run["created"], software=run["software"], warnings=list(run["warnings"]),
        parameters=run["parameters"], aoi=run["aoi"], stac=run["stac"], grid=run["grid"],
        years={k: PeriodRecord(**{**v, "season": tuple(v["season"])}) for k, v in run["years"].items()},
        terrain=run["terrain"], glaciers=run["glaciers"], skipped_assets=run["skipped_assets"],
        tracking=TrackingSummary.of(res.tracking), engine=run["engine"],
    )
    d = rec.to_dict()
    assert d["incomplete"] == {} and d["complete"] is True
    assert json.dumps(d) == json.dumps(run)  # same keys, same order, same values
    assert "reason" in d["years"]["2018"] and "n_lakes" not in d["years"]["2018"]
    failed = PeriodRecord(("2020-07-01", "2020-09-30"), failures=["2020-07-04 B08: HTTP 503 after 3 tries"])
    rec.years["2020"] = failed
    assert rec.to_dict()["incomplete"] == {"2020": ["2020-07-04 B08: HTTP 503 after 3 tries"]}
    assert rec.complete is False


def test_gli_track_does_not_import_odc_stac(tmp_path):
    for y, w in ((2016, 400), (2019, 600)):
        lakes((X0, Y0, X0 + w, Y0 + 300)).to_file(tmp_path / f"lakes_{y}.gpkg")
    code = (
        "import sys\nfrom gli_toolbox.cli import cli\n"
        f"cli(['track', {str(tmp_path / 'lakes_2016.gpkg')!r}, {str(tmp_path / 'lakes_2019.gpkg')!r}, "
        f"'--out', {str(tmp_path / 'out')!r}], standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('odc', 'pystac_client', 'xarray')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert pd.read_csv(tmp_path / "out" / "lake_changes.csv").status.tolist() == ["growing"]


def test_one_layer_warns_that_change_needs_two_periods(tmp_path):
    from click.testing import CliRunner

    from gli_toolbox.cli import cli
    from gli_toolbox.records import SinglePeriodWarning

    with pytest.warns(SinglePeriodWarning, match="change needs two periods") as caught:
        res = gli_toolbox.track_inventories({2019: lakes((X0, Y0, X0 + 400, Y0 + 300))})
    assert res.changes.status.tolist() == ["not_assessed"] and len(res.pairs) == 0
    assert res.run.warnings == [str(caught[0].message)]
    lakes((X0, Y0, X0 + 400, Y0 + 300)).to_file(tmp_path / "lakes_2019.shp")
    out = CliRunner().invoke(cli, ["track", str(tmp_path / "lakes_2019.shp"), "--out", str(tmp_path / "out")],
                             catch_exceptions=False)
    assert out.exit_code == 0 and "change needs two periods" in out.output
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc["status_counts"] == {"not_assessed": 1} and "change needs two periods" in doc["warnings"][0]
