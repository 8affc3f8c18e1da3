"""gli-toolbox: glacial lake inventories and lake change from Sentinel-2 imagery.

The main entry points are :func:`detect` and :func:`track_inventories`::

    import gli_toolbox
    result = gli_toolbox.detect("sample_data/barbellino.geojson", years=(2017, 2019),
                                stac="sample_data/catalog.json")
    result.lakes[2019]          # GeoDataFrame of lakes
    result.masks[2019].water_class   # 1 water, 0 not water, 255 never observed

    changes = gli_toolbox.track_inventories(["lakes_2016.shp", "edited_2019.gpkg"])
    changes.changes             # one row per lake: status, areas, rate

The detection pipeline (odc-stac, pystac-client) is imported on first use, so tracking existing
inventories does not load it.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .config import DetectConfig
from .errors import GliError
from .periods import Period

if TYPE_CHECKING:
    from .aoi import Aoi, read_aoi
    from .inventories import track_inventories
    from .pipeline import DetectResult, WaterMap, detect

try:
    __version__ = version("gli-toolbox")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["Aoi", "DetectConfig", "DetectResult", "GliError", "Period", "WaterMap", "__version__", "detect",
           "read_aoi", "track_inventories"]

# The heavy modules (geopandas, odc-stac ...) load on first use, so that `gli` answers Ctrl-C,
# --help and usage errors at once, and tracking existing inventories never loads odc-stac.
_LAZY = {"Aoi": "aoi", "read_aoi": "aoi", "DetectResult": "pipeline", "WaterMap": "pipeline", "detect": "pipeline",
         "track_inventories": "inventories"}


def __getattr__(name: str) -> Any:
    """Import the pipeline (odc-stac) and the inventory reader only when first used."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
