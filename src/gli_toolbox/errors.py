"""Exceptions raised by gli-toolbox.

Every error derives from :class:`GliError` and also from the matching built-in
exception, so callers can catch either. Messages say what to do next; the CLI
prints them as one line without a traceback.
"""

from __future__ import annotations

__all__ = [
    "AoiError",
    "AssetReadError",
    "ConfigError",
    "GliError",
    "InventoryError",
    "NoScenesFoundError",
    "OutputError",
    "OutputExistsError",
    "StacError",
]


class GliError(Exception):
    """Root of all gli-toolbox errors."""


class AoiError(GliError, ValueError):
    """The area of interest cannot be used (missing, empty, invalid, too large, no CRS)."""


class ConfigError(GliError, ValueError):
    """A run parameter is out of range (years, months, thresholds ...)."""


class StacError(GliError, ConnectionError):
    """The STAC API or catalog cannot be reached or is not a STAC API."""


class NoScenesFoundError(GliError, LookupError):
    """No Sentinel-2 scene matched the selection for any requested year."""


class AssetReadError(GliError, OSError):
    """A band file could not be read."""


class OutputExistsError(GliError, FileExistsError):
    """The output folder exists and ``overwrite`` was not given."""


class OutputError(GliError, OSError):
    """The output folder cannot be created or written."""


class InventoryError(GliError, ValueError):
    """An existing lake inventory layer cannot be used for tracking."""
