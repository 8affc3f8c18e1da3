"""gli-toolbox: glacial lake inventories and lake change from Sentinel-2 imagery.

The main entry point is :func:`detect`::

    import gli_toolbox
    result = gli_toolbox.detect("sample_data/barbellino.geojson", years=(2017, 2019),
                                stac="sample_data/catalog.json")
    result.lakes[2019]          # GeoDataFrame of lakes
    result.masks[2019].water_class   # 1 water, 0 not water, 255 never observed
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aoi import Aoi, read_aoi
    from .config import DetectConfig
    from .errors import GliError
    from .pipeline import DetectResult, WaterMap, detect

    __version__: str

# Everything loads on first use (geopandas, odc-stac ... are heavy), so that `gli` installs its
# Ctrl-C handling first and answers --help and usage errors at once.
_LAZY = {"Aoi": "aoi", "read_aoi": "aoi", "DetectConfig": "config", "GliError": "errors",
         "DetectResult": "pipeline", "WaterMap": "pipeline", "detect": "pipeline"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gli-toolbox")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _version()
        globals()["__version__"] = value
        return value
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Aoi", "DetectConfig", "DetectResult", "GliError", "WaterMap", "__version__", "detect", "read_aoi"]
