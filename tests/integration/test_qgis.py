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
