"""Write detection results: shapefiles, GeoPackage, water masks and ``run.json``.

Output safety (see docs/outputs.md):

* Outputs are first written to a hidden staging folder and only moved into place when everything
  was written, so a failed, interrupted or killed run leaves nothing half-written behind.
* With ``overwrite``, only files an earlier gli run wrote into that folder (listed, with paths
  relative to the folder, in its ``run.json`` ``"outputs"``) are replaced or removed; stale layers
  and masks of that run do not survive. Every other file (a partner's edited outlines, their own
  ``figures/`` or ``lake_areas.csv``) is never touched; if a new output would replace such a file,
  the run is refused with its name.
* The swap is journalled: a run killed in the middle of it (SIGKILL, power cut) is rolled back by
  the next run into that folder, which also removes the staging leftovers of killed runs.
* One run at a time per folder: a lock (``fcntl.flock``, dropped by the OS when the process ends,
  even when killed) refuses a second run into the same ``--out``.
* A full disk stops the run with one line; earlier outputs are intact.
"""

from __future__ import annotations

import atexit
import datetime as dt
import errno
import fcntl
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
import pandas as pd
import rasterio

from .errors import OutputError, OutputExistsError, OutputLockedError, redact
from .schema import field_spec, real_digits
from .styles import WATER_CLASSES, count_style, style_for_layer, to_qml, water_style

if TYPE_CHECKING:
    import pyarrow as pa

    from .results import DetectResult, WaterMap
    from .tracking import TrackResult

logger = logging.getLogger(__name__)

__all__ = [
    "SHAPEFILE_SIDECARS", "check_output_dir", "lakes_all", "layer_table", "lock_output_dir", "recover_output_dir",
    "release_locks", "staged_output", "store_gpkg_style", "write_counts", "write_lakes_all", "write_layer", "write_mask",
    "write_outputs", "write_run_json", "write_track_outputs", "write_tracking",
]

SHAPEFILE_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")

#: Hidden names gli uses inside an existing output folder while replacing its outputs.
PARTIAL_PREFIX = ".gli-partial-"
BACKUP_PREFIX = ".gli-old-"
JOURNAL = "journal.json"


def _abs(out: str | Path) -> Path:
    """``out`` as an absolute path (``--out .`` has a name and a parent)."""
    return Path(os.path.abspath(Path(out).expanduser()))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _no_space(exc: BaseException, folder: Path) -> bool:
    """True when a write failed because the file system is full (also SQLite's and GDAL's words for it)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    if any(k in text for k in ("No space left", "disk is full", "Disk quota exceeded", "ENOSPC")):
        return True
    try:
        return shutil.disk_usage(folder).free < 1024 * 1024
    except OSError:
        return False


def check_output_dir(out: str | Path, *, overwrite: bool) -> None:
    """Refuse an existing, non-empty output folder unless ``overwrite``, a place that cannot be
    written, and a folder another run is writing into, before any work is done.

    Also cleans up after a killed earlier run into ``out`` (see :func:`recover_output_dir`).
    """
    out = _abs(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder path")
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"--out {out}: {ancestor} is a file, not a folder; choose another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: cannot write in {ancestor}; choose a folder you can write to")
    if out.parent.is_dir():
        lock_output_dir(out)  # held until the process ends: a second run into `out` is refused now
        recover_output_dir(out)
    if out.exists():
        visible = [p for p in out.iterdir() if not p.name.startswith((PARTIAL_PREFIX, BACKUP_PREFIX))]
        if visible and not overwrite:
            raise OutputExistsError(f"output folder {out} already exists; choose another --out or add --overwrite")
        if overwrite and not os.access(out, os.W_OK | os.X_OK):
            raise OutputError(f"--out {out}: cannot write in it; choose a folder you can write to")


# --------------------------------------------------------------------------------------------------
# One run at a time per folder

_HELD: dict[Path, tuple[int, bool]] = {}


def release_locks() -> None:
    """Release every output-folder lock this process holds (the CLI does at the end of a command)."""
    for out in list(_HELD):
        unlock_output_dir(out)


atexit.register(release_locks)


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.gli-lock"


def lock_output_dir(out: str | Path) -> None:
    """Hold an exclusive lock on ``out`` until this process ends (or :func:`unlock_output_dir`).

    The lock is ``flock`` on ``.<name>.gli-lock`` beside the folder (on the folder itself when its
    parent cannot be written, e.g. ``--out .``); the OS drops it when the process ends, even when
    killed, so a stale lock never blocks a later run.

    Raises
    ------
    OutputLockedError
        Another process holds the lock.
    """
    out = _abs(out)
    if out in _HELD:
        return
    target = _lock_path(out)
    use_dir = not os.access(out.parent, os.W_OK | os.X_OK)
    if use_dir and not out.is_dir():
        return  # cannot be created anyway; check_output_dir says so
    for _ in range(5):
        fd = os.open(out, os.O_RDONLY) if use_dir else os.open(target, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            if not use_dir:
                try:
                    holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                except OSError:
                    holder = ""
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                who = f" (process {holder})" if holder.isdigit() else ""
                raise OutputLockedError(
                    f"another gli run{who} is writing into {out}; wait until it has finished, or choose another --out"
                ) from None
            raise OutputError(f"--out {out}: cannot lock it ({exc.strerror}); choose another --out") from None
        if use_dir:
            break
        try:  # the lock file may have been removed by a run that just finished: lock the current one
            same = os.path.samestat(os.fstat(fd), os.stat(target))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            break
        os.close(fd)
    else:  # pragma: no cover - five races in a row
        raise OutputLockedError(f"--out {out} is being locked and unlocked by other runs; try again")
    _HELD[out] = (fd, use_dir)


def unlock_output_dir(out: str | Path) -> None:
    """Release the lock of :func:`lock_output_dir` (and remove the lock file)."""
    out = _abs(out)
    held = _HELD.pop(out, None)
    if held is None:
        return
    fd, use_dir = held
    try:
        if not use_dir:  # unlink first: a run waiting on this file sees it gone and locks a new one
            _lock_path(out).unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Leftovers of killed runs


def recover_output_dir(out: str | Path) -> list[str]:
    """Finish or roll back what a killed run left in ``out``; returns what was done (also logged).

    * ``.gli-partial-*``: staging folders (only new outputs, never moved in): removed.
    * ``.gli-old-*`` with a journal saying the swap was under way: the new files that were moved
      in are removed and the previous outputs put back, so the folder is as before that run.
    * ``.gli-old-*`` whose journal says the swap was done: removed (the previous outputs).
    * ``.<name>.partial-*`` beside the folder (older gli versions): removed; their
      ``.<name>.old-*`` (previous outputs) are reported, not deleted.

    Call with the lock held (:func:`check_output_dir` does).
    """
    out = _abs(out)
    done: list[str] = []
    for stage in sorted(out.parent.glob(f".{out.name}.partial-*")):
        shutil.rmtree(stage, ignore_errors=True)
        done.append(f"removed the unfinished outputs of a killed run ({stage})")
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):
        done.append(f"{old} holds outputs an older gli version set aside before it was killed; "
                    "check them and delete the folder")
    for line in done:
        logger.warning("%s: %s", out, line)
    n_parent = len(done)
    if not out.is_dir():
        return done
    for backup in sorted(out.glob(BACKUP_PREFIX + "*")):
        journal = _read_journal(backup)
        if journal is not None and journal.get("state") == "swapping":
            stage = out / str(journal.get("stage", ""))
            for rel in journal.get("new", []):
                staged, placed = stage / rel, out / rel
                if not staged.exists() and placed.exists():
                    placed.unlink()  # this file had been moved in by the killed run
            for rel in _files_under(backup, skip=JOURNAL):
                dest = out / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(backup / rel, dest)
            _prune_empty_dirs(out, journal.get("new", []))
            done.append(f"rolled back the outputs of a run that was killed while replacing them ({backup.name})")
        shutil.rmtree(backup, ignore_errors=True)
        if journal is None or journal.get("state") != "swapping":
            done.append(f"removed the previous outputs kept aside by a finished run ({backup.name})")
    for stage in sorted(out.glob(PARTIAL_PREFIX + "*")):
        shutil.rmtree(stage, ignore_errors=True)
        done.append(f"removed the unfinished outputs of a killed run ({stage.name})")
    for line in done[n_parent:]:
        logger.warning("%s: %s", out, line)
    return done


def _read_journal(backup: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((backup / JOURNAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_journal(backup: Path, doc: Mapping[str, Any]) -> None:
    """Write the journal durably (fsync) and atomically (rename)."""
    tmp = backup / (JOURNAL + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, backup / JOURNAL)
    _fsync_dir(backup)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _files_under(folder: Path, *, skip: str = "") -> list[str]:
    """Relative POSIX paths of the files below ``folder``."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.name != skip)


def _prune_empty_dirs(out: Path, rels: list[str]) -> None:
    for rel in sorted({str(Path(r).parent) for r in rels if "/" in r}, key=len, reverse=True):
        d = out / rel
        try:
            d.rmdir()  # only when empty: a user's files keep their folder
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------
# Staging and swapping


def _previous_outputs(out: Path) -> tuple[set[str], set[str]]:
    """Files an earlier gli run wrote into ``out`` (from its run.json), as relative paths; and the
    folder names an older gli version listed without their files (e.g. ``figures``)."""
    try:
        doc = json.loads((out / "run.json").read_text(encoding="utf-8"))
        names = doc.get("outputs", [])
    except (OSError, ValueError, AttributeError):
        return set(), set()
    files: set[str] = set()
    folders: set[str] = set()
    for n in names if isinstance(names, list) else []:
        if not isinstance(n, str) or n in ("", ".", "..") or n.startswith("/") or ".." in Path(n).parts:
            continue
        (folders if (out / n).is_dir() else files).add(Path(n).as_posix())
    if (out / "run.json").exists():
        files.add("run.json")
    return files, folders


_WRITING = 0


def writing_outputs() -> bool:
    """True while outputs are being written or moved into place (a stop signal then waits)."""
    return _WRITING > 0


@contextmanager
def staged_output(out: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a staging folder; when the block succeeds, put its content in ``out``.

    A new folder is renamed into place in one step. With ``overwrite``, the files of the earlier
    gli run (listed in its ``run.json``) are moved aside, the new ones moved in, then the old ones
    deleted, under a journal: if anything fails, is interrupted or killed, the old files are put
    back (by this run, or by the next run into ``out``). Files gli did not write are never touched;
    a new output that would replace one stops the run (:class:`OutputExistsError`, naming it).
    New folders get the permissions of the user's umask.

    Raises
    ------
    OutputError
        The folder cannot be written, the disk is full (``no space left in ...``), or another run
        holds it (:class:`~gli_toolbox.errors.OutputLockedError`).
    """
    global _WRITING
    out = _abs(out)
    held_before = out in _HELD  # the CLI locks at its start and keeps the lock to the end
    check_output_dir(out, overwrite=overwrite)
    _WRITING += 1
    try:
        with _staged(out, overwrite=overwrite, held_before=held_before) as stage:
            yield stage
    finally:
        _WRITING -= 1


@contextmanager
def _staged(out: Path, *, overwrite: bool, held_before: bool) -> Iterator[Path]:
    existed = out.is_dir()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        lock_output_dir(out)
        stage = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX if existed else f".{out.name}.partial-",
                                      dir=out if existed else out.parent))
        os.chmod(stage, 0o777 & ~_umask())
    except OSError as exc:
        if _no_space(exc, out.parent):
            raise OutputError(f"no space left in {out.parent}; free some space or choose another --out") from None
        raise OutputError(f"--out {out}: cannot create it ({exc.strerror or exc}); choose another --out") from None
    try:
        try:
            yield stage
        except OutputError:
            raise
        except Exception as exc:
            if _no_space(exc, stage):
                raise OutputError(
                    f"no space left in {out if existed else out.parent} while writing the outputs; free some space "
                    f"or choose another --out (nothing in {out} was changed)"
                ) from None
            raise
        try:
            if not out.exists():
                os.replace(stage, out)
                return
            _swap_into(stage, out)
        except OSError as exc:
            if _no_space(exc, out):
                raise OutputError(f"no space left in {out}; free some space or choose another --out "
                                  f"(nothing in {out} was changed)") from None
            raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not held_before:
            unlock_output_dir(out)


def _swap_into(stage: Path, out: Path) -> None:
    new = _files_under(stage)
    previous, legacy_folders = _previous_outputs(out)
    # a new output may replace a file gli wrote, never a user's own file
    for rel in new:
        target = out / rel
        ours = rel in previous or any(rel.startswith(f + "/") for f in legacy_folders)
        if (target.exists() or target.is_symlink()) and not ours:
            raise OutputExistsError(
                f"{target} was not written by gli (not listed in {out / 'run.json'}) and this run would replace it; "
                "move or rename it, or choose another --out. Nothing in the folder was changed"
            )
        if target.is_dir() and not target.is_symlink():
            raise OutputExistsError(f"{target} is a folder where gli writes a file; move it or choose another --out")
    # every file of the earlier run goes (no stale layers or masks), and what the new run replaces
    replaced = {r for r in new if (out / r).exists() or (out / r).is_symlink()}
    old = sorted(r for r in previous | replaced if (out / r).is_file() or (out / r).is_symlink())
    backup = Path(tempfile.mkdtemp(prefix=BACKUP_PREFIX, dir=out))
    journal = {"state": "swapping", "stage": stage.name, "old": old, "new": new}
    _write_journal(backup, journal)
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for rel in old:
            (backup / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(out / rel, backup / rel)
            moved_aside.append(rel)
        for rel in new:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)
            moved_in.append(rel)
        _fsync_dir(out)
        _write_journal(backup, {**journal, "state": "done"})
    except BaseException:
        for rel in moved_in:  # roll back: the folder is as it was before this run
            (out / rel).unlink(missing_ok=True)
        for rel in moved_aside:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(backup / rel, out / rel)
        _prune_empty_dirs(out, [r for r in new if r not in moved_aside])
        shutil.rmtree(backup, ignore_errors=True)
        raise
    _prune_empty_dirs(out, [r for r in old if r not in new])
    shutil.rmtree(backup, ignore_errors=True)


def _arrow_column(name: str, s: pd.Series) -> tuple[pa.Array, pa.Field]:
    """One attribute column with the OGR field definition that fits it (see :mod:`.schema`)."""
    import pyarrow as pa

    spec = field_spec(name)
    md: dict[bytes, bytes] = {}
    if spec is not None:
        md[b"GDAL:OGR:alternative_name"] = spec.alias.encode()
        md[b"GDAL:OGR:comment"] = spec.full_description.encode()
    kind = spec.kind if spec is not None else None
    if kind is None:
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
            arr = pa.array(s, from_pandas=True)
            return arr, pa.field(name, arr.type, metadata=md or None)
        kind = "str"
    if kind == "real":
        v = np.round(pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64), spec.decimals)  # type: ignore[union-attr]
        bad = ~np.isfinite(v)
        top = float(np.abs(v[~bad]).max()) if (~bad).any() else 0.0
        digits = real_digits(top, minimum=spec.width)  # type: ignore[union-attr]
        dtype = pa.decimal128(digits + spec.decimals, spec.decimals)  # type: ignore[union-attr]
        arr = pa.array(np.where(bad, 0.0, v), mask=bad).cast(dtype)  # GDAL: Real(width, decimals)
        return arr, pa.field(name, dtype, metadata=md)
    if kind == "int":
        v = pd.to_numeric(s, errors="coerce").astype("Int64")
        arr = pa.array(v, from_pandas=True, type=pa.int64())
        top = int(np.abs(v.dropna().to_numpy(dtype=np.int64)).max()) if v.notna().any() else 0
        if top < 2**31:
            arr = arr.cast(pa.int32())
        md[b"GDAL:OGR:width"] = str(max(spec.width, len(str(top)) + (1 if (v < 0).any() else 0))).encode()  # type: ignore[union-attr]
        return arr, pa.field(name, arr.type, metadata=md)
    if kind == "date":
        d = pd.to_datetime(s, errors="coerce")
        arr = pa.array(d.dt.date, from_pandas=True, type=pa.date32())
        return arr, pa.field(name, pa.date32(), metadata=md or None)
    text = s.astype(object).where(s.notna(), None)
    values = [None if x is None else str(x) for x in text]
    nbytes = max((len(x.encode("utf-8")) for x in values if x is not None), default=1)
    width = min(254, max(spec.width if spec is not None else 1, nbytes))
    md[b"GDAL:OGR:width"] = str(width).encode()
    arr = pa.array(values, type=pa.string())
    return arr, pa.field(name, pa.string(), metadata=md)


def layer_table(gdf: gpd.GeoDataFrame) -> pa.Table:
    """Attributes with fitted OGR field definitions, aliases and descriptions, plus WKB geometry:
    what :func:`pyogrio.write_arrow` turns into shapefile/GeoPackage fields."""
    import pyarrow as pa
    import shapely

    arrays, fields = [], []
    for name in gdf.columns:
        if name == gdf.geometry.name:
            continue
        arr, field = _arrow_column(str(name), gdf[name])
        arrays.append(arr)
        fields.append(field)
    geoms = gdf.geometry.values
    if len(gdf) and set(gdf.geom_type) - {"Polygon"}:  # one type per layer: promote polygons
        geoms = np.array([shapely.MultiPolygon([g]) if g is not None and g.geom_type == "Polygon" else g
                          for g in geoms], dtype=object)
    arrays.append(pa.array(shapely.to_wkb(geoms), type=pa.binary()))
    fields.append(pa.field("geometry", pa.binary(), metadata={b"ARROW:extension:name": b"geoarrow.wkb"}))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _geometry_type(gdf: gpd.GeoDataFrame) -> str:
    if len(gdf) and set(gdf.geom_type) - {"Polygon"}:
        return "MultiPolygon"  # unions over years and edited outlines can be multi-part
    return "Polygon"


#: GeoPackage 1.2: read without warnings by the GDAL of QGIS 3.22 LTR (GDAL 3.6 warns on 1.4)
_GPKG_OPTIONS = {"VERSION": "1.2"}


def write_layer(gdf: gpd.GeoDataFrame, folder: Path, name: str, *, gpkg: Path | None = None,
                shapefile: bool = True) -> None:
    """Write one lake layer as ``<name>.shp`` (UTF-8 ``.cpg``, ``.prj``) with its QGIS style
    ``<name>.qml``, and into ``gpkg`` with the same style as the layer's default.

    Field widths and decimals fit the values and every known field gets an alias with its unit
    and a description (:mod:`gli_toolbox.schema`): shapefiles hold the widths, the GeoPackage the
    aliases and descriptions (``gpkg_data_columns``), the style the aliases for QGIS.
    """
    import pyogrio

    table = layer_table(gdf)
    crs = gdf.crs.to_wkt() if gdf.crs is not None else None
    kw: dict[str, Any] = {"geometry_name": "geometry", "geometry_type": _geometry_type(gdf), "crs": crs}
    fields = [str(c) for c in gdf.columns if c != gdf.geometry.name]
    statuses = sorted({str(x) for x in gdf["status"].dropna()}) if "status" in gdf.columns else []
    qml = to_qml(style_for_layer(name, fields, statuses=statuses))
    if shapefile:
        pyogrio.write_arrow(table, folder / f"{name}.shp", driver="ESRI Shapefile", encoding="UTF-8", **kw)
        (folder / f"{name}.qml").write_text(qml, encoding="utf-8")
    if gpkg is not None:
        lower = {f.lower() for f in fields}
        fid = next(c for c in ("fid", "gpkg_fid", "gli_fid") if c not in lower)  # a partner's FID stays a field
        pyogrio.write_arrow(table, gpkg, layer=name, driver="GPKG", layer_options={"GEOMETRY_NAME": "geom", "FID": fid},
                            dataset_options=_GPKG_OPTIONS, **kw)
        store_gpkg_style(gpkg, name, qml)


def store_gpkg_style(gpkg: Path, layer: str, qml: str, *, geometry_column: str = "geom") -> None:
    """Store ``qml`` as the default QGIS style of ``layer`` in the GeoPackage's ``layer_styles``
    table (the table QGIS itself uses; QGIS applies the default style when it opens the layer)."""
    import pyogrio

    row = pd.DataFrame({
        "f_table_catalog": [""], "f_table_schema": [""], "f_table_name": [layer], "f_geometry_column": [geometry_column],
        "styleName": [layer], "styleQML": [qml], "styleSLD": [""], "useAsDefault": [True],
        "description": [f"gli-toolbox style of {layer}"], "owner": [""], "ui": [""],
        "update_time": [pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")],
    })
    exists = "layer_styles" in {str(n) for n in pyogrio.list_layers(gpkg)[:, 0]}
    pyogrio.write_dataframe(row, gpkg, layer="layer_styles", driver="GPKG", append=exists,
                            layer_options=None if exists else {"FID": "id"}, dataset_options=_GPKG_OPTIONS)


def write_mask(mask: WaterMap, path: Path) -> None:
    """Write a water class raster: uint8, 1 water, 0 not water, 255 never validly observed (nodata),
    with a colour table (any GIS shows the classes) and the QGIS style ``<name>.qml`` beside it."""
    h, w = mask.water_class.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "uint8", "crs": mask.crs,
        "transform": mask.transform, "nodata": 255, "compress": "deflate", "tiled": w >= 256 and h >= 256,
        "photometric": "palette",
    }
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    colours = {v: tuple(int(c.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)) + (255,) for v, (c, _) in WATER_CLASSES.items()}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask.water_class, 1)
        dst.write_colormap(1, colours)
        dst.set_band_description(1, f"water classes {mask.label}")
        dst.update_tags(1, VALUES="1=water;0=not water;255=never validly observed")
    path.with_suffix(".qml").write_text(to_qml(water_style()), encoding="utf-8")


def write_counts(mask: WaterMap, path: Path) -> None:
    """Write the number of valid (clear, snow-free) observations per pixel: uint16 GeoTIFF, with
    its graduated QGIS style ``<name>.qml`` beside it."""
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
    path.with_suffix(".qml").write_text(to_qml(count_style()), encoding="utf-8")


def _period_dates(label: str, months: tuple[int, int] | None) -> tuple[dt.date, dt.date]:
    """First and last day of a period: the acquisition date, or the season (whole year if unknown)."""
    if len(label) == 8:
        d = dt.date(int(label[:4]), int(label[4:6]), int(label[6:]))
        return d, d
    y = int(label)
    m1, m2 = months or (1, 12)
    end = dt.date(y + 1, 1, 1) if m2 == 12 else dt.date(y, m2 + 1, 1)
    return dt.date(y, m1, 1), end - dt.timedelta(days=1)


def lakes_all(layers: Mapping[str, gpd.GeoDataFrame], *, months: tuple[int, int] | None = None) -> gpd.GeoDataFrame:
    """All periods in one layer for QGIS's temporal controller: each period's lakes with ``period``
    (label), ``date`` and ``date_end`` (first and last day of the season, or the acquisition date).

    ``layers`` maps period labels (``"2019"`` or ``"20190723"``) to lake layers in one CRS.
    """
    parts = []
    crs = None
    for label in sorted(layers, key=lambda k: (str(k)[:4], str(k))):
        g = layers[label]
        crs = crs or g.crs
        start, end = _period_dates(str(label), months)
        g = g.drop(columns=[c for c in ("period", "date", "date_end") if c in g.columns])
        cols = [c for c in g.columns if c != g.geometry.name]
        at = cols.index("year") + 1 if "year" in cols else 1
        g = g.copy()
        g.insert(at, "period", str(label))
        g.insert(at + 1, "date", pd.Timestamp(start))
        g.insert(at + 2, "date_end", pd.Timestamp(end))
        parts.append(g)
    if not parts:
        raise ValueError("lakes_all needs at least one period")
    out = pd.concat(parts, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry=parts[0].geometry.name, crs=crs)


def write_lakes_all(layers: Mapping[str, gpd.GeoDataFrame], gpkg: Path, *, months: tuple[int, int] | None = None) -> None:
    """Write :func:`lakes_all` into ``gpkg`` with its temporal style as default (no shapefile)."""
    if layers:
        write_layer(lakes_all(layers, months=months), gpkg.parent, "lakes_all", gpkg=gpkg, shapefile=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


def write_run_json(run: Mapping[str, Any], path: Path) -> None:
    """Write ``run.json`` last in its folder, listing every output file with its path relative to
    the folder (``figures/total_area.png``), so that ``--overwrite`` knows what gli wrote.
    Credentials (signed URL query strings, keys) are removed from the whole record."""
    doc = dict(run)
    doc["outputs"] = sorted(set(_files_under(path.parent)) | {path.name})
    text = json.dumps(doc, indent=2, default=_json_default) + "\n"
    path.write_text(redact(text), encoding="utf-8")


def write_outputs(result: DetectResult, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write all outputs of a detection run into ``out`` and return the written paths.

    Yearly mode: ``lakes_<YEAR>.shp``; with ``per_scene``: ``lakes_<YYYYMMDD>.shp`` instead.
    Always ``inventory.gpkg`` (same layers, plus ``lake_changes`` and ``lakes_all``), a ``.qml``
    style beside every layer, the QGIS project ``inventory.qgz`` and ``run.json``;
    ``water_<YEAR|YYYYMMDD>.tif`` and ``nobs_<YEAR|YYYYMMDD>.tif`` (valid observations per pixel)
    with ``save_masks``.
    """
    from .qgis_project import write_project

    cfg = result.config
    if cfg.per_scene:
        periods = {str(k): v for k, v in result.scene_lakes.items()}
        masks = {f"water_{k}": v for k, v in result.scene_masks.items()}
    else:
        periods = {str(y): v for y, v in result.lakes.items()}
        masks = {f"water_{y}": v for y, v in result.masks.items()}
    with staged_output(out, overwrite=overwrite) as stage:
        gpkg = stage / "inventory.gpkg"
        for label, gdf in periods.items():
            write_layer(gdf, stage, f"lakes_{label}", gpkg=gpkg)
        if cfg.save_masks:
            for name, mask in masks.items():
                # a multi-zone run: one raster per UTM zone part, on that zone's grid (water_2019_43N.tif)
                parts = [(name, mask)] if len(mask.zones) == 1 else \
                    [(f"{name}_{z.zone}", type(mask)(mask.label, [z])) for z in mask.zones]
                for part_name, part in parts:
                    write_mask(part, stage / f"{part_name}.tif")
                    write_counts(part, stage / f"{part_name.replace('water_', 'nobs_')}.tif")
        requested = None if cfg.per_scene else list(cfg.years)
        if result.tracking is not None:
            write_tracking(result.tracking, stage, run=result.run, periods=requested, gpkg=gpkg, qgis=False)
        else:
            from .report import write_report

            write_report(stage / "report.html", result.run, layers=result.scene_lakes if cfg.per_scene else result.lakes)
        write_lakes_all(periods, gpkg, months=None if cfg.per_scene else tuple(cfg.months))  # type: ignore[arg-type]
        write_project(stage)
        write_run_json(dict(result.run), stage / "run.json")
        names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    return [Path(out) / n for n in names]


def write_tracking(tr: TrackResult, folder: Path, *, run: Mapping[str, Any] | None = None,
                   periods: list[Any] | None = None, gpkg: Path | None = None, qgis: bool = True) -> None:
    """Write ``lake_changes.shp`` / ``.csv`` (and the layer into ``inventory.gpkg``),
    ``lake_areas.csv``, ``lake_pairs.csv``, ``lake_events.csv``, ``figures/*.png`` and
    ``report.html`` (from ``run``, the run record) for a tracking result; ``periods`` are the
    periods asked for (gaps are shown in the figures).

    ``gpkg`` defaults to ``folder/inventory.gpkg``. With ``qgis`` (as ``gli track`` does, after
    writing the per-period layers) also ``lakes_all`` and the QGIS project ``inventory.qgz``.
    """
    from .figures import write_figures
    from .qgis_project import write_project
    from .report import run_area_name, write_report

    gpkg = gpkg if gpkg is not None else folder / "inventory.gpkg"
    changes = tr.changes
    write_layer(changes, folder, "lake_changes", gpkg=gpkg)
    changes.drop(columns=changes.geometry.name).to_csv(folder / "lake_changes.csv", index=False, float_format="%.6f")
    tr.areas.to_csv(folder / "lake_areas.csv", index=False, float_format="%.6f")
    tr.pairs.to_csv(folder / "lake_pairs.csv", index=False, float_format="%.6f")
    tr.events.to_csv(folder / "lake_events.csv", index=False)
    name = run_area_name(run or {})
    write_figures(tr, folder / "figures", area_name=name, periods=periods)
    write_report(folder / "report.html", run or {"command": "track"}, layers=tr.layers, tracking=tr, area_name=name)
    if qgis:
        write_lakes_all({str(p): g for p, g in tr.layers.items()}, gpkg)
        write_project(folder)


def write_track_outputs(result: TrackResult, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write the outputs of :func:`gli_toolbox.track_inventories` into ``out``; return the written paths.

    ``lakes_<YEAR|YYYYMMDD>.shp`` (and the same layers in ``inventory.gpkg``) with the stable
    ``lake_id``, the tracking files of :func:`write_tracking` and ``run.json`` (``result.run``).
    """
    from .records import TrackRecord

    run = result.run if result.run is not None else TrackRecord(periods=[str(p) for p in result.periods])
    with staged_output(out, overwrite=overwrite) as stage:
        gpkg = stage / "inventory.gpkg"
        for period, gdf in result.layers.items():
            write_layer(gdf.sort_values("lake_id").reset_index(drop=True), stage, f"lakes_{period}", gpkg=gpkg)
        write_tracking(result, stage, run=run.to_dict(), gpkg=gpkg)
        write_run_json(run.to_dict(), stage / "run.json")
        names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    return [Path(out) / n for n in names]
