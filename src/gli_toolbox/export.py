"""Write detection results: shapefiles, GeoPackage, water masks and ``run.json``.

Outputs are first written to a hidden staging folder next to the target and only moved into
place when everything was written, so a failed run leaves nothing half-written behind. With
``overwrite`` the files of a new run replace same-named files; other files in the folder (for
example outlines a partner edited) are never deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import rasterio

from .errors import OutputExistsError

if TYPE_CHECKING:
    from .pipeline import DetectResult, WaterMap
    from .tracking import TrackResult

logger = logging.getLogger(__name__)

__all__ = ["SHAPEFILE_SIDECARS", "check_output_dir", "staged_output", "write_layer", "write_mask", "write_outputs"]

SHAPEFILE_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def check_output_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse an existing, non-empty output folder unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder path")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder {out} already exists; choose another --out or add --overwrite")


@contextmanager
def staged_output(out: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a staging folder; on success move its files into ``out``, on error delete it."""
    out = Path(out)
    check_output_dir(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    try:
        if not out.exists():
            os.replace(stage, out)
            return
        for src in sorted(stage.rglob("*")):
            dst = out / src.relative_to(stage)
            if src.is_dir():
                dst.mkdir(exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_layer(gdf: gpd.GeoDataFrame, folder: Path, name: str, *, gpkg: Path | None = None) -> None:
    """Write one lake layer as ``<name>.shp`` (UTF-8 ``.cpg``, ``.prj``) and into ``gpkg``."""
    kw: dict[str, Any] = {"engine": "pyogrio"}
    if len(gdf) == 0:
        kw["geometry_type"] = "Polygon"  # an empty layer still declares its geometry type
    elif set(gdf.geom_type) - {"Polygon"}:
        kw["geometry_type"] = "MultiPolygon"  # unions over years and edited outlines can be multi-part
    gdf.to_file(folder / f"{name}.shp", driver="ESRI Shapefile", encoding="UTF-8", **kw)
    if gpkg is not None:
        gdf.to_file(gpkg, layer=name, driver="GPKG", **kw)


def write_mask(mask: WaterMap, path: Path) -> None:
    """Write a water class raster: uint8, 1 water, 0 not water, 255 never validly observed (nodata)."""
    h, w = mask.water_class.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "uint8", "crs": mask.crs,
        "transform": mask.transform, "nodata": 255, "compress": "deflate", "tiled": w >= 256 and h >= 256,
    }
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask.water_class, 1)
        dst.set_band_description(1, f"water {mask.label}: 1 water, 0 not water, 255 never observed")
        dst.update_tags(1, VALUES="1=water;0=not water;255=never validly observed")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


def write_run_json(run: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(run, indent=2, default=_json_default) + "\n", encoding="utf-8")


def write_outputs(result: DetectResult, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write all outputs of a detection run into ``out`` and return the written paths.

    Yearly mode: ``lakes_<YEAR>.shp``; with ``per_scene``: ``lakes_<YYYYMMDD>.shp`` instead.
    Always ``inventory.gpkg`` (same layers) and ``run.json``; ``water_<YEAR|YYYYMMDD>.tif`` with
    ``save_masks``.
    """
    cfg = result.config
    if cfg.per_scene:
        layers = {f"lakes_{k}": v for k, v in result.scene_lakes.items()}
        masks = {f"water_{k}": v for k, v in result.scene_masks.items()}
    else:
        layers = {f"lakes_{y}": v for y, v in result.lakes.items()}
        masks = {f"water_{y}": v for y, v in result.masks.items()}
    with staged_output(out, overwrite=overwrite) as stage:
        gpkg = stage / "inventory.gpkg"
        for name, gdf in layers.items():
            write_layer(gdf, stage, name, gpkg=gpkg)
        if cfg.save_masks:
            for name, mask in masks.items():
                write_mask(mask, stage / f"{name}.tif")
        if result.tracking is not None:
            write_tracking(result.tracking, stage)
        run = dict(result.run)
        run["outputs"] = sorted(p.name for p in stage.iterdir()) + ["run.json"]
        write_run_json(run, stage / "run.json")
        names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    return [Path(out) / n for n in names]


def write_tracking(tr: TrackResult, folder: Path) -> None:
    """Write ``lake_changes.shp`` / ``.csv``, ``lake_areas.csv``, ``lake_pairs.csv``,
    ``lake_events.csv`` and ``figures/*.png`` for a tracking result."""
    from .figures import write_figures

    changes = tr.changes
    write_layer(changes, folder, "lake_changes")
    changes.drop(columns=changes.geometry.name).to_csv(folder / "lake_changes.csv", index=False, float_format="%.6f")
    tr.areas.to_csv(folder / "lake_areas.csv", index=False, float_format="%.6f")
    tr.pairs.to_csv(folder / "lake_pairs.csv", index=False, float_format="%.6f")
    tr.events.to_csv(folder / "lake_events.csv", index=False)
    write_figures(tr, folder / "figures")
