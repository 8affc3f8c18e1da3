"""The benchmark scripts keep running: each is run on small inputs, as a user would run it on full
ones (``docs/performance.md``). Their ratios are measurements, not asserted here; what is asserted is
that every section runs to the end and prints its result lines. A change of the engine that breaks a
benchmark (as one did when chunk tasks began to check the run's marker) fails here, not at the next
measurement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
SHARED = ROOT.parent / "shared" / "data"


def _run(*args: str, timeout: int = 600) -> str:
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout


def test_bench_engine_runs_every_section(tmp_path):
    """All six sections on a synthetic region of 1024^2 px tiles (made from the shared real bands)."""
    if not (SHARED / "s2_l1c_havel_T33UUU_20170216").is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    out = _run(str(BENCH / "bench_engine.py"), "--data", str(tmp_path), "--tile-px", "1024", "--turns", "1")
    for line in ("I/O floor (rasterio, same windows)", "gli detect end to end", "per-year floor: read classes, label",
                 "`gli detect` command, all outputs",
                 "memory: chunk_px 512", "years: 512^2 px", "regional: 4 tiles of 512^2 px", "complete=True",
                 "throughput ratio", "paper estimate Tien Shan + Pamir", "r512-n2, 2 year(s), chunk 256"):
        assert line in out, out
    for name in ("floor", "memory", "workers", "years", "regional", "estimate"):
        assert f"({name}: " in out


def test_bench_kernel_and_tracking_run():
    """The water kernel on a 512^2 tile and ``gli track`` on 300 and 600 lakes a year."""
    out = _run(str(BENCH / "bench_kernel.py"), "--px", "512", "--repeat", "1", "--skip-previous")
    assert "new, method=threshold" in out and "new, method=multi" in out
    out = _run(str(BENCH / "bench_tracking.py"), "--sizes", "300", "600", "--repeat", "1")
    assert "scaling ratio time(600) / time(300)" in out


def test_bench_lakes_figures_terrain_pipeline_run():
    """The remaining scripts with their own small inputs (bench_lakes without part 4, which checks out
    an old commit)."""
    out = _run(str(BENCH / "bench_lakes.py"), "--skip", "before", "--repeat", "1")
    assert "Time per lake, in memory" in out
    assert "labelling against dask-image: skipped" in out or "Labelling the 4-connected water candidates" in out
    assert "ratio previous/now" in _run(str(BENCH / "bench_figures.py"))
    assert "slope_deg:" in _run(str(BENCH / "bench_terrain.py"))
    assert _run(str(BENCH / "bench_pipeline.py")).strip()
