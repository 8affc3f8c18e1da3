#!/usr/bin/env python3
"""Make the small copies of real data in this folder from ``<repo>/../shared/data`` (see README.md).

    .venv/bin/python tests/data/snow_clouds/make_copies.py [--shared PATH]

Needs numpy, xarray with h5netcdf + h5py (the Romania cubes are NetCDF-4/HDF5), rasterio.
The pixel values are copied exactly (integers stay integers); only the containers change.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = (HERE.parents[2] / ".." / "shared" / "data").resolve()

ROMANIA = "s2_l2a_romania_timeseries/sentinel2_cube_subset_romania_20m.nc"
PATAGONIA = "s2_patagonia_no_water/xrspatial_s2_stack_B02_B03_B04_B07_B11_B12_20m.tif"
UKIS = "s2_cloud_labels_ukis/sentinel2.npz"
LICENCES = {
    "s2_l2a_romania_timeseries/LICENSE_nrt": "LICENSE_nrt",
    "s2_patagonia_no_water/LICENSE_xarray-spatial": "LICENSE_xarray-spatial",
    "s2_cloud_labels_ukis/LICENSE_ukis-csmask": "LICENSE_ukis-csmask",
}


def romania_arrays(shared: Path) -> dict[str, np.ndarray]:
    """The 20 m cube as integer arrays: B3, B8A, B11 (uint16 DN) and SCL (uint8), with the time
    stamps, cell-centre coordinates and CRS."""
    import xarray as xr

    ds = xr.open_dataset(shared / ROMANIA, engine="h5netcdf").load()
    out: dict[str, np.ndarray] = {}
    for name, dtype in (("B3", np.uint16), ("B8A", np.uint16), ("B11", np.uint16), ("SCL", np.uint8)):
        a = ds[name].values
        if np.isnan(a).any() or not np.array_equal(a, np.round(a)):
            raise ValueError(f"{name}: expected whole DNs without gaps")
        out[name] = a.astype(dtype)
    out["time"] = ds.time.values.astype("datetime64[D]").astype(str)
    out["x"] = ds.x.values
    out["y"] = ds.y.values
    out["crs"] = np.array("EPSG:3035")
    return out


def ukis_arrays(shared: Path) -> dict[str, np.ndarray]:
    """NIR of the labelled patch as uint16 DN (reflectance x 10000, exact: the float32 values lie on
    the 1e-4 grid to within float32 rounding) and the label mask."""
    d = np.load(shared / UKIS)
    nir = d["img"][..., 3]
    dn = np.round(nir.astype(np.float64) * 10000.0)
    if np.abs(nir * 10000.0 - dn).max() > 0.01:
        raise ValueError("UKIS NIR is not on the 1e-4 reflectance grid")
    return {"nir_dn": dn.astype(np.uint16), "msk": d["msk"][..., 0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    shared = ap.parse_args().shared
    np.savez_compressed(HERE / "romania_20m.npz", **romania_arrays(shared))
    shutil.copyfile(shared / PATAGONIA, HERE / "patagonia_B02_B03_B04_B07_B11_B12_20m.tif")
    np.savez_compressed(HERE / "ukis_sentinel2_nir_labels.npz", **ukis_arrays(shared))
    for src, dst in LICENCES.items():
        shutil.copyfile(shared / src, HERE / "LICENSES" / dst)
    for p in sorted(HERE.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>9}  {p.relative_to(HERE)}")


if __name__ == "__main__":
    main()
