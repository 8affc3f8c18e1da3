"""Exceptions raised by gli-toolbox.

Every error derives from :class:`GliError` and also from the matching built-in
exception, so callers can catch either. Messages say what to do next; the CLI
prints them as one line without a traceback.
"""

from __future__ import annotations

import os
import re

__all__ = [
    "AoiError",
    "AssetReadError",
    "ClusterError",
    "ConfigError",
    "GliError",
    "InventoryError",
    "NoScenesFoundError",
    "OutputError",
    "OutputExistsError",
    "OutputLockedError",
    "StacError",
    "TransientError",
    "redact",
]

#: Environment variables whose values are secrets (CDSE S3 keys, tokens, subscription keys).
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "PC_SDK_SUBSCRIPTION_KEY",
              "CDSE_TOKEN", "GDAL_HTTP_BEARER", "GDAL_HTTP_USERPWD", "EARTHDATA_TOKEN")
_QUERY = re.compile(r"((?:https?|s3|gs|az)://[^\s?'\"]+)\?[^\s'\"#]*?(?=[:,;.)]?(?:\s|$)|['\"#])")
_KEYVALUE = re.compile(
    r"((?:token|sig|signature|key|secret|password|st|se|sp|sv|sr|skoid|sktid|skt|ske|sks|skv|X-Amz-[A-Za-z]+)=)[^&\s'\"]+",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(https?://)[^/\s@'\"]+@")


def redact(text: str) -> str:
    """``text`` without credentials: URL query strings (signed URLs), ``user:pass@`` and secret values.

    The one place where messages, logs and ``run.json`` are cleaned of secrets.

    >>> redact("cannot read https://x.blob.core.windows.net/a/B03.tif?st=2024&se=2025&sig=AbC%2F: 403")
    'cannot read https://x.blob.core.windows.net/a/B03.tif?<redacted>: 403'
    >>> redact("https://user:pw@h/x")
    'https://<redacted>@h/x'
    """
    if not text:
        return text
    out = _QUERY.sub(r"\1?<redacted>", text)
    out = _USERINFO.sub(r"\1<redacted>@", out)
    out = _KEYVALUE.sub(r"\1<redacted>", out)
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            out = out.replace(value, "<redacted>")
    return out


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


class TransientError(StacError):
    """A service answered "try again later" (HTTP 429/5xx, resets, timeouts) even after retries."""


class OutputExistsError(GliError, FileExistsError):
    """The output folder exists and ``overwrite`` was not given."""


class OutputError(GliError, OSError):
    """The output folder cannot be created or written (no permission, no space left, locked)."""


class OutputLockedError(OutputError):
    """Another run is writing into the same output folder right now."""


class ClusterError(GliError, RuntimeError):
    """The Dask cluster of a run has no worker (none joined, or all went away), or a worker cannot
    take part in the run (another gli-toolbox version, the work folder not shared with it)."""


class WorkerUnfitError(ClusterError):
    """A Dask worker that joined a run cannot take part in it (the work folder not visible there,
    another gli-toolbox version): its tasks are sent to the other workers. ``worker`` is its address
    (empty outside a Dask worker)."""

    def __init__(self, message: str, worker: str = "") -> None:
        super().__init__(message, worker)
        self.worker = worker

    def __str__(self) -> str:
        return str(self.args[0])


class InventoryError(GliError, ValueError):
    """An existing lake inventory layer cannot be used for tracking."""
