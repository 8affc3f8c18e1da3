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

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_STAC", "DetectConfig", "parse_months", "parse_years"]

#: Earth Search v1 by Element 84 (public, no credentials).
DEFAULT_STAC = "https://earth-search.aws.element84.com/v1"
#: Sentinel-2 Collection-1 L2A on Earth Search: consistent scale/offset for all baselines.
DEFAULT_COLLECTION = "sentinel-2-c1-l2a"

#: First full year of Sentinel-2 data (S2A launched 2015-06-23).
FIRST_YEAR = 2015


def parse_years(text: str) -> tuple[int, ...]:
    """Parse ``"2016-2023"`` or ``"2019"`` into a tuple of years.

    >>> parse_years("2016-2018")
    (2016, 2017, 2018)
    >>> parse_years("2019")
    (2019,)
    """
    raw = text.strip()
    parts = raw.split("-")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and len(p.strip()) == 4 for p in parts):
        raise ConfigError(f"--years: expected YYYY or YYYY-YYYY, got {text!r}")
    first, last = int(parts[0]), int(parts[-1])
    if last < first:
        raise ConfigError(f"--years: {first} comes after {last}; write the earlier year first, e.g. {last}-{first}")
    this_year = _dt.date.today().year
    if first < FIRST_YEAR:
        raise ConfigError(f"--years: Sentinel-2 data start in {FIRST_YEAR}; got {first}. Use {FIRST_YEAR} or later")
    if last > this_year:
        raise ConfigError(f"--years: {last} is in the future; use {this_year} or earlier")
    return tuple(range(first, last + 1))


def parse_months(text: str) -> tuple[int, int]:
    """Parse ``"7-9"`` (July to September) or ``"8"`` into ``(first, last)``.

    >>> parse_months("7-9")
    (7, 9)
    >>> parse_months("8")
    (8, 8)
    """
    parts = text.strip().split("-")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"--months: expected M-M such as 7-9, got {text!r}")
    first, last = int(parts[0]), int(parts[-1])
    for m in (first, last):
        if not 1 <= m <= 12:
            raise ConfigError(f"--months: month {m} is out of range; use 1 (January) to 12 (December)")
    if last < first:
        raise ConfigError(
            f"--months: {first}-{last} runs backwards; the season must lie within one year, e.g. 7-9"
        )
    return first, last


@dataclass(frozen=True)
class DetectConfig:
    """Parameters of one ``gli detect`` run.

    Defaults and their sources are documented in ``docs/methods.md``.
    """

    years: tuple[int, ...]
    """Years to build an inventory for, e.g. ``(2016, 2017)``."""

    months: tuple[int, int] = (7, 9)
    """First and last month of the season window (inclusive). July-September: lakes are ice-free
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

    index: Literal["ndwi", "mndwi"] = "ndwi"
    """Water index: NDWI (green, NIR; McFeeters 1996) or MNDWI (green, SWIR1; Xu 2006)."""

    ndwi_threshold: float = 0.2
    """A valid pixel is water when its index is above this value."""

    min_water_fraction: float = 0.5
    """A pixel is water for the year when at least this fraction of its valid observations is water."""

    min_area_m2: float = 5400.0
    """Minimum mapping unit: water objects smaller than this are removed before vectorizing
    (0.0054 km2, Wang et al. 2020, ESSD 12, 2169-2182)."""

    max_hole_m2: float | None = None
    """Holes (islands) in a lake up to this area are filled; ``None`` uses ``min_area_m2``."""

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
        if not self.years:
            raise ConfigError("years: give at least one year, e.g. years=(2019,)")
        object.__setattr__(self, "years", tuple(sorted({int(y) for y in self.years})))
        if self.years[0] < FIRST_YEAR:
            raise ConfigError(f"years: Sentinel-2 data start in {FIRST_YEAR}; got {self.years[0]}")
        m0, m1 = self.months
        if not (1 <= m0 <= m1 <= 12):
            raise ConfigError(f"months: expected 1 <= first <= last <= 12, got {self.months}")
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
