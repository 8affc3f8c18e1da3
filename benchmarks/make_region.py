"""Make a synthetic multi-tile, multi-zone Sentinel-2 L2A region of full-size COGs from real rasters.

How: the real 10 m green (B03) and NIR (B08) and 20 m SWIR1 (B11) bands of the Havel L1C sample
(``../shared/data/s2_l1c_havel_T33UUU_20170216``, 768 x 1536 px: lakes, fields, forest, town) are
tiled (mirrored at every repeat, so no seam is an edge) to a square tile of ``--tile-px`` pixels
(10980 = a real Sentinel-2 tile) and written as COGs (deflate, 512 px blocks, overviews) with the real
20 m scene classification of the Western Sahara L2A tile (``s2_l2a_cog_29RKH_20200219``, 200 m,
repeated to 20 m) as SCL. Each date shifts the tiling by a different offset, so dates differ.

Sensor noise: the Havel sample is lossy JPEG2000, which smoothed the pixel-level noise of a real
scene away, so tiled as it is it deflates 2.3x better than real Sentinel-2 COGs and decodes twice
as fast (an I/O floor that real data never reach). Gaussian noise of ``--noise-dn`` (2 DN, seeded per
date and band) is added to the reflectance bands, which brings the compressed size to that of real
COGs: 1.04 (green) and 1.00 (SWIR1) bytes per pixel, against 0.97 and 1.07 for the full-coverage
Earth Search tile ``S2B_T24MWV_20250731T130245_L2A`` (``file:size`` of its recorded item in
``../shared/data/stac_fixtures``) and 0.84-1.12 for the CDSE products there. ``--noise-dn 0`` gives
the smooth tiles.

The region: ``--cols`` x ``--rows`` tiles on both sides of the 42N/43N UTM zone border at 72 E
(Kyrgyz Tien Shan latitude, 41.5 N): columns west of the border are written in EPSG:32642, east of it in
EPSG:32643, each on its own zone's 10 m grid, with ``--dates`` dates in each of the years given. An
ItemCollection (``items.json``, absolute hrefs) and an AOI (``aoi.geojson``: the tiles' union shrunk by
1 km) are written beside the COGs. Use ``--stac OUT/items.json --collection synthetic-l2a``.

Usage::

    .venv/bin/python benchmarks/make_region.py --out /tmp/gli-region --tile-px 10980 --cols 2 --rows 2 \\
        --dates 3 --years 2019 2020

Contains modified Copernicus Sentinel data 2017, 2020 (see the data folders' licence files).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import zlib
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling
from shapely.geometry import box, mapping

#: ``../shared/data`` beside the checkout (or beside the worktrees' folder).
DATA = next((p / "shared" / "data" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data").is_dir()),
            Path("../shared/data"))
HAVEL = "s2_l1c_havel_T33UUU_20170216/IMG_DATA/T33UUU_20170216T102101_{}.jp2"
SCL = "s2_l2a_cog_29RKH_20200219/SCL.tif"
COLLECTION = "synthetic-l2a"
BORDER_LON = 72.0
LAT = 41.5


def _source(data: Path) -> dict[str, np.ndarray]:
    out = {}
    for band, name in (("green", "B03"), ("nir", "B08"), ("swir16", "B11")):
        with rasterio.open(data / HAVEL.format(name)) as src:
            out[band] = src.read(1)
    with rasterio.open(data / SCL) as src:
        scl = src.read(1)
    out["scl"] = np.repeat(np.repeat(scl, 10, axis=0), 10, axis=1)  # 200 m -> 20 m by repetition
    return out


def _tiled(a: np.ndarray, n: int, shift: int) -> np.ndarray:
    """``a`` mirrored and repeated to n x n, starting ``shift`` pixels in (both axes)."""
    m = np.concatenate([a, a[::-1]], axis=0)
    m = np.concatenate([m, m[:, ::-1]], axis=1)
    reps = (math.ceil((n + shift) / m.shape[0]), math.ceil((n + shift) / m.shape[1]))
    return np.tile(m, reps)[shift:shift + n, shift:shift + n]


def _noisy(arr: np.ndarray, sigma_dn: float, seed: int) -> np.ndarray:
    """``arr`` plus rounded Gaussian noise of ``sigma_dn`` DN; nodata (0) stays 0, data stay in 1..65534."""
    if sigma_dn <= 0:
        return arr
    rng = np.random.default_rng(seed)
    noisy = arr.astype(np.float32) + rng.normal(0.0, sigma_dn, arr.shape).astype(np.float32)
    return np.where(arr == 0, 0, np.clip(np.rint(noisy), 1, 65534)).astype(arr.dtype)


def _write_cog(path: Path, arr: np.ndarray, *, crs: str, x0: float, y0: float, res: float) -> None:
    from affine import Affine

    h, w = arr.shape
    profile = {"driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": arr.dtype.name, "crs": crs,
               "transform": Affine(res, 0, x0, 0, -res, y0), "nodata": 0, "compress": "deflate",
               "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr, 1)
        dst.build_overviews([2, 4, 8, 16], Resampling.nearest)
        dst.update_tags(ns="rio_overview", resampling="nearest")


def make_region(out: Path, *, tile_px: int, cols: int, rows: int, dates: int, years: list[int],
                data: Path = DATA, noise_dn: float = 2.0) -> dict[str, object]:
    """Write the region into ``out``; return a summary (tiles, items, AOI)."""
    out.mkdir(parents=True, exist_ok=True)
    src = _source(data)
    span = tile_px * 10.0
    items = []
    footprints = []
    half = cols // 2
    # dates 20 days apart; more than 4 a season closer (5-day revisit), all within July-September
    step = 20 if dates <= 4 else max(5, 80 // dates)
    for c in range(cols):
        west = c < half
        crs = "EPSG:32642" if west else "EPSG:32643"
        to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        bx, by = to_utm.transform(BORDER_LON, LAT)
        # tiles abut the border: west tiles end at it in 42N, east tiles start at it in 43N (snapped to 60 m)
        k = c - half
        x0 = math.floor(bx / 60) * 60 + k * span if west else math.ceil(bx / 60) * 60 + k * span
        to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        for r in range(rows):
            y0 = math.floor(by / 60) * 60 + (rows / 2 - r) * span
            tile = f"{crs[-2:]}T{c}{r}"
            xs, ys = to_wgs.transform([x0, x0 + span, x0 + span, x0], [y0, y0, y0 - span, y0 - span])
            foot = box(min(xs), min(ys), max(xs), max(ys))
            footprints.append(foot)
            for year in years:
                for d in range(dates):
                    day = dt.date(year, 7, 10) + dt.timedelta(days=step * d)
                    shift = (37 * d + 101 * (year % 7) + 13 * c + 7 * r) % 700
                    folder = out / f"{tile}_{day:%Y%m%d}"
                    folder.mkdir(exist_ok=True)
                    assets = {}
                    for band, res in (("green", 10.0), ("nir", 10.0), ("swir16", 20.0), ("scl", 20.0)):
                        n = round(span / res)
                        path = folder / f"{band}.tif"
                        if not path.exists():
                            arr = _tiled(src[band], n, shift if res == 10.0 else shift // 2)
                            if band != "scl":
                                arr = _noisy(arr, noise_dn, seed=zlib.crc32(f"{tile}{day}{band}".encode()))
                            _write_cog(path, arr, crs=crs, x0=x0, y0=y0, res=res)
                        asset = {"href": str(path.resolve()), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                                 "roles": ["data"], "proj:shape": [n, n], "proj:transform": [res, 0, x0, 0, -res, y0]}
                        if band != "scl":
                            asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": 0}]
                            asset["eo:bands"] = [{"name": {"green": "B03", "nir": "B08", "swir16": "B11"}[band],
                                                  "common_name": band}]
                        assets[band] = asset
                    items.append({
                        "type": "Feature", "stac_version": "1.0.0",
                        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                                            "https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
                        "id": f"SYN_{tile}_{day:%Y%m%d}_L2A", "collection": COLLECTION,
                        "geometry": mapping(foot), "bbox": list(foot.bounds),
                        "properties": {"datetime": f"{day.isoformat()}T06:00:00Z", "eo:cloud_cover": 5.0,
                                       "proj:epsg": int(crs[5:]), "platform": "sentinel-2a",
                                       "s2:processing_baseline": "03.00",
                                       "view:sun_azimuth": 150.0, "view:sun_elevation": 60.0},
                        "assets": assets, "links": [],
                    })
    (out / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    from shapely import union_all

    aoi = union_all(footprints).buffer(-0.012)
    (out / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "synthetic region"}, "geometry": mapping(aoi)}]}))
    return {"tiles": len(footprints), "items": len(items), "aoi_bounds": aoi.bounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tile-px", type=int, default=10980)
    ap.add_argument("--cols", type=int, default=2)
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--dates", type=int, default=3)
    ap.add_argument("--years", type=int, nargs="+", default=[2019, 2020])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--noise-dn", type=float, default=2.0, help="sensor noise added to the bands (DN, default 2)")
    a = ap.parse_args()
    print(json.dumps(make_region(a.out, tile_px=a.tile_px, cols=a.cols, rows=a.rows, dates=a.dates, years=a.years,
                                 data=a.data, noise_dn=a.noise_dn)))


if __name__ == "__main__":
    main()
