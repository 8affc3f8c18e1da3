"""``gli detect``: per-year lake layers from Sentinel-2 scenes."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import click

from ..config import DetectConfig
from ..errors import ConfigError, GliError
from .exitcodes import exit_if_incomplete
from .options import closing_summary, configure_logging, selection_options, verbosity_options

logger = logging.getLogger(__name__)


def finished_chunks(work_base: Path) -> int:
    """Finished chunk results kept in a work folder (0 when there is none)."""
    if not work_base.is_dir():
        return 0
    from ..engine import finished_chunks as count

    return count(work_base)


def _kept_line(work_base: Path) -> str | None:
    """What a stopped or failed run leaves for ``--resume``, or None when it leaves nothing."""
    n = finished_chunks(work_base)
    if not n:
        return None
    return f"{n} finished chunk(s) are kept in {work_base}: run the same command with --resume to continue"


def _drop_if_nothing_finished(work_base: Path) -> None:
    """Remove the work folder of a run that stopped before any chunk finished (it holds only empty
    folders and the run marker); one with finished chunks is kept for ``--resume``."""
    if work_base.is_dir() and not finished_chunks(work_base):
        shutil.rmtree(work_base, ignore_errors=True)


def work_folder(out: Path) -> Path:
    """Where a run keeps its chunk results until it has written its outputs: ``.<OUT>.gli-work``
    next to the output folder (so the output folder itself stays untouched until the end; ``--out .``
    is the current folder by its name, so its work folder too is beside it, not inside)."""
    import os

    out = Path(os.path.abspath(out))
    return out.parent / f".{out.name}.gli-work"


@click.command("detect")
@selection_options
@click.option("--crs", default=None, metavar="EPSG",
              help="One grid for the whole AOI in this CRS (default: each UTM zone part of the AOI on its own zone's grid).")
@click.option("--min-area-m2", "min_area_m2", type=click.FloatRange(min=0), default=5400.0, show_default=True,
              help="Minimum lake area (m2); smaller water objects are removed before vectorizing.")
@click.option("--method", type=click.Choice(["multi", "threshold"]), default="multi", show_default=True,
              help="Water classification: multi (seeded multi-index test, see docs/accuracy.md) or threshold (--index above --threshold).")
@click.option("--keep-rivers", "keep_rivers", is_flag=True,
              help="Keep river-like water objects (long and thin) in the lake layers, flagged is_river=1; "
                   "by default they are removed.")
@click.option("--index", type=click.Choice(["ndwi", "mndwi"]), default="ndwi", show_default=True,
              help="With --method threshold: NDWI (green, NIR) or MNDWI (green, SWIR1).")
@click.option("--threshold", "ndwi_threshold", type=click.FloatRange(-1, 1), default=0.2, show_default=True,
              help="With --method threshold: a pixel is water when its index is above this value.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("gli_output"), show_default=True,
              help="Output folder.")
@click.option("--save-masks", is_flag=True, help="Also write water_<YEAR>.tif masks.")
@click.option("--per-scene", is_flag=True, help="One lake layer per acquisition date (lakes_<YYYYMMDD>) instead of per year.")
@click.option("--overwrite", is_flag=True, help="Write into an existing --out: only files an earlier gli run wrote (listed in its run.json) "
                   "are replaced or removed; other files are never touched, and a run that would replace one stops.")
@click.option("--glaciers", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Glacier outlines (e.g. an RGI region): adds glac_dist and lake_type.")
@click.option("--max-glacier-dist-m", "max_glacier_dist_m", type=click.FloatRange(min=0), default=10_000.0,
              show_default=True, help="With --glaciers: keep lakes within this distance of a glacier.")
@click.option("--dem", default=None, metavar="PATH|auto",
              help="DEM file, or 'auto' for Copernicus GLO-30 from the STAC provider: elevation, slope filter, terrain shadows.")
@click.option("--max-slope-deg", "max_slope_deg", type=click.FloatRange(0, 90, min_open=True), default=10.0,
              show_default=True, help="With --dem: remove water objects on steeper median slopes.")
@click.option("--clouds", "cloud_detector", type=click.Choice(["auto", "scl", "s2cloudless", "none"]), default="auto",
              show_default=True, help="Cloud masking: SCL where available, else s2cloudless.")
@click.option("--chunk-px", "chunk_px", type=click.IntRange(min=64), default=2048, show_default=True,
              help="Side of the square processing chunks (pixels); memory per worker grows with its square.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run chunk tasks on a local Dask cluster of N worker processes (default: in this process).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run chunk tasks on an existing Dask cluster, e.g. tcp://10.0.0.5:8786.")
@click.option("--resume", is_flag=True,
              help="Continue a stopped or incomplete run of the same command: its finished chunks are kept in "
                   ".<OUT>.gli-work next to --out until a run completes, and only what is missing or failed is done "
                   "again.")
@verbosity_options
def detect_cmd(
    aoi: str, aoi_layer: str | None, years: tuple[int, ...], months: tuple[int, int], stac: str, collection: str,
    max_cloud: float, crs: str | None, min_area_m2: float, method: str, keep_rivers: bool, index: str, ndwi_threshold: float, out: Path,
    save_masks: bool,
    per_scene: bool, overwrite: bool, glaciers: str | None, max_glacier_dist_m: float, dem: str | None,
    max_slope_deg: float, cloud_detector: str, chunk_px: int, workers: int | None, scheduler: str | None,
    resume: bool, verbose: int, quiet: int,
) -> None:
    """Detect glacial lakes in AOI for each year and write lakes_<YEAR>.shp, inventory.gpkg and run.json."""
    configure_logging(verbose, quiet)
    from ..aoi import read_aoi
    from ..export import check_output_dir, write_outputs
    from ..pipeline import RunEstimate, detect

    if crs is not None and crs.isdigit():
        crs = f"EPSG:{crs}"
    try:
        config = DetectConfig(
            years=years, months=months, stac=stac, collection=collection, max_cloud_pct=max_cloud, crs=crs,
            min_area_m2=min_area_m2, method=method, keep_rivers=keep_rivers, index=index,  # type: ignore[arg-type]
            ndwi_threshold=ndwi_threshold, save_masks=save_masks, per_scene=per_scene,
            glaciers=glaciers, max_glacier_dist_m=max_glacier_dist_m, dem=dem, max_slope_deg=max_slope_deg,
            cloud_detector=cloud_detector,  # type: ignore[arg-type]
            chunk_px=chunk_px,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if workers and scheduler:
        raise click.UsageError("--workers and --scheduler exclude each other: start a local cluster or use an existing one")
    check_output_dir(out, overwrite=overwrite)  # fail before any download
    work_base = work_folder(out)
    kept = finished_chunks(work_base)
    if kept and not resume:  # hours of chunk tasks of a stopped run: never dropped without being asked
        raise GliError(f"an earlier run into {out} was stopped or incomplete and left {kept} finished chunk(s) in "
                       f"{work_base}: add --resume to reuse them (same command), or delete that folder to start "
                       "again")
    from . import stop_hint

    stop_hint.append(lambda: _kept_line(work_base))

    def show_plan(est: RunEstimate) -> None:
        if quiet == 0 and verbose == 0:  # with -v the log states the plan (timed, in order with the rest)
            for line in est.lines():
                click.echo(line, err=True)

    try:
        result = detect(read_aoi(aoi, layer=aoi_layer), config=config, workers=workers, scheduler=scheduler,
                        work_dir=work_base, resume=resume, on_plan=show_plan)
    except GliError as exc:
        _drop_if_nothing_finished(work_base)  # an error before any chunk finished leaves no folder behind
        line = _kept_line(work_base)
        if line and "--resume" not in str(exc):
            raise GliError(f"{exc} ({line[0].lower()}{line[1:]})") from None
        raise
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: the finished chunks are kept for --resume (said with the stop)
        _drop_if_nothing_finished(work_base)
        raise
    try:
        paths = write_outputs(result, out, overwrite=overwrite)
    except GliError as exc:  # e.g. a file of the user's own in the way: the chunks stay for --resume
        line = _kept_line(work_base)
        if line:
            raise GliError(f"{exc} ({line[0].lower()}{line[1:]})") from None
        raise
    if result.run.get("complete", True):
        shutil.rmtree(work_base, ignore_errors=True)  # the run is complete: its intermediate files go
    else:  # kept: --resume redoes only the failed chunks and reads (exit_if_incomplete says so)
        _drop_if_nothing_finished(work_base)
    if quiet == 0:
        layers = result.scene_lakes if per_scene else result.lakes
        for key, gdf in layers.items():
            noun = "lake" if len(gdf) == 1 else "lakes"
            rec = (result.run.get("years") or {}).get(str(key)) or {}
            rivers = (f" (and {rec['rivers_removed']} river-like water object(s), {rec['rivers_removed_km2']:.4f} km2, "
                      "left out; --keep-rivers keeps them)" if rec.get("rivers_removed") and not per_scene else "")
            click.echo(f"{key}: {len(gdf)} {noun}, {gdf['area_km2'].sum():.4f} km2{rivers}", err=True)
        click.echo(f"wrote {len(paths)} files to {out}", err=True)
        click.echo(closing_summary(out), err=True)
    exit_if_incomplete(result.run, out, kept=work_base if work_base.exists() else None)
