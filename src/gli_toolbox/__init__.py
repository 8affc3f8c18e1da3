"""gli-toolbox: glacial lake inventories and lake change from Sentinel-2 imagery.

The main entry point is :func:`detect`::

    import gli_toolbox
    result = gli_toolbox.detect("sample_data/barbellino.geojson", years=(2017, 2019),
                                stac="sample_data/catalog.json")
    result.lakes[2019]          # GeoDataFrame of lakes
    result.masks[2019].water_class   # 1 water, 0 not water, 255 never observed
"""

from importlib.metadata import PackageNotFoundError, version

from .aoi import Aoi, read_aoi
from .config import DetectConfig
from .errors import GliError
from .pipeline import detect
from .results import DetectResult, WaterMap

try:
    __version__ = version("gli-toolbox")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["Aoi", "DetectConfig", "DetectResult", "GliError", "WaterMap", "__version__", "detect", "read_aoi"]
