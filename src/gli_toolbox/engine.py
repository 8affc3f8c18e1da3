"""The run engine: chunk tasks on one process or on a Dask cluster, their results on disk, resume.

The unit of work is one chunk of one zone grid for one season (:class:`ChunkTask`): it reads every
acquisition day of the season over its window (odc-stac, inside the task), masks clouds, shadows
and snow, classifies water and counts, per pixel, valid, water, "maybe water" and snow
observations. It writes these counts to a tiled GeoTIFF in the run's work folder (then a
small ``.json`` summary, written last: its presence means "done", which is what ``--resume``
trusts). Nothing of AOI size is ever in memory: peak memory is one chunk's bands times the number
of workers.

:func:`assemble` then makes one virtual mosaic (GDAL ``.vrt``) per zone, period and layer
(``class``, ``nobs``, ``water``, ``snow``) over the chunk files, and streams the optional per-day
and DEM layers (``elev``/``slope``) into tiled GeoTIFFs: the yearly composite rasters that lake
extraction reads (contract with :mod:`gli_toolbox.stitch`).

Tasks are plain functions of picklable arguments, so the same code runs in-process
(:class:`SerialRunner`, the default: no cluster start-up, nothing to configure) and on any
``dask.distributed`` cluster (:class:`DaskRunner`: ``--workers N`` starts a ``LocalCluster`` of
worker processes, ``--scheduler ADDRESS`` connects to an existing one, the API takes a ``Client``).
A task that raises is retried (``retries``); one that keeps failing is reported, and its area stays
"never observed" (class 255) instead of stopping the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .classify import season_classes
from .config import DetectConfig
from .grids import Chunk
from .water import NEVER_OBSERVED

logger = logging.getLogger(__name__)

__all__ = [
    "ChunkTask",
    "DaskRunner",
    "SerialRunner",
    "ZoneRasters",
    "assemble",
    "make_runner",
    "run_chunk",
    "run_hash",
    "season_key",
]

#: Attempts of a chunk task before it is recorded as failed (1 + retries).
CHUNK_RETRIES = 2


#: In a run's work folder: the gli-toolbox version of the process that started the run. Workers look
#: for it before each task (:func:`check_run_folder`).
RUN_MARKER = ".gli-run"

#: How long a run on a Dask cluster waits for a worker, in seconds: for the first one to join (an HPC
#: job still in its queue) and, during the run, for new ones after all went away. The environment
#: variable ``GLI_WORKER_WAIT_S`` overrides it (a long HPC queue).
WORKER_WAIT_S = 600.0


def worker_wait_s() -> float:
    """:data:`WORKER_WAIT_S`, or ``GLI_WORKER_WAIT_S`` when set."""
    from .retry import env_number

    return env_number("GLI_WORKER_WAIT_S", WORKER_WAIT_S)


def mark_run(folder: Path) -> None:
    """Write :data:`RUN_MARKER` into the run's work folder (before the first task)."""
    from . import __version__

    (folder / RUN_MARKER).write_text(__version__, encoding="utf-8")


@functools.lru_cache(maxsize=16)
def check_run_folder(run_dir: str) -> None:
    """Before a task, in the process that runs it: the run's work folder is visible here and was made
    by this gli-toolbox version. :meth:`DaskRunner.check_workers` checks the workers present at the
    start; this catches those that join later (adaptive scaling, an HPC job that left its queue),
    whose tasks would otherwise write their results where the run never looks, or compute with other
    code. Only a success is cached (per process and folder): after a failure the next task checks again.

    Raises :class:`~gli_toolbox.errors.WorkerUnfitError` (the task fails here, before reading anything;
    :meth:`DaskRunner.map` sends it to the other workers).
    """
    import socket

    from . import __version__
    from .errors import WorkerUnfitError

    try:
        from distributed import get_worker

        worker = str(get_worker().address)
    except (ImportError, ValueError):  # not in a Dask worker
        worker = ""
    where = f"the Dask worker {worker} on {socket.gethostname()}" if worker else f"the process {os.getpid()}"
    try:
        theirs = (Path(run_dir) / RUN_MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        raise WorkerUnfitError(f"{where} does not see the run's work folder {run_dir}: start workers only where "
                               "the output folder is shared", worker) from None
    if theirs != __version__:
        raise WorkerUnfitError(f"{where} runs gli-toolbox {__version__}, the run {theirs}: install the same version "
                               "on every worker", worker)


def run_hash(config: DetectConfig, aoi_wkb: bytes) -> str:
    """Identity of a run's processing (parameters that change pixels + AOI): its work folder name.

    Outputs-only options (``save_masks``, ``extra``) do not change it, so ``--resume`` reuses chunks.
    """
    params = {k: v for k, v in config.to_dict().items() if k not in ("extra", "save_masks")}
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(aoi_wkb)
    return h.hexdigest()[:16]


def season_key(label: str, scene_ids: Iterable[str]) -> str:
    """Folder name of one season's chunk results: the label plus a hash of the scenes it used, so
    that a catalog that changed between a run and its ``--resume`` is not mixed up."""
    return f"{label}-{hashlib.sha256(' '.join(sorted(scene_ids)).encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class ChunkTask:
    """Everything one chunk task needs; small and picklable (scene metadata, no pixels)."""

    config: DetectConfig
    season: str
    zone: str
    crs: str
    grid_transform: tuple[float, ...]
    chunk: Chunk
    part: Any
    """The AOI part of the zone, in the zone CRS, clipped near the chunk."""
    days: tuple[tuple[dt.date, tuple[Any, ...]], ...]
    path: str
    clouds: dict[str, str] = field(default_factory=dict)
    """Per day (ISO date): path of the day's coarse cloud + shadow mask (L1C), read by window."""
    dem_items: tuple[Any, ...] = ()
    """With ``--dem auto``: the DEM items over the chunk (searched once per zone part, not per chunk)."""
    run_dir: str = ""
    """The run's work folder (with :data:`RUN_MARKER`), checked before the task; empty: not checked."""

    @property
    def key(self) -> str:
        """Dask task key (also its name in the dashboard)."""
        return f"gli-chunk-{self.season}-{self.zone}-{self.chunk.name}"

    def geobox(self) -> Any:
        from affine import Affine
        from odc.geo.geobox import GeoBox

        a = Affine(*self.grid_transform[:6]) * Affine.translation(self.chunk.col0, self.chunk.row0)
        return GeoBox((self.chunk.height, self.chunk.width), a, self.crs)

    def describe(self) -> str:
        c = self.chunk
        return f"zone {self.zone} rows {c.row0}-{c.row0 + c.height} cols {c.col0}-{c.col0 + c.width}"


def _summary_path(chunk_file: str | Path) -> Path:
    return Path(chunk_file).with_suffix(".json")


def _extra_path(chunk_file: str | Path) -> Path:
    """The chunk's per-day layers (``--per-scene``), beside its GeoTIFF."""
    return Path(chunk_file).with_suffix(".extra.npz")


def _terrain_path(chunk_file: str | Path) -> Path:
    """The chunk's elevation and slope on its grid (``--dem``), beside its GeoTIFF."""
    return Path(chunk_file).with_suffix(".dem.tif")


def done_summary(task: ChunkTask) -> dict[str, Any] | None:
    """The summary of a finished chunk (``--resume``), or None when it has to be (re)computed: not
    finished, or a band file of one of its days could not be read (a resumed run tries it again)."""
    p = _summary_path(task.path)
    if not (p.exists() and Path(task.path).exists()):
        return None
    return _reusable(p)


def _reusable(summary_path: Path) -> dict[str, Any] | None:
    """A chunk summary that ``--resume`` reuses: readable, and no day with a failed read."""
    try:
        summary = dict(json.loads(summary_path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
    if any(rec.get("failed") for rec in summary.get("days", {}).values()):
        return None
    return summary


def finished_chunks(work_base: Path) -> int:
    """How many finished chunk results the runs in ``work_base`` (the folder given as ``work_dir``)
    hold: what ``--resume`` would reuse (as :func:`done_summary` does), and what must not be deleted
    without asking."""
    return sum(1 for p in Path(work_base).glob("*/chunks/*/*/*.json")
               if p.with_suffix(".tif").exists() and _reusable(p) is not None)


def _atomic_write(path: Path, write: Callable[[Path], None], run_dir: str = "") -> None:
    """``write`` into a temporary file beside ``path``, then rename it; an empty file is a full disk
    (every file gli writes holds something). With ``run_dir`` (a task's run folder), nothing is
    written once that folder is gone: a task still running when its run was stopped and its folder
    removed must not make it again."""
    if run_dir and not os.path.isdir(run_dir):
        from .errors import ClusterError

        raise ClusterError(f"the run's work folder {run_dir} is gone (the run was stopped): nothing written")
    if run_dir and Path(run_dir) in path.parents:  # the folders below it, one by one: never the run folder itself
        for d in reversed(path.relative_to(run_dir).parents[:-1]):
            (Path(run_dir) / d).mkdir(exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        if not os.path.getsize(tmp):  # GDAL leaves an empty GeoTIFF on a full disk, without an error
            import errno

            raise OSError(errno.ENOSPC, f"No space left on device: {path.name} was written empty")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def task_inputs(task: Any) -> dict[str, Path]:
    """The files of the run's work folder a task reads, by their path relative to it: the coarse
    cloud + shadow masks of its days (L1C), or a block's ``.failed`` note. Sent with the task to
    workers that do not share the folder (:func:`run_shipped`)."""
    clouds = getattr(task, "clouds", None)
    if not clouds:
        return {}
    from .clouds import CLOUD_DILATION_PX

    blocks = sorted(cloud_blocks(task.geobox().pad(CLOUD_DILATION_PX)))  # those _chunk_clouds reads
    out: dict[str, Path] = {}
    for folder in clouds.values():
        for br, bc in blocks:
            for name in (f"b{br}_{bc}.tif", f"b{br}_{bc}.tif.failed"):
                p = Path(folder) / name
                if p.exists():
                    out[p.relative_to(task.run_dir).as_posix()] = p
    return out


def _moved(task: Any, root: str) -> Any:
    """``task`` with its work-folder paths under ``root`` instead of its run folder."""
    import dataclasses

    def there(path: str) -> str:
        return str(Path(root) / Path(path).relative_to(task.run_dir))

    changes: dict[str, Any] = {"path": there(task.path), "run_dir": root}
    if getattr(task, "clouds", None):
        changes["clouds"] = {k: there(v) for k, v in task.clouds.items()}
    return dataclasses.replace(task, **changes)


def run_shipped(fn: Callable[[Any], dict[str, Any]], task: Any, version: str,
                inputs: Mapping[str, bytes]) -> dict[str, Any]:
    """On a worker that does not share the run's work folder (a cloud Dask service, a machine
    without the file system of ``--out``): ``fn(task)`` in a temporary folder of this worker, given
    the files the task reads (``inputs``: relative path -> content); returns the task's summary and
    every file it wrote (relative path -> content), which the main process writes into the work
    folder (:meth:`DaskRunner.map`). ``version`` is the gli-toolbox of the run: a worker of another
    version refuses the task as it would in a shared folder (:func:`check_run_folder`)."""
    base = _task_base()
    try:
        with tempfile.TemporaryDirectory(prefix="gli-task-", dir=base) as tmp:
            root = Path(tmp)
            (root / RUN_MARKER).write_text(version, encoding="utf-8")
            for rel, data in inputs.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
            summary = fn(_moved(task, tmp))
            files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                     if p.is_file() and p.name != RUN_MARKER and p.relative_to(root).as_posix() not in inputs}
    except Exception as exc:
        if not disk_full(exc):
            raise
        from .errors import ClusterError

        raise ClusterError(f"no space left in {base or tempfile.gettempdir()}, where a Dask worker writes a chunk's files "
                           "before sending them back: start the workers with --local-directory on a larger disk") from None
    return {"summary": summary, "files": files}


def _task_base() -> str | None:
    """Where :func:`run_shipped` makes its task folders: the Dask worker's own local directory (on the
    disk its operator chose with ``--local-directory``; Dask removes those of workers that died),
    else the temporary folder."""
    import sys

    distributed = sys.modules.get("distributed")
    try:
        return str(distributed.get_worker().local_directory) if distributed is not None else None
    except (ValueError, AttributeError):  # not in a worker
        return None


def _content(data: bytes) -> bytes:
    """A file's content as a task's result (see :meth:`DaskRunner._send_inputs`)."""
    return data


#: Why a chunk task is recorded as failed when the cluster cancelled it (not this process).
_CANCELLED = ("cancelled on the Dask cluster (by its scheduler, or a worker lost what it needed): run the same "
              "command again with --resume")


def land_files(task: Any, files: Mapping[str, bytes]) -> None:
    """Write what a task run elsewhere (:func:`run_shipped`) wrote, into the run's work folder: each
    file atomically, the chunk's summary last (``--resume`` takes a chunk as finished by it)."""
    for rel in sorted(files, key=lambda r: (r.endswith(".json"), r)):
        _atomic_write(Path(task.run_dir) / rel, functools.partial(_write_bytes, data=files[rel]), task.run_dir)


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _classify(obs: Any, masked: NDArray[np.bool_], config: DetectConfig) -> tuple[NDArray[np.bool_], ...]:
    """Per-pixel water test of one observation: (water, maybe, observed, snow).

    The one place that calls the water kernel (contract 4: :func:`gli_toolbox.classify.classify_bands`,
    ``water`` the confident test and ``maybe`` the permissive one of ``config.method``).
    """
    from .classify import classify_bands

    bands = {"green": obs.green, "nir": obs.nir}
    if obs.swir16 is not None:
        bands["swir16"] = obs.swir16
    water, maybe, observed, snow = classify_bands(bands, scl=obs.scl, masked=masked, method=config.method,
                                                  threshold=config.ndwi_threshold, index=config.index)
    return water, maybe, observed, snow


def _count_dn(group: Any, masked: NDArray[np.bool_] | None, inside: NDArray[np.bool_], config: DetectConfig,
              counts: dict[str, NDArray[np.uint16]]) -> bool:
    """Add one day (one reflectance group, scene classification or no cloud mask) to the counts from
    its digital numbers (:func:`gli_toolbox.classify.count_observations`: the same counts as
    :func:`_classify` on the reflectances, without float arrays); True when a pixel was observed."""
    from .classify import count_observations

    dn = group.dn
    scl = dn.get("scl")
    n_observed = count_observations({b: dn[b] for b in ("green", "nir", "swir16")}, scale=group.scale, offset=group.offset,
                       nodata=group.nodata, scl=None if scl is None else scl.astype(np.uint8, copy=False),
                       masked=masked, inside=inside, method=config.method, threshold=config.ndwi_threshold,
                       index=config.index, require_swir16=True, water_count=counts["water"],
                       maybe_count=counts["maybe"], valid_count=counts["valid"], snow_count=counts["snow"])
    return n_observed > 0


def _chunk_dem(config: DetectConfig, gbox: Any, dem_items: Sequence[Any] = ()) -> Any:
    """The DEM around one chunk (the chunk plus ``dem_margin_m``, on the absolute 30 m lattice, so
    the values do not depend on where the chunk lies); ``--dem auto`` reads ``dem_items``."""
    from .dem import Dem, dem_grid, read_dem_blocks

    target = dem_grid(gbox, margin_m=config.dem_margin_m)
    assert config.dem is not None
    elev = read_dem_blocks(config.dem, dem_items, target)  # the same values whatever the chunk
    return Dem(elev, target, config.dem)


#: Side (coarse pixels) of the fixed blocks of the per-day cloud pass, on the absolute lattice of
#: multiples of ``COARSE_PASS_M`` in the zone CRS: 1024 x 60 m = 61 km.
CLOUD_BLOCK_PX = 1024
#: Farthest cloud-shadow reach taken into account around a block (m): 12 km high clouds at a sun
#: elevation of 11 degrees. Lower suns are clipped to it.
MAX_SHADOW_HALO_M = 60_000.0


@dataclass(frozen=True)
class CloudTask:
    """The per-day coarse cloud + shadow pass over one fixed block of a zone (L1C, no SCL)."""

    day: dt.date
    scenes: tuple[Any, ...]
    crs: str
    block: tuple[int, int]
    """(row, col) of the block on the lattice: it covers coarse rows ``row*B .. (row+1)*B``, row
    index ``floor(-y / 60 m)``, columns ``floor(x / 60 m)``."""
    path: str
    run_dir: str = ""
    """As :attr:`ChunkTask.run_dir`."""

    @property
    def key(self) -> str:
        return f"gli-clouds-{self.day.isoformat()}-{Path(self.path).parent.parent.name}-b{self.block[0]}_{self.block[1]}"

    def describe(self) -> str:
        return f"cloud pass {self.day.isoformat()} block {self.block}"


def _block_geobox(crs: str, block: tuple[int, int], halo_px: int) -> Any:
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from .clouds import COARSE_PASS_M as m

    r, c = block
    n = CLOUD_BLOCK_PX + 2 * halo_px
    a = Affine(m, 0, (c * CLOUD_BLOCK_PX - halo_px) * m, 0, -m, -(r * CLOUD_BLOCK_PX - halo_px) * m)
    return GeoBox((n, n), a, crs)


def cloud_blocks(gbox: Any) -> set[tuple[int, int]]:
    """Blocks of the cloud-pass lattice under a (10 m) chunk grid."""
    import math as _m

    from .clouds import COARSE_PASS_M as m

    x0, y0, x1, y1 = gbox.boundingbox
    span = CLOUD_BLOCK_PX * m
    cols = range(_m.floor(x0 / span), _m.floor((x1 - 1e-6) / span) + 1)
    rows = range(_m.floor(-y1 / span), _m.floor((-y0 - 1e-6) / span) + 1)
    return {(r, c) for r in rows for c in cols}


def run_cloud_block(task: CloudTask) -> dict[str, Any]:
    """Read the day's s2cloudless bands at 60 m over the block plus the shadow reach, compute
    clouds and shadows, and write the block's core (uint8, 1 = cloud or shadow)."""
    import rasterio

    from . import load
    from .clouds import COARSE_PASS_M, coarse_clouds_and_shadows, shadow_reach_m
    from .providers import S2_BAND_IDS, sun_angles

    if task.run_dir:
        check_run_folder(task.run_dir)
    _tune_malloc()
    sun = sun_angles(task.scenes[0].item)
    elev = sun[1] if sun is not None else 90.0
    halo = int(np.ceil(min(shadow_reach_m(elev), MAX_SHADOW_HALO_M) / COARSE_PASS_M)) + 8
    gbox = _block_geobox(task.crs, task.block, halo)
    toa = load.read_toa(task.scenes, gbox)
    toa_ids = {S2_BAND_IDS[b]: v for b, v in toa.items()}
    if sun is not None and sun[1] > 0:
        cloud, projected = coarse_clouds_and_shadows(toa_ids, sun_azimuth_deg=sun[0], sun_elevation_deg=sun[1])
    else:  # no sun angles: clouds only
        from .clouds import cloud_mask, cloud_probability

        cloud = cloud_mask(cloud_probability(toa_ids), average_over_px=0, dilation_px=0)
        projected = np.zeros_like(cloud)
    bits = cloud.astype(np.uint8) | (projected.astype(np.uint8) << 1)
    core = bits[halo:halo + CLOUD_BLOCK_PX, halo:halo + CLOUD_BLOCK_PX]
    core_box = _block_geobox(task.crs, task.block, 0)

    def write(tmp: Path) -> None:
        with rasterio.open(tmp, "w", driver="GTiff", height=CLOUD_BLOCK_PX, width=CLOUD_BLOCK_PX, count=1,
                           dtype="uint8", crs=task.crs, transform=core_box.affine, compress="deflate",
                           tiled=True, blockxsize=256, blockysize=256) as dst:
            dst.write(core, 1)

    _atomic_write(Path(task.path), write, task.run_dir)
    return {"cloud_share": float(core.mean())}


def _coarse_mask(folder: str, gbox: Any) -> NDArray[np.uint8]:
    """The day's coarse pass under a 10 m grid, by pixel repetition (each 10 m pixel takes the 60 m
    pixel its centre lies in): bit 0 cloud, bit 1 projected shadow. A block whose pass failed fails
    the day here too."""
    import rasterio

    from .clouds import COARSE_PASS_M as m
    from .errors import AssetReadError

    h, w = gbox.shape
    a = gbox.affine
    xs = a.c + (np.arange(w) + 0.5) * a.a
    ys = a.f + (np.arange(h) + 0.5) * a.e
    cc = np.floor(xs / m).astype(np.int64)
    rr = np.floor(-ys / m).astype(np.int64)
    out = np.zeros((h, w), dtype=np.uint8)
    for br, bc in sorted(cloud_blocks(gbox)):
        p = Path(folder) / f"b{br}_{bc}.tif"
        if Path(str(p) + ".failed").exists():
            raise AssetReadError(Path(str(p) + ".failed").read_text(encoding="utf-8").strip())
        if not p.exists():
            continue  # no scene of the day over this block
        rsel = (rr // CLOUD_BLOCK_PX) == br
        csel = (cc // CLOUD_BLOCK_PX) == bc
        if not rsel.any() or not csel.any():
            continue
        with rasterio.open(p) as src:
            core = src.read(1)
        out[np.ix_(rsel, csel)] = core[(rr[rsel] - br * CLOUD_BLOCK_PX)[:, None], (cc[csel] - bc * CLOUD_BLOCK_PX)[None, :]]
    return out


def _chunk_clouds(folder: str, gbox: Any) -> Any:
    """A function of the chunk's NIR reflectance giving its cloud | shadow mask from the day's coarse
    pass (read with a margin of the cloud dilation, so the dilation does not see the chunk border)."""
    from .clouds import CLOUD_DILATION_PX, refine_coarse

    m = CLOUD_DILATION_PX
    big = gbox.pad(m)
    bits = _coarse_mask(folder, big)

    def finish(nir: NDArray[np.floating]) -> NDArray[np.bool_]:
        nir_big = np.full(big.shape, np.nan, np.float32)
        nir_big[m:-m, m:-m] = nir  # the dark test is per pixel: the margin needs no NIR
        return refine_coarse((bits & 1) > 0, (bits & 2) > 0, nir_big, dilation_px=m)[m:-m, m:-m]

    return finish


_MALLOC_TUNED = False


def _worker_memory_limit() -> int:
    """The memory limit of the Dask worker running this task, in bytes (0: none, or not a worker)."""
    import sys

    distributed = sys.modules.get("distributed")
    if distributed is None:
        return 0
    try:
        worker = distributed.get_worker()
    except ValueError:  # not in a worker
        return 0
    manager = getattr(worker, "memory_manager", worker)
    return int(getattr(manager, "memory_limit", 0) or 0)


def _tune_malloc() -> None:
    """Keep chunk-sized numpy buffers on the heap for reuse (glibc only; once per process).

    Dask starts worker processes with ``MALLOC_TRIM_THRESHOLD_`` set, which freezes glibc's mmap
    threshold at 128 kB: every chunk-sized array is then a fresh ``mmap`` whose pages are faulted in
    and zeroed again, and a chunk task ran 2-3x slower on a worker than in-process (measured:
    benchmarks/bench_engine.py, docs/performance.md). A 64 MB threshold restores the reuse.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        # an explicit mmap threshold also freezes the trim threshold at 128 kB: freeing a chunk's bands
        # would give their pages back to the system, to be faulted in and zeroed again for the next day
        # (at most 1/16 of a Dask worker's memory limit: free pages kept count against it, and Dask
        # pauses a worker above 80 % of it)
        libc.mallopt(-1, min(256 << 20, _worker_memory_limit() // 16 or 256 << 20))  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to tune
        logger.debug("mallopt not available; malloc left as is")


def run_chunk(task: ChunkTask) -> dict[str, Any]:
    """Read, mask, classify and count one chunk over one season; write its counts; return a summary.

    A band file that cannot be read makes that day fail *in this chunk* (recorded in the summary,
    one readable line per failure); other errors raise, so the runner retries the task.
    """
    import shapely.geometry
    from odc.geo.geom import Geometry

    from . import grids, load
    from .errors import AssetReadError

    if task.run_dir:
        check_run_folder(task.run_dir)
    _tune_malloc()
    config = task.config
    gbox = task.geobox()
    inside = grids.part_mask(gbox, task.part)
    shape = gbox.shape
    # a count grows by at most one a day: one byte per pixel for any season of fewer than 256 days
    count_dtype = np.uint8 if len(task.days) < 256 else np.uint16
    counts = {k: np.zeros(shape, count_dtype) for k in ("water", "maybe", "valid", "snow")}
    per_day: dict[str, NDArray[np.bool_]] = {}
    days: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    failures: list[dict[str, str]] = []
    tbox = shapely.geometry.box(*gbox.boundingbox)
    dem = None
    extra: dict[str, NDArray[np.float32]] = {}
    if config.dem and inside.any():
        from . import terrain

        dem = _chunk_dem(config, gbox, task.dem_items)
        extra["elev"] = dem.on(gbox)
        extra["slope"] = dem.on(gbox, terrain.slope_deg(dem.elevation, transform=dem.geobox.affine))
    for day, scenes in task.days:
        iso = day.isoformat()
        rec: dict[str, Any] = {"used": False, "failed": False, "shadow_px": 0}
        days[iso] = rec
        if not inside.any():
            continue
        footprint = shapely.union_all(
            [Geometry(shapely.geometry.shape(s.item.geometry), "EPSG:4326").to_crs(task.crs).geom for s in scenes]
        )
        if not footprint.intersects(tbox):
            continue
        try:
            coarse = task.clouds.get(iso)
            groups, day_notes = load.read_day_dn(scenes, gbox, need_swir=True, cloud_detector=config.cloud_detector,
                                                 coarse_clouds=coarse is not None)
            fused = (not config.per_scene and len(groups) == 1 and not groups[0].s2cloudless
                     and all(a.dtype == np.uint16 for b, a in groups[0].dn.items() if b != "scl"))
            obs = None if fused else load.observation(
                groups, gbox, need_swir=True, notes=day_notes,
                cloud_mask=None if coarse is None else functools.partial(_chunk_clouds, coarse, gbox))
        except AssetReadError as exc:
            rec["failed"] = True
            failures.append({"day": iso, "scenes": ", ".join(s.id for s in scenes), "error": str(exc)})
            logger.warning("skipped %s in %s: %s", iso, task.describe(), exc)
            continue
        for note in day_notes if obs is None else obs.notes:
            if note not in notes:
                notes.append(note)
        shadow = None
        if dem is not None and config.terrain_shadows:
            shadow = _terrain_shadow_on(dem, scenes, gbox)
            rec["sun"] = shadow_sun(scenes)
            if shadow is not None:
                rec["shadow_px"] = int((shadow & inside).sum())
        if obs is None:  # the usual day: digital numbers straight to counts, one fused pass
            rec["used"] = _count_dn(groups[0], shadow, inside, config, counts) if groups else False
            continue
        masked = ~obs.valid
        if shadow is not None:
            masked |= shadow
        water, maybe, observed, snow = _classify(obs, masked, config)
        observed &= inside
        water &= observed
        maybe = (maybe | water) & observed
        counts["water"] += water
        counts["maybe"] += maybe
        counts["valid"] += observed
        counts["snow"] += snow & inside
        rec["used"] = bool(observed.any())
        if config.per_scene:
            per_day[f"day_{day.strftime('%Y%m%d')}_w"] = water
            per_day[f"day_{day.strftime('%Y%m%d')}_o"] = observed
            if config.method != "threshold":
                per_day[f"day_{day.strftime('%Y%m%d')}_m"] = maybe
    # the season's composite, here in the task (parallel), so that assembling is only copying
    valid = counts["valid"]
    wclass, tallies = season_classes(counts["water"], counts["maybe"], valid, inside=inside,
                                     min_water_fraction=config.min_water_fraction)
    summary = {"days": days, "notes": notes, "failures": failures, **tallies}
    out = {"class": wclass, "nobs": valid, "water": counts["water"], "snow": counts["snow"]}
    _atomic_write(Path(task.path), lambda tmp: _write_chunk(tmp, out, crs=task.crs, transform=gbox.affine), task.run_dir)
    if per_day:
        _atomic_write(_extra_path(task.path), lambda tmp: _save_npz(tmp, per_day), task.run_dir)
    if extra:
        _atomic_write(_terrain_path(task.path), lambda tmp: _write_terrain(tmp, extra, crs=task.crs, transform=gbox.affine),
                      task.run_dir)

    def write_summary(tmp: Path) -> None:
        tmp.write_text(json.dumps(summary), encoding="utf-8")

    _atomic_write(_summary_path(task.path), write_summary, task.run_dir)
    return summary


#: The season layers of a chunk file, in band order (contract with :func:`assemble`).
SEASON_LAYERS = ("class", "nobs", "water", "snow")


@functools.lru_cache(maxsize=1)
def _chunk_compression() -> dict[str, Any]:
    """Zstandard level 1 when this GDAL has it (5x faster to write than deflate, and smaller, on
    chunk layers: docs/performance.md), else deflate level 1."""
    from rasterio.io import MemoryFile

    try:
        from affine import Affine

        with MemoryFile() as mem, mem.open(driver="GTiff", height=1, width=1, count=1, dtype="uint8", crs="EPSG:32643",
                                           transform=Affine(10, 0, 0, 0, -10, 0), compress="zstd", zstd_level=1) as dst:
            dst.write(np.zeros((1, 1, 1), np.uint8))
        return {"compress": "zstd", "zstd_level": 1}
    except Exception:  # noqa: BLE001 - a GDAL built without ZSTD
        return {"compress": "deflate", "zlevel": 1}


def _write_chunk(path: Path, layers: dict[str, NDArray[Any]], *, crs: str, transform: Any) -> None:
    """The chunk's season layers as one tiled, compressed GeoTIFF (a band per layer, in
    :data:`SEASON_LAYERS` order, the counts' type: one byte below 256 days). The zone rasters are
    virtual mosaics of these files (:func:`assemble`), so they are compressed once, here, in parallel."""
    import rasterio

    dtype = np.result_type(*(layers[k].dtype for k in SEASON_LAYERS))
    h, w = layers["class"].shape
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": len(SEASON_LAYERS),
                               "dtype": dtype.name, "crs": crs, "transform": transform, "interleave": "band",
                               **_chunk_compression()}
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        for i, k in enumerate(SEASON_LAYERS, start=1):
            dst.write(layers[k].astype(dtype, copy=False), i)
            dst.set_band_description(i, k)


def _write_terrain(path: Path, layers: dict[str, NDArray[np.float32]], *, crs: str, transform: Any) -> None:
    """The chunk's elevation and slope (bands 1, 2), float32 with the floating-point predictor: on a
    real 30 m DEM at 10 m, 21.6 MB for a 2048 px chunk written in 0.15 s, where a deflated ``.npz``
    took 29 MB and 0.9 s (lossless both: the same values)."""
    import rasterio

    h, w = layers["elev"].shape
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": 2, "dtype": "float32", "crs": crs,
                               "transform": transform, "predictor": 3, **_chunk_compression()}
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(layers["elev"].astype(np.float32, copy=False), 1)
        dst.write(layers["slope"].astype(np.float32, copy=False), 2)


def _save_npz(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """``np.savez_compressed`` with the fastest deflate level (level 6 cost more than reading the bands)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(v), allow_pickle=False)


def shadow_sun(scenes: Sequence[Any]) -> tuple[float, float] | None:
    """(azimuth, elevation) of the sun for a day's first scene, or None."""
    from .providers import sun_angles

    return sun_angles(scenes[0].item)


def _terrain_shadow_on(dem: Any, scenes: Sequence[Any], gbox: Any) -> NDArray[np.bool_] | None:
    from . import terrain

    sun = shadow_sun(scenes)
    if sun is None or sun[1] <= 0:
        return None
    coarse = terrain.cast_shadow(dem.elevation, transform=dem.geobox.affine, sun_azimuth_deg=sun[0],
                                 sun_elevation_deg=sun[1])
    return dem.on(gbox, coarse.astype(np.float32), "nearest") > 0.5


# --------------------------------------------------------------------------------------- runners


@dataclass
class TaskOutcome:
    task: ChunkTask
    summary: dict[str, Any] | None
    error: str | None = None


class SerialRunner:
    """Runs tasks one after the other in this process (the default: no cluster)."""

    name = "in-process"
    n_workers = 1
    dashboard: str | None = None
    shipping = False

    def map(self, fn: Callable[[ChunkTask], dict[str, Any]], tasks: Sequence[ChunkTask]) -> Iterator[TaskOutcome]:
        for t in tasks:
            last = ""
            for attempt in range(1 + CHUNK_RETRIES):
                try:
                    yield TaskOutcome(t, fn(t))
                    break
                except Exception as exc:
                    if disk_full(exc):
                        raise  # not a failure of this chunk: nothing more can be written
                    last = _one_line(exc)
                    logger.warning("%s failed (attempt %d): %s", t.describe(), attempt + 1, last)
            else:
                yield TaskOutcome(t, None, last)

    def check_workers(self, folder: Path, files: Callable[[], Iterable[str]] | None = None) -> None:
        """Nothing to check: the tasks run in this process, and read what it reads."""

    def close(self) -> None:
        pass


#: Dask settings of the clusters gli starts (``--workers N``); for a cluster of your own, set them in
#: its configuration or as ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False`` in the workers' environment.
WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    # poll less: the event loops' blocking check every 200 ms instead of 20 ms, system metrics every 2 s,
    # the nannies' memory check every 0.5 s. An idle 2-worker cluster used 0.83 s of CPU per 10 s with
    # the defaults, about 0.2 s with these (docs/performance.md); on a laptop that is taken from the workers.
    "distributed.admin.tick.interval": "200ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
}


class DaskRunner:
    """Runs tasks on a ``dask.distributed`` cluster: the user's ``Client``, an existing scheduler,
    or a ``LocalCluster`` of ``workers`` processes started here (and stopped by :meth:`close`)."""

    #: The workers do not share the work folder (set by :meth:`check_workers`): each task runs in a
    #: folder of its worker and its files come back with its result (:func:`run_shipped`).
    shipping = False

    def __init__(self, client: Any = None, *, scheduler: str | None = None, workers: int | None = None,
                 memory_limit: str = "auto") -> None:
        from dask.distributed import Client, LocalCluster

        self._own: list[Any] = []
        if client is None and scheduler is not None:
            client = _connect(scheduler)
            self._own.append(client)
        elif client is None:
            import dask

            # dashboard on a free port (":8787", the default, may be taken by another cluster on this machine);
            # no statistical profiler in the workers: sampling the task's stack every 10 ms cost about 10 % of
            # the CPU (2 workers on 2 cores: 1.6-1.7x the throughput of one with it, 1.8x without;
            # docs/performance.md). The task stream and progress in the dashboard stay.
            with dask.config.set(WORKER_CONFIG), _workers_ignore_ctrl_c():
                # silence_logs: the workers' own log lines (Dask's warnings while a run is stopped, ...) would
                # land among gli's; what matters reaches this process through the tasks' results
                try:
                    cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True,
                                           memory_limit=memory_limit, dashboard_address="127.0.0.1:0",
                                           silence_logs=logging.CRITICAL)
                except Exception as exc:  # noqa: BLE001 - one line; the usual cause below
                    raise _cluster_start_error(workers or 1, exc) from None
            client = Client(cluster)
            self._own += [client, cluster]
        self.client = client
        try:  # the scheduler's dashboard (progress, task stream); stated in the plan
            self.dashboard: str | None = client.dashboard_link
        except Exception:  # noqa: BLE001 - a scheduler without a dashboard (bokeh missing, disabled)
            self.dashboard = None
        self.address = client.scheduler.address if getattr(client, "scheduler", None) else "(unknown)"
        self.name = f"dask {self.address}" if self.address != "(unknown)" else "dask"
        try:
            self.n_workers = max(1, len(client.nthreads()))
        except Exception:  # noqa: BLE001
            self.n_workers = 1

    def _submit(self, fn: Callable[[Any], dict[str, Any]], task: Any, key: str, **kw: Any) -> Any:
        if not self.shipping:
            return self.client.submit(fn, task, key=key, pure=False, **kw)
        from . import __version__

        inputs = {rel: self._inputs[str(path)] for rel, path in task_inputs(task).items()}
        return self.client.submit(run_shipped, fn, task, __version__, inputs, key=key, pure=False, **kw)

    def _send_inputs(self, tasks: Sequence[Any], token: str) -> None:
        """With shipping: the files the tasks read (cloud masks of L1C days), each sent to the cluster
        once (tasks on the same block share it). As tasks that return their content, not scattered
        data: a worker that dies with one makes Dask compute it again from the scheduler's copy
        (scattered data would be gone, and every task needing it cancelled)."""
        paths = sorted({str(p) for t in tasks for p in task_inputs(t).values()})
        for i, path in enumerate(paths):
            self._inputs[path] = self.client.submit(_content, Path(path).read_bytes(), key=f"gli-input-{token}-{i}",
                                                    pure=False)

    def map(self, fn: Callable[[ChunkTask], dict[str, Any]], tasks: Sequence[ChunkTask]) -> Iterator[TaskOutcome]:
        """Submit every task, yield each outcome as it finishes. The tasks' keys carry a token of this
        call, so that another run on the same cluster (a second notebook, a re-run after an
        interrupt) never shares a task with this one. Whatever ends the iteration (an interrupt, an
        error, the caller closing it), the tasks not finished are cancelled: a user's cluster is not
        left computing for a run that is gone. A task refused by a worker that cannot take part
        (:class:`~gli_toolbox.errors.WorkerUnfitError`, a worker that joined late) goes to the others."""
        import secrets

        from dask.distributed import as_completed

        from .errors import WorkerUnfitError

        token = secrets.token_hex(4)
        unfit: set[str] = set()
        restricted: dict[Any, ChunkTask] = {}  # sent to some workers only (see _elsewhere)
        strand_asked = 0.0
        # largest first (pixels x days): the small chunks at the AOI's edges then fill the workers'
        # last gaps instead of leaving one worker alone with a big chunk at the end
        order = sorted(tasks, key=lambda t: -_task_size(t))
        self._inputs: dict[str, Any] = {}  # with shipping: a file the tasks read -> its data on the cluster
        if self.shipping:
            self._send_inputs(order, token)
        futures = {self._submit(fn, t, f"{t.key}-{token}", retries=CHUNK_RETRIES, priority=len(order) - i): t
                   for i, t in enumerate(order)}
        done = as_completed(futures, loop=self.client.loop)  # not through Dask's default client: maybe another one
        watch = _WorkerWatch(self.client)
        # refused by unfit workers while no other worker was there: placed again when one joins, or
        # recorded as failed after the wait for workers (task, since when, why)
        parked: list[tuple[ChunkTask, float, str]] = []
        # the time allowed for fetching a result, doubled after each timeout and kept for the results
        # after it (a slow link stays slow; an abandoned fetch goes on competing for it): a result sent
        # back over a slow link (shipping) arrives in the end, and a worker gone quiet costs that time
        fetch_s = 60.0 if self.shipping else 10.0
        try:
            while not done.is_empty() or parked:
                batch = done.next_batch(block=False)
                if not batch:  # nothing finished yet: are there still workers to do it?
                    watch.check(self.address, futures)
                    if (restricted or parked) and time.monotonic() - strand_asked >= 2.0:
                        strand_asked = time.monotonic()
                        self._strand_check(fn, token, unfit, restricted, futures, done)
                        still = []
                        for t, since, why in parked:
                            again = self._elsewhere(fn, t, token, unfit)
                            if again is not None:
                                futures[again] = restricted[again] = t
                                done.add(again)
                            elif time.monotonic() - since >= worker_wait_s():
                                yield TaskOutcome(t, None, why)
                            else:
                                still.append((t, since, why))
                        parked = still
                    time.sleep(0.05)
                    continue
                watch.progress()
                for fut in batch:
                    if fut not in futures:  # superseded: sent again elsewhere (see _strand_check)
                        continue
                    t = futures.pop(fut)
                    restricted.pop(fut, None)
                    if fut.status == "finished":
                        try:  # the result lives on a worker: if it dies now, Dask computes it again
                            summary = fut.result(timeout=fetch_s)
                        except (TimeoutError, asyncio.TimeoutError):
                            futures[fut] = t
                            fetch_s *= 2
                            done.add(fut)
                            watch.check(self.address, futures)
                            continue
                        except CancelledError:  # cancelled between finishing and its fetch
                            yield TaskOutcome(t, None, _CANCELLED)
                            continue
                        if self.shipping:
                            land_files(t, summary["files"])
                            summary = summary["summary"]
                        yield TaskOutcome(t, summary)
                        fut.release()
                        continue
                    if fut.status not in ("error", "cancelled"):  # lost with its worker: Dask computes it again
                        futures[fut] = t
                        done.add(fut)
                        continue
                    exc = fut.exception() if fut.status == "error" else None
                    if isinstance(exc, WorkerUnfitError) and exc.worker:
                        if exc.worker not in unfit:
                            logger.warning("%s; its tasks go to the other workers", exc)
                        unfit.add(exc.worker)
                        again = self._elsewhere(fn, t, token, unfit)
                        if again is not None:
                            futures[again] = restricted[again] = t
                            done.add(again)
                        else:
                            parked.append((t, time.monotonic(), _task_error(exc)))
                        fut.release()
                        continue
                    yield TaskOutcome(t, None, _task_error(exc) if exc is not None else _CANCELLED)
                    fut.release()
        finally:
            self._inputs = {}  # the cluster forgets the files sent for these tasks
            if futures:
                try:
                    self.client.cancel(list(futures))
                except Exception as exc:  # noqa: BLE001 - a scheduler that is gone has nothing to cancel
                    logger.debug("cancelling the tasks left: %s", exc)

    def _elsewhere(self, fn: Callable[[ChunkTask], dict[str, Any]], task: ChunkTask, token: str,
                   unfit: set[str]) -> Any:
        """``task`` submitted again to the workers not in ``unfit`` (None when there is none)."""
        try:
            others = sorted(set(_workers_info(self.client)) - unfit)
        except Exception as exc:  # noqa: BLE001 - the scheduler went away: the task is recorded as failed
            logger.debug("asking the scheduler for its workers: %s", exc)
            return None
        if not others:
            return None
        return self._submit(fn, task, f"{task.key}-{token}-{len(unfit)}-{_token()}", retries=CHUNK_RETRIES,
                            workers=others, allow_other_workers=False)

    def _strand_check(self, fn: Callable[[ChunkTask], dict[str, Any]], token: str, unfit: set[str],
                      restricted: dict[Any, ChunkTask], futures: dict[Any, ChunkTask], done: Any) -> None:
        """Tasks sent to some workers only, none of which is left (an HPC job ended): sent again to
        the workers there are now (not the unfit ones), or they would wait for ever."""
        try:
            present = set(_workers_info(self.client))
            allowed = self.client.run_on_scheduler(_restrictions, keys=[f.key for f in restricted])
        except Exception as exc:  # noqa: BLE001 - the worker watch decides about a scheduler that is gone
            logger.debug("checking the tasks sent to some workers: %s", exc)
            return
        for fut, t in list(restricted.items()):
            workers = allowed.get(fut.key)
            if workers is None or set(workers) & present:
                continue
            again = self._elsewhere(fn, t, token, unfit)
            if again is None:
                continue
            del restricted[fut]
            futures.pop(fut, None)
            fut.cancel()
            futures[again] = t
            restricted[again] = t
            done.add(again)

    def check_workers(self, folder: Path, files: Callable[[], Iterable[str]] | None = None) -> None:
        """Check, before any task, that every worker runs this version of gli-toolbox and sees the
        files of this machine the tasks read (``files()``: band files of a local catalog, a DEM), and whether
        each reads what this process writes in ``folder`` and the reverse. When all do (this machine,
        an HPC's shared project storage), chunk results are written there by the workers and read
        back here; when one does not (a cloud Dask service, another machine without that file
        system), every task runs in a folder of its worker and its files come back with its result
        (:attr:`shipping`, :func:`run_shipped`). Without gli-toolbox in the workers' environment
        every chunk task would fail, or the run would fail late.

        A cluster without workers yet (an HPC job in its queue) is waited for, up to
        :data:`WORKER_WAIT_S`. Workers that join later are checked by each task
        (:func:`check_run_folder`).

        Raises :class:`~gli_toolbox.errors.ConfigError` (one line: which worker, what to do), or
        :class:`~gli_toolbox.errors.ClusterError` when no worker joined, after removing its probe
        files and ``folder`` itself if it is left empty."""
        import secrets

        from . import __version__
        from .errors import ClusterError, ConfigError

        if not self.client.nthreads():  # an HPC job still in its queue, a cluster still starting
            wait_s = worker_wait_s()
            # a warning: shown at the default verbosity, or the wait would be silent
            logger.warning("no worker in the Dask cluster %s yet: waiting up to %s for one to join "
                           "(GLI_WORKER_WAIT_S)", self.address, _duration(wait_s))
            try:
                self.client.wait_for_workers(1, timeout=wait_s)
            except (TimeoutError, asyncio.TimeoutError, OSError):  # asyncio's is another class on Python 3.10
                _remove_if_empty(folder)
                raise ClusterError(f"no Dask worker joined the scheduler {self.address} within "
                                   f"{_duration(wait_s)}: start workers (dask worker {self.address}) "
                                   "or use --workers N on this machine") from None
            self.n_workers = max(1, len(self.client.nthreads()))
        problem: str | None
        token = secrets.token_hex(8)
        probe = folder / f".probe-{token}"
        probe.write_text(token, encoding="utf-8")
        try:
            answers = self.client.run(_probe_worker, str(probe), token)
            seen: dict[str, tuple[str, str]] = {}
            for addr, (version, answer) in answers.items():
                if answer.startswith("ok "):  # the worker wrote its own file: it must be visible here
                    back = Path(answer[3:])
                    answer = "ok" if back.is_file() and back.read_text(encoding="utf-8") == token else \
                        "its files do not appear here"
                seen[addr] = (version, answer)
        except Exception as exc:  # noqa: BLE001 - whatever the workers raise: most often gli_toolbox missing
            problem = (f"the Dask workers cannot run gli-toolbox ({_one_line(exc)}): install gli-toolbox "
                       f"{__version__} in the environment of the scheduler's workers, or use --workers N on this "
                       "machine")
        else:
            other = sorted((a, v) for a, (v, _) in seen.items() if v != __version__)
            bad = sorted((a, why) for a, (_, why) in seen.items() if why != "ok")
            if other:
                problem = (f"the Dask worker {other[0][0]} runs gli-toolbox {other[0][1]}, this process "
                           f"{__version__}: install the same version on the workers (a result must not depend on "
                           "where its chunks ran)")
            else:
                problem = self._unseen_files(files() if files is not None else ())
        finally:
            for f in folder.glob(f".probe-{token}*"):
                f.unlink(missing_ok=True)
        if problem is None:
            if bad:  # a cloud Dask service, a machine without the file system of --out
                self.shipping = True
                more = f" (and {len(bad) - 1} other worker(s))" if len(bad) > 1 else ""
                logger.warning("the Dask worker %s%s does not share the work folder %s (%s): chunk results come "
                               "back through the cluster's connections and lakes are extracted in this process "
                               "(slower; on a file system the workers share, e.g. NFS, they write them there)",
                               bad[0][0], more, folder, bad[0][1])
            return
        _remove_if_empty(folder)
        raise ConfigError(problem)

    def _unseen_files(self, paths: Iterable[str]) -> str | None:
        """Whether every worker sees the files of this machine the tasks read (``paths``: the scenes'
        band files of a local catalog, a DEM file; URLs are not checked): on a cluster of other
        machines they are often on this one only, and every chunk would fail. None, or the problem in
        one line (which worker and file, what to do)."""
        local = sorted({str(p) for p in paths if is_local_path(str(p))})
        if not local:
            return None
        try:
            answers = self.client.run(_missing_files, local)
        except Exception as exc:  # noqa: BLE001 - the workers went away: the run's own checks say so later
            logger.debug("asking the workers for the input files: %s", exc)
            return None
        blind = sorted((a, n, first) for a, (n, first) in answers.items() if n)
        if not blind:
            return None
        addr, n, first = blind[0]
        more = f" (and {len(blind) - 1} other worker(s))" if len(blind) > 1 else ""
        return (f"the Dask worker {addr}{more} does not see {n} of the {len(local)} file(s) of this machine the run "
                f"reads, e.g. {first}: put the scenes' files (--stac) and the DEM (--dem) where the workers read "
                "them too (a shared file system, or URLs), or use --workers N on this machine")

    def close(self) -> None:
        for obj in self._own:
            try:
                obj.close()
            except Exception as exc:  # noqa: BLE001 - closing a cluster that already went away
                logger.debug("closing %s: %s", obj, exc)


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Worker processes started inside ignore Ctrl-C (SIGINT).

    A terminal sends Ctrl-C to the whole process group, so to the workers of ``--workers N`` too;
    each printed a ``KeyboardInterrupt`` traceback while the run itself stopped cleanly and stops
    them. An ignored signal stays ignored in a child process (and Python then installs no handler
    of its own), so SIGINT is ignored here while the workers start, then restored.
    """
    import signal

    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: its signals are not ours to change
        yield
        return
    try:
        yield
    finally:
        if previous is not None:  # None: a handler installed by C code, which Python cannot restore
            signal.signal(signal.SIGINT, previous)


def _cluster_start_error(workers: int, exc: BaseException) -> Exception:
    """One line for a local cluster that did not start. From a Python script the usual cause is a
    call outside ``if __name__ == "__main__":``: each worker process imports the script (Python's
    "spawn"), runs the call again and fails, and Dask reports only "Nanny failed to start"."""
    import sys

    from .errors import ClusterError

    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    hint = (f"in a script ({Path(script).name}), call gli_toolbox.detect() under `if __name__ == \"__main__\":` "
            "(each worker process imports the script), or leave out workers= to run in this process"
            if script else "leave out workers= to run in this process, or start a cluster yourself and pass client=")
    return ClusterError(f"could not start {workers} local Dask worker process(es) ({_one_line(exc)}): {hint}")


#: Seconds to wait for an answer of the scheduler given as ``--scheduler``.
SCHEDULER_TIMEOUT_S = 30.0


def _connect(address: str) -> Any:
    """A ``Client`` of the scheduler at ``address``, or one :class:`~gli_toolbox.errors.ConfigError`.

    Dask's own connection timeout does not cover every wrong address: a server that accepts the
    connection but is no Dask scheduler (the dashboard's port, a web server) never answers the
    handshake, and a service that sends a banner (SSH) makes the client read it as a frame length.
    The client is made in a thread, waited for :data:`SCHEDULER_TIMEOUT_S` plus a margin.
    """
    import threading

    from dask.distributed import Client

    from .errors import ConfigError

    what = ("check the address (the scheduler's port, tcp://host:8786 by default, not its dashboard's 8787) and "
            "that the Dask scheduler is running")
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if address.startswith("tcp://") and port.isdigit():  # a closed port is known at once (Dask retries 30 s)
        import socket

        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except ConnectionRefusedError:
            raise ConfigError(f"--scheduler {address}: cannot connect (connection refused); {what}") from None
        except OSError:
            pass  # unreachable, slow, a name to resolve: Dask tries in its own way below
    lock = threading.Lock()
    state: dict[str, Any] = {"done": False, "abandoned": False, "result": None}

    def connect() -> None:
        try:
            got: Any = Client(address, timeout=f"{SCHEDULER_TIMEOUT_S:g}s")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as one line
            got = exc
        with lock:
            late = state["abandoned"]
            if not late:
                state.update(done=True, result=got)
        if late and not isinstance(got, BaseException):
            got.close()  # the caller gave up waiting: nobody else would close it

    worker = threading.Thread(target=connect, name="gli-connect", daemon=True)
    worker.start()
    worker.join(SCHEDULER_TIMEOUT_S + 5)
    with lock:
        if not state["done"]:
            state["abandoned"] = True
    if not state["done"]:
        raise ConfigError(f"--scheduler {address}: no Dask scheduler answered within "
                          f"{_duration(SCHEDULER_TIMEOUT_S + 5)}; {what}")
    got = state["result"]
    if isinstance(got, BaseException):
        why = "no Dask scheduler answers there" if isinstance(got, MemoryError) else _one_line(got)
        raise ConfigError(f"--scheduler {address}: cannot connect ({why}); {what}") from None
    return got


def _duration(seconds: float) -> str:
    """``"10 min"``, ``"45 s"``.

    >>> _duration(600), _duration(3)
    ('10 min', '3 s')
    """
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _remove_if_empty(folder: Path) -> None:
    """Remove the run's work folder if nothing is in it yet (made for this run)."""
    try:
        folder.rmdir()
    except OSError:
        pass


def _workers_info(client: Any) -> dict[str, dict[str, Any]]:
    """Every worker's entry of the scheduler's information (some releases of distributed list only
    the first 5 unless asked for all)."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # releases without the argument list them all
        info = client.scheduler_info()
    return dict(info.get("workers", {}))


def _working(worker: Mapping[str, Any]) -> bool:
    """A worker that takes tasks, or that still runs one while paused by Dask at its memory limit."""
    if worker.get("status", "running") == "running":
        return True
    metrics = worker.get("metrics") or {}
    executing = (metrics.get("task_counts") or {}).get("executing", metrics.get("executing", 0))
    return bool(executing)


class _WorkerWatch:
    """Stops a run whose cluster has had no working worker for :func:`worker_wait_s`: all workers went
    away (an HPC job's time limit, a crash), or all are paused by Dask at their memory limit (a worker
    above 80 % of it takes no task until memory is freed). Without it the run would wait for ever.
    Asks the scheduler at most every 2 s."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.wait_s = worker_wait_s()
        self.last = 0.0
        self.since: float | None = None

    def progress(self) -> None:
        """A task finished: the cluster is working, whatever its workers' state."""
        self.since = None

    def check(self, address: str, pending: Collection[Any]) -> None:
        now = time.monotonic()
        if now - self.last < 2.0:
            return
        self.last = now
        try:
            workers = _workers_info(self.client)
        except Exception:  # noqa: BLE001 - the scheduler itself is gone: the same outcome
            workers = {}
        if any(_working(w) for w in workers.values()):
            self.since = None
            return
        paused = bool(workers) and all(w.get("status") == "paused" for w in workers.values())
        if self.since is None:
            self.since = now
            if paused:
                logger.warning("every worker of the Dask cluster %s is paused at its memory limit (Dask pauses a "
                               "worker above 80 %% of it); waiting up to %s for one to resume", address,
                               _duration(self.wait_s))
            else:
                logger.warning("the Dask cluster %s has no worker; waiting up to %s for one", address,
                               _duration(self.wait_s))
            return
        if now - self.since >= self.wait_s:
            from .errors import ClusterError

            try:
                self.client.cancel(list(pending))
            except Exception as exc:  # noqa: BLE001 - nothing to cancel on a scheduler that is gone
                logger.debug("cancelling the tasks left: %s", exc)
            if paused:
                raise ClusterError(f"the workers of the Dask cluster {address} have been paused at their memory "
                                   f"limit for {_duration(self.wait_s)} ({len(pending)} task(s) left): finished chunks "
                                   "are kept; give each worker more memory (1-2 GB) or lower --chunk-px, then run "
                                   "the same command again with --resume")
            raise ClusterError(f"the Dask cluster {address} has had no worker for {_duration(self.wait_s)} "
                               f"({len(pending)} task(s) left): finished chunks are kept; start workers and run "
                               "the same command again with --resume")


def results_or_here(client: Any, futures: Sequence[Any], here: Callable[[int], Any]) -> list[Any]:
    """The results of ``futures``, tasks of the steps after the chunk tasks (lake passes, river
    flags: pure functions of files in the work folder or of polygons). One that failed on the
    workers even after its retries (a worker that joined late without the work folder or without
    gli-toolbox), or that cannot run because the cluster has no worker left, is computed in this
    process instead: ``here(i)`` runs the same function on the same input, so the result is the same.
    """
    idle_since: float | None = None
    finished = 0
    try:
        asked = time.monotonic()
        # polled (Dask's ``wait`` works through the default client, which may be another one)
        while not all(f.done() for f in futures):
            time.sleep(0.05)
            if time.monotonic() - asked < 2.0:
                continue
            asked = time.monotonic()
            now_done = sum(f.done() for f in futures)
            try:
                workers = _workers_info(client)
            except Exception as exc:  # noqa: BLE001 - the scheduler itself is gone
                logger.debug("asking the scheduler for its workers: %s", exc)
                workers = {}
            if not workers:
                logger.warning("the Dask cluster has no worker: the rest of this step runs in this process")
                break
            if now_done > finished or any(_working(w) for w in workers.values()):
                finished, idle_since = now_done, None
                continue  # still working
            if idle_since is None:  # every worker paused at its memory limit
                idle_since = time.monotonic()
                logger.warning("every worker of the Dask cluster is paused at its memory limit; waiting up to %s "
                               "before running the rest of this step in this process", _duration(worker_wait_s()))
            elif time.monotonic() - idle_since >= worker_wait_s():
                logger.warning("the Dask workers are still paused: the rest of this step runs in this process")
                break
        out = []
        deadline = time.monotonic() + 30  # for fetching all results: a hung worker costs 30 s once
        for i, f in enumerate(futures):
            if f.status == "finished" and time.monotonic() < deadline:
                try:  # its worker may die now: then computed here
                    out.append(f.result(timeout=max(deadline - time.monotonic(), 0.1)))
                    continue
                except (TimeoutError, asyncio.TimeoutError):
                    logger.warning("a task's result could not be fetched from the Dask workers: the rest of this "
                                   "step runs in this process")
                    deadline = 0.0
            if f.status == "error":
                logger.warning("a task failed on the Dask workers (%s); running it in this process",
                               _one_line(f.exception()))
            f.cancel()
            out.append(here(i))
        return out
    except BaseException:  # an interrupt, an error here: the workers stop too
        try:
            client.cancel(list(futures))
        except Exception as exc:  # noqa: BLE001 - a scheduler that is gone has nothing to cancel
            logger.debug("cancelling the tasks left: %s", exc)
        raise


def _token() -> str:
    """A short random token (task keys)."""
    import secrets

    return secrets.token_hex(3)


def _restrictions(dask_scheduler: Any, keys: Sequence[str]) -> dict[str, list[str]]:
    """On the scheduler: the workers each task of ``keys`` may run on (tasks still waiting only)."""
    out = {}
    for k in keys:
        ts = dask_scheduler.tasks.get(k)
        if ts is not None and ts.state in ("no-worker", "queued", "waiting", "released") and ts.worker_restrictions:
            out[k] = sorted(ts.worker_restrictions)
    return out


def _probe_worker(probe: str, token: str) -> tuple[str, str]:
    """On a worker: its gli-toolbox version, and whether it reads the probe file this process wrote
    and can write one of its own beside it: ``"ok <path written>"`` or why not (a short phrase)."""
    import socket

    from . import __version__

    try:
        p = Path(probe)
        if not p.is_file() or p.read_text(encoding="utf-8") != token:
            return __version__, f"{socket.gethostname()} does not see this machine's files in it"
        back = p.with_name(f"{p.name}-{socket.gethostname()}-{os.getpid()}")
        back.write_text(token, encoding="utf-8")
        return __version__, f"ok {back}"
    except OSError as exc:
        return __version__, f"{socket.gethostname()}: {exc.strerror or exc.__class__.__name__}"


def is_local_path(href: str) -> bool:
    """A file of this machine (not a URL nor a GDAL virtual file system path).

    >>> [is_local_path(h) for h in ("/data/B03.tif", "B03.tif", "https://x/B03.tif", "s3://b/B03.tif", "/vsis3/b/B03.tif")]
    [True, True, False, False, False]
    """
    return "://" not in href and not href.startswith("/vsi")


def _missing_files(paths: Sequence[str]) -> tuple[int, str]:
    """On a worker: how many of ``paths`` it does not see, and the first of them."""
    missing = [p for p in paths if not os.path.exists(p)]
    return len(missing), (missing[0] if missing else "")


def _task_size(task: Any) -> int:
    """Pixels times days of a chunk task (0 for other tasks: they keep their order)."""
    c = getattr(task, "chunk", None)
    return 0 if c is None else c.height * c.width * max(len(task.days), 1)


def make_runner(*, client: Any = None, scheduler: str | None = None, workers: int | None = None) -> SerialRunner | DaskRunner:
    """The runner for the options: none -> in-process; ``client``/``scheduler``/``workers`` -> Dask
    (one of them: two would leave one unused without a word).

    >>> make_runner(client=object(), workers=2)
    Traceback (most recent call last):
    ...
    gli_toolbox.errors.ConfigError: give one of client=, scheduler= and workers= (got client=, workers=): they say where the chunk tasks run
    """
    given = [name for name, on in (("client", client is not None), ("scheduler", scheduler is not None),
                                   ("workers", bool(workers))) if on]
    if len(given) > 1:
        from .errors import ConfigError

        raise ConfigError(f"give one of client=, scheduler= and workers= (got {', '.join(n + '=' for n in given)}): "
                          "they say where the chunk tasks run")
    if client is None and scheduler is None and not workers:
        return SerialRunner()
    return DaskRunner(client, scheduler=scheduler, workers=workers)


def disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) says that no space is left on the device.

    >>> disk_full(OSError(28, "No space left on device")), disk_full(ValueError("x"))
    (True, False)
    """
    import errno

    e: BaseException | None = exc
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _task_error(exc: BaseException) -> str:
    """One line for a chunk task that failed on a Dask cluster. Dask's ``KilledWorker`` (the worker
    process died each time it ran the task, most often killed at its memory limit) says what to do."""
    if exc.__class__.__name__ == "KilledWorker":
        return ("KilledWorker: the Dask worker running this chunk died each time (most often out of memory): "
                "lower --chunk-px (memory grows with its square) or give each worker more memory (1-2 GB)")
    return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:400] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


# ------------------------------------------------------------------------------------- assembly


@dataclass
class ZoneRasters:
    """Paths of one period's composite rasters on one zone grid (contract 3)."""

    period: str
    zone: str
    crs: str
    transform: Any
    shape: tuple[int, int]
    part: Any
    """The AOI part of this zone, in ``crs``."""
    paths: dict[str, Path]
    """``class`` (uint8), ``nobs``, ``water``, ``snow`` (uint16); ``elev``/``slope`` (float32) with a DEM."""
    stats: dict[str, int] = field(default_factory=dict)
    """``water_px`` (class 1), ``never_observed_px`` (in the AOI, no valid observation), ``inside_px``."""


_LAYERS = {"class": ("uint8", 255), "nobs": ("uint16", None), "water": ("uint16", None),
           "snow": ("uint16", None), "elev": ("float32", float("nan")), "slope": ("float32", float("nan"))}


def _create(path: Path, kind: str, *, crs: str, transform: Any, shape: tuple[int, int], count_dtype: str = "uint16") -> Any:
    import rasterio

    dtype, nodata = _LAYERS[kind]
    if kind in ("nobs", "water", "snow"):
        dtype = count_dtype
    h, w = shape
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": dtype, "crs": crs,
                               "transform": transform, "compress": "deflate", "zlevel": 1, "BIGTIFF": "IF_SAFER",
                               "SPARSE_OK": "TRUE"}
    if nodata is not None:
        profile["nodata"] = nodata
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    path.parent.mkdir(parents=True, exist_ok=True)
    return rasterio.open(path, "w", **profile)


def _write_vrt(path: Path, band: int, sources: Sequence[tuple[str, Any]], *, dtype: str, nodata: int | None,
               crs: str, transform: Any, shape: tuple[int, int]) -> None:
    """A GDAL virtual raster of one band of the chunk files, each placed at its window; areas of no
    chunk (failed, or outside the AOI) read as ``nodata`` (or 0)."""
    from xml.sax.saxutils import escape

    from rasterio.crs import CRS

    gdal_type = {"uint8": "Byte", "uint16": "UInt16"}[dtype]
    h, w = shape
    lines = [f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}">',
             f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(CRS.from_user_input(crs).to_wkt())}</SRS>',
             "  <GeoTransform>" + ", ".join(repr(float(v)) for v in transform.to_gdal()) + "</GeoTransform>",
             f'  <VRTRasterBand dataType="{gdal_type}" band="1" blockXSize="256" blockYSize="256">']
    if nodata is not None:
        lines.append(f"    <NoDataValue>{nodata}</NoDataValue>")
    for src, c in sources:
        rel = os.path.relpath(src, path.parent)
        lines += ["    <SimpleSource>",
                  f'      <SourceFilename relativeToVRT="1">{escape(rel)}</SourceFilename>',
                  f"      <SourceBand>{band}</SourceBand>",
                  f'      <SrcRect xOff="0" yOff="0" xSize="{c.width}" ySize="{c.height}"/>',
                  f'      <DstRect xOff="{c.col0}" yOff="{c.row0}" xSize="{c.width}" ySize="{c.height}"/>',
                  "    </SimpleSource>"]
    lines += ["  </VRTRasterBand>", "</VRTDataset>", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    _atomic_write(path, write)


def assemble(tasks: Sequence[ChunkTask], summaries: dict[str, dict[str, Any]], *, zone_grid: Any, part: Any,
             days: Sequence[dt.date], folder: Path, per_scene: bool, with_dem: bool) -> dict[str, ZoneRasters]:
    """The per-period rasters of one season on one zone from its chunk results.

    The season layers (``class``, ``nobs``, ``water``, ``snow``) are GDAL virtual rasters (``.vrt``)
    over the chunks' GeoTIFFs, written by the chunk tasks: nothing is copied or compressed again.
    ``summaries`` holds the chunks that finished (by path); the others (failed) are not in the mosaic
    and read as class 255 and ``nobs`` 0. ``days`` are the season's acquisition days (one period each
    with ``per_scene``); those day layers and the DEM layers are streamed, chunk by chunk, into tiled
    GeoTIFFs. Returns one :class:`ZoneRasters` per period label (the season, and each day with
    ``per_scene``). Memory: one chunk at a time.
    """
    import rasterio
    from rasterio.windows import Window

    season = tasks[0].season if tasks else ""
    zone = tasks[0].zone if tasks else ""
    crs = str(zone_grid.crs.to_wkt() if zone_grid.crs.epsg is None else f"EPSG:{zone_grid.crs.epsg}")
    shape = tuple(zone_grid.shape)
    transform = zone_grid.affine
    labels = [season] + ([d.strftime("%Y%m%d") for d in days] if per_scene else [])
    kinds = ["class", "nobs", "water", "snow"]
    count_dtype = "uint8" if len(days) < 256 else "uint16"  # the chunk tasks' counts (one byte below 256 days)
    out: dict[str, ZoneRasters] = {}
    done = [t for t in tasks if t.path in summaries and summaries[t.path].get("inside_px", 1)]
    season_paths = {k: folder / season / f"{k}_{zone}.vrt" for k in kinds}
    for i, k in enumerate(SEASON_LAYERS, start=1):
        _write_vrt(season_paths[k], i, [(t.path, t.chunk) for t in done], dtype="uint8" if k == "class" else count_dtype,
                   nodata=NEVER_OBSERVED if k == "class" else None, crs=crs, transform=transform, shape=shape)  # type: ignore[arg-type]
    stats = {"water_px": 0, "never_observed_px": 0, "inside_px": 0}
    for t in done:
        for k in stats:
            stats[k] += int(summaries[t.path].get(k, 0))
    dem_paths = {k: folder / f"{k}_{zone}.tif" for k in ("elev", "slope")} if with_dem else {}
    out[season] = ZoneRasters(season, zone, crs, transform, shape, part, {**season_paths, **dem_paths}, stats)  # type: ignore[arg-type]
    if not (per_scene or with_dem):
        return out
    dsts: dict[tuple[str, str], Any] = {}
    try:
        for lab in labels[1:]:
            paths = {k: folder / lab / f"{k}_{zone}.tif" for k in kinds}
            out[lab] = ZoneRasters(lab, zone, crs, transform, shape, part, {**paths, **dem_paths},  # type: ignore[arg-type]
                                   {"water_px": 0, "never_observed_px": 0, "inside_px": 0})
            for k in kinds:
                dsts[(lab, k)] = _create(paths[k], k, crs=crs, transform=transform, shape=shape,  # type: ignore[arg-type]
                                         count_dtype=count_dtype)
        for k, p in dem_paths.items():
            dsts[("", k)] = _create(p, k, crs=crs, transform=transform, shape=shape)  # type: ignore[arg-type]
        for t in done:
            c = t.chunk
            win = Window(c.col0, c.row0, c.width, c.height)
            if with_dem and _terrain_path(t.path).exists():
                with rasterio.open(_terrain_path(t.path)) as src:
                    dsts[("", "elev")].write(src.read(1), 1, window=win)
                    dsts[("", "slope")].write(src.read(2), 1, window=win)
            if not _extra_path(t.path).exists():
                continue
            with np.load(_extra_path(t.path)) as zf:
                z = {k: zf[k] for k in zf.files}  # each access of an NpzFile decompresses again
            for lab in labels[1:]:
                kw, ko = f"day_{lab}_w", f"day_{lab}_o"
                if kw not in z:
                    continue
                w, o = z[kw], z[ko]
                dcls = np.where(o, w.astype(np.uint8), np.uint8(NEVER_OBSERVED)).astype(np.uint8)
                km = f"day_{lab}_m"
                if km in z:  # possible water of that day (seeded growth happens in lake extraction)
                    dcls[(dcls == 0) & z[km]] = 2
                dsts[(lab, "class")].write(dcls, 1, window=win)
                dsts[(lab, "nobs")].write(o.astype(count_dtype), 1, window=win)
                dsts[(lab, "water")].write(w.astype(count_dtype), 1, window=win)
    finally:
        for d in dsts.values():
            d.close()
    return out
