"""The run engine: identical layers whatever the chunking and the workers (including the L1C path
with s2cloudless and projected cloud shadows), a real Dask scheduler and two workers as separate
processes on loopback, a chunk that keeps failing, and ``--resume`` after a SIGKILL."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from gli_toolbox import engine
from gli_toolbox.errors import NoScenesFoundError
from gli_toolbox.pipeline import detect

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CATALOG = str(SAMPLE / "catalog.json")
HAVEL = {"aoi": str(SAMPLE / "havel.geojson"), "years": (2017,), "months": (2, 2), "stac": CATALOG,
             "collection": "sentinel-2-l1c"}
BARBELLINO = {"aoi": str(SAMPLE / "barbellino.geojson"), "years": (2017, 2019), "stac": CATALOG}


def _layers(result) -> dict[str, object]:
    """What must not depend on chunking: every lake (id, area, geometry) and every water map."""
    out = {}
    for key, gdf in {**result.lakes, **result.scene_lakes}.items():
        out[f"lakes {key}"] = gdf.drop(columns="geometry").to_dict("list"), [g.wkb for g in gdf.geometry]
    for key, m in {**result.masks, **result.scene_masks}.items():
        out[f"class {key}"] = m.water_class.tobytes()
        out[f"nobs {key}"] = m.valid_count.tobytes()
    return out


@pytest.fixture(scope="module")
def havel_reference(tmp_path_factory):
    """The L1C sample (s2cloudless clouds + projected shadows) on one chunk covering everything."""
    res = detect(HAVEL["aoi"], **{k: v for k, v in HAVEL.items() if k != "aoi"}, chunk_px=2048, progress=False,
                 work_dir=tmp_path_factory.mktemp("ref"))
    assert res.grid.shape[0] > 256 and res.grid.shape[1] > 256  # several 256-px chunks below
    assert len(res.lakes[2017]) >= 2
    return res


@pytest.mark.parametrize("chunk_px", [256, 1024])
def test_l1c_layers_do_not_depend_on_chunk_size(havel_reference, chunk_px, tmp_path):
    res = detect(HAVEL["aoi"], **{k: v for k, v in HAVEL.items() if k != "aoi"}, chunk_px=chunk_px, progress=False,
                 work_dir=tmp_path)
    assert res.run["grid"]["chunks"] == (6 if chunk_px == 256 else 1)
    assert _layers(res) == _layers(havel_reference)
    assert res.run["complete"] is True and res.run["incomplete"] == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_WORKER = [sys.executable, "-m", "distributed.cli.dask_worker", "{addr}", "--nthreads", "1", "--memory-limit", "1GB",
           "--no-dashboard"]


@contextlib.contextmanager
def _cluster(workers: list[tuple[list[str], dict[str, str]]], *, running: bool = True):
    """A ``dask scheduler`` and worker processes on loopback, as a partner's cluster runs them; each
    worker is (command with ``{addr}``, extra environment). Yields a connected ``Client`` once
    every worker has joined (and runs, unless ``running=False``: a paused worker never does)."""
    pytest.importorskip("distributed")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)]
    try:
        for cmd, extra in workers:
            procs.append(subprocess.Popen([c.replace("{addr}", addr) for c in cmd], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env={**env, **extra}))
        from dask.distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                client = Client(addr, timeout="5s")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        if workers and running:
            client.wait_for_workers(len(workers), timeout=60)
        deadline = time.monotonic() + 60
        while len(client.nthreads()) < len(workers) and time.monotonic() < deadline:  # any state (paused too)
            time.sleep(0.2)
        yield client
        client.close()
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def loopback_cluster():
    """``dask scheduler`` and two ``dask worker`` processes, as a partner's cluster would run them."""
    with _cluster([(_WORKER, {}), (_WORKER, {})]) as client:
        yield client


def _detect_on(addr: str, out: Path):
    from click.testing import CliRunner

    from gli_toolbox.cli import cli

    return CliRunner().invoke(cli, ["detect", "--aoi", BARBELLINO["aoi"], "--stac", CATALOG, "--years", "2017",
                                    "--out", str(out), "--scheduler", addr])


def test_two_worker_processes_give_the_same_layers(havel_reference, loopback_cluster, tmp_path):
    """Chunks of 256 px spread over two worker processes of a separate scheduler: same layers as
    one chunk in this process; the tasks really ran on both workers."""
    from dask.distributed import get_task_stream

    client = loopback_cluster
    plans = []
    with get_task_stream(client) as stream:
        res = detect(HAVEL["aoi"], **{k: v for k, v in HAVEL.items() if k != "aoi"}, chunk_px=256, progress=False,
                     client=client, work_dir=tmp_path, on_plan=plans.append)
    assert _layers(res) == _layers(havel_reference)
    # the plan tells where to watch the progress: the dashboard of the user's scheduler
    (est,) = plans
    assert est.dashboard is not None and est.dashboard.startswith("http://127.0.0.1:")
    assert est.dashboard == client.dashboard_link and est.dashboard in est.lines()[-1]
    assert not list(tmp_path.rglob(".probe-*"))  # the shared-folder check cleans up after itself
    assert res.run["engine"]["runner"].startswith("dask tcp://127.0.0.1:")
    chunk_tasks = [t for t in stream.data if str(t["key"]).startswith("gli-chunk-2017-33N-")]
    assert len(chunk_tasks) == 6
    assert len({t["worker"] for t in chunk_tasks}) == 2  # both worker processes computed chunks


def test_a_relative_work_folder_works_on_workers_started_elsewhere(loopback_cluster, tmp_path, monkeypatch):
    """`work_dir` relative to this process's folder: the workers (started in another folder) get
    absolute chunk paths, so the run completes with the lake of the sample."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    workers_cwd = set(loopback_cluster.run(os.getcwd).values())
    assert str(here) not in workers_cwd  # the workers really resolve relative paths elsewhere
    res = detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, progress=False, client=loopback_cluster,
                 work_dir="relative-work")
    assert res.run["complete"] is True and len(res.lakes[2019]) == 1
    assert (here / "relative-work").is_dir()


def _can_unshare_mounts() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _elsewhere(hidden: Path) -> list[str]:
    """A worker command for a process that does not see ``hidden`` (its own mount namespace with an
    empty tmpfs over it), as a worker on another machine or of a cloud Dask service."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f"mount -t tmpfs tmpfs {hidden} && exec {' '.join(_WORKER)}"]


def _needs_unshare() -> None:
    if shutil.which("unshare") is None or not _can_unshare_mounts():
        pytest.skip("needs `unshare --mount` (root, util-linux) to give a worker a file system of its own")


def _task_folders() -> set[str]:
    import tempfile

    tmp = Path(tempfile.gettempdir())  # in the workers' local directories (Dask's default: under the temporary folder)
    return {str(p) for p in [*tmp.glob("gli-task-*"), *tmp.glob("dask-scratch-space/*/gli-task-*")]}


def test_workers_without_the_work_folder_send_their_results_back(havel_reference, tmp_path, caplog):
    """Workers that do not see the work folder (a cloud Dask service; simulated by two worker
    processes, each in its own mount namespace with an empty tmpfs over it) were refused. Now each
    task runs in a folder of its worker, gets the coarse cloud masks of its days (the L1C path:
    s2cloudless clouds and projected shadows, 256 px chunks) from the cluster and sends its files
    back: the layers are those of one chunk in this process, the chunk files are in the work
    folder, and a second run with ``resume=True`` reuses every one of them."""
    _needs_unshare()
    before = _task_folders()
    kw = {k: v for k, v in HAVEL.items() if k != "aoi"}
    with _cluster([(_elsewhere(tmp_path), {}), (_elsewhere(tmp_path), {})]) as client:
        marker = tmp_path / "marker"
        marker.write_text("here")
        assert not any(client.run(os.path.exists, str(marker)).values())  # no worker sees this machine's folder
        marker.unlink()
        with caplog.at_level("INFO", logger="gli_toolbox"):
            res = detect(HAVEL["aoi"], **kw, chunk_px=256, progress=False, client=client, work_dir=tmp_path / "work")
        assert any("does not share the work folder" in r.getMessage() and "(and 1 other worker(s))" in r.getMessage()
                   for r in caplog.records if r.levelname == "WARNING")
        assert res.run["complete"] is True, res.run["incomplete"]
        assert _layers(res) == _layers(havel_reference)
        chunk_files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "work").rglob("chunks/*/*/*.tif"))
        assert len(chunk_files) == 6
        assert list((tmp_path / "work").rglob("clouds/*/*/*/b*.tif"))  # the cloud pass came back too
        progress: list[int] = []
        caplog.clear()
        with caplog.at_level("INFO", logger="gli_toolbox"):
            again = detect(HAVEL["aoi"], **kw, chunk_px=256, progress=False, client=client, work_dir=tmp_path / "work",
                           resume=True, on_progress=lambda done, total, key: progress.append(done))
    assert progress == [] and any("resuming: 6 of 6 chunk tasks already done" in r.getMessage() for r in caplog.records)
    assert _layers(again) == _layers(havel_reference)
    assert _task_folders() <= before  # the workers' task folders are removed


def test_a_cli_run_on_workers_of_which_one_lacks_the_work_folder_completes(tmp_path):
    """`gli detect --scheduler` on a cluster where one worker shares this machine's files and the
    other does not (was refused before any read): the run completes with the sample's lake, says
    once where the results go, and writes no traceback."""
    _needs_unshare()
    with _cluster([(_WORKER, {}), (_elsewhere(tmp_path), {})]) as client:
        res = _detect_on(client.scheduler.address, tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert res.output.count("does not share the work folder") == 1 and "Traceback" not in res.output
    lakes = gpd.read_file(tmp_path / "out" / "lakes_2017.shp")
    assert len(lakes) == 1 and lakes["area_km2"].iloc[0] > 0.01


def test_scenes_the_workers_do_not_see_are_refused_before_any_read(tmp_path):
    """A catalog of local files on this machine only (the sample copied into a folder the worker does
    not see): every chunk would fail; the run stops before any read with one line that names the
    worker and a file and says what to do, and leaves nothing behind."""
    _needs_unshare()
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    out_parent = tmp_path / "run"
    out_parent.mkdir()
    with _cluster([(_elsewhere(data), {})]) as client:
        from click.testing import CliRunner

        from gli_toolbox.cli import cli

        res = CliRunner().invoke(cli, ["detect", "--aoi", str(data / "barbellino.geojson"), "--stac",
                                       str(data / "catalog.json"), "--years", "2017", "--out", str(out_parent / "out"),
                                       "--scheduler", client.scheduler.address])
        (addr,) = client.nthreads()
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("Error: ")]
    # the 2017 scene: green, NIR, SWIR1 and SCL
    assert line.startswith(f"Error: the Dask worker {addr} does not see 4 of the 4 file(s) of this machine the run reads, "
                           f"e.g. {data / 'sentinel-2-c1-l2a'}")
    assert "--stac" in line and "--dem" in line and "Traceback" not in res.output
    assert sorted(p.name for p in out_parent.iterdir()) == []


def _without_gli(folder: Path) -> Path:
    """A folder for ``PYTHONPATH`` whose ``sitecustomize`` makes ``import gli_toolbox`` fail: the
    environment of a worker set up for something else."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoGli:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'gli_toolbox' or name.startswith('gli_toolbox.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'gli_toolbox'\", name=name)\n"
        "sys.meta_path.insert(0, _NoGli())\n")
    return folder


def test_workers_without_gli_toolbox_are_refused_before_any_read(tmp_path):
    """Workers whose environment lacks gli-toolbox (a cluster set up for something else): one line
    that says to install it, before any chunk task could fail for it, and nothing left behind."""
    hide = _without_gli(tmp_path / "hide")
    out_parent = tmp_path / "run"
    out_parent.mkdir()
    with _cluster([(_WORKER, {"PYTHONPATH": str(hide)})]) as client:
        res = _detect_on(client.scheduler.address, out_parent / "out")
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("Error: ")]
    assert line.startswith("Error: the Dask workers cannot run gli-toolbox (") and "gli_toolbox" in line
    assert "install gli-toolbox" in line and "Traceback" not in res.output
    assert sorted(p.name for p in out_parent.iterdir()) == []


def test_each_task_checks_the_run_folder_before_reading(monkeypatch, tmp_path):
    """A task on a worker that joined the cluster after the start-up check (adaptive scaling, an HPC
    job that left its queue): without the run's work folder, or with another gli-toolbox version, it
    fails at once, before reading or writing anything; with the marker of this run it runs."""
    from dataclasses import replace

    from gli_toolbox import __version__
    from gli_toolbox.errors import ClusterError

    tasks = []
    real = engine.run_chunk
    monkeypatch.setattr(engine, "run_chunk", lambda t: (tasks.append(t), real(t))[1])
    detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, progress=False, work_dir=tmp_path / "run")
    monkeypatch.setattr(engine, "run_chunk", real)
    task = tasks[0]
    assert task.run_dir and (Path(task.run_dir) / engine.RUN_MARKER).read_text() == __version__

    elsewhere = tmp_path / "elsewhere"  # the work folder as a worker without it sees it: absent
    moved = replace(task, run_dir=str(elsewhere), path=str(elsewhere / "chunks" / "c.tif"))
    with pytest.raises(ClusterError, match=r"^the process \d+ does not see the run's work folder .+elsewhere: "
                                           r"start workers only where the output folder is shared$"):
        engine.run_chunk(moved)
    assert not elsewhere.exists()  # nothing written, not even its folders

    elsewhere.mkdir()
    (elsewhere / engine.RUN_MARKER).write_text("0.0.1")  # made by another version of gli-toolbox
    with pytest.raises(ClusterError, match=rf"runs gli-toolbox {__version__}, the run 0.0.1: install the same version"):
        engine.run_chunk(moved)
    assert sorted(p.name for p in elsewhere.iterdir()) == [engine.RUN_MARKER]

    (elsewhere / engine.RUN_MARKER).write_text(__version__)
    assert engine.run_chunk(moved)["days"] == real(task)["days"]


def test_a_cluster_without_workers_is_waited_for_then_refused(monkeypatch, tmp_path, caplog):
    """A scheduler whose workers have not joined (an HPC job still queued): the run waits for one,
    up to ``WORKER_WAIT_S``, then stops with one line, leaving nothing behind."""
    from gli_toolbox.errors import ClusterError

    monkeypatch.setenv("GLI_WORKER_WAIT_S", "3")  # the knob for a long HPC queue
    with _cluster([]) as client:
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match=r"^no Dask worker joined the scheduler tcp://127\.0\.0\.1:\d+ within "
                                               r"3 s: start workers \(dask worker tcp://.+\) or use --workers N"):
            detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, progress=False, client=client,
                   work_dir=tmp_path / "work")
        assert 3 <= time.monotonic() - t0 < 60
    # the wait is said at the default verbosity (warnings), not silent
    assert any(r.levelname == "WARNING" and "waiting up to 3 s for one to join (GLI_WORKER_WAIT_S)" in r.getMessage()
               for r in caplog.records)
    assert list((tmp_path / "work").iterdir()) == []


def test_in_memory_lakes_on_a_cluster_without_workers_are_extracted_here(caplog):
    """``extract_grid_lakes(client=...)`` on a scheduler with no worker (jobs still queued) extracts
    the lakes in this process, with a warning; scattering the arrays failed there (``TimeoutError: No
    valid workers found`` after the client's timeout)."""
    from affine import Affine

    from gli_toolbox.lakes import LakeParams
    from gli_toolbox.stitch import extract_grid_lakes

    cls = np.zeros((40, 40), np.uint8)
    cls[5:30, 3:33] = 1
    cls[33:38, 33:38] = 1
    kw = {"transform": Affine(10, 0, 400000, 0, -10, 4700000), "crs": "EPSG:32643",
          "params": LakeParams(min_area_m2=100), "chunk_px": 9}
    here = extract_grid_lakes(cls, **kw)
    with _cluster([]) as client:
        got: list = []
        err = _within(60, lambda: got.append(extract_grid_lakes(cls, client=client, **kw)))
    assert err is None
    assert got[0].area_km2.tolist() == here.area_km2.tolist() == [pytest.approx(0.075), pytest.approx(0.0025)]
    assert any(r.levelname == "WARNING" and "no worker" in r.getMessage() for r in caplog.records)


def test_a_wrong_scheduler_address_is_refused_with_one_line(monkeypatch, tmp_path):
    """``--scheduler`` at something that is no Dask scheduler: a service that greets with a banner
    (SSH; Dask read it as a frame length and raised an ``ArrayMemoryError`` traceback) and a web
    server (the dashboard's port; the handshake waited for ever). One line each, in bounded time."""
    import http.server
    import threading

    from gli_toolbox.errors import ConfigError

    monkeypatch.setattr(engine, "SCHEDULER_TIMEOUT_S", 2.0)
    ssh = socket.socket()
    ssh.bind(("127.0.0.1", 0))
    ssh.listen()

    def greet() -> None:
        while True:
            conn, _ = ssh.accept()
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")

    threading.Thread(target=greet, daemon=True).start()
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        # (what Dask makes of each depends on its release: any one-line cause is right)
        for port, why in [(_free_port(), r"cannot connect \(connection refused\)"),  # nothing listens: at once
                          (ssh.getsockname()[1], r"cannot connect \(.+\)"),
                          (web.server_address[1], r"(no Dask scheduler answered within 7 s|cannot connect \(.+\))")]:
            t0 = time.monotonic()
            err = _within(60, lambda p=port: detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, progress=False,
                                                    scheduler=f"tcp://127.0.0.1:{p}", work_dir=tmp_path / "w"))
            assert isinstance(err, ConfigError), err
            assert re.fullmatch(rf"--scheduler tcp://127\.0\.0\.1:{port}: {why}; check the address \(the "
                                r"scheduler's port, tcp://host:8786 by default, not its dashboard's 8787\) and that "
                                r"the Dask scheduler is running", str(err)), str(err)
            assert time.monotonic() - t0 < 30
        assert not (tmp_path / "w").exists()
    finally:
        web.shutdown()
        ssh.close()


def test_a_paused_worker_that_still_runs_a_task_counts_as_working():
    """Dask's pause stops a worker from taking new tasks, not the one it runs: a run whose workers
    pause now and then under each chunk's peak keeps going (and any finished task resets the wait)."""
    assert engine._working({"status": "running", "metrics": {"task_counts": {}}})
    assert engine._working({"status": "paused", "metrics": {"task_counts": {"executing": 1}}})
    assert engine._working({"status": "paused", "metrics": {"executing": 1}})  # older releases of distributed
    assert not engine._working({"status": "paused", "metrics": {"task_counts": {"memory": 3}}})
    assert not engine._working({"status": "closing", "metrics": {}})
    watch = engine._WorkerWatch(client=None)
    watch.since = 1.0
    watch.progress()
    assert watch.since is None


def test_resume_refuses_chunks_made_by_another_version(tmp_path):
    """The layers of one run must not mix chunks of two gli-toolbox versions (an upgrade between a
    stopped run and its --resume)."""
    from gli_toolbox import __version__
    from gli_toolbox.errors import ConfigError

    kw = {"years": (2019,), "stac": CATALOG, "progress": False, "work_dir": tmp_path / "w"}
    detect(BARBELLINO["aoi"], **kw)
    (marker,) = (tmp_path / "w").glob(f"*/{engine.RUN_MARKER}")
    assert detect(BARBELLINO["aoi"], resume=True, **kw).lakes  # the same version: reused
    marker.write_text("0.0.1", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^--resume: the finished chunks in .+ were made by gli-toolbox 0\.0\.1, "
                                          rf"this is {re.escape(__version__)}; delete that folder to start again"):
        detect(BARBELLINO["aoi"], resume=True, **kw)
    assert engine.finished_chunks(tmp_path / "w") == 1  # nothing dropped


def test_workers_from_a_script_without_a_main_guard_say_what_to_do(tmp_path):
    """``detect(workers=2)`` at the top level of a script: each spawned worker imports the script and
    fails; Dask said only "Nanny failed to start" at the end of some 300 lines. The error now names
    the script and the guard."""
    script = tmp_path / "my_run.py"
    script.write_text("from gli_toolbox import detect\n"
                      f"detect({str(BARBELLINO['aoi'])!r}, stac={str(CATALOG)!r}, years=(2019,), workers=2, "
                      "progress=False)\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("gli_toolbox.errors.ClusterError: could not start 2 local Dask worker process(es) (")
    assert "in a script (my_run.py), call gli_toolbox.detect() under `if __name__ == \"__main__\":`" in last


def test_a_chunk_whose_worker_keeps_dying_says_what_to_do():
    """Dask's ``KilledWorker`` (the worker died each time it ran the task: most often its memory
    limit) becomes one line with the two remedies, not Dask's paragraph."""
    from types import SimpleNamespace

    KilledWorker = pytest.importorskip("distributed.scheduler").KilledWorker
    line = engine._task_error(KilledWorker("gli-chunk-2019-43N-r0_c0", SimpleNamespace(address="tcp://w:1"), 3))
    assert line == ("KilledWorker: the Dask worker running this chunk died each time (most often out of memory): "
                    "lower --chunk-px (memory grows with its square) or give each worker more memory (1-2 GB)")
    assert engine._task_error(OSError("disk quota exceeded")) == "OSError: disk quota exceeded"


def test_workers_paused_at_their_memory_limit_stop_the_run_with_one_line(monkeypatch, tmp_path, caplog):
    """Dask pauses a worker above 80 % of its memory limit; one that never resumes took no task and
    the run waited for ever, silently. Now: a warning at once, then one line after the wait.
    (Here the worker is made to pause at 1 % of its limit.)"""
    from gli_toolbox.errors import ClusterError

    monkeypatch.setenv("GLI_WORKER_WAIT_S", "3")
    paused = {"DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE": "0.01", "DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE": "False",
              "DASK_DISTRIBUTED__WORKER__MEMORY__SPILL": "False", "DASK_DISTRIBUTED__WORKER__MEMORY__TARGET": "False",
              "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "100ms"}
    with _cluster([(_WORKER, paused)], running=False) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and \
                {w.get("status") for w in client.scheduler_info()["workers"].values()} != {"paused"}:
            time.sleep(0.2)
        assert {w.get("status") for w in client.scheduler_info()["workers"].values()} == {"paused"}
        err = _within(120, lambda: detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, progress=False,
                                          client=client, work_dir=tmp_path / "w"))
    assert isinstance(err, ClusterError), err
    assert re.match(r"the workers of the Dask cluster tcp://127\.0\.0\.1:\d+ have been paused at their memory limit "
                    r"for 3 s \(1 task\(s\) left\): finished chunks are kept; give each worker more memory \(1-2 GB\) "
                    r"or lower --chunk-px", str(err)), str(err)
    assert any(r.levelname == "WARNING" and "is paused at its memory limit" in r.getMessage() for r in caplog.records)


def _swap_workers(client, new_worker: list[str], env: dict[str, str]):
    """``on_plan`` for a run on ``client``: after the start-up check, a worker started with
    ``new_worker`` joins and the workers of the check leave (as when an HPC job ends and another one
    starts). Returns the callback and the list of the processes it started."""
    procs: list[subprocess.Popen] = []

    def swap(_plan) -> None:
        old = list(client.nthreads())
        addr = client.scheduler.address
        procs.append(subprocess.Popen([c.replace("{addr}", addr) for c in new_worker], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL,
                                      env={**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False", **env}))
        client.wait_for_workers(len(old) + 1, timeout=60)
        client.retire_workers(old)
        deadline = time.monotonic() + 60
        while set(client.nthreads()) & set(old) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(client.nthreads()) == 1

    return swap, procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_a_worker_joining_later_without_the_work_folder_gets_no_chunk(tmp_path, monkeypatch):
    """A worker that joins after the start-up check and does not see the work folder (its own mount
    namespace with a tmpfs over it, as on another machine) takes the place of the checked one. Its
    chunk tasks fail before reading, are retried and recorded (the run says it is incomplete), not
    written where nobody looks; the lake passes it cannot read run in this process."""
    if shutil.which("unshare") is None or not _can_unshare_mounts():
        pytest.skip("needs `unshare --mount` (root, util-linux) to give one worker a file system of its own")
    monkeypatch.setenv("GLI_WORKER_WAIT_S", "3")  # how long its chunk waits for another worker
    elsewhere = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 f"mount -t tmpfs tmpfs {tmp_path} && exec {' '.join(_WORKER)}"]
    with _cluster([(_WORKER, {})]) as client:
        swap, procs = _swap_workers(client, elsewhere, {})
        try:
            with pytest.raises(NoScenesFoundError) as err:
                detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, progress=False, client=client,
                       work_dir=tmp_path / "work", on_plan=swap)
        finally:
            _stop(procs)
    # the one year had only this worker: its chunks failed, and the error says why, in one line
    (line,) = str(err.value).splitlines()
    assert "1 chunk task(s) or band file(s) failed, e.g. chunk zone 32N rows 0-42 cols 0-24: " in line, line
    assert re.search(r"WorkerUnfitError: the Dask worker tcp://127\.0\.0\.1:\d+ on .+ does not see the run's work "
                     r"folder", line), line
    assert "start workers only where the output folder is shared" in line
    assert not [p for p in tmp_path.rglob("*.tif") if "work" in p.parts]  # nothing written for the failed chunks


def _within(seconds: float, fn):
    """What ``fn()`` raised (None if nothing), failing the test if it has not ended after ``seconds``
    (a run that waits for ever must fail the test, not hang the suite)."""
    import threading

    box: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            box.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"still running after {seconds} s: the run waits for ever")
    return box[0]


def test_a_cluster_that_loses_all_its_workers_stops_and_resumes(monkeypatch, tmp_path):
    """The checked worker leaves and the one that joins lacks gli-toolbox (it dies on its first task):
    the cluster has no worker, so after ``GLI_WORKER_WAIT_S`` the run stops with one line instead of
    waiting for ever, keeping the work folder; once a worker is back, ``resume`` finishes the run with
    the result of a run in this process."""
    from gli_toolbox.errors import ClusterError

    hide = _without_gli(tmp_path / "hide")
    monkeypatch.setenv("GLI_WORKER_WAIT_S", "3")  # the knob for a long HPC queue
    kw = {"years": (2017, 2019), "stac": CATALOG, "progress": False, "work_dir": tmp_path / "work"}
    with _cluster([(_WORKER, {})]) as client:
        swap, procs = _swap_workers(client, _WORKER, {"PYTHONPATH": str(hide)})
        try:
            err = _within(120, lambda: detect(BARBELLINO["aoi"], client=client, on_plan=swap, **kw))
            assert isinstance(err, ClusterError), err
            assert re.match(r"^the Dask cluster tcp://.+ has had no worker for 3 s \(\d+ task\(s\) left\): finished "
                            r"chunks are kept; start workers and run the same command again with --resume$", str(err))
            assert list((tmp_path / "work").rglob(engine.RUN_MARKER))  # the work folder is kept
            procs.append(subprocess.Popen([c.replace("{addr}", client.scheduler.address) for c in _WORKER],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            client.wait_for_workers(1, timeout=60)
            res = detect(BARBELLINO["aoi"], client=client, resume=True, **kw)
        finally:
            _stop(procs)
    here = detect(BARBELLINO["aoi"], **{**kw, "work_dir": tmp_path / "here"})
    assert res.run["complete"] is True
    assert _layers(res) == _layers(here)


def test_a_chunk_that_keeps_failing_is_recorded_not_fatal(havel_reference, monkeypatch, tmp_path):
    """One chunk raises on every attempt: it is retried, then recorded in run["incomplete"], its area
    stays never observed (255) and every other chunk keeps its result."""
    calls = []
    real = engine.run_chunk

    def flaky(task):
        if task.chunk.row0 == 0 and task.chunk.col0 == 0:
            calls.append(task.key)
            raise OSError("disk quota exceeded (injected)")
        return real(task)

    monkeypatch.setattr(engine, "run_chunk", flaky)
    res = detect(HAVEL["aoi"], **{k: v for k, v in HAVEL.items() if k != "aoi"}, chunk_px=256, progress=False,
                 work_dir=tmp_path)
    assert len(calls) == 1 + engine.CHUNK_RETRIES
    assert res.run["complete"] is False
    (line,) = res.run["incomplete"]["2017"]
    assert "zone 33N rows 0-256 cols 0-256" in line and "disk quota exceeded" in line and "never observed" in line
    a, b = havel_reference.masks[2017].water_class, res.masks[2017].water_class
    assert (b[:256, :256] == 255).all() and (a[:256, :256] != 255).any()
    keep = np.ones(a.shape, bool)
    keep[:256, :256] = False
    np.testing.assert_array_equal(a[keep], b[keep])
    before = havel_reference.run["years"]["2017"]["never_observed_pixels_in_aoi"]
    assert res.run["years"]["2017"]["never_observed_pixels_in_aoi"] > before


def _gli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from gli_toolbox.cli import cli; cli()", *args]


def test_resume_after_sigkill_gives_the_uninterrupted_result(tmp_path):
    """A real run is killed (SIGKILL) after some chunks finished; ``--resume`` reuses them and the
    outputs equal those of an uninterrupted run."""
    args = ["detect", "--aoi", HAVEL["aoi"], "--stac", CATALOG, "--collection", "sentinel-2-l1c", "--years", "2017",
            "--months", "2-2", "--chunk-px", "128", "--save-masks"]
    full = tmp_path / "full"
    subprocess.run(_gli(*args, "-q", "--out", str(full)), check=True, capture_output=True, timeout=600)

    out = tmp_path / "out"
    work = tmp_path / ".out.gli-work"
    proc = subprocess.Popen(_gli(*args, "-q", "--out", str(out)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(work.rglob("r*_c*.json"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    finished = len(list(work.rglob("r*_c*.json")))
    assert 3 <= finished < 15 and not out.exists()

    res = subprocess.run(_gli(*args, "--out", str(out), "--resume", "-v"), capture_output=True, text=True, timeout=600,
                         check=False)
    assert res.returncode == 0, res.stderr
    reused = [ln for ln in res.stderr.splitlines() if "resuming:" in ln]
    assert reused and int(reused[0].split("resuming:")[1].split()[0]) >= finished
    assert not work.exists()  # removed once the outputs are written
    for name in ("water_2017.tif", "nobs_2017.tif"):
        with rasterio.open(full / name) as a, rasterio.open(out / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())
    la, lb = gpd.read_file(full / "lakes_2017.shp"), gpd.read_file(out / "lakes_2017.shp")
    assert la.drop(columns="geometry").equals(lb.drop(columns="geometry"))
    assert la.geometry.geom_equals(lb.geometry).all()
    assert json.loads((out / "run.json").read_text())["complete"] is True


@pytest.fixture(scope="module")
def two_zone_region(tmp_path_factory):
    """A small synthetic region across the 42N/43N border (benchmarks/make_region.py, real bands)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_region", ROOT / "benchmarks" / "make_region.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not (mod.DATA / "s2_l1c_havel_T33UUU_20170216").is_dir():
        pytest.skip(f"shared data not found at {mod.DATA}")
    out = tmp_path_factory.mktemp("region")
    mod.make_region(out, tile_px=400, cols=2, rows=1, dates=1, years=[2019])
    return out


def test_two_zone_aoi_is_mapped_on_each_zone_grid_whatever_the_chunking(two_zone_region, tmp_path):
    kw = {"years": (2019,), "stac": str(two_zone_region / "items.json"), "collection": "synthetic-l2a", "progress": False}
    aoi = str(two_zone_region / "aoi.geojson")
    a = detect(aoi, chunk_px=128, work_dir=tmp_path / "a", **kw)
    b = detect(aoi, chunk_px=1024, work_dir=tmp_path / "b", **kw)
    assert [z.crs for z in a.zones] == ["EPSG:32642", "EPSG:32643"]
    assert [z["zone"] for z in a.run["zones"]] == ["42N", "43N"]
    # each part on its own zone's 10 m grid, aligned to multiples of 10 m
    for z in a.zones:
        assert z.grid.affine.a == 10.0 and z.grid.affine.c % 10 == 0 and z.grid.affine.f % 10 == 0
    lakes_a, lakes_b = a.lakes[2019], b.lakes[2019]
    assert len(lakes_a) > 5 and str(lakes_a.crs) == a.run["grid"]["crs_of_layers"]
    pd_a = lakes_a.drop(columns="geometry")
    assert pd_a.equals(lakes_b.drop(columns="geometry")) and lakes_a.geometry.geom_equals(lakes_b.geometry).all()
    # lakes on both sides of the border, each area from its own zone's pixels (multiples of 100 m2)
    lon = lakes_a["lon"].to_numpy()
    assert (lon < 72.0).any() and (lon > 72.0).any()
    n100 = lakes_a["area_km2"].to_numpy() * 1e4
    np.testing.assert_allclose(n100, np.round(n100), atol=1e-6)
    for m in (a.masks[2019], b.masks[2019]):
        assert len(m.zones) == 2
    for za, zb in zip(a.masks[2019].zones, b.masks[2019].zones):
        with rasterio.open(za.paths["class"]) as x, rasterio.open(zb.paths["class"]) as y:
            np.testing.assert_array_equal(x.read(1), y.read(1))
    # observed_share reads windows of both zones: a lake polygon in the layers' CRS is fully observed
    assert a.masks[2019].observed_share(lakes_a.geometry.iloc[0], lakes_a.crs) == 1.0
    # the same place in lon/lat: with its CRS it is observed; without, it lies outside every grid (it
    # returned 0.0, "never observed", in silence)
    from gli_toolbox.errors import GliError

    ll = gpd.GeoSeries([lakes_a.geometry.iloc[0]], crs=lakes_a.crs).to_crs("EPSG:4326").iloc[0]
    assert a.masks[2019].observed_share(ll, "EPSG:4326") == pytest.approx(1.0, abs=0.05)
    with pytest.raises(GliError, match=r"lies outside every grid of water map .+; give its CRS, e\.g\. "
                                       r"crs=\"EPSG:4326\" for lon/lat"):
        a.masks[2019].observed_share(ll)


def test_terrain_attributes_do_not_depend_on_chunking_across_zones(two_zone_region, tmp_path):
    """With ``--dem``, each chunk keeps its elevation and slope (a GeoTIFF beside its counts) and the
    zone layers are assembled from them: on a DEM that rises 1 m per 0.0001 degree of longitude
    (about 7 degrees here), every lake's ``elev_m`` and ``slope_deg`` are the same at 128 and 1024 px
    chunks, on both sides of the zone border (they differed in ``slope_deg``: each chunk's DEM was
    warped onto its own window), and ``elev_m`` is the plane's height within the lake."""
    from affine import Affine

    aoi_geom = json.loads((two_zone_region / "aoi.geojson").read_text())["features"][0]["geometry"]
    from shapely.geometry import shape

    x0, y0, x1, y1 = shape(aoi_geom).buffer(0.2).bounds
    res_deg = 0.0003
    w, h = int((x1 - x0) / res_deg), int((y1 - y0) / res_deg)
    lon = x0 + (np.arange(w) + 0.5) * res_deg
    plane = np.broadcast_to(2000.0 + (lon - x0) * 1e4, (h, w)).astype(np.float32)  # 1 m per 0.0001 degree
    with rasterio.open(tmp_path / "dem.tif", "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                       crs="EPSG:4326", transform=Affine(res_deg, 0, x0, 0, -res_deg, y1)) as dst:
        dst.write(plane[None])
    kw = {"years": (2019,), "stac": str(two_zone_region / "items.json"), "collection": "synthetic-l2a", "progress": False,
          "dem": str(tmp_path / "dem.tif"), "max_slope_deg": 45.0}
    aoi = str(two_zone_region / "aoi.geojson")
    a = detect(aoi, chunk_px=128, work_dir=tmp_path / "a", **kw).lakes[2019]
    b = detect(aoi, chunk_px=1024, work_dir=tmp_path / "b", **kw).lakes[2019]
    assert list(a["elev_m"]) == list(b["elev_m"]) and list(a["slope_deg"]) == list(b["slope_deg"])
    assert len(a) > 5 and (a["lon"] < 72.0).any() and (a["lon"] > 72.0).any()
    # the median of the plane over a lake's pixels lies between its heights at the lake's west and east ends
    b4326 = a.to_crs("EPSG:4326").geometry.bounds
    assert ((a["elev_m"] >= 2000.0 + (b4326["minx"] - x0) * 1e4 - 1)
            & (a["elev_m"] <= 2000.0 + (b4326["maxx"] - x0) * 1e4 + 1)).all()
    assert ((a["slope_deg"] > 5) & (a["slope_deg"] < 9)).all()


def test_the_river_like_objects_left_out_are_counted_with_their_area(tmp_path):
    """run.json says how many water objects were left out as river-like and their area (the terminal
    prints it): the same objects a --keep-rivers run keeps with is_river=1. (A 1024 px tile of the
    real Havel bands: its river reaches are long enough to be flagged.)"""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_region", ROOT / "benchmarks" / "make_region.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not (mod.DATA / "s2_l1c_havel_T33UUU_20170216").is_dir():
        pytest.skip(f"shared data not found at {mod.DATA}")
    region = tmp_path / "region"
    mod.make_region(region, tile_px=1024, cols=1, rows=1, dates=1, years=[2019])
    kw = {"years": (2019,), "stac": str(region / "items.json"), "collection": "synthetic-l2a", "progress": False}
    aoi = str(region / "aoi.geojson")
    kept = detect(aoi, keep_rivers=True, work_dir=tmp_path / "k", **kw)
    default = detect(aoi, work_dir=tmp_path / "d", **kw)
    rivers = kept.lakes[2019][kept.lakes[2019]["is_river"] == 1]
    rec = default.run["years"]["2019"]
    assert len(rivers) >= 1 and rec["rivers_removed"] == len(rivers)
    assert rec["rivers_removed_km2"] == pytest.approx(rivers["area_km2"].sum())
    assert len(default.lakes[2019]) == len(kept.lakes[2019]) - len(rivers)
    assert kept.run["years"]["2019"]["rivers_removed"] == 0


def test_two_zone_masks_are_written_per_zone(two_zone_region, tmp_path):
    from dataclasses import replace

    from gli_toolbox.export import write_outputs

    res = detect(str(two_zone_region / "aoi.geojson"), years=(2019,), stac=str(two_zone_region / "items.json"),
                 collection="synthetic-l2a", progress=False, work_dir=tmp_path / "w")
    res.config = replace(res.config, save_masks=True)
    names = {p.name for p in write_outputs(res, tmp_path / "out")}
    assert {"water_2019_42N.tif", "water_2019_43N.tif", "nobs_2019_42N.tif", "nobs_2019_43N.tif"} <= names
    for zone, epsg in (("42N", 32642), ("43N", 32643)):
        with rasterio.open(tmp_path / "out" / f"water_2019_{zone}.tif") as src:
            assert src.crs.to_epsg() == epsg and src.res == (10.0, 10.0)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["complete"] is True


def test_cli_workers_start_a_local_cluster_with_the_same_outputs(tmp_path):
    """`gli detect --workers 2` (a LocalCluster of two worker processes) writes what the default
    in-process run writes, prints the plan first, and leaves no work folder behind."""
    from click.testing import CliRunner

    from gli_toolbox.cli import cli

    outs = {}
    for name, extra in (("serial", []), ("workers", ["--workers", "2"])):
        out = tmp_path / name
        res = CliRunner().invoke(cli, ["detect", "--aoi", BARBELLINO["aoi"], "--stac", CATALOG, "--years", "2017-2019",
                                       "--out", str(out), "--save-masks", *extra], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        lines = res.output.splitlines()
        first_plan = next(i for i, ln in enumerate(lines) if ln.startswith("plan: 2 scenes on 2 days; 1 UTM zone"))
        assert first_plan < next(i for i, ln in enumerate(lines) if ln.startswith("2017: 1 lake"))  # before the work
        assert not (tmp_path / f".{name}.gli-work").exists()
        outs[name] = out
    doc = json.loads((outs["workers"] / "run.json").read_text())
    assert doc["engine"]["runner"].startswith("dask tcp://127.0.0.1:")
    for year in (2017, 2019):
        with rasterio.open(outs["serial"] / f"water_{year}.tif") as a, rasterio.open(outs["workers"] / f"water_{year}.tif") as b:
            np.testing.assert_array_equal(a.read(), b.read())
        la, lb = (gpd.read_file(o / f"lakes_{year}.shp") for o in outs.values())
        assert la.drop(columns="geometry").equals(lb.drop(columns="geometry"))


@pytest.mark.parametrize("method", ["multi", "threshold"])
def test_counts_from_digital_numbers_equal_counts_from_reflectance(method, monkeypatch, tmp_path):
    """The usual day goes from digital numbers to counts in one fused pass (engine._count_dn); a run
    that keeps per-scene masks takes the reflectance path (load.observation + classify_bands). Both
    must give the same yearly counts, to the pixel, on the real L2A sample (SCL, baseline offsets)."""
    kw = {k: v for k, v in BARBELLINO.items() if k != "aoi"}
    calls = []
    real = engine._count_dn
    monkeypatch.setattr(engine, "_count_dn", lambda *a, **k: calls.append(1) or real(*a, **k))
    fused = detect(BARBELLINO["aoi"], method=method, progress=False, work_dir=tmp_path / "a", **kw)
    n_fused = len(calls)
    refl = detect(BARBELLINO["aoi"], method=method, progress=False, work_dir=tmp_path / "b", per_scene=True, **kw)
    assert n_fused >= 2 and len(calls) == n_fused  # every day of the first run was fused, none of the second
    for year in (2017, 2019):
        a, b = fused.masks[year], refl.masks[year]
        assert a.valid_count.sum() > 0
        np.testing.assert_array_equal(a.water_class, b.water_class)
        np.testing.assert_array_equal(a.valid_count, b.valid_count)
        for name in ("water", "snow"):
            with rasterio.open(a.zones[0].paths[name]) as x, rasterio.open(b.zones[0].paths[name]) as y:
                np.testing.assert_array_equal(x.read(1), y.read(1))


def test_dem_auto_searches_once_per_zone_and_season_not_per_chunk(two_zone_region, monkeypatch, tmp_path):
    """--dem auto: the chunk tasks read the DEM items found by one search per zone part and season
    (plus the up-front coverage check per zone), whatever the number of chunks, and every lake gets
    the DEM's elevation (a flat 3000 m surface in geographic coordinates over both zones)."""
    from affine import Affine

    from gli_toolbox import dem

    aoi = json.loads((two_zone_region / "aoi.geojson").read_text())["features"][0]["geometry"]
    from shapely.geometry import box, shape

    x0, y0, x1, y1 = shape(aoi).buffer(0.2).bounds
    res_deg = 0.0003
    w, h = int((x1 - x0) / res_deg), int((y1 - y0) / res_deg)
    with rasterio.open(tmp_path / "dem.tif", "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                       crs="EPSG:4326", transform=Affine(res_deg, 0, x0, 0, -res_deg, y1)) as dst:
        dst.write(np.full((1, h, w), 3000.0, np.float32))
    feats = json.loads((two_zone_region / "items.json").read_text())["features"]
    feats.append({"type": "Feature", "stac_version": "1.0.0", "id": "dem_flat", "collection": "cop-dem-glo-30",
                  "geometry": box(x0, y0, x1, y1).__geo_interface__, "bbox": [x0, y0, x1, y1], "links": [],
                  "properties": {"datetime": "2021-04-22T00:00:00Z"},
                  "assets": {"data": {"href": str(tmp_path / "dem.tif"), "type": "image/tiff", "roles": ["data"]}}})
    items = tmp_path / "items.json"
    items.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    searches = []
    real = dem.find_dem_items
    monkeypatch.setattr(dem, "find_dem_items", lambda *a, **k: searches.append(a) or real(*a, **k))
    res = detect(str(two_zone_region / "aoi.geojson"), years=(2019,), stac=str(items), collection="synthetic-l2a",
                 dem="auto", chunk_px=128, progress=False, work_dir=tmp_path / "w")
    assert res.run["grid"]["chunks"] >= 6
    assert len(searches) == 2 * 2  # per zone: the coverage check and the season's tasks, not one per chunk
    g = res.lakes[2019]
    assert len(g) > 5
    np.testing.assert_allclose(g.elev_m.to_numpy(), 3000.0)


def test_river_flags_on_the_workers_equal_the_serial_ones(loopback_cluster):
    """The river flag of a period's lakes runs in batches on the workers: the same flags, in order."""
    from shapely.geometry import Point, box

    from gli_toolbox.pipeline import _rivers
    from gli_toolbox.rivers import is_river

    rng = np.random.default_rng(5)
    polys = []
    for i in range(150):
        x, y = rng.uniform(0, 1e5, 2)
        length = rng.uniform(200, 6000)
        polys.append(box(x, y, x + length, y + rng.uniform(40, 400)) if i % 3 else Point(x, y).buffer(length / 8))
    serial = is_river(polys, pixel_size_m=10.0)
    assert 5 < serial.sum() < 145  # rivers and lakes both present
    np.testing.assert_array_equal(_rivers(polys, 10.0, loopback_cluster), serial)


def test_a_worker_joining_later_without_the_work_folder_leaves_its_chunks_to_the_others(havel_reference, tmp_path):
    """A worker without the work folder joins beside a good one after the start-up check. Idle, it
    takes task after task and refuses each at once; before, the retries landed on it too and most
    chunks of the run were lost. Now each refused task goes to the other workers: the run is
    complete, with the layers of a run in this process."""
    if shutil.which("unshare") is None or not _can_unshare_mounts():
        pytest.skip("needs `unshare --mount` (root, util-linux) to give one worker a file system of its own")
    elsewhere = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 f"mount -t tmpfs tmpfs {tmp_path} && exec {' '.join(_WORKER)}"]
    procs: list[subprocess.Popen] = []

    def join(_plan) -> None:  # after the start-up check, as with adaptive scaling
        procs.append(subprocess.Popen([c.replace("{addr}", client.scheduler.address) for c in elsewhere],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env={**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}))
        client.wait_for_workers(2, timeout=60)

    with _cluster([(_WORKER, {})]) as client:
        try:
            res = detect(HAVEL["aoi"], **{k: v for k, v in HAVEL.items() if k != "aoi"}, chunk_px=128,
                         progress=False, client=client, work_dir=tmp_path / "work", on_plan=join)
            assert len(client.nthreads()) == 2  # the other worker was there all along
        finally:
            _stop(procs)
    assert res.run["complete"] is True, res.run["incomplete"]
    assert _layers(res) == _layers(havel_reference)


def test_two_runs_at_once_on_one_cluster_do_not_share_tasks(loopback_cluster, tmp_path):
    """A second run on the same cluster while the first holds its tasks (two notebooks, or a cell
    run again): chunk tasks were named by season, zone and chunk only, so Dask handed the second run
    the first one's tasks (results in the other run's folder: its chunks never written). Each run
    now has its own tasks and gets the result of a run in this process."""
    kw = {"years": (2017, 2019), "stac": CATALOG, "progress": False}  # one chunk task a year
    second: dict[str, object] = {}

    def start_second(done: int, total: int, _what: str) -> None:
        if not second:  # the first run holds the futures of its other chunks now
            assert done < total
            second["res"] = detect(BARBELLINO["aoi"], method="threshold", ndwi_threshold=0.25, **kw,
                                   client=loopback_cluster, work_dir=tmp_path / "second")

    first = detect(BARBELLINO["aoi"], **kw, client=loopback_cluster, work_dir=tmp_path / "first",
                   on_progress=start_second)
    here_first = detect(BARBELLINO["aoi"], **kw, work_dir=tmp_path / "here1")
    here_second = detect(BARBELLINO["aoi"], method="threshold", ndwi_threshold=0.25, **kw, work_dir=tmp_path / "here2")
    assert first.run["complete"] is True and second["res"].run["complete"] is True
    assert _layers(first) == _layers(here_first)
    assert _layers(second["res"]) == _layers(here_second)


def test_an_interrupted_run_cancels_its_tasks_on_the_cluster(loopback_cluster, tmp_path, monkeypatch):
    """Jupyter's interrupt is a KeyboardInterrupt in the main thread, most often while the run waits
    for its tasks, and IPython keeps its traceback (and with it the waiting frame and the run's
    futures). The run's tasks left on the user's cluster are cancelled at once: before, the workers
    went on computing every chunk of a run that was gone."""
    def interrupt(self, address, pending) -> None:  # the first time the run waits for a task
        raise KeyboardInterrupt

    monkeypatch.setattr(engine._WorkerWatch, "check", interrupt)
    kept = []
    try:
        detect(BARBELLINO["aoi"], years=(2017, 2019), stac=CATALOG, progress=False, client=loopback_cluster,
               work_dir=tmp_path / "w")
    except KeyboardInterrupt as exc:
        kept.append(exc)  # the traceback stays alive, as in IPython's sys.last_traceback
    assert kept and kept[0].__traceback__ is not None

    def ours(dask_scheduler) -> list[str]:
        return [str(k) for k, ts in dask_scheduler.tasks.items() if str(k).startswith("gli-chunk-")
                and ts.state not in ("forgotten", "released")]

    deadline = time.monotonic() + 10
    while loopback_cluster.run_on_scheduler(ours) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert loopback_cluster.run_on_scheduler(ours) == []


def test_a_relative_dem_path_is_read_by_workers_started_elsewhere(loopback_cluster, tmp_path, monkeypatch):
    """``dem="dem.tif"`` relative to this process's folder: the chunk tasks read the DEM on the
    workers, which run in another folder (every chunk failed with "file not found" there, or read
    another dem.tif). The path is made absolute before the tasks leave."""
    from rasterio.transform import from_origin

    here = tmp_path / "here"
    here.mkdir()
    with rasterio.open(here / "dem.tif", "w", driver="GTiff", width=420, height=420, count=1, dtype="float32",
                       crs="EPSG:32632", transform=from_origin(574500, 5108200, 30, 30), nodata=-9999) as dst:
        dst.write(np.full((1, 420, 420), 1870.0, dtype="float32"))  # flat, around Barbellino
    monkeypatch.chdir(here)
    assert str(here) not in set(loopback_cluster.run(os.getcwd).values())
    res = detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, progress=False, dem="dem.tif",
                 client=loopback_cluster, work_dir=tmp_path / "w")
    assert res.run["complete"] is True
    assert res.lakes[2019]["elev_m"].tolist() == [pytest.approx(1870.0)]


def test_lake_passes_on_paused_workers_run_here_after_the_wait(monkeypatch, caplog):
    """The steps after the chunk tasks (lake passes, river flags) wait for their tasks while the
    cluster has workers. Workers paused by Dask at their memory limit never run them: the run waited
    for ever, silently. Now it says so at once and, after ``GLI_WORKER_WAIT_S``, computes the rest
    in this process (the same function on the same input)."""
    monkeypatch.setenv("GLI_WORKER_WAIT_S", "2")
    paused = {"DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE": "0.01", "DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE": "False",
              "DASK_DISTRIBUTED__WORKER__MEMORY__SPILL": "False", "DASK_DISTRIBUTED__WORKER__MEMORY__TARGET": "False",
              "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "100ms"}
    with _cluster([(_WORKER, paused)], running=False) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and \
                {w.get("status") for w in client.scheduler_info()["workers"].values()} != {"paused"}:
            time.sleep(0.2)
        futures = [client.submit(pow, i, 2, pure=False) for i in range(3)]
        box: list[object] = []
        err = _within(60, lambda: box.append(engine.results_or_here(client, futures, lambda i: i ** 2)))
    assert err is None, err
    assert box == [[0, 1, 4]]
    assert any(r.levelname == "WARNING" and "is paused at its memory limit" in r.getMessage() for r in caplog.records)


def test_resume_without_a_work_folder_is_refused():
    """``resume=True`` continues the run of a work folder; without ``work_dir=`` each run gets a new
    temporary one, so there would be nothing to resume (it warned and started again)."""
    from gli_toolbox.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^resume=True needs work_dir=, the folder of the run to continue"):
        detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, progress=False, resume=True)


def test_an_unknown_parameter_is_one_line_that_says_where_it_belongs():
    """``detect(overwrite=True)`` (an option of the command line's output folder) gave a bare
    ``TypeError`` from the configuration's constructor."""
    from gli_toolbox.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^detect\(\) got unknown parameter\(s\) overwrite \(output options such as "
                                          r"overwrite belong to gli_toolbox.write_outputs\): see help"):
        detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, overwrite=True)
    with pytest.raises(ConfigError, match=r"^detect\(\) got unknown parameter\(s\) ndwi_treshold: see help"):
        detect(BARBELLINO["aoi"], years=(2019,), stac=CATALOG, ndwi_treshold=0.2)
    with pytest.raises(ConfigError, match=r"^detect\(\) needs years= \(e\.g\. years=\(2019, 2020\)\), or config="):
        detect(BARBELLINO["aoi"], stac=CATALOG)


def test_a_result_lost_with_its_worker_is_waited_for_not_recorded_as_failed(monkeypatch):
    """A finished future turns ``lost`` when its worker goes away before the result is fetched;
    Dask computes it again. It was reported as a failed chunk (status "lost") and Dask's
    recomputation thrown away; now the runner waits for it like any other task. (Dask's objects
    are stood in for: the order of these events cannot be forced on a real cluster.)"""
    import dask.distributed

    class Fut:
        def __init__(self, key, statuses, value):
            self.key, self.statuses, self.value = key, list(statuses), value

        @property
        def status(self):
            return self.statuses[0]

        def result(self, timeout=None):
            return self.value

        def release(self):
            pass

    futs = {"a": Fut("a", ["finished"], {"days": "a"}), "b": Fut("b", ["lost", "finished"], {"days": "b"})}

    class Client:
        loop = None

        def submit(self, fn, task, key, **kw):
            return futs[task.name]

        def cancel(self, fs):
            pass

        def scheduler_info(self, **kw):
            return {"workers": {"tcp://w:1": {"status": "running"}}}

    class AsCompleted:
        def __init__(self, fs, loop=None):
            self.batches = [list(fs)]

        def is_empty(self):
            return not self.batches

        def next_batch(self, block=False):
            return self.batches.pop(0) if self.batches else []

        def add(self, fut):  # Dask's recomputation finishes: the future comes back
            fut.statuses.pop(0)
            self.batches.append([fut])

    monkeypatch.setattr(dask.distributed, "as_completed", AsCompleted)
    runner = object.__new__(engine.DaskRunner)
    runner.client, runner.address = Client(), "tcp://s:1"
    from types import SimpleNamespace

    tasks = [SimpleNamespace(name=n, key=f"gli-chunk-{n}", chunk=None, days=()) for n in "ab"]
    outcomes = list(runner.map(lambda t: {}, tasks))
    assert sorted((o.task.name, o.summary, o.error) for o in outcomes) == [
        ("a", {"days": "a"}, None), ("b", {"days": "b"}, None)]


def test_chunks_refused_by_an_unfit_worker_wait_for_a_fit_one(monkeypatch):
    """A worker that cannot take part refuses its tasks; they go to the other workers only. When
    those leave (an HPC job ends) before the chunk ran, and another joins, the chunk goes to the new
    one: before, it waited for ever on the workers that had left (or was recorded as failed when the
    refusal came while no other worker was there)."""
    from types import SimpleNamespace

    from dask.distributed import Client, LocalCluster

    monkeypatch.setenv("GLI_WORKER_WAIT_S", "60")

    def fn(task):
        import time

        from distributed import get_worker

        from gli_toolbox.errors import WorkerUnfitError

        w = get_worker()
        if w.name == "unfit":
            raise WorkerUnfitError(f"the Dask worker {w.address} does not see the run's work folder", w.address)
        time.sleep(3)
        return {"by": w.name}

    def start(name: str, addr: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--name", name,
                                 "--nthreads", "1", "--no-nanny", "--no-dashboard"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    with LocalCluster(n_workers=0, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        addr = cluster.scheduler_address
        procs = [start("fit", addr), start("unfit", addr)]
        try:
            client.wait_for_workers(2, timeout=60)
            runner = engine.DaskRunner(client)
            tasks = [SimpleNamespace(key=f"gli-test-{n}", describe=lambda: "a chunk") for n in "ab"]
            outcomes = []

            def swap() -> None:  # the fit worker runs one chunk, the other waits for it: it leaves
                time.sleep(1.5)
                procs[0].kill()
                procs.append(start("fit2", addr))

            import threading

            threading.Thread(target=swap, daemon=True).start()
            err = _within(90, lambda: outcomes.extend(runner.map(fn, tasks)))
        finally:
            _stop(procs)
    assert err is None, err
    assert [(o.summary, o.error) for o in outcomes] == [({"by": "fit2"}, None)] * 2


def test_results_slower_to_fetch_than_the_limit_arrive(monkeypatch):
    """A result sent back over a slow link (a chunk's files with ``--dem`` are tens of MB) took longer
    than the fetch limit: the fetch was abandoned and started again with the same limit, for ever
    (0 of 1 chunks after 4 minutes at 2 Mbit/s in the review). The limit now doubles after each
    timeout and stays doubled for the results after it (an abandoned fetch goes on using the link):
    both results arrive, the second without a timeout. (Dask's objects are stood in for.)"""
    import dask.distributed

    asked: list[tuple[str, float]] = []

    class Fut:
        status = "finished"

        def __init__(self, key):
            self.key = key

        def result(self, timeout=None):
            asked.append((self.key, timeout))
            assert len(asked) < 8, f"fetched again and again: {asked}"
            if timeout < 35:  # each transfer takes 35 s
                raise TimeoutError
            return {"days": self.key}

        def release(self):
            pass

    futs = {n: Fut(n) for n in "ab"}

    class Client:
        loop = None

        def submit(self, fn, task, key, **kw):
            return futs[task.name]

        def cancel(self, fs):
            pass

        def scheduler_info(self, **kw):
            return {"workers": {"tcp://w:1": {"status": "running", "metrics": {"executing": 0}}}}

    class AsCompleted:
        def __init__(self, fs, loop=None):
            self.batches = [sorted(fs, key=lambda f: f.key)]

        def is_empty(self):
            return not self.batches

        def next_batch(self, block=False):
            return self.batches.pop(0) if self.batches else []

        def add(self, f):
            self.batches.append([f])

    monkeypatch.setattr(dask.distributed, "as_completed", AsCompleted)
    runner = object.__new__(engine.DaskRunner)
    runner.client, runner.address = Client(), "tcp://s:1"
    from types import SimpleNamespace

    tasks = [SimpleNamespace(name=n, key=f"gli-chunk-{n}", chunk=None, days=()) for n in "ab"]
    outcomes = list(runner.map(lambda t: {}, tasks))
    assert sorted((o.task.name, o.summary, o.error) for o in outcomes) == [
        ("a", {"days": "a"}, None), ("b", {"days": "b"}, None)]
    assert asked == [("a", 10.0), ("b", 20.0), ("a", 40.0), ("b", 40.0)]


def test_cloud_masks_lost_with_their_worker_are_sent_again(havel_reference, tmp_path):
    """The L1C path on a worker that does not see the work folder: the coarse cloud masks its chunk
    tasks read were scattered to the cluster, and a worker killed with them (its nanny starts a new
    one) made every chunk left fail as "cancelled" (47-48 of 50 in the review), or the run crash.
    They are now tasks the scheduler can compute again: the run completes with the layers of a run
    in this process."""
    _needs_unshare()
    killed: list[int] = []
    with _cluster([(_elsewhere(tmp_path), {})]) as client:
        def kill(done: int, total: int, key: str) -> None:
            if done == 3 and not killed:  # a few chunks in, the masks are on the worker
                (pid,) = client.run(os.getpid).values()
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

        res = detect(HAVEL["aoi"], **{k: v for k, v in HAVEL.items() if k != "aoi"}, chunk_px=64, progress=False,
                     client=client, work_dir=tmp_path / "work", on_progress=kill)
        assert killed and killed[0] not in client.run(os.getpid).values()  # a new worker process took over
    assert res.run["complete"] is True, res.run["incomplete"]
    assert _layers(res) == _layers(havel_reference)


def test_dem_items_of_a_local_catalog_the_workers_do_not_see_are_refused(tmp_path):
    """``--dem auto`` with a catalog whose DEM item is a file in a folder the workers do not see:
    every chunk failed to read it; now the run stops before any read with one line naming it."""
    _needs_unshare()
    import pystac

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    dem = hidden / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", height=60, width=60, count=1, dtype="float32", crs="EPSG:4326",
                       transform=rasterio.transform.from_bounds(9.9, 45.9, 10.2, 46.2, 60, 60)) as dst:
        dst.write(np.full((1, 60, 60), 2400.0, np.float32))
    items = [it for it in pystac.Catalog.from_file(str(SAMPLE / "catalog.json")).get_items(recursive=True)
             if it.collection_id == "sentinel-2-c1-l2a"]
    for it in items:
        it.make_asset_hrefs_absolute()
    dem_item = pystac.Item("dem-1", {"type": "Polygon", "coordinates": [[[9.9, 45.9], [10.2, 45.9], [10.2, 46.2],
                                                                         [9.9, 46.2], [9.9, 45.9]]]},
                           [9.9, 45.9, 10.2, 46.2], dt.datetime(2021, 4, 22, tzinfo=dt.timezone.utc), {},
                           collection="cop-dem-glo-30")
    dem_item.add_asset("data", pystac.Asset(str(dem), media_type=pystac.MediaType.COG))
    fc = {"type": "FeatureCollection", "features": [it.to_dict() for it in [*items, dem_item]]}
    (tmp_path / "items.json").write_text(json.dumps(fc))
    out_parent = tmp_path / "run"
    out_parent.mkdir()
    with _cluster([(_elsewhere(hidden), {})]) as client:
        from click.testing import CliRunner

        from gli_toolbox.cli import cli

        res = CliRunner().invoke(cli, ["detect", "--aoi", BARBELLINO["aoi"], "--stac", str(tmp_path / "items.json"),
                                       "--collection", "sentinel-2-c1-l2a", "--years", "2017", "--dem", "auto",
                                       "--out", str(out_parent / "out"), "--scheduler", client.scheduler.address])
        (addr,) = client.nthreads()
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("Error: ")]
    assert line.startswith(f"Error: the Dask worker {addr} does not see 1 of the 5 file(s) of this machine the run "
                           f"reads, e.g. {dem}: "), line
    assert "does not share the work folder" not in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in out_parent.iterdir()) == []


def _small_disk_worker(hidden: Path, *, tmpdir_kb: int | None = None, local_kb: int | None = None) -> list[str]:
    """A worker that does not see ``hidden``, with a small ``TMPDIR`` and/or ``--local-directory``."""
    cmd = f"mount -t tmpfs tmpfs {hidden}"
    worker = " ".join(_WORKER)
    for name, kb in (("tmp", tmpdir_kb), ("local", local_kb)):
        d = hidden / name
        cmd += f" && mkdir {d}" + (f" && mount -t tmpfs -o size={kb}k tmpfs {d}" if kb else "")
    cmd += f" && TMPDIR={hidden / 'tmp'} exec {worker} --local-directory {hidden / 'local'}"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd]


def test_task_folders_go_where_the_worker_keeps_its_files(havel_reference, tmp_path):
    """A worker without the work folder writes each chunk's files into a folder of its own first: in
    its local directory (``--local-directory``, on a disk its operator chose; Dask removes those of
    workers that died), not the temporary folder (the review's worker had a large local directory and
    a full ``TMPDIR``). L1C sample, 4 kB ``TMPDIR``: complete, the layers of a run in this process."""
    _needs_unshare()
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    with _cluster([(_small_disk_worker(hidden, tmpdir_kb=4), {})]) as client:
        res = detect(HAVEL["aoi"], **{k: v for k, v in HAVEL.items() if k != "aoi"}, chunk_px=256, progress=False,
                     client=client, work_dir=hidden / "work")
    assert res.run["complete"] is True, res.run["incomplete"]
    assert _layers(res) == _layers(havel_reference)


@pytest.mark.parametrize("case", ["l2a", "l1c"])
def test_a_full_disk_on_a_worker_says_which_folder(tmp_path, case):
    """When the worker's folder for chunk files is full, the failure said "No space left on device",
    read as the disk of --out; on the L1C path GDAL wrote an empty cloud mask without an error, which
    was sent back and kept, so that --resume failed on it too. Now each failure names the worker's
    folder and what to do, and no empty file reaches the work folder."""
    _needs_unshare()
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    args = ({"aoi": BARBELLINO["aoi"], "years": (2017,), "stac": CATALOG} if case == "l2a" else
            {**HAVEL, "chunk_px": 256})
    with _cluster([(_small_disk_worker(hidden, local_kb=8), {})]) as client, \
            pytest.raises(NoScenesFoundError) as err:
        (local,) = client.run(lambda dask_worker: dask_worker.local_directory).values()
        detect(**args, progress=False, client=client, work_dir=hidden / "work")
    msg = str(err.value)
    assert f"no space left in {local}, where a Dask worker writes a chunk's files" in msg, msg
    assert "--local-directory on a larger disk" in msg
    assert not [p for p in (hidden / "work").rglob("*") if p.is_file() and p.stat().st_size == 0]
