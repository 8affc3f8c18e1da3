"""Options shared by several ``gli`` commands (one place, like rasterio's ``rio/options.py``)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
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
    f = click.option("-v", "--verbose", count=True,
                     help="More output: -v what the run does (scenes per year, each scene read, chunks, "
                          "timings), -vv gli's debug details, -vvv also GDAL's and other libraries' debug.")(f)
    return f


#: Libraries whose own messages are shown only with -vvv (their warnings always are).
THIRD_PARTY = ("rasterio", "botocore", "odc", "pystac_client", "pystac", "fiona", "pyogrio", "matplotlib",
               "urllib3", "PIL", "distributed", "asyncio", "numexpr", "h5py")


class _Formatter(logging.Formatter):
    """``WARNING: message`` for problems; info and debug lines carry the seconds since the start."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            msg += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname}: {msg}"
        stamp = f"[{time.perf_counter() - self.start:7.1f} s]"
        return f"{stamp} {msg}" if record.levelno == logging.INFO else f"{stamp} {record.name}: {msg}"


class _TqdmHandler(logging.Handler):
    """Writes log lines through ``tqdm.write``: an open progress bar is cleared, the line printed
    above it and the bar redrawn, so a warning never lands inside the bar's line
    (what ``tqdm.contrib.logging.logging_redirect_tqdm`` does, for the whole command)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(verbose: int, quiet: int) -> None:
    """Log to stderr through the progress bar: warnings always (errors only with -q); with -v what
    the run does; -vv gli's debug messages; -vvv also third-party and GDAL debug (``CPL_DEBUG``)."""
    own = logging.WARNING - 10 * verbose + 10 * quiet
    own = max(logging.DEBUG, min(logging.CRITICAL, own))
    handler = _TqdmHandler()
    handler.setFormatter(_Formatter())
    if not verbose:  # Dask's warnings about what gli handles itself ("Couldn't gather 1 keys, rescheduling"
        # after a worker died): its configuration sets distributed.client's level apart, so filtered here
        handler.addFilter(lambda r: r.levelno >= logging.ERROR or not r.name.startswith("distributed"))
    root_level = logging.DEBUG if verbose >= 3 else max(own, logging.WARNING)
    logging.basicConfig(level=root_level, handlers=[handler], force=True)
    logging.getLogger("gli_toolbox").setLevel(own)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 3 else max(own, logging.WARNING))
    # dask.distributed, imported only when a cluster is used, sets its logger to INFO on import unless
    # Dask's configuration says otherwise: without this, --workers N printed some 30 lines of cluster
    # start-up and shut-down (workers registered, nannies closed) among gli's own lines; its warnings
    # ("Restarting worker" after a worker died) only with -v: gli says what matters itself
    dask_level = "debug" if verbose >= 3 else "warning" if verbose else "error"
    if "dask" in sys.modules:
        import dask

        dask.config.set({"logging.distributed": dask_level})
    else:  # read when dask is first imported (and by worker processes started from here)
        os.environ["DASK_LOGGING__DISTRIBUTED"] = dask_level
    # urllib3 logs every connection retry as a warning; the final error is reported by gli itself.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose >= 3 else logging.ERROR)
    if verbose >= 3:
        os.environ["CPL_DEBUG"] = "ON"  # GDAL's own debug messages, through rasterio's logger
        os.environ.setdefault("CPL_CURL_VERBOSE", "NO")


def closing_summary(out: Path) -> str:
    """The last line of a run: which file to open first.

    >>> closing_summary(Path("missing_folder")).startswith("results are in missing_folder")
    True
    """
    first = [p for p in (out / "report.html", out / "inventory.qgz") if p.exists()]
    if not first:
        return f"results are in {out}"
    what = {"report.html": "the run's summary, in a web browser", "inventory.qgz": "the lakes, styled, in QGIS"}
    return "open first: " + "; then ".join(f"{p} ({what[p.name]})" for p in first)
