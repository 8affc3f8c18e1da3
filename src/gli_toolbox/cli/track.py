"""``gli track``: stable ids and change analysis for existing lake inventories."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from .options import closing_summary, configure_logging, verbosity_options


@click.command("track")
@click.argument("inventories", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--year-field", default=None, metavar="NAME",
              help="Field holding the year; default: the 4-digit year (or YYYYMMDD date) in the file/layer name.")
@click.option("--pixel-m", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Pixel size the outlines were mapped at, for the area uncertainty.")
@click.option("--overwrite", is_flag=True, help="Replace outputs of an earlier run in --out (other files are kept).")
@verbosity_options
def track_cmd(inventories: tuple[Path, ...], out: Path, year_field: str | None, pixel_m: float, overwrite: bool,
              verbose: int, quiet: int) -> None:
    """Track lakes across INVENTORIES (one polygon layer per year, any format and CRS) and write
    lakes_<YEAR>.shp with stable lake_id, lake_changes.shp/.csv, lake_areas.csv and figures/."""
    configure_logging(verbose, quiet)
    from .. import __version__
    from ..export import (
        check_output_dir,
        staged_output,
        write_layer,
        write_run_json,
        write_tracking,
    )
    from ..inventories import read_inventories
    from ..tracking import track

    check_output_dir(out, overwrite=overwrite)
    layers, notes = read_inventories(list(inventories), year_field=year_field, pixel_m=pixel_m)
    res = track(layers, pixel_m=pixel_m)
    with staged_output(out, overwrite=overwrite) as stage:
        gpkg = stage / "inventory.gpkg"
        for period, gdf in res.layers.items():
            write_layer(gdf.sort_values("lake_id").reset_index(drop=True), stage, f"lakes_{period}", gpkg=gpkg)
        run = {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "software": {"gli-toolbox": __version__},
            "command": "track",
            "inputs": [str(p) for p in inventories],
            "year_field": year_field,
            "pixel_m": pixel_m,
            "periods": [str(p) for p in res.periods],
            "crs": res.changes.crs.to_string() if res.changes.crs is not None else None,
            "status_counts": {k: int(v) for k, v in res.changes["status"].value_counts().items()},
            "warnings": notes,
        }
        write_tracking(res, stage, run=run)
        write_run_json(run, stage / "run.json")
    if quiet == 0:
        counts = res.changes["status"].value_counts().to_dict()
        click.echo(f"{len(res.changes)} lakes over {len(res.periods)} periods: "
                   + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), err=True)
        click.echo(f"wrote results to {out}", err=True)
        click.echo(closing_summary(out), err=True)
