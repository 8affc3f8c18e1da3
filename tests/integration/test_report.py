"""report.html: content from a real run, self-contained, and checked in headless Chromium.

The Chromium check (``browser.render``) records the page's own network requests; a control page
that loads an external image and style sheet proves the detector sees them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from browser import render
from click.testing import CliRunner
from PIL import Image

from gli_toolbox.cli import cli
from gli_toolbox.report import build_report


@pytest.fixture(scope="module")
def detect_run(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "barbellino"
    res = CliRunner().invoke(cli, ["detect", "--aoi", str(sample_data / "barbellino.geojson"), "--stac",
                                   str(sample_data / "catalog.json"), "--years", "2017-2019", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_detect_report_holds_the_run(detect_run: Path):
    page = (detect_run / "report.html").read_text(encoding="utf-8")
    run = json.loads((detect_run / "run.json").read_text())
    assert "report.html" in run["outputs"]
    assert "Glacial lakes — barbellino" in page
    # lake counts and areas per year from the written layers, with their uncertainty
    import geopandas as gpd

    for year in (2017, 2019):
        layer = gpd.read_file(detect_run / f"lakes_{year}.shp")
        area = f"{layer['area_km2'].sum():.4f}".replace(".", r"\.")
        assert re.search(rf"<td>{year}</td><td>{len(layer)}</td><td class=\"n\">{area}</td><td class=\"n\">0\.0\d{{3}}</td>",
                         page)
    # scenes per year: 2018 has none and says why; the change table names the growing lake
    assert "2018: no sentinel-2-c1-l2a scenes intersect the AOI" in page
    lake = pd.read_csv(detect_run / "lake_changes.csv")["lake_id"].item()
    assert f"<td>{lake}</td><td>growing</td>" in page
    assert "McFeeters" in page and "Copernicus Sentinel data 2017, 2019" in page
    # the water method of the run (multi by default), with its sources: the report said "water index
    # ndwi, threshold 0.2" whatever the method
    assert run["parameters"]["method"] == "multi"
    assert "<dt>water method</dt><dd>multi: seeded test on NDWI, MNDWI, NIR, SWIR1" in page
    assert "Li, J. and Sheng, Y. (2012)" in page and "Zhu, Z. and Woodcock, C. E. (2012)" in page
    assert "<dt>threshold</dt>" not in page
    # self-contained: three embedded PNG figures, no reference to anything outside the file
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page


def test_track_writes_a_report_with_its_warnings(detect_run: Path, tmp_path: Path):
    out = tmp_path / "changes"
    res = CliRunner().invoke(cli, ["track", str(detect_run / "lakes_2017.shp"), str(detect_run / "lakes_2019.shp"),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "lakes_2017.shp" in page and "Changes 2017–2019" in page
    assert page.count('src="data:image/png;base64,') == 3


def test_a_threshold_run_names_its_index_and_threshold_and_not_the_multi_sources():
    run = {"command": "detect", "parameters": {"method": "threshold", "index": "mndwi", "ndwi_threshold": 0.1},
           "aoi": {"source": "naryn.geojson"}, "warnings": []}
    page = build_report(run, layers={})
    assert "<dt>water method</dt><dd>threshold: MNDWI above 0.1</dd>" in page
    assert "Li, J. and Sheng" not in page and "Xu, H. (2006)" in page
    # a run over two UTM zones names both grids (it showed the first zone's only) and the layers' CRS
    run["zones"] = [{"zone": "42N", "crs": "EPSG:32642"}, {"zone": "43N", "crs": "EPSG:32643"}]
    run["grid"] = {"crs": "EPSG:32642", "resolution_m": 10.0, "crs_of_layers": "EPSG:32642"}
    page = build_report(run, layers={})
    assert "<dt>grids</dt><dd>UTM 42N (EPSG:32642), UTM 43N (EPSG:32643), 10 m</dd>" in page
    assert "<dt>layers in</dt><dd>EPSG:32642</dd>" in page and "<dt>grid</dt>" not in page


def test_incomplete_periods_are_reported():
    run = {"command": "detect", "aoi": {"source": "naryn.geojson", "area_km2": 12.0},
           "incomplete": {"2021": ["S2B_43TFM_20210812: HTTP 503 after 4 tries"]}, "warnings": []}
    page = build_report(run, layers={})
    assert "2021 is incomplete" in page and "HTTP 503 after 4 tries" in page
    assert "No warnings" not in page


def test_report_renders_in_chromium_without_any_request(detect_run: Path, tmp_path: Path, repo_root: Path):
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="https://example.org/x.png">'
                       '<link rel="stylesheet" href="http://fonts.example.com/a.css"></body></html>')
    seen, _ = render(control, tmp_path)
    assert {"https://example.org/x.png", "http://fonts.example.com/a.css"} <= seen  # the detector works

    urls, dom = render(detect_run / "report.html", tmp_path)
    assert urls == set()
    assert dom.count("<img") == 3 and "Largest changes" in dom
    shot = tmp_path / "report.png"
    urls, _ = render(detect_run / "report.html", tmp_path, screenshot=shot)
    assert urls == set()
    with Image.open(shot) as im:
        colours = im.convert("RGB").resize((64, 64)).getcolors(64 * 64)
    assert colours is not None and len(colours) > 20  # text and figures were drawn, not a blank page
