"""Write detection results: shapefiles, GeoPackage, water masks and ``run.json``.

Outputs are first written to a hidden staging folder next to the target and only moved into
place when everything was written, so a failed run leaves nothing half-written behind. With
``overwrite`` the files of the earlier run are replaced as a whole (stale layers of other years
do not survive); other files in the folder (for example outlines a partner edited) are never
touched.
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

from .errors import OutputError, OutputExistsError

if TYPE_CHECKING:
    from .results import DetectResult, WaterMap
    from .tracking import TrackResult

logger = logging.getLogger(__name__)

__all__ = ["SHAPEFILE_SIDECARS", "check_output_dir", "staged_output", "write_layer", "write_mask", "write_outputs"]

SHAPEFILE_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def check_output_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse an existing, non-empty output folder unless ``overwrite``, and a place that cannot
    be written, before any work is done."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder path")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder {out} already exists; choose another --out or add --overwrite")
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"--out {out}: {ancestor} is a file, not a folder; choose another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: cannot write in {ancestor}; choose a folder you can write to")


def _previous_outputs(out: Path) -> list[str]:
    """Top-level names an earlier gli run wrote into ``out`` (from its run.json)."""
    try:
        doc = json.loads((out / "run.json").read_text(encoding="utf-8"))
        names = doc.get("outputs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")]


@contextmanager
def staged_output(out: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a staging folder; when the block succeeds, put its content in ``out``.

    A new folder is renamed into place in one step. With ``overwrite`` the files of the earlier gli
    run (listed in its ``run.json``) and same-named files are first moved aside, then the new ones
    moved in, then the old ones deleted; if anything fails or is interrupted, the old files are put
    back. Files a user added to the folder are never touched. On any error the staging folder is
    deleted, so nothing half-written is left.
    """
    out = Path(out)
    check_output_dir(out, overwrite=overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create it ({exc.strerror or exc}); choose another --out") from None
    try:
        yield stage
        if not out.exists():
            os.replace(stage, out)
            return
        _swap_into(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_into(stage: Path, out: Path) -> None:
    new = sorted(p.name for p in stage.iterdir())
    old = sorted(set(_previous_outputs(out)) | set(new))
    backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for name in old:
            if (out / name).exists():
                os.replace(out / name, backup / name)
                moved_aside.append(name)
        for name in new:
            os.replace(stage / name, out / name)
            moved_in.append(name)
    except BaseException:
        for name in moved_in:  # roll back: the folder is as it was before this run
            target = out / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        for name in moved_aside:
            os.replace(backup / name, out / name)
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)


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


def write_counts(mask: WaterMap, path: Path) -> None:
    """Write the number of valid (clear, snow-free) observations per pixel: uint16 GeoTIFF."""
    h, w = mask.valid_count.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "uint16", "crs": mask.crs,
        "transform": mask.transform, "compress": "deflate", "tiled": w >= 256 and h >= 256,
    }
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask.valid_count.astype(np.uint16), 1)
        dst.set_band_description(1, f"valid observations {mask.label}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


def write_run_json(run: Mapping[str, Any], path: Path) -> None:
    """Write ``run.json`` last in its folder, listing every top-level output (for --overwrite)."""
    doc = dict(run)
    doc["outputs"] = sorted({p.name for p in path.parent.iterdir()} | {path.name})
    path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n", encoding="utf-8")


def write_outputs(result: DetectResult, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write all outputs of a detection run into ``out`` and return the written paths.

    Yearly mode: ``lakes_<YEAR>.shp``; with ``per_scene``: ``lakes_<YYYYMMDD>.shp`` instead.
    Always ``inventory.gpkg`` (same layers) and ``run.json``; ``water_<YEAR|YYYYMMDD>.tif`` and
    ``nobs_<YEAR|YYYYMMDD>.tif`` (valid observations per pixel) with ``save_masks``.
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
                # a multi-zone run: one raster per UTM zone part, on that zone's grid (water_2019_43N.tif)
                parts = [(name, mask)] if len(mask.zones) == 1 else \
                    [(f"{name}_{z.zone}", type(mask)(mask.label, [z])) for z in mask.zones]
                for part_name, part in parts:
                    write_mask(part, stage / f"{part_name}.tif")
                    write_counts(part, stage / f"{part_name.replace('water_', 'nobs_')}.tif")
        if result.tracking is not None:
            write_tracking(result.tracking, stage)
        write_run_json(dict(result.run), stage / "run.json")
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
