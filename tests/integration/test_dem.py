"""DEM reading from a file and from a STAC catalog (real SRTM clip of the OGGM sample data)."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from gli_toolbox.dem import load_dem
from gli_toolbox.errors import ConfigError
from gli_toolbox.load import output_grid

DATA = Path(__file__).resolve().parents[1] / "data" / "dem"
SRTM = DATA / "hef_srtm.tif"


@pytest.fixture(scope="module")
def grid():
    # a 2 x 2 km box on Hintereisferner (Oetztal Alps), inside the SRTM clip
    return output_grid(box(10.74, 46.79, 10.77, 46.81), crs=None, resolution_m=10)


def test_file_dem_matches_source_values(grid):
    dem = load_dem(str(SRTM), grid, stac="unused", margin_m=300, resolution_m=30)
    assert dem.elevation.dtype == np.float32
    inner = dem.on(grid)
    assert np.isfinite(inner).all()
    with rasterio.open(SRTM) as src:
        lo, hi = np.nanmin(src.read(1)), np.nanmax(src.read(1))
    assert lo - 1 <= np.nanmin(inner) and np.nanmax(inner) <= hi + 1
    # glacier tongue and surrounding peaks of the Oetztal: 2,400-3,700 m
    assert 2300 < np.nanmedian(inner) < 3800


def test_dem_not_covering_aoi_is_refused():
    far = output_grid(box(74.0, 42.0, 74.02, 42.02), crs=None, resolution_m=10)
    with pytest.raises(ConfigError, match="covers only"):
        load_dem(str(SRTM), far, stac="unused", margin_m=0)


def test_missing_dem_file(grid):
    with pytest.raises(ConfigError, match="not found"):
        load_dem("nope.tif", grid, stac="unused")


def test_auto_dem_from_local_stac_catalog(grid, tmp_path):
    """--dem auto searches the provider's cop-dem-glo-30 collection; here a local ItemCollection whose
    one item points at the SRTM clip (a stand-in for a GLO-30 tile, same role and asset key)."""
    with rasterio.open(SRTM) as src:
        b = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": "srtm_hef", "collection": "cop-dem-glo-30",
        "geometry": box(*b).__geo_interface__, "bbox": list(b),
        "properties": {"datetime": "2021-04-22T00:00:00Z"},
        "assets": {"data": {"href": str(SRTM), "type": "image/tiff; application=geotiff", "roles": ["data"]}},
        "links": [],
    }
    cat = tmp_path / "dem_items.json"
    cat.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    auto = load_dem("auto", grid, stac=str(cat), margin_m=300).on(grid)
    direct = load_dem(str(SRTM), grid, stac="unused", margin_m=300).on(grid)
    np.testing.assert_allclose(auto, direct, atol=0.5)
