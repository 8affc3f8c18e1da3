"""Find Sentinel-2 scenes for an area and season in a STAC API or a local static catalog.

This adapter is the only module that talks to pystac-client. It returns plain :class:`Scene`
records grouped by year and acquisition day; the loader reads their pixels.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pystac
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from . import providers, retry
from .errors import StacError, TransientError

logger = logging.getLogger(__name__)

__all__ = ["Scene", "SceneSource", "group_by_day", "open_source", "search_year"]


@dataclass(frozen=True)
class Scene:
    """One Sentinel-2 item selected for processing."""

    item: pystac.Item
    collection: str
    cloud_pct: float | None
    day: dt.date
    """Local solar date of the acquisition (UTC time shifted by longitude / 15 h)."""

    @property
    def id(self) -> str:
        return self.item.id

    def to_record(self) -> dict[str, Any]:
        """JSON-ready summary for ``run.json``."""
        rule = providers.reflectance_rule(self.item)
        return {
            "id": self.item.id,
            "collection": self.collection,
            "datetime": self.item.datetime.isoformat() if self.item.datetime else None,
            "day": self.day.isoformat(),
            "cloud_pct": self.cloud_pct,
            "tile": providers.tile_id(self.item),
            "processing_baseline": providers.processing_baseline(self.item),
            "reflectance_offset": rule.offset,
            "reflectance_rule": rule.source,
            "has_scl": providers.has_scl(self.item),
        }


def _solar_day(item: pystac.Item) -> dt.date:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise StacError(f"item {item.id} has no datetime; the catalog is not usable")
    if item.geometry:
        lon = shapely.geometry.shape(item.geometry).centroid.x
    elif item.bbox:
        lon = (item.bbox[0] + item.bbox[2]) / 2
    else:
        lon = 0.0
    return (when + dt.timedelta(hours=lon / 15.0)).date()


def _cloud(item: pystac.Item) -> float | None:
    value = item.properties.get("eo:cloud_cover")
    return None if value is None else float(value)


@dataclass
class SceneSource:
    """A searchable STAC source: an API (pystac-client) or a local static catalog."""

    location: str
    client: Any = None
    local_items: list[pystac.Item] | None = None
    modifier: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_local(self) -> bool:
        return self.local_items is not None

    def collections(self) -> list[str]:
        """Collection ids available in the source."""
        if self.local_items is not None:
            return sorted({i.collection_id or "" for i in self.local_items})
        try:
            return sorted(c.id for c in self.client.get_collections())
        except Exception:  # noqa: BLE001 - only used to improve an error message
            return []

    def search(
        self,
        *,
        collection: str,
        intersects: BaseGeometry,
        start: str,
        end: str,
        max_cloud_pct: float | None,
    ) -> list[pystac.Item]:
        """Items of ``collection`` intersecting ``intersects`` (WGS84) in [start, end] with cloud <= max
        (``None``: no cloud filter, e.g. for DEM tiles)."""
        if self.local_items is not None:
            return list(self._search_local(collection, intersects, start, end, max_cloud_pct))
        return self._search_api(collection, intersects, start, end, max_cloud_pct)

    def _search_local(
        self, collection: str, geom: BaseGeometry, start: str, end: str, max_cloud: float | None
    ) -> Iterator[pystac.Item]:
        t0 = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        t1 = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
        for item in self.local_items or []:
            if (item.collection_id or "") != collection:
                continue
            when = item.datetime or item.common_metadata.start_datetime
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)  # STAC datetimes are UTC
            if when is None or not (t0 <= when <= t1):
                continue
            footprint = (shapely.geometry.shape(item.geometry) if item.geometry
                         else shapely.geometry.box(*(item.bbox or [-180, -90, 180, 90])))
            if not footprint.intersects(geom):
                continue
            cloud = _cloud(item)
            if max_cloud is not None and cloud is not None and cloud > max_cloud:
                continue
            yield item

    def _search_api(
        self, collection: str, geom: BaseGeometry, start: str, end: str, max_cloud: float | None
    ) -> list[pystac.Item]:
        from pystac_client.conformance import ConformanceClasses
        from pystac_client.exceptions import APIError

        kwargs: dict[str, Any] = {
            "collections": [collection],
            "intersects": shapely.geometry.mapping(geom),
            "datetime": f"{start}/{end}",
            "limit": 100,
        }
        # Ask the server to filter clouds when it can; always filter again below.
        if max_cloud is None:
            pass
        elif self.client.conforms_to(ConformanceClasses.QUERY):
            kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
        elif self.client.conforms_to(ConformanceClasses.FILTER):
            kwargs["filter"] = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud]}
            kwargs["filter_lang"] = "cql2-json"
        try:
            search = self.client.search(**kwargs)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Could not parse bucket/account", category=UserWarning)
                items = list(search.items())  # follows `next` links page by page
        except APIError as exc:
            text = str(exc)
            _raise_if_busy(exc, self.location)
            if _looks_unreachable(text, exc):
                raise StacError(
                    f"cannot reach the STAC search of {self.location}; check your connection and retry later"
                ) from None
            raise StacError(
                f"STAC search at {self.location} failed: {text.splitlines()[0][:200] if text else 'APIError'}. "
                "Check --collection and --stac"
            ) from None
        except OSError as exc:
            raise StacError(f"cannot reach STAC API at {self.location} ({exc.__class__.__name__}); check the URL and your connection") from None
        return [i for i in items if max_cloud is None or (c := _cloud(i)) is None or c <= max_cloud]


def _raise_if_busy(exc: BaseException, location: str) -> None:
    """Raise :class:`TransientError` for an answer that means "try again later" (HTTP 429/5xx)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and (status == 429 or 500 <= status < 600):
        pol = retry.policy()
        why = "is asking clients to slow down (HTTP 429)" if status == 429 else \
            f"is temporarily unavailable (HTTP {status})"
        raise TransientError(
            f"the STAC API at {location} {why} after {pol.retries} retries; try again later"
        ) from None


def _api_io(timeout_s: float | None) -> Any:
    """pystac-client I/O with the retry policy: 429 and 5xx answers, resets and read timeouts are
    retried with exponential backoff (also POST searches); a refused connection once. Retry-After is
    not obeyed, to keep the wait bounded."""
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    pol = retry.policy()
    rules = Retry(
        # one quick retry of a refused/failed connection (a wrong URL should fail fast), the full
        # policy for resets, read timeouts and 429/5xx answers
        total=pol.retries, connect=min(pol.retries, 1), read=pol.retries, status=pol.retries,
        backoff_factor=pol.delay_s / 2, backoff_max=pol.max_delay_s,  # waits: delay, 2 delay, 4 delay ...
        status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
        raise_on_status=False, respect_retry_after_header=False,
    )
    return StacApiIO(max_retries=rules, timeout=timeout_s if timeout_s is not None else pol.timeout_s)


def _looks_unreachable(text: str, exc: BaseException | None = None) -> bool:
    """pystac-client wraps connection failures in APIError: recognise them by the wrapped requests
    error, or failing that by the message."""
    import requests

    if exc is not None and getattr(exc, "status_code", None) is None and isinstance(
        exc.__context__, (requests.ConnectionError, requests.Timeout)
    ):
        return True
    keys = ("NewConnectionError", "Max retries exceeded", "Connection refused", "NameResolutionError",
            "timed out", "ConnectionError", "RemoteDisconnected", "Connection aborted", "502 Bad Gateway",
            "503 Service", "504 Gateway")
    return any(k in text for k in keys)


def _is_url(text: str) -> bool:
    return urlparse(text).scheme in ("http", "https")


def _load_local(path: Path) -> list[pystac.Item]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StacError(f"--stac {path}: not a readable STAC JSON file ({exc.__class__.__name__}); give a catalog.json, collection.json or an ItemCollection") from None
    kind = data.get("type") if isinstance(data, dict) else None
    with warnings.catch_warnings():
        # pystac's storage-extension migration warns on Earth Search hrefs; it concerns metadata only
        warnings.filterwarnings("ignore", message="Could not parse bucket/account", category=UserWarning)
        return _parse_local(data, kind, path)


def _parse_local(data: Any, kind: Any, path: Path) -> list[pystac.Item]:
    try:
        if kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(data, preserve_dict=False))
            for item in items:
                for asset in item.assets.values():
                    if not _is_url(asset.href) and not os.path.isabs(asset.href) and "://" not in asset.href:
                        asset.href = str((path.parent / asset.href).resolve())
            return items
        if kind == "Feature":
            return [pystac.Item.from_file(str(path))]
        if kind in ("Catalog", "Collection"):
            cat = pystac.read_file(str(path))
            items = list(cat.get_items(recursive=True))  # type: ignore[union-attr,attr-defined]
            for item in items:
                item.make_asset_hrefs_absolute()
            return items
    except Exception as exc:  # noqa: BLE001 - pystac raises many types for malformed catalogs
        raise StacError(f"--stac {path}: malformed STAC document ({exc}); check the file") from None
    raise StacError(f"--stac {path}: not a STAC Catalog, Collection, Item or ItemCollection (type={kind!r})")


def _pc_modifier() -> Any:
    import planetary_computer

    return planetary_computer.sign_inplace


def open_source(location: str, *, timeout_s: float | None = None) -> SceneSource:
    """Open a STAC API URL or a local STAC JSON file.

    Planetary Computer URLs get asset-URL signing (``planetary_computer.sign_inplace``).
    Requests are retried by :mod:`gli_toolbox.retry`'s policy (HTTP 429/5xx, resets, timeouts).

    Raises
    ------
    StacError
        When the URL cannot be reached, is not a STAC API, or the file is not STAC.
    """
    if not _is_url(location):
        path = Path(location).expanduser()
        if not path.exists():
            raise StacError(f"--stac {location}: no such file, and not an http(s) URL; give a STAC API URL or a catalog.json")
        if path.is_dir():
            path = path / "catalog.json"
            if not path.exists():
                raise StacError(f"--stac {location}: folder has no catalog.json; point --stac at the catalog file")
        items = _load_local(path)
        return SceneSource(location=str(path), local_items=items)

    import pystac_client
    import pystac_client.warnings
    import requests
    from pystac_client.exceptions import APIError

    modifier = _pc_modifier() if "planetarycomputer" in urlparse(location).netloc else None
    try:
        with warnings.catch_warnings():
            # A static catalog served over HTTP makes pystac-client warn (NoConformsTo); we raise below.
            warnings.simplefilter("ignore", pystac_client.warnings.NoConformsTo)
            client = pystac_client.Client.open(location, modifier=modifier, stac_io=_api_io(timeout_s))
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise StacError(f"cannot reach STAC API at {location} ({exc.__class__.__name__}); check the URL and your connection, or use a local catalog with --stac PATH") from None
    except APIError as exc:
        text = str(exc)
        _raise_if_busy(exc, location)
        if _looks_unreachable(text, exc):
            raise StacError(f"cannot reach STAC API at {location}; check the URL and your connection, or use a local catalog with --stac PATH") from None
        raise StacError(f"{location} did not answer as a STAC API ({text.splitlines()[0][:120] if text else 'APIError'}); check the URL, e.g. https://earth-search.aws.element84.com/v1") from None
    except (json.JSONDecodeError, pystac.STACError, KeyError, ValueError, TypeError) as exc:
        raise StacError(f"{location} did not answer as a STAC API ({exc.__class__.__name__}: {str(exc)[:120]}); check the URL, e.g. https://earth-search.aws.element84.com/v1") from None
    except requests.exceptions.RequestException as exc:
        raise StacError(f"cannot reach STAC API at {location} ({exc.__class__.__name__}); check the URL and your connection") from None
    from pystac_client.conformance import ConformanceClasses

    if not client.conforms_to(ConformanceClasses.ITEM_SEARCH):
        raise StacError(f"{location} is a STAC catalog without item search; give the URL of a STAC API (with /search)")
    return SceneSource(location=location, client=client, modifier=modifier)


def search_year(
    source: SceneSource,
    *,
    collection: str,
    aoi_wgs84: BaseGeometry,
    start: str,
    end: str,
    max_cloud_pct: float,
) -> tuple[list[Scene], list[str]]:
    """Scenes for one season window; reprocessed duplicates are dropped.

    Returns the scenes sorted by time and the ids of dropped items (reprocessed duplicates, and
    items without the green and NIR bands, marked so).
    """
    items = source.search(collection=collection, intersects=aoi_wgs84, start=start, end=end, max_cloud_pct=max_cloud_pct)
    if not items:
        available = source.collections()
        if available and collection not in available:
            raise StacError(
                f"collection {collection!r} is not in {source.location}; available: {', '.join(available[:12])}"
                + (" ..." if len(available) > 12 else "") + ". Fix --collection"
            )
    usable = [i for i in items if providers.asset_key(i, "green") and providers.asset_key(i, "nir")]
    lacking = sorted({i.id for i in items} - {i.id for i in usable})
    if lacking:
        logger.warning("skipped %d item(s) without green/NIR assets: %s", len(lacking), ", ".join(lacking))
    kept, dropped = providers.dedupe_reprocessed(usable)
    dropped = dropped + [f"{i} (no green/NIR asset)" for i in lacking]
    if dropped:
        logger.info("dropped %d item(s): %s", len(dropped), ", ".join(dropped))
    scenes = [Scene(item=i, collection=i.collection_id or collection, cloud_pct=_cloud(i), day=_solar_day(i)) for i in kept]
    scenes.sort(key=lambda s: (s.item.datetime or dt.datetime.min.replace(tzinfo=dt.timezone.utc), s.id))
    return scenes, dropped


def group_by_day(scenes: Iterable[Scene]) -> dict[dt.date, list[Scene]]:
    """Scenes of the same solar day (adjacent MGRS tiles of one pass) in one group, by date."""
    out: dict[dt.date, list[Scene]] = defaultdict(list)
    for s in scenes:
        out[s.day].append(s)
    return dict(sorted(out.items()))
