"""``gli track``: stable ids and change analysis for existing lake inventories (options only; the
work is :func:`gli_toolbox.inventories.track_inventories` and :func:`gli_toolbox.export.write_track_outputs`)."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import DetectConfig
from .options import closing_summary, configure_logging, verbosity_options


@click.command("track")
@click.argument("inventories", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--year-field", default=None, metavar="NAME",
              help="Field holding the year; default: the 4-digit year (or YYYYMMDD date) in the file/layer name.")
@click.option("--pixel-m", type=click.FloatRange(min=0, min_open=True),
              default=DetectConfig.__dataclass_fields__["resolution_m"].default, show_default=True,
              help="Pixel size the outlines were mapped at, for the area uncertainty.")
@click.option("--overwrite", is_flag=True, help="Write into an existing --out: only files an earlier gli run wrote (listed in its run.json) "
                   "are replaced or removed; other files are never touched, and a run that would replace one stops.")
@verbosity_options
def track_cmd(inventories: tuple[Path, ...], out: Path, year_field: str | None, pixel_m: float, overwrite: bool,
              verbose: int, quiet: int) -> None:
    """Track lakes across INVENTORIES (one polygon layer per year, any format and CRS) and write
    lakes_<YEAR>.shp with stable lake_id, lake_changes.shp/.csv, lake_areas.csv and figures/."""
    configure_logging(verbose, quiet)
    from ..export import check_output_dir, write_track_outputs
    from ..inventories import track_inventories
    from ..records import log_warnings

    check_output_dir(out, overwrite=overwrite)
    with log_warnings():
        res = track_inventories(list(inventories), year_field=year_field, pixel_m=pixel_m)
    write_track_outputs(res, out, overwrite=overwrite)
    if quiet == 0:
        counts = res.changes["status"].value_counts().to_dict()
        click.echo(f"{len(res.changes)} lakes over {len(res.periods)} periods: "
                   + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), err=True)
        click.echo(f"wrote results to {out}", err=True)
        click.echo(closing_summary(out), err=True)
