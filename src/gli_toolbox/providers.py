"""How each STAC provider lays out Sentinel-2 L2A items, and how to turn their DNs into reflectance.

Four layouts are known (see ``docs/providers.md`` for the recorded evidence):

===================================  ==========================  ==========================================
provider / collection                asset keys                  reflectance rule
===================================  ==========================  ==========================================
Earth Search v1 ``sentinel-2-c1-l2a`` green nir swir16 scl       ``raster:bands`` scale 1e-4, offset -0.1
Earth Search v1 ``sentinel-2-l2a``   green nir swir16 scl        offset 0 if ``earthsearch:boa_offset_applied``,
                                                                 else -0.1 from baseline 04.00 (checked on data)
Earth Search v0 ``sentinel-s2-l2a-cogs`` B03 B08 B11 SCL         as above with ``sentinel:*`` properties
Planetary Computer ``sentinel-2-l2a`` B03 B08 B11 SCL            no metadata: -1000 DN from baseline 04.00
CDSE ``sentinel-2-l2a``              B03_10m B08_10m B11_20m     ``raster:scale`` / ``raster:offset`` on the asset
                                     SCL_20m
===================================  ==========================  ==========================================

Everything here works on ``pystac.Item`` metadata only; nothing is read from the network.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

import pystac

logger = logging.getLogger(__name__)

__all__ = [
    "BANDS",
    "BandName",
    "ReflectanceRule",
    "acquisition_key",
    "asset_key",
    "dedupe_reprocessed",
    "has_scl",
    "processing_baseline",
    "reflectance_rule",
    "sun_angles",
    "tile_id",
]

BandName = Literal["green", "nir", "swir16", "scl", "red", "blue"]
BANDS: tuple[BandName, ...] = ("green", "nir", "swir16", "scl", "red", "blue")

#: Asset keys per band, in order of preference, across the known providers.
_ASSET_KEYS: dict[str, tuple[str, ...]] = {
    "blue": ("blue", "B02", "B02_10m"),
    "green": ("green", "B03", "B03_10m"),
    "red": ("red", "B04", "B04_10m"),
    "nir": ("nir", "B08", "B08_10m"),
    "swir16": ("swir16", "B11", "B11_20m"),
    "scl": ("scl", "SCL", "SCL_20m"),
    # extra bands for s2cloudless on scenes without a scene classification
    "coastal": ("coastal", "B01", "B01_60m"),
    "rededge1": ("rededge1", "B05", "B05_20m"),
    "nir08": ("nir08", "B8A", "B8A_20m"),
    "nir09": ("nir09", "B09", "B09_60m"),
    "cirrus": ("cirrus", "B10"),
    "swir22": ("swir22", "B12", "B12_20m"),
}

#: Band name -> Sentinel-2 band id, for the s2cloudless model inputs.
S2_BAND_IDS: dict[str, str] = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "nir": "B08",
    "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir16": "B11", "swir22": "B12",
}

#: Nominal Sentinel-2 L2A quantification: reflectance = DN / 10000 (+ offset).
QUANTIFICATION = 1e-4
#: BOA_ADD_OFFSET of processing baseline 04.00 and later, in reflectance units (-1000 DN).
BASELINE_04_OFFSET = -0.1


@dataclass(frozen=True)
class ReflectanceRule:
    """Reflectance = DN * ``scale`` + ``offset``; DN == ``nodata`` is missing.

    ``verify_offset`` is set where provider metadata are known to be unreliable (Earth Search v1
    ``sentinel-2-l2a`` with ``boa_offset_applied: false`` on baseline >= 04.00 scenes, Element84/
    earth-search#66, #71): the loader then checks the pixels and drops the offset if a large share of
    valid DNs is below 1000, which is impossible when the offset is still in the data.
    """

    scale: float = QUANTIFICATION
    offset: float = 0.0
    nodata: int = 0
    verify_offset: bool = False
    source: str = ""

    def key(self) -> tuple[float, float, int, bool]:
        """Hashable identity used to group items that convert alike."""
        return (self.scale, self.offset, self.nodata, self.verify_offset)


def asset_key(item: pystac.Item, band: str) -> str | None:
    """Asset key holding ``band`` ("green", "nir", "swir16", "scl", "red", "blue", "coastal",
    "rededge1", "nir08", "nir09", "cirrus", "swir22") in ``item``, or None."""
    for key in _ASSET_KEYS[band]:
        if key in item.assets:
            return key
    return None


def has_scl(item: pystac.Item) -> bool:
    """True if the item has a scene classification (SCL) asset."""
    return asset_key(item, "scl") is not None


_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")


def processing_baseline(item: pystac.Item) -> float | None:
    """Processing baseline as a number (``"04.00"`` -> 4.0), from properties or the product name."""
    p = item.properties
    for key in ("s2:processing_baseline", "sentinel:processing_baseline", "processing:version"):
        value = p.get(key)
        if value not in (None, ""):
            try:
                return float(str(value))
            except ValueError:
                continue
    for text in (p.get("s2:product_uri", ""), item.id):
        m = _BASELINE_IN_NAME.search(str(text))
        if m:
            return float(f"{m.group(1)}.{m.group(2)}")
    return None


def _raster_band(asset: pystac.Asset) -> tuple[float | None, float | None, int | None]:
    """(scale, offset, nodata) from ``raster:bands[0]`` or STAC 1.1 ``raster:scale``/``raster:offset``."""
    d = asset.extra_fields
    bands = d.get("raster:bands")
    if bands:
        b = bands[0]
        return b.get("scale"), b.get("offset"), b.get("nodata")
    return d.get("raster:scale"), d.get("raster:offset"), d.get("nodata", d.get("raster:nodata"))


def reflectance_rule(item: pystac.Item, band: str = "green") -> ReflectanceRule:
    """How to turn the DNs of ``band`` in ``item`` into surface reflectance.

    Parameters
    ----------
    item
        A Sentinel-2 L2A (or L1C) STAC item of any supported provider.
    band
        Band name, e.g. ``"green"``.

    Returns
    -------
    ReflectanceRule
    """
    key = asset_key(item, band)
    if key is None:
        raise KeyError(f"item {item.id} has no {band} asset")
    scale, offset, nodata = _raster_band(item.assets[key])
    nodata_i = int(nodata) if nodata is not None else 0
    baseline = processing_baseline(item)
    p = item.properties
    flag_key = next((k for k in ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied") if k in p), None)

    if flag_key is not None:
        # Earth Search (v1 sentinel-2-l2a, v0 cogs): the flag says the COG pixels were already shifted back.
        if p[flag_key]:
            return ReflectanceRule(QUANTIFICATION, 0.0, nodata_i, False, f"{flag_key}=true")
        if baseline is not None and baseline >= 4.0:
            return ReflectanceRule(QUANTIFICATION, BASELINE_04_OFFSET, nodata_i, True, f"{flag_key}=false, baseline {baseline:05.2f}")
        return ReflectanceRule(QUANTIFICATION, 0.0, nodata_i, False, f"baseline {baseline}")
    if scale is not None or offset is not None:
        return ReflectanceRule(
            float(scale if scale is not None else QUANTIFICATION),
            float(offset or 0.0),
            nodata_i,
            False,
            "raster metadata",
        )
    # No metadata at all (Planetary Computer): the baseline decides.
    if baseline is not None and baseline >= 4.0:
        return ReflectanceRule(QUANTIFICATION, BASELINE_04_OFFSET, nodata_i, False, f"baseline {baseline:05.2f} >= 04.00")
    if baseline is None:
        logger.warning("%s: no processing baseline and no scale/offset metadata; assuming DN/10000", item.id)
    return ReflectanceRule(QUANTIFICATION, 0.0, nodata_i, False, f"baseline {baseline}")


_TILE_PATTERNS = (re.compile(r"_T(\d{2}[C-X][A-Z]{2})[_.]"), re.compile(r"_(\d{2}[C-X][A-Z]{2})_"))


def tile_id(item: pystac.Item) -> str:
    """MGRS tile of the item, e.g. ``"32TMT"`` (from ``grid:code``, ``mgrs:*``, ``s2:mgrs_tile`` or the id)."""
    p = item.properties
    if isinstance(p.get("grid:code"), str) and p["grid:code"].startswith("MGRS-"):
        return p["grid:code"][5:]
    if "mgrs:utm_zone" in p:
        return f"{int(p['mgrs:utm_zone']):02d}{p.get('mgrs:latitude_band', '')}{p.get('mgrs:grid_square', '')}"
    if "s2:mgrs_tile" in p:
        return str(p["s2:mgrs_tile"])
    if "sentinel:utm_zone" in p:
        return f"{int(p['sentinel:utm_zone']):02d}{p.get('sentinel:latitude_band', '')}{p.get('sentinel:grid_square', '')}"
    for pattern in _TILE_PATTERNS:
        m = pattern.search(item.id + "_")
        if m:
            return m.group(1)
    return item.id


def acquisition_key(item: pystac.Item) -> tuple[str, str, str]:
    """(platform, tile, UTC date): equal for the reprocessed versions of one acquisition."""
    dt = item.datetime or item.common_metadata.start_datetime
    date = dt.strftime("%Y-%m-%d") if dt else ""
    platform = str(item.properties.get("platform", item.id[:3])).lower()
    return platform, tile_id(item), date


def _freshness(item: pystac.Item) -> tuple[float, str, str]:
    p = item.properties
    produced = str(p.get("s2:generation_time") or p.get("updated") or p.get("created") or "")
    return (processing_baseline(item) or 0.0, produced, item.id)


def dedupe_reprocessed(items: list[pystac.Item]) -> tuple[list[pystac.Item], list[str]]:
    """Keep one item per acquisition: the newest processing (highest baseline, then latest generation).

    Earth Search can return an original (``_0_``) and a reprocessed (``_1_``) item of the same tile and
    date in one search; using both would count one observation twice.

    Returns the kept items (in input order) and the ids that were dropped.
    """
    best: dict[tuple[str, str, str], pystac.Item] = {}
    for item in items:
        k = acquisition_key(item)
        if k not in best or _freshness(item) > _freshness(best[k]):
            best[k] = item
    keep = {id(i) for i in best.values()}
    kept = [i for i in items if id(i) in keep]
    dropped = [i.id for i in items if id(i) not in keep]
    return kept, dropped


def sun_angles(item: pystac.Item, *, compute: bool = True) -> tuple[float, float] | None:
    """(azimuth, elevation) of the sun in degrees for the item.

    From ``view:sun_azimuth`` / ``view:sun_elevation`` (Earth Search, CDSE), or
    ``s2:mean_solar_azimuth`` / ``s2:mean_solar_zenith`` (Planetary Computer); otherwise computed
    from the acquisition time and footprint centre (``compute=True``) or None.
    """
    p = item.properties
    if "view:sun_azimuth" in p and "view:sun_elevation" in p:
        return float(p["view:sun_azimuth"]), float(p["view:sun_elevation"])
    if "s2:mean_solar_azimuth" in p and "s2:mean_solar_zenith" in p:
        return float(p["s2:mean_solar_azimuth"]), 90.0 - float(p["s2:mean_solar_zenith"])
    if not compute or item.datetime is None:
        return None
    import shapely.geometry

    from .sun import solar_position

    c = shapely.geometry.shape(item.geometry).centroid if item.geometry else None
    if c is not None:
        lon, lat = c.x, c.y
    elif item.bbox:
        lon, lat = (item.bbox[0] + item.bbox[2]) / 2, (item.bbox[1] + item.bbox[3]) / 2
    else:
        return None
    return solar_position(item.datetime, lon, lat)
