"""Run records (what ``run.json`` holds) and the warnings a run can give.

One dataclass per period (:class:`PeriodRecord`) and one per run (:class:`DetectRecord`,
:class:`TrackRecord`), shared by ``detect``, ``search`` and ``track``, instead of dict literals
built in several places. ``to_dict()`` gives the ``run.json`` structure.

Warnings are :class:`GliWarning` subclasses (a :class:`UserWarning`), so an API user can filter
them by kind, as with pystac-client::

    import warnings
    from gli_toolbox.records import NoSceneWarning
    warnings.simplefilter("ignore", NoSceneWarning)

:meth:`RunRecord.warn` issues the warning and keeps the same text for ``run.json``; the CLI shows
each warning once as a log line.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "AssetSkippedWarning",
    "ContextWarning",
    "DetectRecord",
    "GliWarning",
    "IncompleteWarning",
    "NoObservationWarning",
    "NoSceneWarning",
    "PeriodRecord",
    "RepairedGeometryWarning",
    "RunRecord",
    "SinglePeriodWarning",
    "TrackRecord",
    "TrackingSummary",
    "log_warnings",
    "now_utc",
    "software_versions",
]


class GliWarning(UserWarning):
    """Root of the warnings of gli-toolbox (the run finished; something deserves attention)."""


class NoSceneWarning(GliWarning):
    """A year without any scene matching the selection: no lake layer for it."""


class NoObservationWarning(GliWarning):
    """Scenes were found for a period but none gave a valid observation of the AOI."""


class AssetSkippedWarning(GliWarning):
    """A band file (asset) could not be read after retries; its day was skipped."""


class IncompleteWarning(GliWarning):
    """A period is incomplete: some of its assets or chunks failed (``run["incomplete"]``)."""


class ContextWarning(GliWarning):
    """Context data is missing or partial (no sun angles, DEM gaps ...); results are still written."""


class RepairedGeometryWarning(GliWarning):
    """Invalid polygons of an input inventory were repaired before tracking."""


class SinglePeriodWarning(GliWarning):
    """Only one period was given: lakes get ids but no change status."""


def now_utc() -> str:
    """The run's creation time, ISO 8601 in UTC to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def software_versions(packages: Iterable[str] = ("gli-toolbox",), *, full: bool = False) -> dict[str, str]:
    """Versions of ``packages`` (``"unknown"`` when not installed); with ``full`` also Python and GDAL."""
    from importlib.metadata import version

    out: dict[str, str] = {}
    if full:
        import rasterio

        out = {"python": platform.python_version(), "gdal": rasterio.__gdal_version__}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = "unknown"
    return out


@dataclass
class PeriodRecord:
    """What happened in one period (a year, or a date with ``per_scene``).

    ``to_dict()`` leaves out the fields that are None, so a year without scenes records only its
    season, scenes, duplicates and reason (as ``gli search --json`` lists them).
    """

    season: tuple[str, str] | None = None
    """First and last instant of the season searched."""
    scenes: list[dict[str, Any]] = field(default_factory=list)
    """One record per scene used (see ``search.Scene.to_record``)."""
    dropped_duplicates: list[str] = field(default_factory=list)
    """Reprocessed duplicates dropped by the search."""
    days_used: int | None = None
    days_failed: list[str] | None = None
    """ISO dates of days skipped because an asset could not be read."""
    n_lakes: int | None = None
    lake_area_km2: float | None = None
    water_pixels: int | None = None
    never_observed_pixels_in_aoi: int | None = None
    rivers_removed: int | None = None
    """River-like water objects removed from the layer (``keep_rivers`` keeps them, flagged)."""
    rivers_removed_km2: float | None = None
    """Their area."""
    reason: str | None = None
    """Why this period has no lake layer."""
    failures: list[str] = field(default_factory=list)
    """One readable line per failed asset or chunk (contract: ``run["incomplete"]``)."""

    @property
    def incomplete(self) -> bool:
        """True when some asset or chunk of the period failed (it is then not a "no scene" period)."""
        return bool(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """The period's entry of ``run.json`` (``years`` of detect, ``gli search --json``).

        >>> PeriodRecord(("2019-07-01", "2019-09-30"), reason="no scene").to_dict()
        {'season': ['2019-07-01', '2019-09-30'], 'scenes': [], 'dropped_duplicates': [], 'reason': 'no scene'}
        """
        d: dict[str, Any] = {
            "season": list(self.season) if self.season is not None else None,
            "scenes": list(self.scenes),
            "dropped_duplicates": list(self.dropped_duplicates),
        }
        for k in ("days_used", "days_failed", "n_lakes", "lake_area_km2", "water_pixels",
                  "never_observed_pixels_in_aoi", "rivers_removed", "rivers_removed_km2", "reason"):
            v = getattr(self, k)
            if v is not None:
                d[k] = list(v) if isinstance(v, list) else v
        if d["season"] is None:
            del d["season"]
        return d


@dataclass
class TrackingSummary:
    """Counts of a tracking result for ``run.json``."""

    periods: list[str]
    lakes: int
    status_counts: dict[str, int]
    merges: int
    splits: int

    @classmethod
    def of(cls, result: Any) -> TrackingSummary:
        """Summary of a :class:`~gli_toolbox.tracking.TrackResult`."""
        return cls(
            periods=[str(p) for p in result.periods],
            lakes=len(result.changes),
            status_counts={k: int(v) for k, v in result.changes["status"].value_counts().items()},
            merges=int((result.events["kind"] == "merged").sum()),
            splits=int((result.events["kind"] == "split").sum()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"periods": self.periods, "lakes": self.lakes, "status_counts": self.status_counts,
                "merges": self.merges, "splits": self.splits}


@dataclass
class RunRecord:
    """Common part of every run record: when, with which software, and what went wrong."""

    created: str = field(default_factory=now_utc)
    software: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """Warning texts, in the order given (also issued as :class:`GliWarning`)."""

    def warn(self, category: type[GliWarning], message: str, *, stacklevel: int = 3) -> None:
        """Record ``message`` for ``run.json`` and issue it as a ``category`` warning."""
        if message in self.warnings:
            return
        self.warnings.append(message)
        warnings.warn(message, category, stacklevel=stacklevel)


@dataclass
class DetectRecord(RunRecord):
    """The record of a ``gli detect`` run; :meth:`to_dict` is the structure of its ``run.json``."""

    parameters: dict[str, Any] = field(default_factory=dict)
    aoi: dict[str, Any] = field(default_factory=dict)
    stac: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)
    years: dict[str, PeriodRecord] = field(default_factory=dict)
    terrain: dict[str, Any] | None = None
    glaciers: dict[str, Any] | None = None
    skipped_assets: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Context notes (listed after the warnings in ``run.json``)."""
    tracking: TrackingSummary | None = None
    engine: dict[str, Any] | None = None
    """Where the chunk tasks ran (in-process or a Dask scheduler) and the plan lines."""
    zones: list[dict[str, Any]] | None = None
    """Multi-zone runs: per UTM zone part its zone, CRS, grid shape, transform and chunks."""

    @property
    def incomplete(self) -> dict[str, list[str]]:
        """Period label -> one line per failed asset/chunk, for the incomplete periods only.

        With ``per_scene`` the periods are dates: a failure line that starts with its ISO date is
        listed under that date (``YYYYMMDD``), other lines (a failed chunk) under the year.
        """
        out = {k: list(p.failures) for k, p in self.years.items() if p.incomplete}
        if not self.parameters.get("per_scene"):
            return out
        by_period: dict[str, list[str]] = {}
        for year, lines in out.items():
            for line in lines:
                key = line[:10].replace("-", "") if re.match(r"\d{4}-\d{2}-\d{2}\b", line) else year
                by_period.setdefault(key, []).append(line)
        return by_period

    @property
    def complete(self) -> bool:
        """False when any period is incomplete (the CLI then exits with the "incomplete" code)."""
        return not self.incomplete

    def to_dict(self) -> dict[str, Any]:
        """The content of ``run.json`` (``outputs`` is added when it is written)."""
        return {
            "created": self.created,
            "software": dict(self.software),
            "parameters": self.parameters,
            "aoi": self.aoi,
            "stac": self.stac,
            "grid": self.grid,
            "years": {k: p.to_dict() for k, p in self.years.items()},
            "terrain": self.terrain,
            "glaciers": self.glaciers,
            "skipped_assets": list(self.skipped_assets),
            "warnings": list(self.warnings) + list(self.notes),
            "tracking": self.tracking.to_dict() if self.tracking is not None else None,
            "incomplete": self.incomplete,
            "complete": self.complete,
            **({"engine": self.engine} if self.engine is not None else {}),
            **({"zones": self.zones} if self.zones is not None else {}),
        }


@dataclass
class TrackRecord(RunRecord):
    """The record of a ``gli track`` run (or :func:`gli_toolbox.track_inventories`)."""

    inputs: list[str] = field(default_factory=list)
    year_field: str | None = None
    pixel_m: float = 10.0
    periods: list[str] = field(default_factory=list)
    crs: str | None = None
    status_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The content of ``run.json`` (``outputs`` is added when it is written)."""
        return {
            "created": self.created,
            "software": dict(self.software),
            "command": "track",
            "inputs": list(self.inputs),
            "year_field": self.year_field,
            "pixel_m": self.pixel_m,
            "periods": list(self.periods),
            "crs": self.crs,
            "status_counts": dict(self.status_counts),
            "warnings": list(self.warnings),
        }


@contextmanager
def log_warnings(log: logging.Logger = logger) -> Iterator[list[warnings.WarningMessage]]:
    """Turn the :class:`GliWarning` s issued inside the block into log lines (for the CLI, which
    shows them once, without a Python warning header). Other warnings pass through unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GliWarning)
        try:
            yield caught
        finally:
            others = []
            for w in caught:
                if issubclass(w.category, GliWarning):
                    log.warning("%s", w.message)
                else:
                    others.append(w)
    for w in others:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
