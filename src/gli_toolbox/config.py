"""Run parameters of a detection run, as one frozen dataclass.

The CLI builds a :class:`DetectConfig` from its options and notebooks build one
directly; nothing in the package reads module-level settings.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_STAC", "DetectConfig", "coerce_months", "coerce_years", "parse_months", "parse_years"]

#: Earth Search v1 by Element 84 (public, no credentials).
DEFAULT_STAC = "https://earth-search.aws.element84.com/v1"
#: Sentinel-2 Collection-1 L2A on Earth Search: consistent scale/offset for all baselines.
DEFAULT_COLLECTION = "sentinel-2-c1-l2a"

#: First full year of Sentinel-2 data (S2A launched 2015-06-23).
FIRST_YEAR = 2015


def parse_years(text: str, *, flag: str = "--years") -> tuple[int, ...]:
    """Parse ``"2016-2023"`` (an inclusive range) or ``"2019"`` into a tuple of years.

    >>> parse_years("2016-2018")
    (2016, 2017, 2018)
    >>> parse_years("2019")
    (2019,)
    """
    raw = text.strip()
    parts = raw.split("-")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and len(p.strip()) == 4 for p in parts):
        raise ConfigError(f"{flag}: expected YYYY or YYYY-YYYY, got {text!r}")
    first, last = int(parts[0]), int(parts[-1])
    if last < first:
        raise ConfigError(f"{flag}: {first} comes after {last}; write the earlier year first, e.g. {last}-{first}")
    _check_year_range(first, last, flag)
    return tuple(range(first, last + 1))


def _check_year_range(first: int, last: int, flag: str) -> None:
    this_year = _dt.date.today().year
    if first < FIRST_YEAR:
        raise ConfigError(f"{flag}: Sentinel-2 data start in {FIRST_YEAR}; got {first}. Use {FIRST_YEAR} or later")
    if last > this_year:
        raise ConfigError(f"{flag}: {last} is in the future; use {this_year} or earlier")


def parse_months(text: str, *, flag: str = "--months") -> tuple[int, int]:
    """Parse ``"7-9"`` (July to September) or ``"8"`` into ``(first, last)``.

    >>> parse_months("7-9")
    (7, 9)
    >>> parse_months("8")
    (8, 8)
    """
    parts = text.strip().split("-")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"{flag}: expected M-M such as 7-9, got {text!r}")
    first, last = int(parts[0]), int(parts[-1])
    return _check_months(first, last, flag)


def _check_months(first: int, last: int, flag: str) -> tuple[int, int]:
    for m in (first, last):
        if not 1 <= m <= 12:
            raise ConfigError(f"{flag}: month {m} is out of range; use 1 (January) to 12 (December)")
    if last < first:
        raise ConfigError(
            f"{flag}: {first}-{last} runs backwards; the season must lie within one year, e.g. 7-9"
        )
    return first, last


_YEARS_HELP = ('pass a year (2019), a range as text ("2017-2019") or as range(2017, 2020), '
               "or the explicit years as a tuple/list, e.g. (2017, 2019) for those two years only")


def _is_int(v: Any) -> bool:
    import numbers

    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def coerce_years(value: Any) -> tuple[int, ...]:
    """The years of ``years=`` in the Python API, sorted and checked.

    One meaning everywhere: a text ``"2017-2019"`` is an inclusive range (as ``--years`` on the
    command line), ``range(2017, 2020)`` too; a tuple, list or set is the explicit set of years;
    a single int is one year.

    >>> coerce_years("2017-2019"), coerce_years(2019), coerce_years((2017, 2019)), coerce_years(range(2017, 2019))
    ((2017, 2018, 2019), (2019,), (2017, 2019), (2017, 2018))
    """
    if isinstance(value, str):
        return parse_years(value, flag="years")
    if _is_int(value):
        years: tuple[int, ...] = (int(value),)
    elif isinstance(value, (tuple, list, set, frozenset, range)):
        if not all(_is_int(y) for y in value):
            bad = next(y for y in value if not _is_int(y))
            raise ConfigError(f"years: {bad!r} in {value!r} is not a year; {_YEARS_HELP}")
        years = tuple(sorted({int(y) for y in value}))
    else:
        raise ConfigError(f"years: got {type(value).__name__} {value!r}; {_YEARS_HELP}")
    if not years:
        raise ConfigError(f"years: give at least one year; {_YEARS_HELP}")
    _check_year_range(years[0], years[-1], "years")
    return years


def coerce_months(value: Any) -> tuple[int, int]:
    """``months=`` of the Python API: ``"7-9"``, ``8`` or ``(7, 9)`` into ``(first, last)``.

    >>> coerce_months("7-9"), coerce_months(8), coerce_months([7, 9])
    ((7, 9), (8, 8), (7, 9))
    """
    if isinstance(value, str):
        return parse_months(value, flag="months")
    if _is_int(value):
        return _check_months(int(value), int(value), "months")
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(m) for m in value):
        return _check_months(int(value[0]), int(value[1]), "months")
    raise ConfigError(
        f"months: got {type(value).__name__} {value!r}; pass the season as \"7-9\", (7, 9) (July to September) "
        "or one month such as 8"
    )


@dataclass(frozen=True)
class DetectConfig:
    """Parameters of one ``gli detect`` run.

    Defaults and their sources are documented in ``docs/methods.md``.
    """

    years: tuple[int, ...]
    """Years to build an inventory for. A tuple, list or set is the explicit set of years
    (``(2017, 2019)``: those two years only); a text ``"2017-2019"`` (as ``--years``) or
    ``range(2017, 2020)`` is an inclusive range; a single int is one year (see :func:`coerce_years`)."""

    months: tuple[int, int] = (7, 9)
    """First and last month (also ``"7-9"`` or one month ``8``) of the season window (inclusive). July-September: lakes are ice-free
    and seasonal snow is at its minimum in the Tien Shan and Pamir (see docs/methods.md)."""

    stac: str = DEFAULT_STAC
    """STAC API URL, or path to a local static catalog / ItemCollection JSON file."""

    collection: str = DEFAULT_COLLECTION
    """STAC collection id of Sentinel-2 L2A scenes."""

    max_cloud_pct: float = 50.0
    """Scenes with a larger ``eo:cloud_cover`` (percent of the tile) are not used."""

    crs: str | None = None
    """Output CRS (e.g. ``"EPSG:32643"``); ``None`` means the UTM zone of the AOI centre."""

    resolution_m: float = 10.0
    """Pixel size of the processing grid in metres of the output CRS."""

    method: Literal["threshold", "multi"] = "multi"
    """Water classification (:mod:`gli_toolbox.classify`): ``"multi"`` (default) = a confident seed test
    (MNDWI > 0.5, NDWI > 0, SWIR1 < 0.05) grown into a permissive test (both indices > 0, NIR and
    SWIR1 < 0.11);
    ``"threshold"`` = ``index`` above ``ndwi_threshold``. Evidence for the default: docs/accuracy.md."""

    index: Literal["ndwi", "mndwi"] = "ndwi"
    """With ``method="threshold"``: water index: NDWI (green, NIR; McFeeters 1996) or MNDWI (green, SWIR1; Xu 2006)."""

    ndwi_threshold: float = 0.2
    """With ``method="threshold"``: a valid pixel is water when its index is above this value."""

    min_water_fraction: float = 0.5
    """A pixel is water for the year when at least this fraction of its valid observations is water."""

    min_area_m2: float = 5400.0
    """Minimum mapping unit: water objects smaller than this are removed before vectorizing
    (0.0054 km2, Wang et al. 2020, ESSD 12, 2169-2182)."""

    max_hole_m2: float | None = None
    """Holes (islands) in a lake up to this area are filled; ``None`` uses ``min_area_m2``."""

    keep_rivers: bool = False
    """Keep water objects shaped like rivers (long and thin: :func:`gli_toolbox.rivers.is_river`) in the
    lake layers, flagged ``is_river = 1``; by default they are removed and counted in ``run.json``."""

    per_scene: bool = False
    """Also build one lake layer per acquisition date instead of per year."""

    save_masks: bool = False
    """Keep the per-year water masks as GeoTIFFs."""

    chunk_px: int = 2048
    """Side of the square processing chunks in pixels (the unit of work of a task). Peak memory is
    set by it and the number of workers (about 40 bytes per chunk pixel per worker on L2A), never by
    the AOI's size; results do not depend on it."""

    glaciers: str | None = None
    """Glacier outline file (e.g. an RGI region); adds ``glac_dist`` and ``lake_type``."""

    max_glacier_dist_m: float | None = 10_000.0
    """With ``glaciers``: keep only lakes within this distance of a glacier (Wang et al. 2020);
    ``None`` keeps all."""

    dem: str | None = None
    """DEM file, or ``"auto"`` for Copernicus GLO-30 from the STAC provider; adds ``elev_m`` and
    ``slope_deg``, removes water on steep slopes and masks terrain cast shadows per scene."""

    max_slope_deg: float = 10.0
    """With ``dem``: water objects whose median slope is steeper are removed (see docs/glacial_context.md)."""

    terrain_shadows: bool = True
    """With ``dem``: mask pixels in terrain cast shadow at each acquisition (sun angles of the scene)."""

    dem_margin_m: float = 10_000.0
    """DEM read around the grid so that ridges outside the AOI still cast their shadows into it
    (3,000 m of relief reaches 10 km at a sun elevation of 17 degrees)."""

    cloud_detector: Literal["auto", "scl", "s2cloudless", "none"] = "auto"
    """Cloud/shadow masking: the scene classification where the item has one, s2cloudless (with
    geometric cloud shadows) where it has not (``auto``); or force one method, or none."""

    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Free-form notes recorded in ``run.json`` (not used for processing)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "years", coerce_years(self.years))
        object.__setattr__(self, "months", coerce_months(self.months))
        if not 0 <= self.max_cloud_pct <= 100:
            raise ConfigError(f"max_cloud_pct: expected 0-100, got {self.max_cloud_pct}")
        if not -1 <= self.ndwi_threshold <= 1:
            raise ConfigError(f"ndwi_threshold: an index threshold lies in -1..1, got {self.ndwi_threshold}")
        if not 0 < self.min_water_fraction <= 1:
            raise ConfigError(f"min_water_fraction: expected 0 < f <= 1, got {self.min_water_fraction}")
        if self.min_area_m2 < 0:
            raise ConfigError(f"min_area_m2: expected >= 0, got {self.min_area_m2}")
        if self.resolution_m <= 0:
            raise ConfigError(f"resolution_m: expected > 0, got {self.resolution_m}")
        if self.chunk_px < 64:
            raise ConfigError(f"chunk_px: expected >= 64, got {self.chunk_px}")
        if self.max_glacier_dist_m is not None and self.max_glacier_dist_m < 0:
            raise ConfigError(f"max_glacier_dist_m: expected >= 0, got {self.max_glacier_dist_m}")
        if not 0 < self.max_slope_deg <= 90:
            raise ConfigError(f"max_slope_deg: expected 0 < slope <= 90, got {self.max_slope_deg}")
        if self.cloud_detector not in ("auto", "scl", "s2cloudless", "none"):
            raise ConfigError(f"cloud_detector: expected auto, scl, s2cloudless or none, got {self.cloud_detector!r}")
        if self.method not in ("threshold", "multi"):
            raise ConfigError(f"method: expected 'threshold' or 'multi', got {self.method!r}")
        if self.index not in ("ndwi", "mndwi"):
            raise ConfigError(f"index: expected 'ndwi' or 'mndwi', got {self.index!r}")

    @property
    def hole_area_m2(self) -> float:
        """Largest hole (island) area that is filled, in m2."""
        return self.min_area_m2 if self.max_hole_m2 is None else self.max_hole_m2

    def season(self, year: int) -> tuple[str, str]:
        """ISO start/end of the season window in ``year`` (end inclusive, to the last day of month).

        >>> DetectConfig(years=(2019,), months=(7, 9)).season(2019)
        ('2019-07-01T00:00:00Z', '2019-09-30T23:59:59Z')
        """
        m0, m1 = self.months
        last_day = (_dt.date(year + (m1 == 12), m1 % 12 + 1, 1) - _dt.timedelta(days=1)).day
        return f"{year}-{m0:02d}-01T00:00:00Z", f"{year}-{m1:02d}-{last_day:02d}T23:59:59Z"

    def to_dict(self) -> dict[str, Any]:
        """Parameters as JSON-ready values, for ``run.json``."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
