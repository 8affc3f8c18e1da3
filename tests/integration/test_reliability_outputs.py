"""Output safety (issue 7): --overwrite never touches a user's files, killed runs are rolled back or
cleaned by the next run, one run per folder at a time, disk full, signals, umask."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers

from gli_toolbox import export
from gli_toolbox.cli import cli
from gli_toolbox.errors import OutputExistsError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CATALOG = SAMPLE / "catalog.json"
BARBELLINO = SAMPLE / "barbellino.geojson"
GLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'gli'; from gli_toolbox.cli import main; main()"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path below ``folder`` (hidden ones too) with its bytes: byte-for-byte comparison."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def detect(out, *extra, years="2017-2019"):
    return run("detect", "--aoi", BARBELLINO, "--stac", CATALOG, "--years", years, "--out", out, *extra)


def _user_files(out: Path) -> dict[str, bytes]:
    (out / "figures").mkdir(exist_ok=True)
    mine = {"figures/my_map.png": b"partner's own map", "my_edits.gpkg": b"hand-edited outlines",
            "notes/field_trip.txt": b"lake 12 drained in August"}
    for rel, data in mine.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return mine


def test_run_json_lists_every_output_with_relative_paths(tmp_path):
    out = tmp_path / "o"
    assert detect(out).exit_code == 0
    doc = json.loads((out / "run.json").read_text())
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert doc["outputs"] == on_disk
    assert any(o.startswith("figures/") for o in doc["outputs"])  # files inside figures/ are listed one by one


def test_overwrite_keeps_user_files_also_inside_figures_and_drops_stale_masks(tmp_path):
    out = tmp_path / "o"
    assert detect(out, "--save-masks").exit_code == 0
    assert (out / "water_2017.tif").exists()
    mine = _user_files(out)
    res = detect(out, "--overwrite", years="2019")  # no masks, one year this time
    assert res.exit_code == 0, res.output
    for rel, data in mine.items():
        assert (out / rel).read_bytes() == data
    # nothing of the earlier run survives that this run did not write again
    assert not list(out.glob("water_*")) and not list(out.glob("nobs_*")) and not (out / "lakes_2017.shp").exists()
    doc = json.loads((out / "run.json").read_text())
    assert set(doc["outputs"]) == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - set(mine)
    assert not list(out.glob(".gli-*")) and not list(tmp_path.glob(".o.*"))


def test_overwrite_refuses_to_replace_a_user_file_that_run_json_does_not_list(tmp_path):
    out = tmp_path / "o"
    assert detect(out).exit_code == 0
    doc = json.loads((out / "run.json").read_text())
    doc["outputs"].remove("lake_areas.csv")  # as if the partner made their own lake_areas.csv
    (out / "run.json").write_text(json.dumps(doc))
    (out / "lake_areas.csv").write_text("lake,area\nmy lake,1.0\n")
    before = snapshot(out)
    res = detect(out, "--overwrite")
    assert res.exit_code == 1
    assert f"{out / 'lake_areas.csv'} was not written by gli" in res.output
    assert "move or rename it, or choose another --out" in res.output and "Traceback" not in res.output
    assert snapshot(out) == before


def test_out_dot_overwrite_is_safe(tmp_path, monkeypatch):
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    mine = _user_files(work)
    (work / "figures" / "total_area.png").write_bytes(b"my own figure with gli's name")
    res = detect(".")
    assert res.exit_code == 1 and "--overwrite" in res.output  # a non-empty folder needs --overwrite
    res = detect(".", "--overwrite")
    # gli's figure would replace the user's own figures/total_area.png: refused, nothing changed
    assert res.exit_code == 1 and "figures/total_area.png was not written by gli" in res.output
    # the finished chunks are kept beside the folder (not in it), and the line says how to reuse them
    assert "finished chunk(s) are kept in" in res.output and "--resume" in res.output
    assert (tmp_path / ".project.gli-work").is_dir() and not list(work.glob(".*gli-work"))
    (work / "figures" / "total_area.png").unlink()
    before_user = {rel: (work / rel).read_bytes() for rel in mine}
    res = detect(".", "--overwrite", "--resume")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / ".project.gli-work").exists()
    assert {rel: (work / rel).read_bytes() for rel in mine} == before_user
    assert (work / "lakes_2019.shp").exists() and (work / "figures" / "total_area.png").exists()
    res = detect(".", "--overwrite", years="2019")
    assert res.exit_code == 0, res.output
    assert {rel: (work / rel).read_bytes() for rel in mine} == before_user
    assert not (work / "lakes_2017.shp").exists() and not list(work.glob(".gli-*"))


def test_overwrite_help_text_says_what_is_replaced():
    for cmd in ("detect", "track"):
        res = run(cmd, "--help")
        text = " ".join(res.output.split())
        assert "only files an earlier gli run wrote (listed in its run.json)" in text


def test_main_help_states_every_exit_code():
    text = run("--help").output
    for code in ("0 ", "1 ", "2 ", "3 ", "129", "130", "143"):
        assert f"  {code}" in text
    assert "finished but incomplete" in text


# --------------------------------------------------------------------------------------------------
# Killed runs


_KILL_DURING_SWAP = """
import os, signal, sys
from pathlib import Path
from gli_toolbox import export
out = Path(sys.argv[1])
real = os.replace
n = {"moves": 0}
def replace(src, dst):
    if ".gli-partial-" in str(src):
        n["moves"] += 1
        if n["moves"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # power cut in the middle of moving the new files in
    return real(src, dst)
export.os.replace = replace
with export.staged_output(out, overwrite=True) as stage:
    for name in ("lakes_2017.shp", "lakes_2018.shp", "lakes_2020.shp", "inventory.gpkg"):
        (stage / name).write_text("new " + name)
    (stage / "figures").mkdir()
    (stage / "figures" / "total_area.png").write_text("new png")
    export.write_run_json({}, stage / "run.json")
"""

_KILL_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
from gli_toolbox import export
with export.staged_output(Path(sys.argv[1]), overwrite=True) as stage:
    (stage / "lakes_2019.shp").write_text("half-written")
    os.kill(os.getpid(), signal.{sig})
"""


def _previous_run(out: Path) -> None:
    assert detect(out, "--save-masks").exit_code == 0
    _user_files(out)


def test_sigkill_during_the_swap_is_rolled_back_by_the_next_run(tmp_path):
    out = tmp_path / "o"
    _previous_run(out)
    before = snapshot(out)
    proc = subprocess.run([sys.executable, "-c", _KILL_DURING_SWAP, str(out)], capture_output=True, timeout=120,
                          check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(out) != before  # really killed half-way: a mixed folder on disk ...
    assert list(out.glob(".gli-old-*"))
    done = export.recover_output_dir(out)  # ... that the next run puts back first
    assert any("rolled back" in d for d in done)
    assert snapshot(out) == before


def test_next_gli_run_after_a_killed_swap_starts_from_the_previous_outputs(tmp_path):
    out = tmp_path / "o"
    _previous_run(out)
    subprocess.run([sys.executable, "-c", _KILL_DURING_SWAP, str(out)], capture_output=True, timeout=120, check=False)
    res = detect(out, "--overwrite", years="2019")
    assert res.exit_code == 0, res.output
    assert "rolled back the outputs of a run that was killed" in res.output
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    doc = json.loads((out / "run.json").read_text())
    assert names == set(doc["outputs"]) | {"figures/my_map.png", "my_edits.gpkg", "notes/field_trip.txt"}
    assert not (out / "lakes_2020.shp").exists() and not list(out.glob("water_*"))  # nothing stale, nothing mixed


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_leftovers_of_a_run_killed_while_writing_are_cleaned_by_the_next(tmp_path, sig):
    out = tmp_path / "o"
    _previous_run(out)
    before = snapshot(out)
    proc = subprocess.run([sys.executable, "-c", _KILL_WHILE_WRITING.replace("{sig}", sig), str(out)],
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode != 0
    if sig == "SIGKILL":
        assert list(out.glob(".gli-partial-*"))  # left behind by the kill
    else:  # a plain Python process dies on SIGTERM too; gli handles it (test_signals_*)
        pass
    export.recover_output_dir(out)
    assert snapshot(out) == before


# --------------------------------------------------------------------------------------------------
# Signals and locks, with real `gli` processes held up by a band file server that stalls


@pytest.fixture(scope="module")
def stalling_files():
    srv = servers.FaultServer(SAMPLE)
    yield srv
    srv.stop()


def _slow_catalog(srv, tmp_path):
    base = f"{srv.url}/~{uuid.uuid4().hex[:8]}"
    srv.fail(base.rsplit("/", 1)[1] + "/sentinel-2-c1-l2a/S2A_T32TNS_20190723T101031_L2A/B03.tif", "stall",
             stall_s=60.0)
    return servers.item_collection_over_http(CATALOG, files_root=SAMPLE, base_url=base, out=tmp_path / "slow.json",
                                             collection="sentinel-2-c1-l2a")


def _start_gli(args, tmp_path):
    env = {**os.environ, "GLI_HTTP_RETRIES": "0", "GLI_HTTP_TIMEOUT_S": "60"}
    # as from a terminal: SIGHUP not ignored, even when these tests run under `nohup` (gli then keeps
    # ignoring it, by design, and the SIGHUP case would wait for the stalled read instead)
    terminal = [sys.executable, "-c", "import signal; signal.signal(signal.SIGHUP, signal.SIG_DFL); " + GLI[2]]
    return subprocess.Popen([*terminal, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=tmp_path, start_new_session=True)


def _wait_for_stall(srv, proc, timeout_s=120.0):
    t0 = time.monotonic()
    while srv.count("B03.tif", "stall") == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout_s, "gli never reached the stalled band file"
        time.sleep(0.1)


@pytest.mark.parametrize(("sig", "code", "words"), [
    (signal.SIGTERM, 143, "Stopped by SIGTERM"),
    (signal.SIGHUP, 129, "SSH session closed (SIGHUP)"),
    (signal.SIGINT, 130, "Interrupted (Ctrl-C)"),
])
def test_signals_stop_with_one_line_and_leave_the_folder_as_before(stalling_files, tmp_path, sig, code, words):
    out = tmp_path / "o"
    _previous_run(out)
    before = snapshot(out)
    stalling_files.clear()
    cat = _slow_catalog(stalling_files, tmp_path)
    proc = _start_gli(["detect", "--aoi", BARBELLINO, "--stac", cat, "--years", "2017-2019", "--out", out,
                       "--overwrite"], tmp_path)
    _wait_for_stall(stalling_files, proc)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == code, text
    assert f"{words}; the output folder was left as it was before this run." in text
    assert "Traceback" not in text
    assert snapshot(out) == before
    # no staging folder or lock file left beside it; only the chunk results that --resume continues from
    # (2017's chunk finished before the stalled 2019 read), and the stop says so
    assert [p.name for p in tmp_path.glob(".o.*")] == [".o.gli-work"]
    assert f"1 finished chunk(s) are kept in {tmp_path / '.o.gli-work'}: run the same command with --resume" in text


@pytest.mark.parametrize(("sig", "words"), [(signal.SIGINT, "Interrupted (Ctrl-C)"), (signal.SIGTERM, "Stopped by SIGTERM")])
def test_a_stop_sent_to_a_run_with_workers_is_said_once(stalling_files, tmp_path, sig, words):
    """Ctrl-C in a terminal (and a batch system's stop) reaches the whole process group: the Dask
    worker processes of --workers too. They import gli's command line (spawned with its argv) and
    each said the stop line (three lines for two workers), and Dask's own warnings followed."""
    out = tmp_path / "o"
    stalling_files.clear()
    cat = _slow_catalog(stalling_files, tmp_path)
    proc = _start_gli(["detect", "--aoi", BARBELLINO, "--stac", cat, "--years", "2017-2019", "--out", out,
                       "--workers", "2"], tmp_path)
    _wait_for_stall(stalling_files, proc)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 128 + sig, text
    assert text.count(words) == 1, text
    assert "distributed." not in text and "Traceback" not in text
    assert not out.exists()


def test_a_run_started_with_nohup_keeps_ignoring_sighup(stalling_files, tmp_path):
    """Under ``nohup`` (SIGHUP ignored when gli starts) a closed session does not stop the run; a
    SIGTERM still does, with its own line."""
    out = tmp_path / "o"
    stalling_files.clear()
    cat = _slow_catalog(stalling_files, tmp_path)
    env = {**os.environ, "GLI_HTTP_RETRIES": "0", "GLI_HTTP_TIMEOUT_S": "60"}
    nohup = [sys.executable, "-c", "import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN); " + GLI[2]]
    proc = subprocess.Popen([*nohup, "detect", "--aoi", str(BARBELLINO), "--stac", str(cat), "--years", "2017-2019",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
                            start_new_session=True)
    _wait_for_stall(stalling_files, proc)
    os.kill(proc.pid, signal.SIGHUP)
    time.sleep(3 * 2.0)  # three times the watchdog's grace period (cli.GRACE_S)
    assert proc.poll() is None  # still running
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()
    assert "Stopped by SIGTERM" in err.decode() and "SIGHUP" not in err.decode()


def test_ctrl_c_during_startup_gives_the_same_one_line(tmp_path):
    code = ("import sys; sys.argv[0] = 'gli'\n"
            "import os, signal\n"
            "import gli_toolbox.cli  # installs the handlers first, then imports click and the commands\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "import time; time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 130
    assert proc.stderr.strip() == "Interrupted (Ctrl-C); the output folder was left as it was before this run."


def test_second_run_into_the_same_folder_is_refused_while_the_first_holds_it(stalling_files, tmp_path):
    out = tmp_path / "o"
    stalling_files.clear()
    cat = _slow_catalog(stalling_files, tmp_path)
    first = _start_gli(["detect", "--aoi", BARBELLINO, "--stac", cat, "--years", "2017-2019", "--out", out],
                       tmp_path)
    try:
        _wait_for_stall(stalling_files, first)
        res = detect(out)
        assert res.exit_code == 1
        assert f"another gli run (process {first.pid}) is writing into {out}" in res.output
        assert "wait until it has finished, or choose another --out" in res.output
        res = detect(out, "--overwrite")
        assert res.exit_code == 1 and "another gli run" in res.output
    finally:
        first.kill()  # SIGKILL: no cleanup runs, the OS drops the lock
        first.communicate(timeout=60)
    # the killed run's finished chunks are not dropped by a run that was not asked to continue it
    res = detect(out)
    assert res.exit_code == 1
    assert re.search(r"an earlier run into .+ was stopped or incomplete and left [1-9]\d* finished chunk\(s\) in "
                     r".+\.o\.gli-work: add --resume to reuse them", res.output), res.output
    res = detect(out, "--resume")
    assert res.exit_code == 0, res.output
    assert (out / "lakes_2019.shp").exists() and not list(tmp_path.glob(".o.*"))


# --------------------------------------------------------------------------------------------------
# Permissions and a full disk


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o002, 0o775), (0o077, 0o700)])
def test_new_output_folders_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert detect(tmp_path / "o", years="2019").exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / "o").stat().st_mode & 0o777 == mode
    assert (tmp_path / "o" / "figures").stat().st_mode & 0o777 == mode


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), as a full USB stick or quota would be; needs root."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if os.environ.get("GLI_REQUIRE_SERVICES") == "1":
            pytest.fail(f"cannot mount a small tmpfs for the disk-full test: {proc.stderr.strip()}")
        pytest.skip(f"cannot mount a small tmpfs (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave_bytes: int) -> None:
    free = shutil.disk_usage(mnt).free
    with open(mnt / "filler.bin", "wb") as f:
        f.write(b"\0" * max(free - leave_bytes, 0))


def test_disk_full_while_writing_gives_one_line_and_keeps_earlier_outputs(tiny_disk):
    out = tiny_disk / "o"
    assert detect(out, years="2019").exit_code == 0
    before = snapshot(out)
    _fill(tiny_disk, 40_000)  # the masks and layers of three years do not fit in 40 kB
    res = detect(out, "--overwrite", "--save-masks")
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.startswith("Error")]
    # the run fails where the disk fills: its intermediate chunk files beside --out, or the outputs
    assert lines in ([(f"Error: no space left in {tiny_disk} for the run's intermediate files; free some space or "
                       "choose another --out")],
                     [(f"Error: no space left in {out} while writing the outputs; free some space or choose "
                       f"another --out (nothing in {out} was changed)")])
    assert "Traceback" not in res.output and "sqlite" not in res.output.lower()
    assert snapshot(out) == before  # earlier outputs intact, no staging leftovers


def test_disk_full_for_a_new_folder_leaves_nothing(tiny_disk):
    _fill(tiny_disk, 20_000)
    res = detect(tiny_disk / "new", "--save-masks")
    assert res.exit_code == 1 and f"no space left in {tiny_disk}" in res.output
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler.bin"]


def test_overwrite_error_is_a_gli_error(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_text("{}")
    (out / "lakes_2019.shp").write_text("mine")
    with (pytest.raises(OutputExistsError, match="lakes_2019.shp was not written by gli"),
          export.staged_output(out, overwrite=True) as stage):
        (stage / "lakes_2019.shp").write_text("new")
    assert (out / "lakes_2019.shp").read_text() == "mine"
