"""Open the exported layers in a real (headless) QGIS, as partners do.

QGIS's Python bindings belong to Debian's /usr/bin/python3, so the check runs there as a
subprocess (see shared/recipes/qgis-headless.md).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gli_toolbox.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PY = "/usr/bin/python3"

QGIS_SCRIPT = r"""
import json, sys
from qgis.core import QgsApplication, QgsVectorLayer, QgsProject, QgsDistanceArea
app = QgsApplication([], False)
app.initQgis()
out = {}
for uri in sys.argv[1:]:
    layer = QgsVectorLayer(uri, "lakes", "ogr")
    feats = list(layer.getFeatures())
    out[uri] = {
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "fields": [f.name() for f in layer.fields()],
        "count": layer.featureCount(),
        "areas_m2": [f.geometry().area() for f in feats],
        "area_km2": [f["area_km2"] if "area_km2" in [x.name() for x in layer.fields()] else None for f in feats],
        "ids": [f["lake_id"] for f in feats],
        "geom_valid": [f.geometry().isGeosValid() for f in feats],
    }
    del feats, layer
QgsProject.instance().clear()
app.exitQgis()
print(json.dumps(out))
"""


def _have_qgis() -> bool:
    if not Path(SYSTEM_PY).exists():
        return False
    return subprocess.run([SYSTEM_PY, "-c", "import qgis.core"], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.qgis


@pytest.fixture(scope="module")
def qgis_available():
    if not _have_qgis():
        if os.environ.get("GLI_REQUIRE_SERVICES") == "1":
            pytest.fail("QGIS Python bindings are required (GLI_REQUIRE_SERVICES=1): apt-get install python3-qgis")
        pytest.skip("QGIS not installed (apt-get install python3-qgis qgis-providers)")


def test_exported_layers_open_in_qgis(qgis_available, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["detect", "--aoi", str(ROOT / "sample_data/barbellino.geojson"), "--stac",
                                   str(ROOT / "sample_data/catalog.json"), "--years", "2017-2019", "--out", str(out)])
    assert res.exit_code == 0, res.output
    uris = [str(out / "lakes_2019.shp"), f"{out / 'inventory.gpkg'}|layername=lakes_2017", str(out / "lake_changes.shp")]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([SYSTEM_PY, "-c", QGIS_SCRIPT, *uris], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    changes = info.pop(uris[-1])
    assert changes["valid"] and changes["crs"] == "EPSG:32632" and changes["count"] == 1
    assert {"lake_id", "first_yr", "last_yr", "status", "signif", "rate_yr"} <= set(changes["fields"])
    for uri in uris[:-1]:
        layer = info[uri]
        assert layer["valid"] and layer["crs"] == "EPSG:32632"
        for f in ("lake_id", "year", "area_km2", "perim_km", "area_err", "lon", "lat", "n_obs", "edge", "n_scenes"):
            assert f in layer["fields"]
        assert layer["count"] >= 1 and all(layer["geom_valid"])
        # QGIS's own planar area of each polygon equals the area attribute
        for a_m2, a_km2 in zip(layer["areas_m2"], layer["area_km2"]):
            assert a_m2 == pytest.approx(a_km2 * 1e6, rel=1e-6)
        assert all(i.startswith("GL010") for i in layer["ids"])


# --- styled outputs, the project, rendering (issue 10) ---------------------------------------------

CHECK = Path(__file__).resolve().parent / "qgis_check.py"


def run_qgis(job: dict, tmp_path: Path) -> dict:
    """Run qgis_check.py with ``job`` in Debian's QGIS and return its JSON answer."""
    job_file = tmp_path / f"job_{len(list(tmp_path.glob('job_*.json')))}.json"
    job_file.write_text(json.dumps(job), encoding="utf-8")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([SYSTEM_PY, str(CHECK), str(job_file)], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def masks_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qgis") / "out"
    res = CliRunner().invoke(cli, ["detect", "--aoi", str(ROOT / "sample_data/barbellino.geojson"), "--stac",
                                   str(ROOT / "sample_data/catalog.json"), "--years", "2017-2019", "--out", str(out),
                                   "--save-masks"])
    assert res.exit_code == 0, res.output
    return out


def test_every_output_is_valid_and_styled_in_qgis(qgis_available, masks_run, tmp_path):
    import pyogrio

    from gli_toolbox.schema import FIELDS
    from gli_toolbox.styles import COUNT_CLASSES, STATUS_STYLES, WATER_CLASSES

    out = masks_run
    gpkg = out / "inventory.gpkg"
    vec = [str(p) for p in sorted(out.glob("*.shp"))]
    vec += [f"{gpkg}|layername={n}" for n in ("lakes_2017", "lakes_2019", "lake_changes", "lakes_all")]
    ras = [str(p) for p in sorted(out.glob("*.tif"))]
    assert len(vec) == 7 and len(ras) == 4
    info = run_qgis({"layers": [[u, "ogr"] for u in vec] + [[u, "gdal"] for u in ras], "reload_default_style": True},
                    tmp_path)["layers"]
    for uri in vec:
        lyr = info[uri]
        path, _, layer = uri.partition("|layername=")
        expected = pyogrio.read_info(path, layer=layer or None)
        assert lyr["valid"] and lyr["crs"] == "EPSG:32632", uri
        assert lyr["count"] == expected["features"] >= 1, uri
        name = layer or Path(path).stem
        # styled by the .qml beside the shapefile / the GeoPackage's default style, not QGIS's random default
        if name == "lake_changes":
            assert lyr["renderer"] == "categorizedSymbol"
            assert lyr["categories"][: len(STATUS_STYLES)] == list(STATUS_STYLES)
            assert lyr["legend"][: len(STATUS_STYLES)] == [label for _, label in STATUS_STYLES.values()]
            assert set(lyr["values"]["status"]) <= set(STATUS_STYLES)
        else:
            assert lyr["renderer"] == "singleSymbol" and lyr["labels"] and lyr["label_field"] == "lake_id", uri
        # every known field has its alias with unit
        for field in lyr["fields"]:
            if field in FIELDS:
                assert lyr["aliases"][field] == FIELDS[field].alias, (uri, field)
        assert lyr["aliases"].get("area_km2", "Area (km²)") == "Area (km²)"
    # shapefile fields fit the values: 6 decimals for km2 and degrees, not 15
    shp = info[str(out / "lakes_2019.shp")]
    assert shp["widths"]["area_km2"][1] == 6 and shp["widths"]["lon"][1] == 6 and shp["widths"]["perim_km"][1] == 3
    assert shp["widths"]["area_km2"][0] <= 13 and shp["widths"]["lake_id"][0] == 16
    assert shp["display_2_0884"] == "2.088400"
    # lakes_all: every period with a real date; the stored default style carries the temporal settings
    all_uri = f"{gpkg}|layername=lakes_all"
    assert info[all_uri]["widths"]["date"][2].lower() == "date"
    assert sorted(set(info[all_uri]["values"]["date"])) == ["2017-07-01", "2019-07-01"]
    assert info[all_uri]["temporal_after_default_style"] == [True, 2, "date", "date_end"]
    for uri in ras:
        lyr = info[uri]
        assert lyr["valid"] and lyr["crs"] == "EPSG:32632", uri
        if Path(uri).stem.startswith("water_"):
            assert lyr["renderer"] == "paletted"
            assert lyr["legend"] == [label for _, label in WATER_CLASSES.values()]
        else:
            assert lyr["renderer"] == "singlebandpseudocolor"
            assert lyr["legend"] == [label for _, _, label in COUNT_CLASSES]


def test_water_mask_has_its_own_colour_table(masks_run):
    import rasterio

    from gli_toolbox.styles import WATER_CLASSES

    with rasterio.open(masks_run / "water_2019.tif") as src:
        cmap = src.colormap(1)
        assert src.nodata == 255
    for value, (colour, _) in WATER_CLASSES.items():
        r, g, b = cmap[value][:3]
        assert f"#{r:02x}{g:02x}{b:02x}" == colour
    assert len({cmap[v][:3] for v in WATER_CLASSES}) == len(WATER_CLASSES)  # all different


def test_project_opens_everything_from_a_moved_copy(qgis_available, masks_run, tmp_path):
    """The folder zipped, e-mailed and unpacked elsewhere: the project still finds every layer."""
    import shutil
    import zipfile

    zipped = shutil.make_archive(str(tmp_path / "mail"), "zip", masks_run)
    moved = tmp_path / "unpacked elsewhere"
    zipfile.ZipFile(zipped).extractall(moved)
    res = run_qgis({"project": str(moved / "inventory.qgz")}, tmp_path)["project"]
    assert res["read"] and res["crs"] == "EPSG:32632" and res["absolute_paths"] is False
    assert [g[0] for g in res["groups"]] == ["Lakes by year", "Lake change", "All periods (temporal controller)",
                                             "Water masks", "Valid observations"]
    groups = {g[0]: (g[1], g[2]) for g in res["groups"]}
    assert groups["Lakes by year"] == (["lakes_2019", "lakes_2017"], [True, False])  # newest first and shown
    assert groups["Water masks"] == (["water_2019", "water_2017"], [True, False])
    assert groups["All periods (temporal controller)"][0] == ["lakes_all"]
    assert set(res["layers"]) == {"lakes_2017", "lakes_2019", "lake_changes", "lakes_all", "water_2017", "water_2019",
                                  "nobs_2017", "nobs_2019"}
    for name, lyr in res["layers"].items():
        assert lyr["valid"] and lyr["crs"] == "EPSG:32632", name
        assert res["sources"][name].startswith(str(moved)), res["sources"][name]
    assert res["layers"]["lake_changes"]["renderer"] == "categorizedSymbol"
    assert res["layers"]["water_2019"]["renderer"] == "paletted"
    assert res["layers"]["water_2019"]["use_src_nodata"] is False  # never observed drawn in its colour
    assert res["layers"]["nobs_2019"]["renderer"] == "singlebandpseudocolor"
    assert res["layers"]["lakes_all"]["temporal"] == [True, 2, "date", "date_end"]
    assert res["layers"]["lakes_all"]["count"] == 2
    # the temporal controller: whole years, one year per frame (QgsUnitTypes.TemporalYears == 7)
    assert res["time"] == ["2017-01-01", "2020-01-01", 1.0, 7]


def _near(c, hex_colour, tol=6):
    want = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    return all(abs(a - b) <= tol for a, b in zip(c, want))


def test_rendered_project_shows_growth_and_never_observed(qgis_available, masks_run, tmp_path):
    import geopandas as gpd
    import numpy as np
    import rasterio
    import shapely

    from gli_toolbox.styles import STATUS_STYLES, WATER_CLASSES

    out = masks_run
    changes = gpd.read_file(out / "lake_changes.shp")
    growing = changes[changes.status == "growing"]
    assert len(growing) == 1  # Barbellino reservoir: 0.0136 -> 0.0211 km2
    inner = growing.geometry.iloc[0].buffer(-12)
    with rasterio.open(out / "water_2019.tif") as src:
        cls = src.read(1)
        b = src.bounds
        xs, ys = np.meshgrid(np.arange(src.width) + 0.5, np.arange(src.height) + 0.5)
        mx, my = src.transform * (xs, ys)
    pts = shapely.points(mx.ravel(), my.ravel())
    in_lake = shapely.contains(inner, pts)
    lakes_union = shapely.union_all(list(changes.geometry) + list(gpd.read_file(out / "lakes_2019.shp").geometry))
    never = (cls.ravel() == 255) & (shapely.distance(lakes_union, pts) > 25)
    assert in_lake.sum() >= 20 and never.sum() >= 20
    rng = np.random.default_rng(0)
    lake_pts = [[float(mx.ravel()[i]), float(my.ravel()[i])] for i in rng.choice(np.flatnonzero(in_lake), 30, replace=False)]
    never_pts = [[float(mx.ravel()[i]), float(my.ravel()[i])] for i in rng.choice(np.flatnonzero(never), 30, replace=False)]
    png = tmp_path / "project.png"
    extent = [b.left, b.bottom, b.right, b.top]
    h = 600
    w = round(h * (b.right - b.left) / (b.top - b.bottom))
    res = run_qgis({"project": str(out / "inventory.qgz"),
                    "render": {"png": str(png), "size": [w, h], "extent": extent,
                               "points": {"growing": lake_pts, "never": never_pts}}}, tmp_path)
    r = res["render"]
    assert r["layers"] == ["lakes_2019", "lake_changes", "water_2019"]
    assert png.stat().st_size > 1000
    growing_hex = STATUS_STYLES["growing"][0]
    share = np.mean([_near(c, growing_hex) for c in r["colours"]["growing"]])
    assert share >= 0.8, r["colours"]["growing"]  # a few may sit under the lake_id label
    grey, water = WATER_CLASSES[255][0], WATER_CLASSES[1][0]
    assert all(_near(c, grey) for c in r["colours"]["never"]), r["colours"]["never"]
    assert not any(_near(c, water, tol=40) for c in r["colours"]["never"])


def test_partner_cyrillic_attributes_survive_in_qgis(qgis_available, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    x0, y0 = 620000, 4770000  # northern Tien Shan, UTM 43N
    names = ["Озеро Ала-Кёль", "Көл №2"]
    for year, grow in ((2018, 0), (2020, 200)):
        g = gpd.GeoDataFrame({"name": names}, geometry=[box(x0, y0, x0 + 400, y0 + 300 + grow),
                                                         box(x0 + 2000, y0, x0 + 2200, y0 + 200)], crs="EPSG:32643")
        g.to_file(tmp_path / f"inv_{year}.gpkg")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["track", str(tmp_path / "inv_2018.gpkg"), str(tmp_path / "inv_2020.gpkg"),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "inventory.qgz").exists() and (out / "lakes_2020.qml").exists()
    uris = [str(out / "lakes_2020.shp"), f"{out / 'inventory.gpkg'}|layername=lakes_2020",
            f"{out / 'inventory.gpkg'}|layername=lakes_all"]
    info = run_qgis({"layers": [[u, "ogr"] for u in uris], "project": str(out / "inventory.qgz")}, tmp_path)
    for uri in uris:
        assert info["layers"][uri]["valid"]
        assert set(names) <= set(info["layers"][uri]["values"]["name"]), info["layers"][uri]["values"]
    # the shapefile's text field is as wide as the longest name in UTF-8 bytes, not 80 or 254
    assert info["layers"][uris[0]]["widths"]["name"][0] == max(len(n.encode()) for n in names)
    proj = info["project"]
    assert proj["read"] and proj["crs"] == "EPSG:32643"
    assert proj["layers"]["lake_changes"]["values"]["status"] == ["growing", "stable"] or \
        sorted(proj["layers"]["lake_changes"]["values"]["status"]) == ["growing", "stable"]
    assert proj["time"][:2] == ["2018-01-01", "2021-01-01"]


def test_docs_figure_of_the_project(qgis_available, masks_run, tmp_path):
    """The project as a page with map and legend; GLI_UPDATE_DOCS=1 refreshes docs/img/qgis_project.png."""
    import shutil

    import rasterio

    with rasterio.open(masks_run / "water_2019.tif") as src:
        b = src.bounds
    png = tmp_path / "qgis_project.png"
    map_h = 150.0
    map_w = map_h * (b.right - b.left) / (b.top - b.bottom)
    res = run_qgis({"project": str(masks_run / "inventory.qgz"),
                    "figure": {"png": str(png), "extent": [b.left, b.bottom, b.right, b.top], "map_mm": map_w,
                               "page_mm": [map_w + 100, map_h + 18],
                               "title": "Lago del Barbellino, sample data: lake change 2017-2019 in inventory.qgz"}},
                   tmp_path)
    assert res["figure"]["ok"] and res["figure"]["legend_layers"] == ["lakes_2019", "lake_changes", "water_2019"]
    assert png.stat().st_size > 10_000
    if os.environ.get("GLI_UPDATE_DOCS") == "1":
        shutil.copy(png, ROOT / "docs/img/qgis_project.png")


def test_docs_list_every_field_and_status():
    from gli_toolbox.schema import FIELDS
    from gli_toolbox.styles import STATUS_STYLES

    doc = (ROOT / "docs/qgis.md").read_text(encoding="utf-8")
    for spec in FIELDS.values():
        assert f"| `{spec.name}` |" in doc and spec.alias in doc and spec.alias_ru in doc, spec.name
    for status, (colour, label) in STATUS_STYLES.items():
        assert f"| `{status}` |" in doc and colour in doc and label in doc, status


def test_per_scene_outputs_play_by_acquisition_date(qgis_available, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["detect", "--aoi", str(ROOT / "sample_data/barbellino.geojson"), "--stac",
                                   str(ROOT / "sample_data/catalog.json"), "--years", "2017-2019", "--per-scene",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    info = run_qgis({"project": str(out / "inventory.qgz"),
                     "layers": [[str(out / "lakes_20190723.shp"), "ogr"]]}, tmp_path)
    shp = info["layers"][str(out / "lakes_20190723.shp")]
    assert shp["widths"]["date"][2] == "Date" and shp["values"]["date"] == ["2019-07-23"]  # a real date field
    proj = info["project"]
    assert proj["read"] and proj["groups"][0][1] == ["lakes_20190723", "lakes_20170703"]
    assert proj["layers"]["lakes_all"]["values"]["date"] == ["2017-07-03", "2019-07-23"]
    assert proj["layers"]["lakes_all"]["temporal"] == [True, 2, "date", "date_end"]


def test_every_change_status_is_drawn_in_its_colour(qgis_available, tmp_path):
    """gli track on synthetic inventories: a growing, shrinking, stable, new and vanished lake, each
    drawn by QGIS in its legend colour."""
    import geopandas as gpd
    import numpy as np
    import shapely
    from shapely.geometry import box

    from gli_toolbox.styles import STATUS_STYLES

    x0, y0 = 620000, 4770000
    lakes = {  # status: {year: (width, height)}
        "growing": {2018: (400, 300), 2020: (400, 450), 2022: (400, 600)},
        "shrinking": {2018: (300, 300), 2020: (300, 220), 2022: (300, 150)},
        "stable": {2018: (250, 250), 2020: (250, 250), 2022: (250, 250)},
        "new": {2020: (300, 200), 2022: (300, 200)},
        "vanished": {2018: (300, 300)},
    }
    for year in (2018, 2020, 2022):
        geoms = [box(x0 + 1500 * i, y0, x0 + 1500 * i + wh[year][0], y0 + wh[year][1])
                 for i, wh in enumerate(lakes.values()) if year in wh]
        gpd.GeoDataFrame(geometry=geoms, crs="EPSG:32643").to_file(tmp_path / f"lakes_{year}.gpkg")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["track", *[str(tmp_path / f"lakes_{y}.gpkg") for y in (2018, 2020, 2022)],
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    changes = gpd.read_file(out / "lake_changes.shp")
    by_status = {}
    for i, status in enumerate(lakes):
        hit = changes[changes.intersects(box(x0 + 1500 * i, y0, x0 + 1500 * i + 10, y0 + 10))]
        assert hit.status.tolist() == [status]
        by_status[status] = hit.geometry.iloc[0].buffer(-30)
    rng = np.random.default_rng(1)
    points = {}
    for status, inner in by_status.items():
        x_min, y_min, x_max, y_max = inner.bounds
        cand = shapely.points(rng.uniform(x_min, x_max, 400), rng.uniform(y_min, y_max, 400))
        inside = [p for p in cand if inner.contains(p)][:25]
        points[status] = [[p.x, p.y] for p in inside]
    b = changes.total_bounds
    extent = [b[0] - 200, b[1] - 200, b[2] + 200, b[3] + 200]
    w = 1400
    h = round(w * (extent[3] - extent[1]) / (extent[2] - extent[0]))
    res = run_qgis({"project": str(out / "inventory.qgz"),
                    "render": {"png": str(tmp_path / "statuses.png"), "size": [w, h], "extent": extent,
                               "points": points}}, tmp_path)["render"]
    assert res["layers"] == ["lakes_2022", "lake_changes"]
    for status, colours in res["colours"].items():
        share = np.mean([_near(c, STATUS_STYLES[status][0]) for c in colours])
        assert share >= 0.8, (status, colours[:5])
    if os.environ.get("GLI_UPDATE_DOCS") == "1":
        import shutil

        shutil.copy(tmp_path / "statuses.png", ROOT / "docs/img/qgis_statuses.png")
