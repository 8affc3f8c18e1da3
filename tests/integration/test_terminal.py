"""What a user reads in the terminal: -v / -vv / -vvv, warnings beside the progress bar, the last line."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tqdm import tqdm

from gli_toolbox.cli.options import configure_logging


def _gli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from gli_toolbox.cli import main; main()", *args], capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def sample_args(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("term") / "out"
    return ["detect", "--aoi", str(sample_data / "barbellino.geojson"), "--stac", str(sample_data / "catalog.json"),
            "--years", "2017-2019", "--out", str(out), "--overwrite"]


def test_v_tells_what_the_run_does_and_nothing_of_gdal(sample_args):
    done = _gli([*sample_args, "-v"])
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "2017: 1 scene(s) on 1 day(s) found" in err and "2018: 0 scene(s) on 0 day(s) found" in err
    assert "read 1 scene(s) (S2A_T32TNS_20170703T101021_L2A) on 1 of 1 chunk(s)" in err
    assert "42 x 24 pixels in 1 chunk(s)" in err
    assert re.search(r"2019: 1 lake\(s\), 0\.0\d{3} km2", err)
    assert "WARNING: 2018: no sentinel-2-c1-l2a scenes" in err
    assert "rasterio" not in err and "GDAL" not in err and "findfont" not in err
    assert err.strip().splitlines()[-1].startswith("open first: ") and "report.html" in err.splitlines()[-1]


def test_vv_adds_gli_debug_only_and_vvv_adds_gdal(sample_args):
    vv = _gli([*sample_args, "-vv"]).stderr
    assert "gli_toolbox.pipeline: " in vv and "chunk" in vv
    assert "rasterio" not in vv and "GDAL" not in vv and "findfont" not in vv
    vvv = _gli([*sample_args, "-vvv"]).stderr
    assert "rasterio._env: " in vvv and "GDALOpen" in vvv
    assert len(vvv.splitlines()) > 5 * len(vv.splitlines())


def test_workers_print_the_dashboard_in_the_plan_and_no_dask_chatter(sample_args):
    """With --workers the plan says where the Dask dashboard is; Dask's own start-up and shut-down
    messages (INFO, some 30 lines) stay out of the terminal, at every verbosity below -vvv."""
    done = _gli([*sample_args, "--workers", "2"])
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    dash = [ln for ln in lines if ln.startswith("plan: progress in the Dask dashboard at http://127.0.0.1:")]
    assert len(dash) == 1 and dash[0].split(" at ")[1].split()[0].endswith("/status")
    for chatter in ("Register worker", "Scheduler at", "Nanny", "distributed", "Remove client", "State start"):
        assert chatter not in done.stderr
    assert lines[-1].startswith("open first: ")
    verbose = _gli([*sample_args, "--workers", "2", "-v"]).stderr
    assert "Nanny" not in verbose and "Register worker" not in verbose
    assert verbose.count("plan: progress in the Dask dashboard at") == 1  # the plan once, not echoed again
    assert verbose.count("plan: 2 scenes on 2 days") == 1


def test_the_lake_phase_has_its_own_progress_bar_over_the_years(sample_data, tmp_path, capsys):
    """After the chunk bar, lake extraction (minutes to hours on a region) moves a bar of its own,
    one step per year with scenes (2017 and 2019 of the sample; 2018 has none)."""
    from gli_toolbox.pipeline import detect

    detect(str(sample_data / "barbellino.geojson"), stac=str(sample_data / "catalog.json"), years=(2017, 2018, 2019),
           progress=True, work_dir=tmp_path)
    err = capsys.readouterr().err
    states = re.findall(r"lakes: +\d+%\|[^|]*\| (\d)/(\d) \[[^]]*year/s, (\d{4})\]", err)
    assert states and {t for _, t, _ in states} == {"2"}  # two years with scenes
    # each year is drawn as it starts (a forced redraw; others are throttled by tqdm's refresh rate)
    assert ("0", "2", "2017") in states  # 2017 in work
    assert ("1", "2", "2019") in states  # 2017 done, 2019 in work (the bar is cleared when the phase ends)
    assert err.index("chunks:") < err.index("lakes:")


def test_quiet_prints_nothing_on_success(sample_args):
    done = _gli([*sample_args, "-q"])
    assert done.returncode == 0 and done.stderr == ""


def test_a_warning_is_printed_on_its_own_line_above_the_progress_bar(capsys):
    configure_logging(0, 0)
    try:
        bar = tqdm(total=10, file=sys.stderr, disable=False, desc="reading scenes", mininterval=0)
        bar.update(5)
        logging.getLogger("gli_toolbox.pipeline").warning("2018: no scene")
        bar.update(5)
        bar.close()
    finally:
        logging.basicConfig(force=True)
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.split("\n") if "2018: no scene" in ln]
    # the bar was cleared before the warning: what is left on the terminal line is the warning alone
    assert line.split("\r")[-1] == "WARNING: 2018: no scene"
    assert "reading scenes: 100%" in err.split("2018: no scene")[-1]  # and the bar drawn again below it


@pytest.mark.parametrize("verbose", [0, 1])
def test_dask_warnings_about_what_gli_handles_show_only_with_v(capsys, verbose):
    """After a worker died, Dask's client logged "Couldn't gather 1 keys, rescheduling" at the default
    verbosity (its configuration sets that logger's level apart): gli handles it and says what
    matters itself, so it shows with -v only. Dask's errors always show, as gli's own warnings."""
    configure_logging(verbose, 0)
    try:
        logging.getLogger("distributed.client").warning("Couldn't gather 1 keys, rescheduling")
        logging.getLogger("distributed.client").error("Failed to reconnect to scheduler")
        logging.getLogger("gli_toolbox.engine").warning("a chunk failed")
    finally:
        logging.basicConfig(force=True)
    err = capsys.readouterr().err
    assert ("Couldn't gather" in err) == bool(verbose)
    assert "ERROR: Failed to reconnect to scheduler" in err and "WARNING: a chunk failed" in err
