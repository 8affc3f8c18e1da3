"""Bounded retries for shaky connections: one policy for STAC searches and band reads.

Partners download years of imagery over slow, unstable links. Transient failures (connection
resets, timeouts, HTTP 429 and 5xx) are retried with exponential backoff, within a bounded number
of attempts and a bounded total time; what still fails is reported, never retried forever.

The policy comes from environment variables so that a run (and the tests) can tune it without
new options:

``GLI_HTTP_RETRIES``
    Retries after the first attempt (default 4).
``GLI_HTTP_RETRY_DELAY_S``
    First backoff delay in seconds, doubled at each retry (default 2).
``GLI_HTTP_TIMEOUT_S``
    Timeout of one HTTP request in seconds (default 30).
``GLI_HTTP_BUDGET_S``
    Largest total time spent retrying one operation, in seconds (default 300).

GDAL, which reads the band files, gets the same policy through :func:`gdal_env`; GDAL's own
messages (``CPLE_AppDefined ...``) are turned into one readable line by :func:`describe_failure`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError, redact

logger = logging.getLogger(__name__)

__all__ = ["RetryPolicy", "call_with_retry", "capture_gdal_messages", "describe_failure", "gdal_env",
           "is_transient", "policy"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one operation.

    >>> RetryPolicy(retries=3, delay_s=1.0).delays()
    [1.0, 2.0, 4.0]
    """

    retries: int = 4
    """Retries after the first attempt."""
    delay_s: float = 2.0
    """First backoff delay; doubled at each retry (capped at ``max_delay_s``)."""
    timeout_s: float = 30.0
    """Timeout of one HTTP request."""
    budget_s: float = 300.0
    """Largest total time spent on one operation including its retries."""
    max_delay_s: float = 60.0
    """Longest single wait between two attempts."""

    def delays(self) -> list[float]:
        """The waits before each retry."""
        return [min(self.delay_s * 2**i, self.max_delay_s) for i in range(self.retries)]


def env_number(name: str, default: float, *, integer: bool = False) -> float:
    """The number in the environment variable ``name`` (``default`` when unset or empty); a value
    that is not a number, or is negative, is a :class:`~gli_toolbox.errors.ConfigError` that says so."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; unset it or give e.g. {name}={default:g}") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} is negative; give 0 or more")
    return value


def policy() -> RetryPolicy:
    """The retry policy of this process (defaults, overridden by the ``GLI_HTTP_*`` variables)."""
    return RetryPolicy(
        retries=int(env_number("GLI_HTTP_RETRIES", 4, integer=True)),
        delay_s=env_number("GLI_HTTP_RETRY_DELAY_S", 2.0),
        timeout_s=max(env_number("GLI_HTTP_TIMEOUT_S", 30.0), 0.1),
        budget_s=env_number("GLI_HTTP_BUDGET_S", 300.0),
    )


# --------------------------------------------------------------------------------------------------
# What is transient

_TRANSIENT_TEXT = re.compile(
    r"HTTP (?:response )?(?:code|status)[: ]*(?:429|5\d\d)|\b(?:429|50[0234]) (?:Too Many|Internal|Bad Gateway|"
    r"Service|Gateway)|Connection reset|reset by peer|Connection aborted|RemoteDisconnected|timed out|timeout|"
    r"Timeout|Recv failure|Send failure|Empty reply|transfer closed|Connection refused|Couldn't connect|"
    r"Could not connect|SSL_read|Operation too slow|BrokenPipe|Broken pipe",
    re.IGNORECASE,
)


def is_transient(exc: BaseException) -> bool:
    """True for failures that a later attempt may not meet: resets, timeouts, HTTP 429 and 5xx.

    >>> is_transient(ConnectionResetError()), is_transient(TimeoutError())
    (True, True)
    >>> is_transient(RuntimeError("HTTP response code: 503")), is_transient(RuntimeError("HTTP response code: 404"))
    (True, False)
    >>> is_transient(ValueError("not a TIFF file"))
    False
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        status = getattr(e, "status_code", None) or getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(status, int) and (status == 429 or 500 <= status < 600):
            return True
        if _TRANSIENT_TEXT.search(str(e)):
            return True
        e = e.__cause__ or e.__context__
    return False


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    transient: Callable[[BaseException], bool] = is_transient,
    retry_policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds; retry transient failures with backoff within the policy.

    The last failure is raised unchanged when the retries or the time budget are used up, or at
    once when it is not transient.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionResetError("reset by peer")
    ...     return "ok"
    >>> call_with_retry(flaky, what="test", retry_policy=RetryPolicy(retries=3, delay_s=0), sleep=lambda s: None)
    'ok'
    >>> len(calls)
    3
    """
    pol = retry_policy or policy()
    t0 = time.monotonic()
    delays = pol.delays()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= len(delays) or not transient(exc):
                raise
            wait = delays[attempt]
            if time.monotonic() - t0 + wait > pol.budget_s:
                raise
            attempt += 1
            logger.info("%s failed (%s); retry %d of %d in %.1f s", what, redact(_first_line(exc)), attempt,
                        len(delays), wait)
            sleep(wait)


# --------------------------------------------------------------------------------------------------
# GDAL


def gdal_env(items: Sequence[Any], *, uncached: bool = False) -> dict[str, Any]:
    """GDAL options for reading the assets of ``items``: bounded HTTP retries and timeouts, and
    CDSE's ``s3://eodata`` endpoint and keys.

    GDAL retries HTTP 429/5xx itself (``GDAL_HTTP_MAX_RETRY`` times, starting after
    ``GDAL_HTTP_RETRY_DELAY`` seconds and backing off); its default of 30 s per retry made one
    unavailable file cost minutes. Here GDAL retries once after the policy's first delay, and the
    request timeout comes from :func:`policy`.

    ``uncached`` (for a retry of the whole read): GDAL remembers that a URL failed and would answer
    the next open from that memory without asking the server again; ``CPL_VSIL_CURL_NON_CACHED``
    makes it ask.
    """
    pol = policy()
    env: dict[str, Any] = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        # one quick retry inside GDAL for a blip; longer outages are retried around the whole read
        # (call_with_retry), so that the two loops do not multiply into minutes
        "GDAL_HTTP_MAX_RETRY": str(min(pol.retries, 1)),
        "GDAL_HTTP_RETRY_DELAY": f"{pol.delay_s:g}",
        "GDAL_HTTP_TIMEOUT": str(max(1, round(pol.timeout_s))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, round(min(pol.timeout_s, 15.0)))),
        # a stalled transfer (bytes trickling in) ends like a timeout
        "GDAL_HTTP_LOW_SPEED_TIME": str(max(1, round(pol.timeout_s))),
        "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
        # decoded blocks kept for the next chunk of the same file (load keeps files open between chunk
        # tasks): a fixed bound per process, whatever the area (GDAL's default is 5 % of the RAM)
        "GDAL_CACHEMAX": 256,  # MB; rasterio wants an integer here
    }
    hrefs = [a.href for i in items for a in i.assets.values()]
    if uncached:
        urls = [f"/vsicurl/{h}" for h in hrefs if h.startswith(("http://", "https://"))]
        if urls:
            env["CPL_VSIL_CURL_NON_CACHED"] = ":".join(urls)
    if any(h.startswith("s3://eodata") for h in hrefs):
        if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
            raise ConfigError(
                "CDSE assets need S3 keys: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(create them at https://eodata-s3keysmanager.dataspace.copernicus.eu)"
            )
        env.update(
            AWS_S3_ENDPOINT=os.environ.get("AWS_S3_ENDPOINT", "eodata.dataspace.copernicus.eu"),
            AWS_VIRTUAL_HOSTING="FALSE",
            AWS_HTTPS="YES",
        )
    return env


class _GdalCapture(logging.Filter):
    """Keeps GDAL's messages (logged by rasterio) out of the terminal, for one readable line later."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "CPLE_" in text or record.name.startswith(("rasterio._", "odc.loader")):
            self.messages.append(redact(text))
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG) and record.levelno <= logging.DEBUG
        return True


#: Loggers through which rasterio reports GDAL's errors.
_GDAL_LOGGERS = ("rasterio._env", "rasterio._err", "rasterio._io", "rasterio._base", "rasterio._filepath",
                 "odc.loader._rio")


@contextmanager
def capture_gdal_messages() -> Iterator[list[str]]:
    """Collect GDAL's error messages instead of printing them; yields the list they go into."""
    cap = _GdalCapture()
    loggers = [logging.getLogger(n) for n in _GDAL_LOGGERS]
    for lg in loggers:
        lg.addFilter(cap)
    try:
        yield cap.messages
    finally:
        for lg in loggers:
            lg.removeFilter(cap)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


_HTTP_CODE = re.compile(r"HTTP (?:response )?code[: ]*(\d{3})", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"(/vsi\w+/)?(https?://[^\s'\"]+|s3://[^\s'\"]+)")


def describe_failure(exc: BaseException, gdal_messages: Sequence[str] = (), *, asset: str | None = None) -> str:
    """One readable line for a failed band read: what failed and why, without secrets.

    >>> describe_failure(RuntimeError("HTTP response code: 503"), asset="https://x/B03.tif?sig=abc")
    'https://x/B03.tif?<redacted>: server temporarily unavailable (HTTP 503) after retries'
    >>> describe_failure(RuntimeError("x: not recognized as being in a supported file format"), asset="/d/B03.tif")
    '/d/B03.tif: not a readable raster (not recognized as being in a supported file format)'
    """
    texts = [*gdal_messages, *(_first_line(e) for e in _chain(exc))]
    joined = " | ".join(texts)
    where = asset or _first_url(joined)
    code = next((int(m.group(1)) for t in texts for m in [_HTTP_CODE.search(t)] if m), None)
    if code is not None and (code == 429 or code >= 500):
        why = ("server asked to slow down (HTTP 429)" if code == 429
               else f"server temporarily unavailable (HTTP {code})") + " after retries"
    elif code is not None:
        why = f"HTTP {code}"
    elif re.search(r"reset by peer|Connection reset|Recv failure|Empty reply|transfer closed", joined, re.IGNORECASE):
        why = "connection reset by the server after retries"
    elif re.search(r"timed out|timeout|Operation too slow", joined, re.IGNORECASE):
        why = "no answer in time (timeout) after retries"
    elif re.search(r"not recognized as being in a supported file format", joined, re.IGNORECASE):
        why = "not a readable raster (not recognized as being in a supported file format)"
    elif re.search(r"TIFFReadEncoded|TIFFFillTile|TIFFFillStrip|Read error|IReadBlock|truncat|LZW|Deflate|"
                   r"decod|short read|AssertionError", joined, re.IGNORECASE):
        why = "the file is damaged or truncated (a block of pixels cannot be read)"
    elif re.search(r"No such file|does not exist", joined, re.IGNORECASE):
        why = "file not found"
    else:
        why = _first_line(exc)[:200]
    return redact(f"{where}: {why}" if where else why)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


_ODC_FAILED = re.compile(r"Failed to load (\S+?):\d+ due to")


def _first_url(text: str) -> str | None:
    """The file named in GDAL's or odc-stac's messages (odc-stac names it for local files too)."""
    m = _ODC_FAILED.search(text)
    if m:
        return m.group(1).removeprefix("/vsicurl/")
    m = _URL_IN_TEXT.search(text)
    return m.group(2).rstrip(".,;:)'") if m else None
