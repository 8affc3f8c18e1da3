"""``gli search``: list, per year, the scenes ``gli detect`` would use."""

from __future__ import annotations

import json

import click

from ..config import DetectConfig
from ..errors import ConfigError
from .options import configure_logging, selection_options, verbosity_options


@click.command("search")
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@verbosity_options
def search_cmd(
    aoi: str, aoi_layer: str | None, years: tuple[int, ...], months: tuple[int, int], stac: str, collection: str, max_cloud: float,
    as_json: bool, verbose: int, quiet: int,
) -> None:
    """List the Sentinel-2 scenes per year that `gli detect` would read for AOI."""
    configure_logging(verbose, quiet)
    from ..aoi import read_aoi
    from ..grids import zone_parts
    from ..pipeline import estimate, plan

    try:
        config = DetectConfig(years=years, months=months, stac=stac, collection=collection, max_cloud_pct=max_cloud)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    the_aoi = read_aoi(aoi, layer=aoi_layer)
    plans = plan(the_aoi, config)
    est = estimate(plans, zone_parts(the_aoi.geometry_wgs84, crs=None, resolution_m=config.resolution_m), config)
    if as_json:
        doc = {
            str(p.year): {
                "season": [p.start, p.end],
                "scenes": [s.to_record() for scenes in p.days.values() for s in scenes],
                "dropped_duplicates": p.dropped,
            }
            for p in plans
        }
        doc["plan"] = {"zones": est.zones, "chunks": est.chunks, "scenes": est.scenes, "days": est.days,
                       "pixels": est.pixels, "bytes_to_read": est.bytes_to_read,
                       "estimated_seconds_1_worker": round(est.seconds, 1)}
        click.echo(json.dumps(doc, indent=2))
        return
    for p in plans:
        n = sum(len(v) for v in p.days.values())
        click.echo(f"{p.year}: {n} scenes on {len(p.days)} days ({p.start[:10]} to {p.end[:10]})")
        for day, scenes in p.days.items():
            for s in scenes:
                cloud = "  n/a" if s.cloud_pct is None else f"{s.cloud_pct:5.1f}"
                click.echo(f"  {day.isoformat()}  cloud {cloud}%  {s.id}")
        if p.dropped:
            click.echo(f"  dropped reprocessed duplicates: {', '.join(p.dropped)}")
    for line in est.lines():
        click.echo(line)
    if all(not p.days for p in plans):
        raise click.ClickException(
            f"no scenes found in {config.collection} for {', '.join(str(p.year) for p in plans)}; "
            "widen --months, raise --max-cloud or check --collection"
        )
