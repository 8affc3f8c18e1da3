"""`pip install gli-toolbox` pulls only what detect and track need; the rare heavy paths are extras.

The L1C cloud model (s2cloudless: LightGBM, OpenCV, sentinelhub) is the ``[l1c]`` extra; without
it an L1C run stops with one line that says how to install it, and writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gli_toolbox.cli import cli

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_core_dependencies_leave_out_the_test_stack_and_l1c():
    names = " ".join(_project()["dependencies"]).lower()
    for heavy in ("s2cloudless", "stac-fastapi", "pypgstac", "pytest", "mkdocs", "nbclient", "h5py"):
        assert heavy not in names
    assert "folium" in names  # result.explore() works after a plain install


def test_the_test_extra_installs_everything_the_suite_needs():
    extras = _project()["optional-dependencies"]
    assert "gli-toolbox[l1c,docs]" in extras["test"]
    assert any(d.startswith("s2cloudless") for d in extras["l1c"])
    assert any(d.startswith("mkdocs-material") for d in extras["docs"])


def test_an_l1c_run_without_the_extra_says_how_to_install_it(sample_data: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "s2cloudless", None)  # as if the extra were not installed
    out = tmp_path / "havel"
    res = CliRunner().invoke(cli, ["detect", "--aoi", str(sample_data / "havel.geojson"), "--stac",
                                   str(sample_data / "catalog.json"), "--collection", "sentinel-2-l1c", "--years",
                                   "2017", "--months", "2-2", "--out", str(out)])
    assert res.exit_code == 1
    assert "pip install 'gli-toolbox[l1c]'" in res.output and "Traceback" not in res.output
    assert not out.exists()
