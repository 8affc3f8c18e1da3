"""The QGIS Processing plugin, built as partners get it (zip) and run headless in Debian's QGIS."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from test_qgis import ROOT, run_qgis
from test_qgis import qgis_available as qgis_available  # noqa: PLC0414  (the fixture, shared)

from gli_toolbox.qgis_plugin import PLUGIN_NAME
from gli_toolbox.qgis_plugin.build import build_plugin, cli_spec

pytestmark = pytest.mark.qgis

VENV_GLI = Path(sys.executable).parent / "gli"  # the gli of the environment running the tests


def test_spec_follows_the_cli():
    from gli_toolbox.cli import cli

    spec = cli_spec()
    for name in ("detect", "search", "track"):
        opts = {p["opt"] for p in spec["commands"][name]["params"]}
        cli_opts = {max(p.opts, key=len) for p in cli.commands[name].params if p.name not in ("verbose", "quiet", "as_json")
                    and not p.opts[0].isidentifier()}
        assert cli_opts <= opts, (name, cli_opts - opts)
    detect = {p["name"]: p for p in spec["commands"]["detect"]["params"]}
    assert detect["index"]["kind"] == "enum" and detect["index"]["choices"] == ["ndwi", "mndwi"]
    assert detect["max_cloud"]["kind"] == "float" and detect["max_cloud"]["max"] == 100
    assert detect["save_masks"]["kind"] == "bool" and detect["save_masks"]["default"] is False
    track = {p["name"]: p for p in spec["commands"]["track"]["params"]}
    assert track["inventories"]["argument"] and track["inventories"]["multiple"]


def test_plugin_zip_layout(tmp_path):
    z = zipfile.ZipFile(build_plugin(tmp_path / "plugin.zip"))
    names = set(z.namelist())
    assert {f"{PLUGIN_NAME}/{f}" for f in ("__init__.py", "metadata.txt", "provider.py", "algorithms.py", "runner.py",
                                           "cli_spec.json")} <= names
    assert all(n.startswith(PLUGIN_NAME + "/") for n in names) and not any("__pycache__" in n for n in names)
    meta = z.read(f"{PLUGIN_NAME}/metadata.txt").decode()
    from gli_toolbox import __version__

    assert f"version={__version__}" in meta and "hasProcessingProvider=yes" in meta
    assert json.loads(z.read(f"{PLUGIN_NAME}/cli_spec.json"))["gli_version"] == __version__


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    plugins = tmp_path_factory.mktemp("plugins")
    zipfile.ZipFile(build_plugin(plugins / "plugin.zip")).extractall(plugins)  # as QGIS's "Install from ZIP"
    return plugins


def test_processing_algorithms_run_headless(qgis_available, installed_plugin, tmp_path, monkeypatch):
    assert VENV_GLI.exists()
    monkeypatch.setenv("GLI_COMMAND", str(VENV_GLI))
    out = tmp_path / "detect out"
    cancel_out = tmp_path / "canceled"
    common = {"AOI": str(ROOT / "sample_data/barbellino.geojson"), "YEARS": "2017-2019",
              "STAC": str(ROOT / "sample_data/catalog.json")}
    job = {"processing": {"plugins_dir": str(installed_plugin), "plugin": PLUGIN_NAME, "runs": [
        {"id": "gli:search", "params": {**common, "OUTPUT": str(tmp_path / "scenes.json")}},
        {"id": "gli:detect", "params": {**common, "OUT": str(out), "SAVE_MASKS": True}},
        {"id": "gli:track", "params": {"INVENTORIES": [f"{out / 'inventory.gpkg'}|layername=lakes_2017",
                                                       str(out / "lakes_2019.shp")], "OUT": "TEMPORARY_OUTPUT"}},
        # Cancel pressed when gli reports its plan (the 2018 warning), before it reads the scenes
        {"id": "gli:detect", "params": {**common, "OUT": str(cancel_out)}, "cancel_on_message": "2018"},
    ]}}
    res = run_qgis(job, tmp_path)["processing"]
    assert res["algorithms"] == ["gli:detect", "gli:search", "gli:track"]
    assert res["names"] == ["Detect glacial lakes", "Search scenes", "Track lakes"]
    detect_params = res["params"]["gli:detect"]
    assert {"AOI", "YEARS", "MONTHS", "STAC", "MAX_CLOUD", "INDEX", "NDWI_THRESHOLD", "OUT", "SAVE_MASKS",
            "GLACIERS", "DEM", "CLOUD_DETECTOR"} <= set(detect_params)
    assert detect_params["AOI"][0] == "source" and detect_params["OUT"][0] == "folderDestination"
    assert detect_params["INDEX"][0] == "enum" and detect_params["GLACIERS"] == ["file", True]
    search, detect, track, canceled = res["runs"]

    assert search["ok"], search
    assert search["result"]["N_SCENES"] == "2"
    scenes = json.loads((tmp_path / "scenes.json").read_text())
    assert sorted(scenes) == ["2017", "2018", "2019", "plan"] and len(scenes["2019"]["scenes"]) == 1

    assert detect["ok"], detect
    assert (out / "inventory.qgz").exists() and detect["result"]["PROJECT"] == str(out / "inventory.qgz")
    assert any("2019: 1 lake" in line for line in detect["log"]), detect["log"]
    assert any("WARNING" in line and "2018" in line for line in detect["log"])  # warnings reach the log
    assert not any("plugin was built for" in line for line in detect["log"])  # same version
    prog = detect["progress"]  # gli's bars (chunks, then lakes) fill QGIS's one bar, forward only, to 100
    assert prog and prog[-1] == 100 and all(0 <= p <= 100 for p in prog), prog
    gli_part = prog[:prog.index(100) + 1]  # then QGIS's own loading of the layers restarts the bar
    assert gli_part == sorted(gli_part) and any(85 < p < 100 for p in gli_part), prog  # the lake phase: 85-100
    loaded = detect["loaded"]
    assert set(loaded) == {"lake_changes", "lakes_2019", "lakes_all", "water_2019"}
    assert loaded["lake_changes"]["renderer"] == "categorizedSymbol"
    assert loaded["lakes_2019"]["renderer"] == "singleSymbol" and loaded["lakes_2019"]["labels"]
    assert loaded["lakes_all"]["temporal"] == [True, 2, "date", "date_end"]
    assert loaded["water_2019"]["renderer"] == "paletted" and loaded["water_2019"]["use_src_nodata"] is False
    assert all(lyr["valid"] and lyr["crs"] == "EPSG:32632" for lyr in loaded.values())

    assert track["ok"], track
    # "Save to temporary folder": a real folder in Processing's temp (removed when QGIS exits)
    track_out = track["result"]["OUT_FOLDER"]
    assert "TEMPORARY_OUTPUT" not in track_out and any(f"wrote results to {track_out}" in x for x in track["log"]), track["log"]
    assert set(track["loaded"]) == {"lake_changes", "lakes_2019", "lakes_all"}
    assert all(lyr["valid"] for lyr in track["loaded"].values())
    assert track["loaded"]["lake_changes"]["values"]["status"] == ["growing"]

    assert not canceled["ok"] and canceled["canceled"], canceled["log"]
    assert "Canceled" in canceled["error"]
    assert not cancel_out.exists()
    assert not list(tmp_path.glob(f".{cancel_out.name}*")), list(tmp_path.iterdir())  # no staging left
    assert canceled["loaded"] == {}


def _runner():
    from gli_toolbox.qgis_plugin.gli_processing import runner  # pure Python: no QGIS needed

    return runner


def test_runner_reads_the_progress_bar_and_messages():
    import sys

    code = ("import sys, time\nfrom tqdm import tqdm\nprint('WARNING: look', file=sys.stderr)\n"
            "b = tqdm(total=4, disable=None, leave=False)\nfor i in range(4):\n    time.sleep(0.15); b.update(1)\n"
            "b.close(); print('{\"ok\": 1}')")
    msgs, pcts = [], []
    res = _runner().run_gli([], on_message=msgs.append, on_progress=pcts.append, is_canceled=lambda: False,
                            command=[sys.executable, "-c", code])
    assert res.returncode == 0 and not res.canceled and json.loads(res.stdout) == {"ok": 1}
    assert msgs == ["WARNING: look"]
    assert pcts[0] == 0 and pcts[-1] == 100 and 50 in pcts  # the bar is not drawn as messages


def test_runner_cancel_kills_a_stubborn_child_and_removes_its_staging(tmp_path):
    """A child that ignores Ctrl-C is killed after the grace time; the staging folder it made goes."""
    import sys
    import time

    out = tmp_path / "out"
    old = tmp_path / ".out.partial-before"  # not created by this run: must stay
    old.mkdir()
    code = ("import os, signal, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            f"os.makedirs({str(tmp_path / '.out.partial-abc')!r}, exist_ok=True)\n"
            "open(os.path.join(" + repr(str(tmp_path / ".out.partial-abc")) + ", 'lakes.shp'), 'w').write('x')\n"
            "print('started', file=sys.stderr)\ntime.sleep(60)")
    t0 = time.monotonic()
    started = []
    res = _runner().run_gli([], on_message=started.append, on_progress=lambda p: None,
                            is_canceled=lambda: bool(started), out_dir=out, grace_s=1.0, command=[sys.executable, "-c", code])
    assert res.canceled and res.returncode != 0
    assert time.monotonic() - t0 < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.partial-before"]


def test_plugin_warns_when_gli_is_another_version(qgis_available, tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(build_plugin(tmp_path / "plugin.zip")).extractall(plugins)
    spec_file = plugins / PLUGIN_NAME / "cli_spec.json"
    spec = json.loads(spec_file.read_text())
    spec["gli_version"] = "0.0.1"  # as if the zip came from an older gli
    spec_file.write_text(json.dumps(spec))
    monkeypatch.setenv("GLI_COMMAND", str(VENV_GLI))
    job = {"processing": {"plugins_dir": str(plugins), "plugin": PLUGIN_NAME, "runs": [
        {"id": "gli:detect", "params": {"AOI": str(ROOT / "sample_data/barbellino.geojson"), "YEARS": "2019",
                                        "STAC": str(ROOT / "sample_data/catalog.json"), "OUT": str(tmp_path / "o")}}]}}
    (run,) = run_qgis(job, tmp_path)["processing"]["runs"]
    assert run["ok"], run
    assert any("plugin was built for gli 0.0.1" in line for line in run["log"]), run["log"]
