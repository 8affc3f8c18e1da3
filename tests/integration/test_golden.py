"""Golden outputs: the files of the sample runs compared with a committed manifest of content digests.

Four runs: on the bundled real sample ``gli detect --aoi sample_data/barbellino.geojson --stac
sample_data/catalog.json --years 2017-2019 --save-masks``, the same with ``--per-scene``, and
``gli track`` on the lake layers of the first; then ``gli track`` on three generated inventories
(a few hundred lakes in two CRSs and formats, with lakes that grow, shrink, appear, vanish, merge and
split; fixed seed). Every output file is reduced to a digest of what a user can observe in it:

* ``run.json``: the JSON with ``created`` and ``software`` (timestamps, versions) removed and the
  run's own folders replaced by placeholders;
* shapefiles and GeoPackage layers: the attribute table (names, dtypes, values) and the geometries
  as WKB, read back with pyogrio (``.dbf`` headers and GeoPackage metadata carry write dates);
* GeoTIFFs: pixels, dtype, CRS, transform, nodata, band descriptions and tags;
* PNG figures: decoded pixels (not the metadata chunk with the matplotlib version);
* ``inventory.qgz``: the names and contents of its members; ``report.html``: its text without the
  run's time stamp and folders;
* everything else (CSV, ``.prj``, ``.cpg``): the raw bytes.

A refactor must keep this test passing. A deliberate change of the outputs regenerates the manifest
(commit it in its own commit that says why the outputs changed)::

    GLI_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/integration/test_golden.py
    # or
    .venv/bin/python tests/integration/test_golden.py --regenerate

The failure message lists the files whose digest changed, appeared or disappeared.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
MANIFEST = ROOT / "tests" / "data" / "golden" / "manifest.json"
VOLATILE_RUN_KEYS = ("created", "software")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _normalize(obj: Any, folders: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        return {k: _normalize(v, folders) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_normalize(v, folders) for v in obj]
    if isinstance(obj, str):
        for path, placeholder in folders.items():
            obj = obj.replace(path, placeholder)
    return obj


def _table_digest(gdf: Any) -> str:
    import shapely

    if "geometry" not in gdf.columns:  # a table without geometry (the GeoPackage's layer_styles)
        table = gdf.drop(columns=[c for c in ("update_time",) if c in gdf.columns])  # a write date
        return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()
    geom = gdf.geometry
    attrs = gdf.drop(columns=geom.name)
    h = hashlib.sha256()
    h.update(repr([(c, str(t)) for c, t in attrs.dtypes.items()]).encode())
    h.update(attrs.to_csv(index=False, float_format="%.17g").encode())
    h.update(str(gdf.crs.to_wkt() if gdf.crs is not None else None).encode())
    for wkb in shapely.to_wkb(geom.values, hex=False):
        h.update(wkb if wkb is not None else b"\0")
    return h.hexdigest()


def file_digests(folder: Path, folders: dict[str, str]) -> dict[str, str]:
    """Digest of each file under ``folder`` (see the module docstring), by relative path."""
    import pyogrio
    import rasterio
    from matplotlib.image import imread

    out: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        suffix = path.suffix.lower()
        if path.name == "run.json":
            doc = json.loads(path.read_text(encoding="utf-8"))
            for k in VOLATILE_RUN_KEYS:
                doc.pop(k, None)
            text = json.dumps(_normalize(doc, folders), sort_keys=True, indent=1)
            out[rel] = _sha(text.encode())
        elif suffix in (".shp", ".dbf", ".shx"):
            if suffix == ".shp":  # the layer as read back stands for .shp, .shx and .dbf
                out[rel] = _table_digest(pyogrio.read_dataframe(path))
        elif suffix == ".gpkg":
            for name, _ in pyogrio.list_layers(path):
                out[f"{rel}:{name}"] = _table_digest(pyogrio.read_dataframe(path, layer=name))
        elif suffix == ".tif":
            with rasterio.open(path) as src:
                h = hashlib.sha256(src.read().tobytes())
                meta = [src.dtypes, src.crs.to_wkt() if src.crs else None, tuple(src.transform), src.nodata,
                        src.descriptions, src.tags(1), src.shape]
                h.update(repr(meta).encode())
            out[rel] = h.hexdigest()
        elif suffix == ".png":
            px = np.ascontiguousarray(imread(path))
            out[rel] = _sha(repr(px.shape).encode() + px.tobytes())
        elif suffix == ".qgz":  # a zip: its members' names and contents (the zip headers carry dates)
            import zipfile

            with zipfile.ZipFile(path) as zf:
                out[rel] = _sha(b"".join(n.encode() + zf.read(n) for n in sorted(zf.namelist())))
        elif suffix == ".html":  # the report: its text without the run's time stamp and folders
            import re

            text = re.sub(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[^<\s]*", "<time>", path.read_text(encoding="utf-8"))
            text = re.sub(r"run of \d{4}-\d{2}-\d{2}", "run of <date>", text)  # the heading's run date
            out[rel] = _sha(str(_normalize(text, folders)).encode())
        else:
            out[rel] = _sha(path.read_bytes())
    return out


def sample_outputs(tmp: Path) -> dict[str, str]:
    """Run the two sample commands into ``tmp`` and return the digests of all their outputs."""
    from click.testing import CliRunner

    from gli_toolbox.cli import cli

    def run(*args: Any) -> None:
        res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output

    det, scn, trk, syn = tmp / "detect", tmp / "scenes", tmp / "track", tmp / "synthetic"
    sample = ("--aoi", SAMPLE / "barbellino.geojson", "--stac", SAMPLE / "catalog.json", "--years", "2017-2019")
    run("detect", *sample, "--save-masks", "--out", det)
    run("detect", *sample, "--per-scene", "--out", scn)
    layers = sorted(det.glob("lakes_2*.shp"))
    assert layers, "the sample run wrote no yearly lake layer"
    run("track", *layers, "--out", trk)
    run("track", *synthetic_inventories(tmp / "inventories"), "--out", syn)
    folders = {str(f): f"<{f.name.upper()}_OUT>" for f in (det, scn, trk, syn)}
    folders.update({str(tmp / "inventories"): "<INVENTORIES>", str(ROOT): "<ROOT>"})
    digests = {}
    for f in (det, scn, trk, syn):
        digests.update({f"{f.name}/{k}": v for k, v in file_digests(f, folders).items()})
    return digests


def synthetic_inventories(folder: Path, n: int = 300) -> list[Path]:
    """Three yearly inventories of about ``n`` generated lakes (fixed seed): 2016 as a shapefile in
    UTM 43N, 2019 as GeoJSON in WGS84, 2022 as a GeoPackage in UTM 43N; lakes grow, shrink, shift,
    vanish, appear, and touching ones merge (dissolve), so tracking meets merges and splits."""
    import geopandas as gpd
    import shapely

    folder.mkdir(parents=True)
    rng = np.random.default_rng(20240607)
    side = 12_000.0
    x = rng.uniform(0, side, n) + 620_000
    y = rng.uniform(0, side, n) + 4_770_000
    r = np.sqrt(rng.lognormal(np.log(0.01e6), 1.0, n) / np.pi)
    paths = []
    for k, (year, ext, crs) in enumerate(((2016, "shp", "EPSG:32643"), (2019, "geojson", "EPSG:4326"),
                                          (2022, "gpkg", "EPSG:32643"))):
        keep = rng.random(n) > 0.05 * k
        grow = 1 + rng.uniform(-0.4, 0.6, n) * k
        dx, dy = rng.uniform(-10, 10, (2, n))
        geoms = shapely.buffer(shapely.points(x + dx, y + dy), r * np.sqrt(grow), quad_segs=6)
        new = rng.integers(0, n, n // 20)
        new_geoms = shapely.buffer(shapely.points(x[new] + 150, y[new] + 150), 60, quad_segs=6)
        g = gpd.GeoDataFrame(geometry=np.concatenate([geoms[keep], new_geoms]), crs="EPSG:32643")
        g = g.dissolve().explode(index_parts=False).reset_index(drop=True)  # touching lakes merge
        g["name"] = [f"lake {i}" for i in range(len(g))]  # a partner's own attribute
        path = folder / f"lakes_{year}.{ext}"
        g.to_crs(crs).to_file(path)
        paths.append(path)
    return paths


def write_manifest(digests: dict[str, str]) -> None:
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def test_sample_outputs_match_golden_manifest(tmp_path):
    digests = sample_outputs(tmp_path)
    if os.environ.get("GLI_REGENERATE_GOLDEN") == "1":
        write_manifest(digests)
        pytest.skip(f"regenerated {MANIFEST.relative_to(ROOT)}; commit it with the reason for the change")
    expected = json.loads(MANIFEST.read_text(encoding="utf-8"))
    changed = sorted(k for k in expected.keys() & digests.keys() if expected[k] != digests[k])
    missing = sorted(expected.keys() - digests.keys())
    extra = sorted(digests.keys() - expected.keys())
    assert not (changed or missing or extra), (
        f"sample outputs differ from {MANIFEST.relative_to(ROOT)}: changed {changed}, no longer written {missing}, "
        f"new {extra}. If the change is deliberate, regenerate (see this module's docstring)"
    )


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--regenerate"]:
        sys.exit(f"usage: {sys.argv[0]} --regenerate")
    with tempfile.TemporaryDirectory() as d:
        write_manifest(sample_outputs(Path(d)))
    print(f"wrote {MANIFEST}")
