"""Tiles of one pass are one observation: the 2019 Barbellino scene cut into two items (two
"MGRS tiles", one of them re-gridded into the neighbouring UTM zone) gives the same lakes as the
whole scene."""

import copy
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window

import gli_toolbox

ROOT = Path(__file__).resolve().parents[2]
ITEM = "S2A_T32TNS_20190723T101031_L2A"


def _cut(src_path: Path, dst_path: Path, cols: slice, crs: str | None = None) -> None:
    with rasterio.open(src_path) as src:
        w = Window(cols.start, 0, cols.stop - cols.start, src.height)
        data = src.read(1, window=w)
        transform = src.window_transform(w)
        profile = src.profile | {"width": data.shape[1], "height": data.shape[0], "transform": transform,
                                 "driver": "GTiff", "tiled": False}
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        if crs is None:
            with rasterio.open(dst_path, "w", **profile) as dst:
                dst.write(data, 1)
            return
        t2, wd, ht = calculate_default_transform(src.crs, crs, data.shape[1], data.shape[0],
                                                 *rasterio.windows.bounds(w, src.transform), resolution=src.res)
        out = np.zeros((ht, wd), dtype=data.dtype)
        reproject(data, out, src_transform=transform, src_crs=src.crs, dst_transform=t2, dst_crs=crs,
                  resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
        with rasterio.open(dst_path, "w", **(profile | {"crs": crs, "transform": t2, "width": wd, "height": ht})) as dst:
            dst.write(out, 1)


def _split_catalog(tmp: Path, other_zone: bool) -> Path:
    cat = pystac.Catalog.from_file(str(ROOT / "sample_data/catalog.json"))
    item = next(i for i in cat.get_items(recursive=True) if i.id == ITEM)
    features = []
    for k, (cols, tile, crs) in enumerate([(slice(0, 12), "32TNS", None),
                                           (slice(12, 24), "33TTM" if other_zone else "32TNT",
                                            "EPSG:32633" if other_zone else None)]):
        d = copy.deepcopy(item.to_dict())
        d["id"] = f"S2A_T{tile}_20190723T101031_L2A"
        d["properties"]["grid:code"] = f"MGRS-{tile}"
        folder = tmp / d["id"]
        folder.mkdir()
        for key, asset in item.assets.items():
            if not key in ("green", "nir", "swir16", "scl", "red", "blue"):
                continue
            src = Path(asset.get_absolute_href())
            res = 20 if key in ("scl",) else 10
            c = slice(cols.start * 10 // res, cols.stop * 10 // res)
            _cut(src, folder / src.name, c, crs)
            d["assets"][key]["href"] = str(folder / src.name)
            for f in ("proj:shape", "proj:transform"):
                d["assets"][key].pop(f, None)
        d["assets"] = {k2: v for k2, v in d["assets"].items() if k2 in ("green", "nir", "swir16", "scl", "red", "blue")}
        d["properties"].pop("proj:epsg", None)
        d["properties"].pop("proj:code", None)
        d["links"] = []
        features.append(d)
    path = tmp / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


@pytest.mark.parametrize("other_zone", [False, True], ids=["same-zone", "across-utm-zones"])
def test_two_tiles_of_one_day_are_one_observation(tmp_path, other_zone):
    whole = gli_toolbox.detect(ROOT / "sample_data/barbellino.geojson", years=(2019,),
                               stac=str(ROOT / "sample_data/catalog.json"), progress=False)
    split = gli_toolbox.detect(ROOT / "sample_data/barbellino.geojson", years=(2019,),
                               stac=str(_split_catalog(tmp_path, other_zone)), progress=False)
    # one day, two items, one observation per pixel
    assert split.run["years"]["2019"]["days_used"] == 1 and len(split.run["years"]["2019"]["scenes"]) == 2
    assert split.masks[2019].valid_count.max() == 1
    a_whole = whole.lakes[2019].area_km2.sum()
    a_split = split.lakes[2019].area_km2.sum()
    if other_zone:
        # nearest-neighbour regridding into UTM 33 and back moves edge pixels: within 5 %
        assert a_split == pytest.approx(a_whole, rel=0.05)
    else:
        assert a_split == pytest.approx(a_whole)
        np.testing.assert_array_equal(split.masks[2019].water_class, whole.masks[2019].water_class)
    assert len(split.lakes[2019]) == len(whole.lakes[2019]) == 1


def test_tiles_of_the_neighbouring_zone_are_read_only_for_gaps(tmp_path, monkeypatch):
    """A chunk covered by a tile of its own zone is read directly; a tile of the neighbouring zone
    (reprojected by odc-stac, slow) is read only where the own zone leaves a gap, and fills it."""
    from odc.geo.geobox import GeoBox

    from gli_toolbox import load

    cat = pystac.Catalog.from_file(str(ROOT / "sample_data/catalog.json"))
    whole = next(i for i in cat.get_items(recursive=True) if i.id == ITEM)
    whole.make_asset_hrefs_absolute()
    feats = json.loads(_split_catalog(tmp_path, other_zone=True).read_text())["features"]
    west, east_33n = (pystac.Item.from_dict(f) for f in feats)
    with rasterio.open(whole.assets["green"].get_absolute_href()) as src:
        tile = GeoBox((src.height, src.width), src.transform, src.crs)
    keys = {"green": "green", "swir16": "swir16", "scl": "scl"}
    calls = []
    real = load._read_odc
    monkeypatch.setattr(load, "_read_odc", lambda items, *a: calls.append([i.id for i in items]) or real(items, *a))

    alone = load.read_bands([whole], tile, keys)
    covered = load.read_bands([east_33n, whole], tile, keys)
    assert calls == []  # the own zone's tile covers the chunk: the other zone's is not read
    for b in keys:
        np.testing.assert_array_equal(covered[b], alone[b])

    halves = load.read_bands([west, east_33n], tile, keys)
    assert calls == [[east_33n.id]]  # only the other zone's tile, once
    for b in keys:
        assert (alone[b] != 0).all() and (halves[b] != 0).mean() > 0.97  # the east half filled
        np.testing.assert_array_equal(halves[b][:, :12], alone[b][:, :12])  # the west half: the same pixels
