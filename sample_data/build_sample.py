#!/usr/bin/env python3
"""Build the bundled offline sample data of gli-toolbox (``sample_data/``).

What it makes (all from real Sentinel-2 pixels, see ``README.md`` next to this script):

* a self-contained static STAC 1.0.0 catalog ``catalog.json`` with two collections laid out as
  ``<collection-id>/collection.json`` and ``<collection-id>/<item-id>/<item-id>.json``; the band files
  are Cloud-Optimized GeoTIFFs (deflate, nearest-neighbour overviews) next to each item JSON;

  - ``sentinel-2-c1-l2a`` (mimics Earth Search v1 ``sentinel-2-c1-l2a``): two Lago del Barbellino
    scenes (2017-07-03, 2019-07-23, from sen2r) and one Western Sahara desert crop (2020-02-19,
    from rio-tiler-pds). Asset keys ``blue green red nir swir16 scl``; reflectance assets declare
    ``scale 0.0001, offset -0.1`` like every Collection-1 item, so the source DNs (processing
    baseline < 04.00, reflectance = DN * 0.0001) are written as ``DN + 1000`` (source nodata -> 0).
    Reading them back with the declared scale/offset gives exactly the source reflectance.
  - ``sentinel-2-l1c`` (mimics Earth Search v1 ``sentinel-2-l1c``): one Havel L1C crop (2017-02-16,
    from eo-box), asset keys ``blue green red nir swir16`` plus the other s2cloudless inputs
    ``coastal rededge1 nir08 nir09 cirrus swir22`` at their native 10/20/60 m, DNs unchanged,
    scale 0.0001 offset 0; ``view:sun_*`` computed with NOAA's solar position equations.

* the AOI files ``barbellino.geojson`` (verbatim copy), ``havel.geojson`` and ``desert.geojson``;
* ``LICENSES/`` with the upstream licence files.

Finally it runs a self-check (STAC round trip with pystac, asset files exist, COG layout, every
reflectance band read back with the declared scale/offset compared with the source reflectance, and
the NOAA sun position checked against the real ESA angles of the desert item) and prints a summary
table. It exits non-zero if any check fails.

Usage (from the repository root)::

    .venv/bin/python sample_data/build_sample.py            # sources in <repo>/../shared/data
    .venv/bin/python sample_data/build_sample.py --shared /path/to/shared/data
    .venv/bin/python sample_data/build_sample.py --check-only   # only re-run the self-check

The script is re-runnable: it deletes and rewrites only what it generates (``catalog.json``, the two
collection folders, the three AOI files and ``LICENSES/``); ``README.md`` and this script are kept.
It needs numpy, rasterio (GDAL >= 3.1 for the COG driver), shapely >= 2 and pystac; no network.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pystac.validation
import rasterio
import shapely
import shapely.geometry as sg
from rasterio.crs import CRS
from rasterio.features import shapes
from rasterio.transform import Affine
from rasterio.warp import transform_geom
from rasterio.windows import Window
from shapely.ops import unary_union

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_SHARED = (REPO / ".." / "shared" / "data").resolve()

BARBELLINO_DIR = "s2_barbellino_alps_2017_2019"
HAVEL_DIR = "s2_l1c_havel_T33UUU_20170216"
DESERT_DIR = "s2_l2a_cog_29RKH_20200219"

C1_L2A = "sentinel-2-c1-l2a"
L1C = "sentinel-2-l1c"

#: Collection-1 / baseline >= 04.00 radiometric offset in DN (reflectance = DN * 1e-4 - 0.1).
BOA_ADD_OFFSET_DN = 1000
SCALE = 0.0001
C1_OFFSET = -0.1

STAC_VERSION = "1.0.0"
COG_MEDIA_TYPE = pystac.MediaType.COG  # "image/tiff; application=geotiff; profile=cloud-optimized"
SENTINEL_LEGAL_NOTICE = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"

#: Band metadata exactly as in the Earth Search v1 ``sentinel-2-c1-l2a`` item assets
#: (key -> band id, centre wavelength and FWHM in micrometres, title stem).
BANDS: dict[str, tuple[str, float, float, str]] = {
    "blue": ("B02", 0.49, 0.098, "Blue"),
    "green": ("B03", 0.56, 0.045, "Green"),
    "red": ("B04", 0.665, 0.038, "Red"),
    "nir": ("B08", 0.842, 0.145, "NIR 1"),
    "swir16": ("B11", 1.61, 0.143, "SWIR 1.6\u03bcm"),
}

#: The further bands of the Havel L1C item: with B02, B04, B08 and B11 above they are the ten
#: inputs of the s2cloudless cloud detector. Keys, band ids, wavelengths, FWHM and title stems as
#: in the Earth Search v1 ``sentinel-2-l1c`` item assets (recorded item S2B_20EPT_20250731_0_L1C in
#: shared/data/stac_fixtures/earth-search-v1/search/search_filter_cloud40_page1.json).
L1C_EXTRA_BANDS: dict[str, tuple[str, float, float, str]] = {
    "coastal": ("B01", 0.443, 0.027, "Coastal"),
    "rededge1": ("B05", 0.704, 0.019, "Red Edge 1"),
    "nir08": ("B8A", 0.865, 0.033, "NIR 2"),
    "nir09": ("B09", 0.945, 0.026, "NIR 3"),
    "cirrus": ("B10", 1.3735, 0.075, "Cirrus"),
    "swir22": ("B12", 2.19, 0.242, "SWIR 2.2\u03bcm"),
}
ALL_BANDS = {**BANDS, **L1C_EXTRA_BANDS}
#: ``eo:bands`` common names that differ from the asset key (Earth Search: rededge1 -> "rededge").
COMMON_NAMES = {"rededge1": "rededge"}

#: Band order of sen2r ``*_BOA_10.tif`` (11 bands; 1-based band index = position + 1).
SEN2R_BOA_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12"]

#: Scene classification classes counted as cloud for ``eo:cloud_cover`` (ESA: 8 cloud medium
#: probability, 9 cloud high probability, 10 thin cirrus).
SCL_CLOUD = (8, 9, 10)

STAC_EXTENSIONS_L2A = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json",
]
VIEW_EXT = "https://stac-extensions.github.io/view/v1.0.0/schema.json"

#: AOIs as WGS84 lon/lat boxes (min lon, min lat, max lon, max lat), chosen inside the data crops.
HAVEL_AOI = (12.630, 52.485, 12.708, 52.513)  # ~5.3 x 3.1 km over the Havel lake chain
DESERT_AOI = (-11.450, 24.778, -11.400, 24.823)  # ~5.0 x 5.0 km in the centre of the desert crop


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


@dataclass
class Band:
    """One output raster: its asset key, pixels (already converted) and georeferencing."""

    key: str
    data: np.ndarray
    transform: Affine
    crs: CRS
    nodata: int
    source: str  # human-readable provenance (file and band)
    src_dn: np.ndarray | None = None  # source DNs (for the self-check)
    src_nodata: int | None = None


@dataclass
class ItemSpec:
    collection: str
    item_id: str
    datetime: dt.datetime
    tile: str  # e.g. "32TNS"
    level: str  # "L2A" or "L1C"
    bands: list[Band]
    properties: dict[str, Any] = field(default_factory=dict)
    sun: tuple[float, float] | None = None  # (azimuth, elevation) if known from real metadata


def multihash_sha256(path: Path) -> str:
    """``file:checksum`` as in Earth Search: multihash sha2-256 (0x12, 0x20 + digest) in hex."""
    return "1220" + hashlib.sha256(path.read_bytes()).hexdigest()


def write_cog(path: Path, band: Band, description: str) -> None:
    """Write one band as a deflate-compressed COG; overviews (if any) by nearest neighbour so
    that even the overview pixels are real source values."""
    arr = band.data
    profile = {
        "driver": "COG",
        "dtype": arr.dtype.name,
        "count": 1,
        "width": arr.shape[1],
        "height": arr.shape[0],
        "crs": band.crs,
        "transform": band.transform,
        "nodata": band.nodata,
        "compress": "DEFLATE",
        "level": 9,
        "predictor": "STANDARD",
        "blocksize": 512,
        "overview_resampling": "NEAREST",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr, 1)
        dst.set_band_description(1, description)


def utm_epsg(crs: CRS) -> int:
    epsg = crs.to_epsg()
    if epsg is None or not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        raise ValueError(f"expected a WGS 84 / UTM CRS, got {crs}")
    return epsg


def mgrs_tile(epsg: int, easting: float, northing: float, lat: float) -> str:
    """MGRS 100 km grid square (= Sentinel-2 tile name) of a UTM point, e.g. ``32TNS``.

    Standard MGRS lettering (AA scheme): column letters cycle through three sets of eight
    (A-H, J-R, S-Z) with the zone number; row letters A-V (no I, O) repeat every 2000 km and
    are shifted by 5 letters in even zones. Sentinel-2 tiles are these squares enlarged by
    9.8 km to the south and east, so data inside a square always lie in that tile.
    """
    zone = epsg % 100
    if not -80 <= lat <= 84:
        raise ValueError("MGRS latitude bands cover 80S-84N")
    bands = "CDEFGHJKLMNPQRSTUVWX"
    band = bands[min(int((lat + 80) // 8), len(bands) - 1)]
    col_sets = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
    col = col_sets[(zone - 1) % 3][int(easting // 100_000) - 1]
    rows = "ABCDEFGHJKLMNPQRSTUV"
    row = rows[(int(northing // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone}{band}{col}{row}"


def footprint(band: Band) -> sg.Polygon | sg.MultiPolygon:
    """Footprint of the valid pixels of ``band`` in WGS84 (edges densified to 500 m)."""
    valid = (band.data != band.nodata).astype(np.uint8)
    polys = [sg.shape(g) for g, v in shapes(valid, mask=valid.astype(bool), transform=band.transform) if v == 1]
    if not polys:
        raise ValueError(f"{band.source}: no valid pixels")
    geom = unary_union(polys).simplify(0)
    geom = geom.segmentize(500.0)
    wgs = sg.shape(transform_geom(band.crs, "EPSG:4326", sg.mapping(geom)))
    wgs = shapely.transform(wgs, lambda xy: np.round(xy, 7))
    if isinstance(wgs, sg.Polygon):  # RFC 7946: exterior rings counter-clockwise
        return sg.polygon.orient(wgs, 1.0)
    return sg.MultiPolygon([sg.polygon.orient(p, 1.0) for p in wgs.geoms])


def cloud_cover_from_scl(scl: np.ndarray) -> float:
    valid = scl != 0
    return round(float(np.isin(scl[valid], SCL_CLOUD).mean() * 100.0), 4)


def to_c1_dn(src: np.ndarray, src_nodata: int, what: str) -> np.ndarray:
    """Baseline < 04.00 L2A DN -> Collection-1 style DN: ``DN + 1000``; source nodata -> 0."""
    valid = src != src_nodata
    if src[valid].size and int(src[valid].max()) > 65535 - BOA_ADD_OFFSET_DN - 1:
        raise ValueError(f"{what}: DN {int(src[valid].max())} + {BOA_ADD_OFFSET_DN} would overflow uint16")
    out = np.zeros(src.shape, dtype=np.uint16)
    out[valid] = src[valid].astype(np.uint32) + BOA_ADD_OFFSET_DN
    return out


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------


def barbellino_items(shared: Path) -> list[ItemSpec]:
    """Two sen2r L2A scenes over Lago del Barbellino (whole 24 x 42 px grid, EPSG:32632).

    Acquisition times are the datatake sensing start times of the real products that sen2r's
    example data were made from (S2A_MSIL1C_20170703T101021_N0205_R022_T32TN[RS] and
    S2A_MSIL2A_20190723T101031_N0213_R022_T32TN[RS]); the exact tile sensing time is not in the
    sen2r outputs, so it is approximated by that start time (same day, a few minutes early).
    """
    d = shared / BARBELLINO_DIR
    scenes = [
        ("20170703", dt.datetime(2017, 7, 3, 10, 10, 21, tzinfo=dt.timezone.utc), "02.05",
         "S2A_MSIL2A_20170703T101021_N0205_R022_T32TNS_20170703T101041 (L2A made by sen2r/Sen2Cor from the N0205 L1C)"),
        ("20190723", dt.datetime(2019, 7, 23, 10, 10, 31, tzinfo=dt.timezone.utc), "02.13",
         "S2A_MSIL2A_20190723T101031_N0213_R022_T32TNS_20190723T125722"),
    ]
    items = []
    for date, when, src_baseline, product in scenes:
        boa = d / f"S2A2A_{date}_022_Barbellino_BOA_10.tif"
        scl_path = d / f"S2A2A_{date}_022_Barbellino_SCL_10.tif"
        bands: list[Band] = []
        with rasterio.open(boa) as src:
            if src.count != 11 or src.nodata != 65535:
                raise ValueError(f"{boa}: expected 11 bands with nodata 65535")
            for key, (bid, *_rest) in BANDS.items():
                idx = SEN2R_BOA_ORDER.index(bid) + 1
                dn = src.read(idx)
                bands.append(Band(key, to_c1_dn(dn, 65535, f"{boa.name} band {idx}"), src.transform, src.crs, 0,
                                  f"{boa.name} band {idx} ({bid})", dn, 65535))
        with rasterio.open(scl_path) as src:
            scl = src.read(1)
            if src.nodata not in (0, None):
                raise ValueError(f"{scl_path}: unexpected SCL nodata {src.nodata}")
            bands.append(Band("scl", scl, src.transform, src.crs, 0, f"{scl_path.name} (native {src.res[0]:g} m)"))
        tile = _tile_of(bands[1])
        items.append(ItemSpec(
            C1_L2A, f"S2A_T{tile}_{when:%Y%m%dT%H%M%S}_L2A", when, tile, "L2A", bands,
            properties={
                "description": (
                    f"Lago del Barbellino (Bergamo Alps), sen2r example output {boa.name} + {scl_path.name}; "
                    f"source product {product}, processing baseline {src_baseline} (no BOA offset in the DNs); "
                    "written here as DN + 1000 to follow the Collection-1 convention (offset -0.1). "
                    "datetime = datatake sensing start (tile sensing time not available). "
                    "swir16 is B11 resampled to 10 m by sen2r."
                ),
            },
        ))
    return items


def desert_item(shared: Path) -> ItemSpec:
    """150 x 150 px (100 m) crop in the middle of the rio-tiler-pds 29RKH tile; SCL 75 x 75 (200 m)."""
    d = shared / DESERT_DIR
    meta = json.loads((d / "S2A_29RKH_20200219_0_L2A.json").read_text())
    p = meta["properties"]
    if p.get("earthsearch:boa_offset_applied") or float(p["s2:processing_baseline"]) >= 4.0:
        raise ValueError("desert source: expected a baseline < 04.00 scene without BOA offset")
    # window in the 100 m grid (1098 px) and the 200 m grid (549 px); 474 and 237 keep them aligned
    w10 = Window(474, 474, 150, 150)
    w20 = Window(237, 237, 75, 75)
    files = {"blue": ("B02.tif", w10), "green": ("B03.tif", w10), "red": ("B04.tif", w10),
             "nir": ("B08.tif", w10), "swir16": ("B11.tif", w20)}
    bands: list[Band] = []
    for key, (name, win) in files.items():
        with rasterio.open(d / name) as src:
            dn = src.read(1, window=win)
            nod = int(src.nodata) if src.nodata is not None else 0
            bands.append(Band(key, to_c1_dn(dn, nod, name), src.window_transform(win), src.crs, 0,
                              f"{name} window col/row {win.col_off},{win.row_off} size {win.width}x{win.height} ({src.res[0]:g} m)",
                              dn, nod))
    with rasterio.open(d / "SCL.tif") as src:
        bands.append(Band("scl", src.read(1, window=w20), src.window_transform(w20), src.crs, 0,
                          f"SCL.tif window col/row 237,237 size 75x75 ({src.res[0]:g} m)"))
    when = dt.datetime.fromisoformat(p["datetime"].replace("Z", "+00:00"))
    ds_start = p["s2:datastrip_id"].split("_S")[1][:15]  # "..._S20200219T113105_N02.14"
    tile = f'{p["mgrs:utm_zone"]}{p["mgrs:latitude_band"]}{p["mgrs:grid_square"]}'
    if _tile_of(bands[1]) != tile:
        raise ValueError(f"MGRS computation disagrees with the source item: {_tile_of(bands[1])} != {tile}")
    return ItemSpec(
        C1_L2A, f"S2A_T{tile}_{ds_start}_L2A", when, tile, "L2A", bands,
        properties={
            "description": (
                "Western Sahara desert (no water), 15 x 15 km crop of the rio-tiler-pds test COGs "
                f"(full tile downsampled to 100 m / 200 m) of {p['s2:product_uri']}, processing baseline "
                f"{p['s2:processing_baseline']} (no BOA offset in the DNs); written here as DN + 1000. "
                f"Tile-level eo:cloud_cover of the source item: {p['eo:cloud_cover']}."
            ),
        },
        sun=(p["view:sun_azimuth"], p["view:sun_elevation"]),
    )


#: Havel crop in EPSG:32633: x 337500-345360, y 5816000-5822040 (786 x 604 px at 10 m,
#: 393 x 302 px at 20 m); the source scene is 330000-345360 x 5814360-5822040.
HAVEL_WIN10 = Window(750, 0, 786, 604)
HAVEL_WIN20 = Window(375, 0, 393, 302)
#: The same crop on the 60 m grid (B01, B09, B10): x 337500-345360 is 131 px, but 6040 m is not a
#: multiple of 60 m, so 101 rows reach 20 m further south (y 5815980-5822040).
HAVEL_WIN60 = Window(125, 0, 131, 101)
HAVEL_WINDOWS = {10.0: HAVEL_WIN10, 20.0: HAVEL_WIN20, 60.0: HAVEL_WIN60}
#: Crude cloud test for the L1C item (no SCL): TOA blue (B02) reflectance above 0.2.
HAVEL_CLOUD_B02_DN = 2000


def havel_item(shared: Path) -> ItemSpec:
    d = shared / HAVEL_DIR / "IMG_DATA"
    stem = "T33UUU_20170216T102101"
    bands: list[Band] = []
    zero_notes: list[str] = []
    for key, (bid, *_rest) in ALL_BANDS.items():
        path = d / f"{stem}_{bid}.jp2"
        with rasterio.open(path) as src:
            win = HAVEL_WINDOWS[src.res[0]]  # native resolution, no resampling
            dn = src.read(1, window=win)
            zeros = int((dn == 0).sum())
            if zeros and key in BANDS:
                raise ValueError(f"{path.name}: DN 0 inside the crop would collide with nodata 0")
            if zeros:  # B8A has one: a JPEG2000 ringing artifact next to a very bright pixel
                zero_notes.append(f"{bid} has {zeros} pixel(s) with DN 0 in the source, read as nodata like in any L1C product")
            bands.append(Band(key, dn.astype(np.uint16), src.window_transform(win), src.crs, 0,
                              f"{path.name} window col/row {win.col_off},{win.row_off} size {win.width}x{win.height}",
                              dn, 0))
    blue = bands[0].data
    cloud = round(float((blue > HAVEL_CLOUD_B02_DN).mean() * 100.0), 2)
    when = dt.datetime(2017, 2, 16, 10, 21, 1, tzinfo=dt.timezone.utc)
    tile = _tile_of(bands[1])
    if tile != "33UUU":
        raise ValueError(f"MGRS computation gives {tile}, the file names say 33UUU")
    lon, lat = _centre_lonlat(bands[1])
    sun_az, sun_el = noaa_sun_position(when, lon, lat)
    return ItemSpec(
        L1C, f"S2A_{tile}_{when:%Y%m%d}_0_L1C", when, tile, "L1C", bands,
        properties={
            "eo:cloud_cover": cloud,
            "description": (
                "Havel lakes west of Berlin, Sentinel-2A L1C tile T33UUU 2017-02-16 (eo-box sample JP2s), "
                "cropped to x 337500-345360, y 5816000-5822040 (EPSG:32633). DNs unchanged (TOA, baseline < 04.00). "
                "datetime = datatake sensing start from the file names. eo:cloud_cover is NOT the ESA value "
                f"(unknown): it is a crude estimate, percent of crop pixels with B02 TOA reflectance > {HAVEL_CLOUD_B02_DN * SCALE:g}. "
                "s2:processing_baseline 02.04 is the baseline in operation in February 2017 (not in the source files). "
                "All 10 s2cloudless bands (B01 B02 B04 B05 B08 B8A B09 B10 B11 B12) plus B03 at their native 10/20/60 m; "
                "the 60 m grid reaches 20 m further south (6040 m is not a multiple of 60 m). "
                "view:sun_azimuth / view:sun_elevation are NOT from the granule metadata (not in the source): they are "
                f"computed with the NOAA solar position equations (geometric, no refraction) at the crop centre "
                f"({lon:.4f} E, {lat:.4f} N) for datetime; the tile was sensed up to a few minutes later, which moves "
                "the azimuth by about 0.26 deg per minute. " + "; ".join(zero_notes) + ("." if zero_notes else "")
            ),
        },
        sun=(round(sun_az, 2), round(sun_el, 2)),
    )


def _centre_lonlat(band: Band) -> tuple[float, float]:
    """WGS84 lon/lat of the centre of ``band``."""
    h, w = band.data.shape
    x, y = band.transform * (w / 2, h / 2)
    lon, lat = transform_geom(band.crs, "EPSG:4326", {"type": "Point", "coordinates": [x, y]})["coordinates"]
    return float(lon), float(lat)


def noaa_sun_position(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Sun azimuth (deg clockwise from north) and elevation (deg, geometric: no refraction) with
    the equations of NOAA's Solar Calculator (NOAA Global Monitoring Laboratory, "General Solar
    Position Calculations" / solar calculation spreadsheet, after Meeus, Astronomical Algorithms).

    Checked in the self-check against the real ESA tile-mean angles of the desert item
    (Earth Search v0 ``S2A_29RKH_20200219_0_L2A``): within 0.05 deg.
    """
    when = when.astimezone(dt.timezone.utc)
    jd = when.timestamp() / 86400.0 + 2440587.5  # Julian day
    jc = (jd - 2451545.0) / 36525.0  # Julian century since J2000
    l0 = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360.0  # geometric mean longitude
    m = math.radians(357.52911 + jc * (35999.05029 - 0.0001537 * jc))  # mean anomaly
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)  # orbit eccentricity
    centre = (math.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
              + math.sin(2 * m) * (0.019993 - 0.000101 * jc) + math.sin(3 * m) * 0.000289)
    omega = math.radians(125.04 - 1934.136 * jc)
    app_long = math.radians(l0 + centre - 0.00569 - 0.00478 * math.sin(omega))  # apparent longitude
    eps0 = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    eps = math.radians(eps0 + 0.00256 * math.cos(omega))  # corrected obliquity
    decl = math.asin(math.sin(eps) * math.sin(app_long))
    y = math.tan(eps / 2) ** 2
    l0r = math.radians(l0)
    eq_time_min = 4 * math.degrees(
        y * math.sin(2 * l0r) - 2 * e * math.sin(m) + 4 * e * y * math.sin(m) * math.cos(2 * l0r)
        - 0.5 * y * y * math.sin(4 * l0r) - 1.25 * e * e * math.sin(2 * m)
    )
    minutes_utc = when.hour * 60 + when.minute + (when.second + when.microsecond / 1e6) / 60.0
    true_solar_min = (minutes_utc + eq_time_min + 4 * lon) % 1440.0
    hour_angle = math.radians(true_solar_min / 4.0 - 180.0)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    zen = math.acos(max(-1.0, min(1.0, cos_zen)))
    cos_az = (math.sin(phi) * math.cos(zen) - math.sin(decl)) / (math.cos(phi) * math.sin(zen))
    a = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    azimuth = (a + 180.0) % 360.0 if hour_angle > 0 else (540.0 - a) % 360.0
    return azimuth, 90.0 - math.degrees(zen)


def _tile_of(band: Band) -> str:
    """MGRS tile containing the centre of ``band``."""
    h, w = band.data.shape
    x, y = band.transform * (w / 2, h / 2)
    _lon, lat = transform_geom(band.crs, "EPSG:4326", {"type": "Point", "coordinates": [x, y]})["coordinates"]
    return mgrs_tile(utm_epsg(band.crs), x, y, lat)


# --------------------------------------------------------------------------------------------
# STAC
# --------------------------------------------------------------------------------------------


def band_asset(spec: ItemSpec, band: Band, path: Path) -> pystac.Asset:
    res = abs(band.transform.a)
    res = int(res) if float(res).is_integer() else res
    fields: dict[str, Any] = {}
    if band.key == "scl":
        title = "Scene classification map (SCL)"
        rb = {"nodata": 0, "data_type": "uint8", "spatial_resolution": res}
        roles = ["data"]
    else:
        bid, wl, fwhm, stem = ALL_BANDS[band.key]
        title = f"{stem} - {res:g}m"
        fields["eo:bands"] = [{"name": bid, "common_name": COMMON_NAMES.get(band.key, band.key),
                               "center_wavelength": wl, "full_width_half_max": fwhm}]
        offset = C1_OFFSET if spec.collection == C1_L2A else 0.0
        rb = {"nodata": 0, "data_type": "uint16", "spatial_resolution": res, "scale": SCALE, "offset": offset}
        roles = ["data", "reflectance"]
    fields["gsd"] = res
    h, w = band.data.shape
    fields["proj:shape"] = [h, w]
    fields["proj:transform"] = [band.transform.a, band.transform.b, band.transform.c,
                                band.transform.d, band.transform.e, band.transform.f]
    fields["raster:bands"] = [rb]
    fields["file:checksum"] = multihash_sha256(path)
    fields["file:size"] = path.stat().st_size
    return pystac.Asset(href=f"./{path.name}", media_type=COG_MEDIA_TYPE, title=title, roles=roles, extra_fields=fields)


def build_item(spec: ItemSpec, item_dir: Path) -> pystac.Item:
    item_dir.mkdir(parents=True, exist_ok=True)
    ref = next(b for b in spec.bands if b.key == "green")
    geom = footprint(ref)
    epsg = utm_epsg(ref.crs)
    zone, lat_band, square = spec.tile[:2], spec.tile[2], spec.tile[3:]
    centroid = geom.centroid
    props: dict[str, Any] = {
        "platform": "sentinel-2a",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
    }
    if spec.level == "L2A":
        scl = next(b for b in spec.bands if b.key == "scl").data
        props["eo:cloud_cover"] = cloud_cover_from_scl(scl)
    props.update({
        "proj:epsg": epsg,
        "proj:code": f"EPSG:{epsg}",
        "proj:centroid": {"lat": round(centroid.y, 5), "lon": round(centroid.x, 5)},
        "mgrs:utm_zone": int(zone),
        "mgrs:latitude_band": lat_band,
        "mgrs:grid_square": square,
        "grid:code": f"MGRS-{spec.tile}",
    })
    exts = list(STAC_EXTENSIONS_L2A)
    if spec.sun is not None:
        props["view:sun_azimuth"], props["view:sun_elevation"] = spec.sun
        exts.append(VIEW_EXT)
    props["s2:product_type"] = "S2MSI2A" if spec.level == "L2A" else "S2MSI1C"
    props["s2:processing_baseline"] = "05.00" if spec.collection == C1_L2A else "02.04"
    props.update(spec.properties)  # eo:cloud_cover (L1C) and description
    item = pystac.Item(
        id=spec.item_id,
        geometry=sg.mapping(geom),
        bbox=[round(v, 7) for v in geom.bounds],
        datetime=spec.datetime,
        properties=props,
        stac_extensions=exts,
        collection=spec.collection,
    )
    for band in spec.bands:
        fname = "SCL.tif" if band.key == "scl" else f"{ALL_BANDS[band.key][0]}.tif"
        path = item_dir / fname
        write_cog(path, band, ALL_BANDS[band.key][0] if band.key != "scl" else "SCL")
        item.add_asset(band.key, band_asset(spec, band, path))
    item.add_link(pystac.Link("license", SENTINEL_LEGAL_NOTICE, title="Legal notice on the use of Copernicus Sentinel Data"))
    return item


def item_assets(level: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (bid, wl, fwhm, stem) in (BANDS if level == "L2A" else ALL_BANDS).items():
        out[key] = {
            "type": COG_MEDIA_TYPE,
            "title": stem,
            "eo:bands": [{"name": bid, "common_name": COMMON_NAMES.get(key, key),
                          "center_wavelength": wl, "full_width_half_max": fwhm}],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": SCALE,
                              "offset": C1_OFFSET if level == "L2A" else 0.0}],
            "roles": ["data", "reflectance"],
        }
    if level == "L2A":
        out["scl"] = {"type": COG_MEDIA_TYPE, "title": "Scene classification map (SCL)",
                      "raster:bands": [{"nodata": 0, "data_type": "uint8"}], "roles": ["data"]}
    return out


def build_collection(cid: str, items: list[pystac.Item]) -> pystac.Collection:
    level = "L2A" if cid == C1_L2A else "L1C"
    bbox = [min(i.bbox[0] for i in items), min(i.bbox[1] for i in items),
            max(i.bbox[2] for i in items), max(i.bbox[3] for i in items)]
    times = sorted(i.datetime for i in items)
    if level == "L2A":
        title = "Sentinel-2 Collection 1 Level-2A (gli-toolbox offline sample)"
        desc = ("Offline sample mimicking Earth Search v1 `sentinel-2-c1-l2a`: small crops of real Sentinel-2 L2A "
                "scenes (processing baseline < 04.00) whose DNs were shifted by +1000 so that the Collection-1 "
                "scale 0.0001 and offset -0.1 give back the original reflectance. See sample_data/README.md.")
    else:
        title = "Sentinel-2 Level-1C (gli-toolbox offline sample)"
        desc = ("Offline sample mimicking Earth Search v1 `sentinel-2-l1c`: a crop of a real Sentinel-2 L1C scene "
                "(baseline < 04.00, DNs unchanged, scale 0.0001, offset 0). See sample_data/README.md.")
    coll = pystac.Collection(
        id=cid,
        title=title,
        description=desc,
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[times[0], times[-1]]])),
        license="proprietary",
        keywords=["sentinel", "earth observation", "esa", "sample"],
        providers=[
            pystac.Provider("ESA", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                            url="https://earth.esa.int/web/guest/home"),
            pystac.Provider("gli-toolbox sample_data/build_sample.py", roles=[pystac.ProviderRole.PROCESSOR],
                            description="crop, DN shift (L2A only), COG conversion"),
        ],
        summaries=pystac.Summaries({
            "platform": ["sentinel-2a"],
            "constellation": ["sentinel-2"],
            "instruments": ["msi"],
            "gsd": sorted({a.extra_fields["gsd"] for i in items for a in i.assets.values()}),
        }),
        stac_extensions=[
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
        extra_fields={"item_assets": item_assets(level)},
    )
    coll.add_link(pystac.Link("license", SENTINEL_LEGAL_NOTICE, title="Legal notice on the use of Copernicus Sentinel Data"))
    for it in items:
        coll.add_item(it)
    return coll


# --------------------------------------------------------------------------------------------
# AOIs and licences
# --------------------------------------------------------------------------------------------


def box_feature_collection(name: str, box: tuple[float, float, float, float], description: str) -> dict[str, Any]:
    x0, y0, x1, y1 = box
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {
        "type": "FeatureCollection",
        "name": name,
        "features": [{
            "type": "Feature",
            "properties": {"name": name, "description": description},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }],
    }


def write_aois(shared: Path, out: Path) -> None:
    shutil.copyfile(shared / BARBELLINO_DIR / "barbellino.geojson", out / "barbellino.geojson")
    for fname, box, desc in [
        ("havel.geojson", HAVEL_AOI, "Havel lake chain west of Berlin, inside the sentinel-2-l1c Havel crop (WGS84)"),
        ("desert.geojson", DESERT_AOI, "Western Sahara desert, no water, centre of the 29RKH crop (WGS84)"),
    ]:
        fc = box_feature_collection(fname.removesuffix(".geojson"), box, desc)
        (out / fname).write_text(json.dumps(fc, indent=2) + "\n", encoding="utf-8")


def write_licenses(shared: Path, out: Path) -> None:
    lic = out / "LICENSES"
    lic.mkdir()
    shutil.copyfile(shared / BARBELLINO_DIR / "LICENSE_sen2r.md", lic / "LICENSE_sen2r.md")
    shutil.copyfile(shared / HAVEL_DIR / "LICENSE_eo-box", lic / "LICENSE_eo-box")
    shutil.copyfile(shared / DESERT_DIR / "LICENSE_rio-tiler-pds", lic / "LICENSE_rio-tiler-pds")


def clean(out: Path) -> None:
    for name in ("catalog.json", "barbellino.geojson", "havel.geojson", "desert.geojson"):
        (out / name).unlink(missing_ok=True)
    for name in (C1_L2A, L1C, "LICENSES"):
        if (out / name).exists():
            shutil.rmtree(out / name)


# --------------------------------------------------------------------------------------------
# self-check
# --------------------------------------------------------------------------------------------


def _schemas_reachable() -> bool:
    try:
        socket.create_connection(("stac-extensions.github.io", 443), timeout=3).close()
        return True
    except OSError:
        return False


def self_check(out: Path, specs: list[ItemSpec] | None) -> bool:
    ok = True

    def fail(msg: str) -> None:
        nonlocal ok
        ok = False
        print(f"FAIL: {msg}")

    cat = pystac.Catalog.from_file(str(out / "catalog.json"))
    online = _schemas_reachable()
    items = list(cat.get_items(recursive=True))
    colls = {c.id: c for c in cat.get_children()}
    if set(colls) != {C1_L2A, L1C}:
        fail(f"collections {sorted(colls)}")
    for c in colls.values():
        if not Path(c.get_self_href()).resolve().is_relative_to(out.resolve()):
            fail(f"{c.id}: self href outside sample_data")
    # hrefs inside the JSON files must be relative (self-contained catalog)
    for js in out.rglob("*.json"):
        doc = json.loads(js.read_text())
        for link in doc.get("links", []):
            if link["rel"] in ("root", "parent", "child", "item", "collection", "self") and "://" in link["href"]:
                fail(f"{js}: absolute link {link['href']}")
        for a in doc.get("assets", {}).values():
            if "://" in a["href"] or a["href"].startswith("/"):
                fail(f"{js}: absolute asset href {a['href']}")
    by_id = {s.item_id: s for s in specs} if specs else {}
    rows = []
    for it in items:
        # required fields load and round-trip
        d = it.to_dict()
        for k in ("type", "stac_version", "id", "geometry", "bbox", "properties", "links", "assets"):
            if k not in d:
                fail(f"{it.id}: missing {k}")
        if it.datetime is None:
            fail(f"{it.id}: no datetime")
        pystac.Item.from_dict(d)
        if json.loads(Path(it.get_self_href()).read_text())["stac_version"] != STAC_VERSION:
            fail(f"{it.id}: stac_version is not {STAC_VERSION}")
        if online:  # full JSON-schema validation (core + extensions) needs the schemas from the network
            try:
                it.validate()
                valid = "full: ok"
            except Exception as exc:  # noqa: BLE001
                fail(f"{it.id}: schema validation: {exc}")
                valid = "full: FAILED"
        else:
            # offline: pystac bundles only the STAC 1.1.0 core schemas; validate the core structure
            # (required fields, GeoJSON geometry, datetime, links, assets) against them
            core = dict(d, stac_version="1.1.0", stac_extensions=[])
            try:
                pystac.validation.validate_dict(core)
                valid = "core only (offline): ok"
            except Exception as exc:  # noqa: BLE001
                fail(f"{it.id}: core schema validation: {exc}")
                valid = "core only (offline): FAILED"
        data = {}
        for key, asset in it.assets.items():
            p = Path(asset.get_absolute_href())
            if not p.exists():
                fail(f"{it.id}/{key}: {p} missing")
                continue
            if p.stat().st_size != asset.extra_fields["file:size"] or multihash_sha256(p) != asset.extra_fields["file:checksum"]:
                fail(f"{it.id}/{key}: file:size/checksum mismatch")
            with rasterio.open(p) as src:
                if src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG":
                    fail(f"{it.id}/{key}: not a COG layout")
                if list(src.shape) != asset.extra_fields["proj:shape"] or list(src.transform)[:6] != asset.extra_fields["proj:transform"]:
                    fail(f"{it.id}/{key}: proj:shape/transform mismatch")
                if src.nodata != asset.extra_fields["raster:bands"][0]["nodata"]:
                    fail(f"{it.id}/{key}: nodata mismatch")
                data[key] = (src.read(1), asset.extra_fields["raster:bands"][0], src.crs)
        refl = {}
        for key in [k for k in data if k != "scl"]:  # every reflectance band against its source
            dn, rb, _ = data[key]
            mask = dn != rb["nodata"]
            r = np.where(mask, dn * rb["scale"] + rb["offset"], np.nan)
            refl[key] = r
            spec_band = next((b for b in by_id[it.id].bands if b.key == key), None) if by_id else None
            if spec_band is not None:
                src_dn, src_nod = spec_band.src_dn, spec_band.src_nodata
                src_mask = src_dn != src_nod
                if not np.array_equal(mask, src_mask):
                    fail(f"{it.id}/{key}: valid mask differs from the source")
                src_refl = src_dn[src_mask].astype(np.float64) * SCALE  # baseline < 04.00: DN * 1e-4
                # exact in integer DN space, and to float rounding in reflectance
                back_dn = dn[mask].astype(np.int64) - round(-rb["offset"] / rb["scale"])
                if not np.array_equal(back_dn, src_dn[src_mask].astype(np.int64)):
                    fail(f"{it.id}/{key}: DN - offset/scale != source DN")
                diff = float(np.abs(r[mask] - src_refl).max()) if mask.any() else 0.0
                if diff > 1e-12:
                    fail(f"{it.id}/{key}: reflectance differs from the source by {diff}")
                refl[key + "_diff"] = diff
        if by_id and sorted(data) != sorted(b.key for b in by_id[it.id].bands):
            fail(f"{it.id}: assets {sorted(data)} differ from the source bands")
        if by_id and by_id[it.id].sun is not None:
            az, el = by_id[it.id].sun
            if (it.properties.get("view:sun_azimuth"), it.properties.get("view:sun_elevation")) != (az, el):
                fail(f"{it.id}: view:sun_* differ from the spec")
        g, n = refl["green"], refl["nir"]
        ndwi = (g - n) / (g + n)
        frac = float(np.nanmean(ndwi > 0.2) * 100) if np.isfinite(ndwi).any() else float("nan")
        scl_classes = ""
        if "scl" in data:
            u, c = np.unique(data["scl"][0], return_counts=True)
            scl_classes = " ".join(f"{int(a)}:{int(b)}" for a, b in zip(u, c))
        shape = "x".join(map(str, data["green"][0].shape))
        rows.append((it.collection_id, it.id, it.datetime.isoformat().replace("+00:00", "Z"), shape,
                     f"EPSG:{data['green'][2].to_epsg()}", it.properties.get("eo:cloud_cover"), frac,
                     max((v for k, v in refl.items() if k.endswith("_diff")), default=float("nan")), scl_classes, valid))
    if len(items) != 4:
        fail(f"expected 4 items, got {len(items)}")
    # The solar position code used for the Havel item against real ESA angles (desert item, tile means).
    desert = next((i for i in items if i.id.startswith("S2A_T29RKH")), None)
    if desert is not None:
        centre = desert.properties["proj:centroid"]
        az, el = noaa_sun_position(desert.datetime, centre["lon"], centre["lat"])
        d_az = abs(az - desert.properties["view:sun_azimuth"])
        d_el = abs(el - desert.properties["view:sun_elevation"])
        print(f"NOAA sun position vs ESA tile means (desert item): d_azimuth {d_az:.3f} deg, d_elevation {d_el:.3f} deg")
        if d_az > 0.05 or d_el > 0.05:
            fail(f"noaa_sun_position is off by {d_az:.3f} / {d_el:.3f} deg from the ESA angles of {desert.id}")
    print()
    hdr = ("collection", "item id", "datetime", "green px (HxW)", "CRS", "cloud %", "NDWI>0.2 %", "max |refl-src|", "SCL class:count", "schema")
    print(" | ".join(hdr))  # max |refl-src| over every reflectance band of the item
    for r in rows:
        print(" | ".join([r[0], r[1], r[2], r[3], r[4], f"{r[5]:.2f}", f"{r[6]:.1f}", (f"{r[7]:.1e}" if r[7] == r[7] else "not compared"), r[8] or "-", r[9]]))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"\nsample_data total size: {total / 1e6:.2f} MB")
    if total > 6e6:
        fail("sample_data is larger than 6 MB")
    print("self-check:", "PASSED" if ok else "FAILED")
    return ok


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help=f"folder with the source data sets (default: <repo>/../shared/data = {DEFAULT_SHARED})")
    ap.add_argument("--check-only", action="store_true",
                    help="do not rebuild; only run the self-check (source comparison only if --shared is available)")
    args = ap.parse_args(argv)
    out = HERE
    shared = args.shared.resolve()
    have_sources = all((shared / sub).is_dir() for sub in (BARBELLINO_DIR, HAVEL_DIR, DESERT_DIR))
    if args.check_only:  # compare with the sources when they are there, else check the catalog only
        specs = [*barbellino_items(shared), desert_item(shared), havel_item(shared)] if have_sources else None
        return 0 if self_check(out, specs) else 1
    if not have_sources:
        ap.error(f"source folders {BARBELLINO_DIR}, {HAVEL_DIR}, {DESERT_DIR} not all found in {shared}; pass --shared")

    pystac.set_stac_version(STAC_VERSION)  # pystac >= 1.12 writes 1.1.0 by default; Earth Search v1 is 1.0.0
    specs = [*barbellino_items(shared), desert_item(shared), havel_item(shared)]
    clean(out)
    catalog = pystac.Catalog(
        id="gli-toolbox-sample",
        title="gli-toolbox offline sample data",
        description=("Small real Sentinel-2 crops for running gli-toolbox offline: Lago del Barbellino (Alps, "
                     "2017 and 2019, L2A), Western Sahara desert (2020, L2A, no water) and the Havel lakes "
                     "(2017, L1C). Contains modified Copernicus Sentinel data 2017, 2019, 2020. See README.md."),
    )
    catalog.normalize_hrefs(str(out))  # sets the root href: <out>/catalog.json
    for cid in (C1_L2A, L1C):
        items = [build_item(s, out / cid / s.item_id) for s in specs if s.collection == cid]
        catalog.add_child(build_collection(cid, items))
    catalog.normalize_hrefs(str(out))  # <cid>/collection.json, <cid>/<item-id>/<item-id>.json
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    write_aois(shared, out)
    write_licenses(shared, out)
    print("wrote", out / "catalog.json")
    for s in specs:
        print(f"  {s.collection}/{s.item_id}: " + "; ".join(f"{b.key} <- {b.source}" for b in s.bands))
    return 0 if self_check(out, specs) else 1


if __name__ == "__main__":
    sys.exit(main())
