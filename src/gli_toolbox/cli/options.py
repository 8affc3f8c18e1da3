"""Options shared by several ``gli`` commands (one place, like rasterio's ``rio/options.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..config import DEFAULT_COLLECTION, DEFAULT_STAC, parse_months, parse_years
from ..errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _years(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return parse_years(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("--years: "), ctx=ctx, param=param) from None


def _months(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        return parse_months(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("--months: "), ctx=ctx, param=param) from None


def selection_options(f: F) -> F:
    """--aoi --years --months --stac --collection --max-cloud: which scenes to use."""
    for dec in reversed(
        [
            click.option("--aoi", required=True, type=click.Path(dir_okay=False, path_type=str),
                         help="Area of interest: polygon file (GeoJSON, GeoPackage, shapefile, KML/KMZ) with a CRS."),
            click.option("--aoi-layer", "aoi_layer", default=None, metavar="NAME",
                         help="Layer of the AOI file to use, when it has several (e.g. a GeoPackage)."),
            click.option("--years", required=True, callback=_years, metavar="YYYY[-YYYY]",
                         help="Year or inclusive range of years, e.g. 2016-2023 or 2019."),
            click.option("--months", default="7-9", show_default=True, callback=_months, metavar="M-M",
                         help="Season window within each year (July-September: ice-free lakes, least snow)."),
            click.option("--stac", default=DEFAULT_STAC, show_default=True, metavar="URL|PATH",
                         help="STAC API URL, or a local catalog.json / ItemCollection file."),
            click.option("--collection", default=DEFAULT_COLLECTION, show_default=True,
                         help="Sentinel-2 L2A collection id in that STAC."),
            click.option("--max-cloud", "max_cloud", type=click.FloatRange(0, 100), default=50.0,
                         show_default=True, metavar="PCT", help="Skip scenes with more cloud cover (percent)."),
        ]
    ):
        f = dec(f)
    return f


def verbosity_options(f: F) -> F:
    """-v/--verbose and -q/--quiet, mapped to log levels (logs go to stderr)."""
    f = click.option("-q", "--quiet", count=True, help="Less output (-q: errors only).")(f)
    f = click.option("-v", "--verbose", count=True, help="More output (-v: info, -vv: debug).")(f)
    return f


def configure_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    level = max(logging.DEBUG, min(logging.CRITICAL, level))
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", force=True)
    # Third-party libraries stay at WARNING unless -vv.
    for name in ("rasterio", "botocore", "odc", "pystac_client", "fiona", "pyogrio"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING) if verbose < 2 else level)
    # urllib3 logs every connection retry as a warning; the final error is reported by gli itself.
    logging.getLogger("urllib3").setLevel(logging.ERROR if verbose < 2 else level)
