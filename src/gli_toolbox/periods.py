"""The time unit of an inventory: a year (seasonal composite) or one acquisition date (``--per-scene``).

One small value type, :class:`Period`, instead of telling ``2019`` from ``"20190723"`` by the length
of a string: it has a label (used in file names and tables), a sort order and a date.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Period"]

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@functools.total_ordering
@dataclass(frozen=True)
class Period:
    """A year, or one acquisition date within a year.

    >>> Period.of(2019).label, Period.of("20190723").label, Period.of("2019-07-23").iso
    ('2019', '20190723', '2019-07-23')
    >>> sorted([Period.of("20200702"), Period.of(2019)])
    [Period(year=2019, day=None), Period(year=2020, day=datetime.date(2020, 7, 2))]
    >>> round(Period.of("20200702").decimal_year, 3), Period.of(2019).date
    (2020.5, None)
    """

    year: int
    """Calendar year."""
    day: dt.date | None = None
    """Acquisition date for a per-scene period; None for a yearly period."""

    def __post_init__(self) -> None:
        if self.day is not None and self.day.year != self.year:
            raise ValueError(f"period date {self.day} is not in year {self.year}")

    @classmethod
    def of(cls, value: Any) -> Period:
        """A period from a year (``2019``, ``"2019"``), a date (``"20190723"``, ``"2019-07-23"``,
        :class:`datetime.date`) or a period."""
        if isinstance(value, Period):
            return value
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, dt.date):
            return cls(value.year, value)
        if isinstance(value, (int,)) and not isinstance(value, bool):
            return cls(int(value))
        s = str(value).strip()
        if s.isdigit() and len(s) == 4:
            return cls(int(s))
        if s.isdigit() and len(s) == 8:
            d = dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
            return cls(d.year, d)
        m = _ISO.match(s)
        if m:
            d = dt.date(*map(int, m.groups()))
            return cls(d.year, d)
        raise ValueError(f"not a period: {value!r}; give a year (2019) or a date (20190723 or 2019-07-23)")

    @property
    def per_scene(self) -> bool:
        """True for one acquisition date, False for a year."""
        return self.day is not None

    @property
    def date(self) -> dt.date | None:
        """The acquisition date (None for a yearly period)."""
        return self.day

    @property
    def label(self) -> str:
        """``"2019"`` or ``"20190723"``: used in layer and file names and in tables."""
        return f"{self.year:04d}" if self.day is None else self.day.strftime("%Y%m%d")

    @property
    def iso(self) -> str:
        """``"2019-07-23"`` for a date, ``""`` for a year (the ``date`` field of per-scene layers)."""
        return "" if self.day is None else self.day.isoformat()

    @property
    def decimal_year(self) -> float:
        """Time as a decimal year: a year is its 1 January, a date its share of the year."""
        if self.day is None:
            return float(self.year)
        start = dt.date(self.year, 1, 1)
        days = (dt.date(self.year + 1, 1, 1) - start).days
        return self.year + (self.day - start).days / days

    def _key(self) -> tuple[float, str]:
        return (self.decimal_year, self.label)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Period):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        return self.label
