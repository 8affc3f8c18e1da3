"""Rebuild the labels of the water-classification evaluation set from ``<repo>/../shared/data``.

Label values: 0 land, 1 water, 255 not labelled (shore ring, cloud, ambiguous). How each label was
made is described in README.md next to this script; the accepted component seeds below were chosen
by looking at RGB renderings of the scenes (PNG) with the candidate outlines drawn on them.

Run: ``python tests/data/accuracy/make_labels.py [shared_data_dir]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import rasterize
from scipy import ndimage as ndi

HERE = Path(__file__).parent
LAND, WATER, UNLABELLED = 0, 1, 255

#: Havel: (row, col) of one pixel inside each NDWI>0 component accepted as open water after visual
#: review of the true-colour rendering (Havel chain, Weißer See and smaller lakes, a rectangular pond).
HAVEL_ACCEPT = [(450, 830), (300, 1200), (200, 1350), (330, 1100), (60, 1250), (40, 1480), (690, 20), (640, 220), (440, 1440), (720, 1370), (252, 370)]
#: Havel: components with NDWI>0 that look bright white (probably ice or snow on a lake, or bare sand):
#: neither water nor land in the labels.
HAVEL_AMBIGUOUS = [(350, 965), (345, 12)]
#: OSM land-use classes that are ambiguous for open water (wet meadows, reed): not labelled.
OSM_AMBIGUOUS = {"wetland"}
#: Cloud and haze of the Havel scene (TOA blue above 0.18, Zhu & Woodcock 2012's "whiteness" scenes
#: start near this), grown by 5 px: not labelled, for every method alike.
CLOUD_BLUE_TOA = 0.18


def _ring(mask: np.ndarray, px: int = 1) -> np.ndarray:
    """Pixels within ``px`` of the mask's outline (inside or outside): mixed shore pixels."""
    return ndi.binary_dilation(mask, iterations=px) & ~ndi.binary_erosion(mask, iterations=px, border_value=1)


def _component_at(cand: np.ndarray, points: list[tuple[int, int]]) -> np.ndarray:
    """Candidate components holding each point, or else the largest one within 10 px of it."""
    lab, _ = ndi.label(cand)
    sizes = np.bincount(lab.ravel())
    ids = set()
    for r, c in points:
        win = lab[max(r - 10, 0):r + 11, max(c - 10, 0):c + 11]
        if lab[r, c]:
            ids.add(int(lab[r, c]))
        elif win.any():
            ids.add(int(max(set(win[win > 0].tolist()), key=lambda i: sizes[i])))
        else:
            raise ValueError(f"reviewed point {(r, c)} is not near the candidate mask")
    return np.isin(lab, sorted(ids))


def havel(shared: Path) -> dict[str, np.ndarray]:
    d = shared / "s2_l1c_havel_T33UUU_20170216"
    with rasterio.open(d / "IMG_DATA/T33UUU_20170216T102101_B03.jp2") as s:
        green, transform, shape = s.read(1), s.transform, s.shape
    bands = {"green": green}
    for name, b in [("blue", "B02"), ("red", "B04"), ("nir", "B08"), ("swir16", "B11"), ("swir22", "B12")]:
        with rasterio.open(d / f"IMG_DATA/T33UUU_20170216T102101_{b}.jp2") as s:
            bands[name] = s.read(1, out_shape=shape, resampling=Resampling.nearest)
    r = {k: v.astype(np.float32) / 1e4 for k, v in bands.items()}
    ndwi = (r["green"] - r["nir"]) / (r["green"] + r["nir"])
    mndwi = (r["green"] - r["swir16"]) / (r["green"] + r["swir16"])
    cand = (ndwi > 0) & (mndwi > 0)
    osm = gpd.read_file(next(d.glob("gis_osm_landuse-water_*.gpkg")))

    def burn(gdf: gpd.GeoDataFrame) -> np.ndarray:
        if gdf.empty:
            return np.zeros(shape, dtype=bool)
        return rasterize(((g, 1) for g in gdf.geometry), out_shape=shape, transform=transform).astype(bool)

    water = burn(osm[osm.fclass == "water"]) | _component_at(cand, HAVEL_ACCEPT)
    ambiguous = burn(osm[osm.fclass.isin(OSM_AMBIGUOUS)]) | _component_at(cand, HAVEL_AMBIGUOUS)
    # NDWI>0 specks nobody reviewed (< 300 px, not in OSM): not labelled
    lab, _ = ndi.label(cand & ~water)
    sizes = np.bincount(lab.ravel())
    ambiguous |= ndi.binary_dilation((sizes[lab] < 300) & (lab > 0), iterations=1)
    cloud = ndi.binary_dilation(r["blue"] > CLOUD_BLUE_TOA, iterations=5)
    label = np.where(water, WATER, LAND).astype(np.uint8)
    label[_ring(water) | ambiguous | cloud] = UNLABELLED
    return {"label": label, "transform": np.array(transform)[:6]}


def barbellino(shared: Path, date: str) -> dict[str, np.ndarray]:
    d = shared / "s2_barbellino_alps_2017_2019"
    with rasterio.open(d / f"S2A2A_{date}_022_Barbellino_BOA_10.tif") as s:
        a = s.read().astype(np.float32) / 1e4
        transform = s.transform
    g, n, s1 = a[2], a[7], a[9]
    cand = ((g - n) / (g + n) > 0) & ((g - s1) / (g + s1) > 0)
    # the reservoir: reviewed on the RGB rendering (dark green-teal water body, centre column 15-20)
    water = _component_at(cand, [(20, 16)])
    label = np.where(water, WATER, LAND).astype(np.uint8)
    label[_ring(water)] = UNLABELLED
    return {"label": label, "transform": np.array(transform)[:6]}


def main(shared: Path) -> None:
    out = {"havel_20170216": havel(shared), "barbellino_20170703": barbellino(shared, "20170703"),
           "barbellino_20190723": barbellino(shared, "20190723")}
    for name, arrays in out.items():
        np.savez_compressed(HERE / f"{name}_labels.npz", **arrays)
        lab = arrays["label"]
        print(name, lab.shape, {k: int((lab == v).sum()) for k, v in [("land", LAND), ("water", WATER), ("unlabelled", UNLABELLED)]})


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "data")  # <repo>/../shared/data
