"""Every notebook in notebooks/ is executed top to bottom offline; an error in any cell fails.

``your_area.ipynb`` (a real provider) is also executed against the loopback STAC API
(stac-fastapi-pgstac with the sample catalog, band files over HTTP from nginx), the way it runs
against Earth Search or Planetary Computer: it reads the API's URL from ``GLI_STAC_URL``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
REAL_PROVIDER = "your_area.ipynb"


def _run(path: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs)
    return outputs


def _text(outputs: list[dict]) -> str:
    return "\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GLI_STAC_URL", raising=False)
    _run(path)


def test_your_area_notebook_against_a_stac_api(stac_api: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GLI_STAC_URL", stac_api)
    outputs = _run(next(p for p in NOTEBOOKS if p.name == REAL_PROVIDER))
    text = _text(outputs)
    assert f"STAC: {stac_api}" in text
    # the search from Python lists what `gli search` lists, and the run maps the lake of both years
    assert "2017: 1 scenes on 1 days" in text and "S2A_T32TNS_20190723T101031_L2A" in text
    # one lake each year; the reservoir grows (NDWI > 0 on 17.5 % then 28.5 % of the pixels)
    (a17,) = re.findall(r"2017 1 lake\(s\), (0\.\d+) km2", text)
    (a19,) = re.findall(r"2019 1 lake\(s\), (0\.\d+) km2", text)
    assert float(a19) > 1.2 * float(a17)


def test_the_four_notebooks_are_there():
    assert {p.name for p in NOTEBOOKS} >= {"detect_sample.ipynb", REAL_PROVIDER, "change_analysis.ipynb",
                                           "quality_control.ipynb"}
