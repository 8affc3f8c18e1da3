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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aoi import Aoi, read_aoi
    from .config import DetectConfig
    from .errors import GliError
    from .inventories import track_inventories
    from .periods import Period
    from .pipeline import DetectResult, WaterMap, detect

    __version__: str

# Everything loads on first use (geopandas, odc-stac ... are heavy), so that `gli` installs its
# Ctrl-C handling first and answers --help and usage errors at once, and tracking existing
# inventories never loads odc-stac.
_LAZY = {"Aoi": "aoi", "read_aoi": "aoi", "DetectConfig": "config", "GliError": "errors", "Period": "periods",
         "DetectResult": "pipeline", "WaterMap": "pipeline", "detect": "pipeline",
         "track_inventories": "inventories"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gli-toolbox")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"


def __getattr__(name: str) -> Any:
    """Import the pipeline (odc-stac) and the inventory reader only when first used."""
    if name == "__version__":
        value = _version()
        globals()["__version__"] = value
        return value
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Aoi", "DetectConfig", "DetectResult", "GliError", "Period", "WaterMap", "__version__", "detect",
           "read_aoi", "track_inventories"]
