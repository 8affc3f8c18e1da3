"""What every field of the exported layers is: type, width and decimals, alias with unit, description.

One table (:data:`FIELDS`) used for the shapefile/GeoPackage field definitions (widths and decimals
that fit the values, so QGIS shows ``2.088400`` and not ``2.088400000000000``), the GeoPackage's
``gpkg_data_columns`` (alias and description), and the aliases in the QGIS styles. Fields not in the
table (a partner's own attributes) keep their type; string widths are fitted to their values.

Decimals follow the measurement resolution: areas to 1 m² (6 decimals in km²), lengths to 1 m
(3 decimals in km), coordinates to about 0.1 m (6 decimals in degrees), elevation and distances to
0.1 m, percentages to 0.01.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["FIELDS", "FieldSpec", "field_spec", "real_digits"]

Kind = Literal["str", "int", "real", "date"]


@dataclass(frozen=True)
class FieldSpec:
    """How one attribute field is written and shown."""

    name: str
    kind: Kind
    alias: str
    """Short English label with unit, shown by QGIS instead of the field name."""
    alias_ru: str
    """The same label in Russian (in the description, for partners who read Russian more easily)."""
    description: str
    width: int = 0
    """Strings: bytes (UTF-8); integers: digits; reals: digits before the decimal point (a minimum:
    widened when a value needs more)."""
    decimals: int = 0
    """Reals: digits after the decimal point."""

    @property
    def full_description(self) -> str:
        """English description followed by the Russian label."""
        return f"{self.description} (RU: {self.alias_ru})"


def _f(name: str, kind: Kind, alias: str, alias_ru: str, description: str, width: int = 0, decimals: int = 0) -> FieldSpec:
    return FieldSpec(name, kind, alias, alias_ru, description, width, decimals)


_SPECS = [
    # lake layers (lakes_<period>, lakes_all)
    _f("lake_id", "str", "Lake ID", "Идентификатор озера",
       "Stable GLIMS-style lake id: GL + longitude x1000 (6 digits) + E/W + latitude x1000 (5 digits) + N/S "
       "of the point inside the lake when first seen; a suffix separates lakes closer than 0.001 degree", 16),
    _f("year", "int", "Year", "Год", "Inventory year", 4),
    _f("area_km2", "real", "Area (km²)", "Площадь (км²)",
       "Water surface area: water pixels x pixel area, equal to the polygon area in the layer's CRS", 5, 6),
    _f("perim_km", "real", "Perimeter (km)", "Периметр (км)", "Polygon perimeter", 4, 3),
    _f("area_err", "real", "Area uncertainty (km²)", "Погрешность площади (км²)",
       "One-sigma area uncertainty from the perimeter and pixel size (Hanshaw and Bookhagen 2014)", 3, 6),
    _f("lon", "real", "Longitude (°)", "Долгота (°)", "Longitude of a point inside the lake, WGS84", 3, 6),
    _f("lat", "real", "Latitude (°)", "Широта (°)", "Latitude of a point inside the lake, WGS84", 2, 6),
    _f("n_obs", "int", "Observations", "Число наблюдений",
       "Fewest valid (clear, snow-free) observations of any lake pixel in the season", 5),
    _f("edge", "int", "At data edge (0/1)", "На границе данных (0/1)",
       "1 when the lake touches the area boundary or never-observed pixels: its area is a lower bound", 1),
    _f("n_scenes", "int", "Scenes", "Число снимков",
       "Acquisition dates of the period that gave at least one valid observation of the area", 4),
    _f("date", "date", "Date", "Дата",
       "Date of the period: acquisition date (per-scene layers) or start of the season (yearly layers)", 10),
    _f("date_end", "date", "End date", "Дата окончания",
       "Last day of the period: acquisition date (per scene) or end of the season (yearly)", 10),
    _f("period", "str", "Period", "Период", "Period label: YYYY (year) or YYYYMMDD (acquisition date)", 8),
    _f("elev_m", "real", "Elevation (m)", "Высота (м)", "Median lake surface elevation from the DEM", 4, 1),
    _f("slope_deg", "real", "Slope (°)", "Уклон (°)", "Median terrain slope under the lake from the DEM", 2, 1),
    _f("glac_dist", "real", "Distance to glacier (m)", "Расстояние до ледника (м)",
       "Distance to the nearest glacier outline (0 = touching)", 5, 1),
    _f("lake_type", "str", "Lake type", "Тип озера",
       "supraglacial (on a glacier), proglacial (touching or near a glacier) or unconnected", 12),
    _f("glac_id", "str", "Nearest glacier", "Ближайший ледник", "Id of the nearest glacier outline (e.g. RGI id)", 14),
    _f("is_river", "int", "River-like (0/1)", "Похоже на реку (0/1)",
       "1 when the water object is long and narrow like a river", 1),
    # change layer (lake_changes)
    _f("first_yr", "int", "First year", "Первый год", "Year the lake was first seen", 4),
    _f("last_yr", "int", "Last year", "Последний год", "Year the lake was last seen", 4),
    _f("n_years", "int", "Years seen", "Лет наблюдения", "Number of periods (years) in which the lake was seen", 3),
    _f("a_first", "real", "First area (km²)", "Первая площадь (км²)", "Area when first seen", 5, 6),
    _f("a_last", "real", "Last area (km²)", "Последняя площадь (км²)", "Area when last seen", 5, 6),
    _f("d_area", "real", "Area change (km²)", "Изменение площади (км²)", "Last area minus first area", 5, 6),
    _f("d_pct", "real", "Area change (%)", "Изменение площади (%)", "Area change relative to the first area", 5, 2),
    _f("rate_yr", "real", "Rate (km²/year)", "Скорость (км²/год)", "Least-squares trend of the area over time", 4, 6),
    _f("status", "str", "Change", "Изменение",
       "new, vanished, growing, shrinking, stable, not_observed, not_assessed, merged or split "
       "(see docs/tracking.md)", 12),
    _f("signif", "int", "Significant (0/1)", "Значимо (0/1)",
       "1 when the area change exceeds the combined one-sigma uncertainty", 1),
    _f("merged_to", "str", "Merged into", "Слилось с", "Id of the lake this one merged into", 16),
    _f("split_from", "str", "Split from", "Отделилось от", "Id of the lake this one split from", 16),
    _f("first_dt", "str", "First date", "Первая дата", "Acquisition date when first seen (per-scene runs)", 10),
    _f("last_dt", "str", "Last date", "Последняя дата", "Acquisition date when last seen (per-scene runs)", 10),
    _f("n_obs_dt", "int", "Dates seen", "Дат наблюдения", "Number of acquisition dates in which the lake was seen", 4),
]

#: Every known field, by name.
FIELDS: dict[str, FieldSpec] = {s.name: s for s in _SPECS}


def field_spec(name: str) -> FieldSpec | None:
    """The spec of a known field, or None for a partner's own attribute.

    >>> field_spec("area_km2").decimals
    6
    >>> field_spec("my_note") is None
    True
    """
    return FIELDS.get(name)


def real_digits(max_abs: float, *, minimum: int) -> int:
    """Digits needed before the decimal point for values up to ``max_abs`` (at least ``minimum``).

    >>> real_digits(2.0884, minimum=5), real_digits(123456.7, minimum=5), real_digits(float("nan"), minimum=2)
    (5, 6, 2)
    """
    if not math.isfinite(max_abs) or max_abs < 1:
        return minimum
    return max(minimum, math.floor(math.log10(max_abs)) + 1)
