"""Shaky connections (issue 7): band files and a STAC API on loopback that reset connections, answer
503/429 or stall, a chosen number of times. Retries are made small and fast with the GLI_HTTP_*
variables, so every request loop here is bounded and quick."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers

from gli_toolbox.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
BARBELLINO = SAMPLE / "barbellino.geojson"
B03_2019 = "20190723T101031_L2A/B03.tif"
RETRIES = 2
FAST = {"GLI_HTTP_RETRIES": str(RETRIES), "GLI_HTTP_RETRY_DELAY_S": "0.05", "GLI_HTTP_TIMEOUT_S": "1"}


@pytest.fixture(scope="module")
def files():
    srv = servers.FaultServer(SAMPLE)
    yield srv
    srv.stop()


@pytest.fixture
def fast_retries(monkeypatch):
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def catalog(files, tmp_path, fast_retries):
    """An ItemCollection whose band hrefs are fresh URLs on the fault server (no GDAL cache hits)."""
    files.clear()
    base = f"{files.url}/~{uuid.uuid4().hex[:8]}"
    return servers.item_collection_over_http(SAMPLE / "catalog.json", files_root=SAMPLE, base_url=base,
                                             out=tmp_path / "items.json", collection="sentinel-2-c1-l2a")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def detect(catalog, out, *extra):
    return run("detect", "--aoi", BARBELLINO, "--stac", catalog, "--years", "2017-2019", "--out", out, *extra)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same run from the local files: what a run without faults gives."""
    out = tmp_path_factory.mktemp("ref") / "out"
    res = run("detect", "--aoi", BARBELLINO, "--stac", SAMPLE / "catalog.json", "--years", "2017-2019", "--out", out)
    assert res.exit_code == 0, res.output
    return out


def _areas(out: Path, year: int) -> list[float]:
    return sorted(gpd.read_file(out / f"lakes_{year}.shp")["area_km2"].round(6))


@pytest.mark.parametrize("mode", ["reset", "503", "429"])
def test_transient_failures_are_retried_and_the_run_is_complete(files, catalog, tmp_path, reference, mode):
    files.fail(B03_2019, mode, times=2)
    res = detect(catalog, tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert files.count(B03_2019, mode) == 2 and files.count(B03_2019, "ok") >= 1  # failed twice, then read
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc["complete"] is True and doc["incomplete"] == {}
    for year in (2017, 2019):
        assert _areas(tmp_path / "out", year) == _areas(reference, year)


@pytest.mark.parametrize(("mode", "why"), [
    ("503", "server temporarily unavailable (HTTP 503) after retries"),
    ("429", "server asked to slow down (HTTP 429) after retries"),
    ("reset", "connection reset by the server after retries"),
    ("stall", "no answer in time (timeout) after retries"),
])
def test_persistent_failure_marks_the_year_incomplete_with_exit_code_3(files, catalog, tmp_path, reference, mode, why):
    files.fail(B03_2019, mode, stall_s=3.0)
    res = detect(catalog, tmp_path / "out")
    assert res.exit_code == 3, res.output
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc["complete"] is False
    assert list(doc["incomplete"]) == ["2019"]
    (line,) = doc["incomplete"]["2019"]
    assert "B03.tif" in line and why in line
    assert doc["years"]["2019"]["reason"].startswith("2019: every scene failed to read")
    # the closing summary names the year and the file; no raw GDAL/odc lines reach the user
    assert "INCOMPLETE: 2019" in res.output and why in res.output and "exit code 3" in res.output
    assert "CPLE_" not in res.output and "Failed to load" not in res.output
    # bounded: (1 + retries) attempts by gli, each with at most 1 + 3 GDAL retries
    assert 1 + RETRIES <= files.count(B03_2019) <= (1 + RETRIES) * 4
    # the year that could be read is complete and equal to the reference; the failed one has no layer
    assert _areas(tmp_path / "out", 2017) == _areas(reference, 2017)
    assert not (tmp_path / "out" / "lakes_2019.shp").exists()
    # one readable period: no change status is claimed (not "stable" because 2019 failed)
    assert gpd.read_file(tmp_path / "out" / "lake_changes.shp")["status"].eq("not_assessed").all()
    assert any("lake change needs two" in w for w in doc["warnings"])


def test_an_incomplete_run_keeps_its_chunks_and_resume_redoes_only_what_failed(files, catalog, tmp_path, reference):
    from gli_toolbox.engine import finished_chunks

    """Exit 3 keeps the finished chunks beside --out and says how to continue; ``--resume`` then
    reads again only the chunk whose read failed (2019), reuses 2017's, and gives the reference."""
    files.fail(B03_2019, "503")
    out = tmp_path / "out"
    res = detect(catalog, out)
    assert res.exit_code == 3, res.output
    work = tmp_path / ".out.gli-work"
    assert (f"the finished chunks are kept in {work}: run the same command again with --overwrite --resume to redo "
            "only what failed") in " ".join(res.output.split())
    assert sorted(p.parent.parent.name[:4] for p in work.glob("*/chunks/*/*/*.tif")) == ["2017", "2019"]
    assert finished_chunks(work) == 1  # 2019's chunk, whose read failed, is not one --resume reuses

    files.clear()  # the server is well again; a new process (no GDAL cache of this one's reads)
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'gli'; from gli_toolbox.cli import main; main()",
         "detect", "--aoi", str(BARBELLINO), "--stac", str(catalog), "--years", "2017-2019", "--out", str(out),
         "--overwrite", "--resume"], capture_output=True, text=True, env={**os.environ, **FAST}, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr
    assert files.count(B03_2019, "ok") >= 1  # the failed read was tried again
    assert files.count("20170703T101021_L2A/") == 0  # 2017's finished chunk was reused, not read again
    assert not work.exists()  # complete: the intermediate files are gone
    for year in (2017, 2019):
        assert _areas(out, year) == _areas(reference, year)
    assert json.loads((out / "run.json").read_text())["complete"] is True


def test_signed_url_query_strings_never_reach_logs_or_run_json(files, tmp_path, fast_retries):
    files.clear()
    base = f"{files.url}/~{uuid.uuid4().hex[:8]}"
    items = json.loads(servers.item_collection_over_http(
        SAMPLE / "catalog.json", files_root=SAMPLE, base_url=base, out=tmp_path / "i.json",
        collection="sentinel-2-c1-l2a").read_text())
    secret = "sig=SeCrEtSiGnAtUrE%2Bxyz"
    for item in items["features"]:
        for asset in item["assets"].values():
            asset["href"] += f"?st=2024-01-01T00%3A00%3A00Z&se=2024-01-02&sp=rl&sv=2021-06-08&sr=c&{secret}"
    cat = tmp_path / "signed.json"
    cat.write_text(json.dumps(items))
    files.fail(B03_2019, "503")
    env = {**os.environ, **FAST, "AWS_SECRET_ACCESS_KEY": "cdse-secret-key-value-123"}
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'gli'; from gli_toolbox.cli import main; main()",
         "detect", "-vv", "--aoi", str(BARBELLINO), "--stac", str(cat), "--years", "2017-2019", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 3, proc.stderr
    run_json = (out / "run.json").read_text()
    for text in (proc.stdout, proc.stderr, run_json):
        assert "SeCrEtSiGnAtUrE" not in text and "cdse-secret-key-value-123" not in text
    assert "B03.tif?<redacted>" in run_json  # the file is still named, without its signature


@pytest.fixture
def busy_api(fast_retries):
    srv = servers.FaultServer(None, upstream="http://127.0.0.1:9")  # never forwarded: always 503
    srv.fail("/", "503")
    yield srv
    srv.stop()


@pytest.mark.parametrize("command", ["search", "detect"])
def test_stac_api_503_says_temporarily_unavailable_after_bounded_retries(busy_api, tmp_path, command):
    extra = ["--out", tmp_path / "out"] if command == "detect" else []
    res = run(command, "--aoi", BARBELLINO, "--stac", busy_api.url + "/v1", "--years", "2019", *extra)
    assert res.exit_code == 1
    assert f"STAC API at {busy_api.url}/v1 is temporarily unavailable (HTTP 503) after {RETRIES} retries; " \
           "try again later" in res.output
    assert "did not answer as a STAC API" not in res.output and "Traceback" not in res.output
    assert len(busy_api.requests) == 1 + RETRIES
    assert not (tmp_path / "out").exists()


def test_stac_api_that_recovers_after_503s_is_used(stac_api, fast_retries):
    proxy = servers.FaultServer(None, upstream=stac_api)
    try:
        proxy.fail("/search", "503", times=2)
        res = run("search", "--aoi", BARBELLINO, "--stac", proxy.url, "--years", "2019")
        assert res.exit_code == 0, res.output
        assert "S2A_T32TNS_20190723T101031_L2A" in res.output
        assert proxy.count("/search", "503") == 2 and proxy.count("/search", "ok") >= 1
    finally:
        proxy.stop()


def test_per_scene_runs_key_incomplete_periods_by_date(files, catalog, tmp_path):
    files.fail(B03_2019, "503")
    res = detect(catalog, tmp_path / "out", "--per-scene")
    assert res.exit_code == 3, res.output
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert list(doc["incomplete"]) == ["20190723"] and "INCOMPLETE: 20190723" in res.output
    assert (tmp_path / "out" / "lakes_20170703.shp").exists()
