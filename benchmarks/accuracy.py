"""Accuracy of the water classification methods on labelled real scenes, and false lakes on scenes
without water.

Labelled scenes (labels in ``tests/data/accuracy/``, pixels read from ``../shared/data``):

- Havel, Sentinel-2 L1C 2017-02-16 (TOA), split into a west half (``tune``: the only pixels any
  constant of the ``multi`` method was chosen on) and an east half (``held-out``);
- Barbellino reservoir, Sentinel-2 L2A 2017-07-03 and 2019-07-23, with SCL (held-out).

No-water scenes: Romania (L2A time series, 20 m, with SCL; each date, the July-September dates (the
default season), and each calendar year's composite with ``min_water_fraction`` 0.5),
Patagonia (20 m steppe, no SCL), Western Sahara desert (full tile at 200 m, with SCL).

For each method the water map is the seeded growth of the contract: 4-connected groups of ``maybe``
pixels holding at least one ``water`` pixel (for ``threshold`` both are the same). Printed per
scene: IoU, precision, recall over labelled pixels, the median absolute per-lake area error (lakes
of at least 10 labelled pixels; reference area = labelled pixels + half of the unlabelled shore
ring), the number of false objects (predicted water objects of at least 5400 m2 without a labelled
water pixel), and on the no-water scenes the number of false lakes of at least ``min_area_m2`` (5400 m2);
then the share of lakes whose area error lies within the inventory's one-sigma ``area_err``.

Run: ``python benchmarks/accuracy.py [--shared ../shared/data] [--tune]``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from scipy import ndimage as ndi

from gli_toolbox.classify import DEFAULT_RULE, classify_bands
from gli_toolbox.water import to_reflectance

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "tests" / "data" / "accuracy"
FOUR = ndi.generate_binary_structure(2, 1)
MIN_AREA_M2 = 5400.0


def seeded(water: np.ndarray, maybe: np.ndarray) -> np.ndarray:
    """4-connected components of ``maybe`` that contain a ``water`` pixel."""
    if maybe is water:
        return water
    lab, n = ndi.label(maybe, structure=FOUR)
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.unique(lab[water])] = True
    keep[0] = False
    return keep[lab]


def methods(sweep: bool) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = [("threshold ndwi>0.2 (default)", {"method": "threshold", "index": "ndwi", "threshold": 0.2}),
                                   ("multi (default rule)", {"method": "multi"})]
    if sweep:
        for t in np.round(np.arange(-0.1, 0.51, 0.1), 2):
            out.append((f"threshold ndwi>{t:g}", {"method": "threshold", "index": "ndwi", "threshold": float(t)}))
        for t in np.round(np.arange(-0.1, 0.61, 0.1), 2):
            out.append((f"threshold mndwi>{t:g}", {"method": "threshold", "index": "mndwi", "threshold": float(t)}))
        for m in (0.3, 0.4, 0.6):
            out.append((f"multi seed_mndwi={m:g}", {"method": "multi", "rule": dataclasses.replace(DEFAULT_RULE, seed_mndwi=m)}))
        for s in (0.03, 0.08):
            out.append((f"multi seed_max_swir16={s:g}",
                        {"method": "multi", "rule": dataclasses.replace(DEFAULT_RULE, seed_max_swir16=s)}))
        out.append(("multi without growth (seed only)", {"method": "multi", "rule": dataclasses.replace(
            DEFAULT_RULE, grow_mndwi=9.0, grow_ndwi=9.0)}))
    return out


def water_map(bands: dict, scl: np.ndarray | None, kw: dict) -> tuple[np.ndarray, np.ndarray]:
    water, maybe, observed, _ = classify_bands(bands, scl=scl, **kw)
    return seeded(water, maybe), observed


# ---------------------------------------------------------------- labelled scenes
def havel(shared: Path) -> dict:
    d = shared / "s2_l1c_havel_T33UUU_20170216" / "IMG_DATA"
    with rasterio.open(d / "T33UUU_20170216T102101_B03.jp2") as s:
        shape = s.shape
        dn = {"green": s.read(1)}
    for name, b in [("nir", "B08"), ("swir16", "B11")]:
        with rasterio.open(d / f"T33UUU_20170216T102101_{b}.jp2") as s:
            dn[name] = s.read(1, out_shape=shape, resampling=Resampling.nearest)
    bands = {k: to_reflectance(v, scale=1e-4, offset=0.0) for k, v in dn.items()}
    return {"bands": bands, "scl": None, "label": np.load(LABELS / "havel_20170216_labels.npz")["label"]}


def barbellino(shared: Path, date: str) -> dict:
    """The bundled sample item of the date (``sample_data/``, built from the shared sen2r files): SWIR1
    at its real 20 m and SCL at 20 m, both upsampled by nearest neighbour as ``gli detect`` reads them."""
    d = next((ROOT / "sample_data" / "sentinel-2-c1-l2a").glob(f"S2A_T32TNS_{date}T*_L2A"))
    with rasterio.open(d / "B03.tif") as s:
        shape = s.shape
    bands = {}
    for k, f in [("green", "B03"), ("nir", "B08"), ("swir16", "B11")]:
        with rasterio.open(d / f"{f}.tif") as s:
            bands[k] = to_reflectance(s.read(1, out_shape=shape, resampling=Resampling.nearest), scale=1e-4, offset=-0.1)
    with rasterio.open(d / "SCL.tif") as s:
        scl = s.read(1, out_shape=shape, resampling=Resampling.nearest)
    return {"bands": bands, "scl": scl, "label": np.load(LABELS / f"barbellino_{date}_labels.npz")["label"]}


def scores(pred: np.ndarray, label: np.ndarray) -> dict[str, float]:
    lab = label != 255
    truth = label == 1
    tp = int((pred & truth).sum())
    fp = int((pred & lab & ~truth).sum())
    fn = int((~pred & truth).sum())
    iou = tp / max(tp + fp + fn, 1)
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    # per-lake area error
    comp, _n = ndi.label(truth, structure=FOUR)
    errs: list[float] = []
    within: list[bool] = []
    ring_all = label == 255
    for i, sl in enumerate(ndi.find_objects(comp), start=1):
        if sl is None:
            continue
        pad = tuple(slice(max(s.start - 3, 0), s.stop + 3) for s in sl)
        c = comp[pad] == i
        if c.sum() < 10:
            continue
        zone = ndi.binary_dilation(c, iterations=2)
        ring = zone & ring_all[pad] & ~c
        ref = c.sum() + 0.5 * ring.sum()
        got = (pred[pad] & zone & (c | ring)).sum()
        errs.append(abs(got - ref) / ref)
        # area_err of the inventory (Hanshaw & Bookhagen 2014), in pixels: (P/G) * 1/2 * 0.6872, with
        # the perimeter in pixels P/G = half the two-pixel-wide shore ring
        sigma = ring.sum() / 2 * 0.5 * 0.6872
        within.append(abs(got - ref) <= sigma)
    # false objects: predicted water objects of at least min_area_m2 without any labelled water pixel
    # (they may lie on unlabelled pixels: ice-covered or unreviewed ponds, wetland, shadows)
    plab, pn = ndi.label(pred, structure=FOUR)
    psize = np.bincount(plab.ravel(), minlength=pn + 1)
    has_water = np.zeros(pn + 1, dtype=bool)
    has_water[np.unique(plab[truth])] = True
    false_obj = int(((psize * 100.0 >= MIN_AREA_M2) & ~has_water)[1:].sum())
    return {"iou": iou, "precision": prec, "recall": rec,
            "area_err": float(np.median(errs)) if errs else float("nan"), "lakes": len(errs),
            "within_sigma": float(np.mean(within)) if within else float("nan"), "false_objects": false_obj}


# ---------------------------------------------------------------- no-water scenes
def false_lakes(pred: np.ndarray, pixel_m: float) -> int:
    lab, n = ndi.label(pred, structure=FOUR)
    if n == 0:
        return 0
    sizes = np.bincount(lab.ravel())[1:]
    return int((sizes * pixel_m * pixel_m >= MIN_AREA_M2).sum())


def romania(shared: Path) -> dict:
    import h5py

    with h5py.File(shared / "s2_l2a_romania_timeseries" / "sentinel2_cube_subset_romania_20m.nc", "r") as f:
        arr = {k: f[k][...] for k in ("B3", "B8A", "B11", "SCL")}
        time = f["time"][...]
    return {"dn": arr, "time": time}


def patagonia(shared: Path) -> dict:
    with rasterio.open(shared / "s2_patagonia_no_water" / "xrspatial_s2_stack_B02_B03_B04_B07_B11_B12_20m.tif") as s:
        a = s.read()
    return {k: to_reflectance(a[i], scale=1e-4, offset=0.0) for k, i in [("green", 1), ("nir", 3), ("swir16", 4)]}


def desert(shared: Path) -> tuple[dict, np.ndarray]:
    d = shared / "s2_l2a_cog_29RKH_20200219"
    with rasterio.open(d / "B11.tif") as s:
        shape = s.shape
    out = {}
    for k, f in [("green", "B03"), ("nir", "B08"), ("swir16", "B11")]:
        with rasterio.open(d / f"{f}.tif") as s:
            out[k] = to_reflectance(s.read(1, out_shape=shape, resampling=Resampling.average), scale=1e-4, offset=0.0)
    with rasterio.open(d / "SCL.tif") as s:
        scl = s.read(1, out_shape=shape, resampling=Resampling.nearest)
    return out, scl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data",
                    help="the shared data folder (default: <repo>/../shared/data)")
    ap.add_argument("--tune", action="store_true", help="also sweep thresholds and the multi constants")
    args = ap.parse_args()
    shared = args.shared
    if not shared.is_dir():
        raise SystemExit(f"no shared data folder at {shared}; pass --shared PATH")
    hv = havel(shared)
    half = hv["label"].shape[1] // 2
    scenes = {
        "havel-west (tune)": (hv, np.s_[:, :half]),
        "havel-east (held-out)": (hv, np.s_[:, half:]),
        "barbellino-2017 (held-out)": (barbellino(shared, "20170703"), np.s_[:, :]),
        "barbellino-2019 (held-out)": (barbellino(shared, "20190723"), np.s_[:, :]),
    }
    ro = romania(shared)
    pat = patagonia(shared)
    des, des_scl = desert(shared)
    ro_bands = {k: to_reflectance(ro["dn"][b], scale=1e-4, offset=0.0) for k, b in [("green", "B3"), ("nir", "B8A"), ("swir16", "B11")]}
    # time: days since 2015-08-01 (the cube's units)
    days = np.datetime64("2015-08-01") + ro["time"].astype("timedelta64[D]")
    years = days.astype("datetime64[Y]")
    months = (days.astype("datetime64[M]") - years.astype("datetime64[M]")).astype(int) + 1

    sigma_rows = []
    print("| method | " + " | ".join(f"{s} IoU / P / R / area err / false objects" for s in scenes)
          + " | held-out IoU mean / min | false lakes: Romania all 140 dates / Jul-Sep dates / yearly composites; Patagonia; desert |")
    print("|---" * (len(scenes) + 3) + "|")
    for name, kw in methods(args.tune):
        cells = []
        held: list[float] = []
        sigma_cells: list[str] = []
        for key, (sc, sl) in scenes.items():
            pred, _ = water_map(sc["bands"], sc["scl"], kw)
            r = scores(pred[sl], sc["label"][sl])
            cells.append(f"{r['iou']:.3f} / {r['precision']:.2f} / {r['recall']:.2f} / {100 * r['area_err']:.0f} %"
                         f" / {r['false_objects']}")
            sigma_cells.append(f"{r['lakes']} lakes, {100 * r['within_sigma']:.0f} %")
            if "held-out" in key:
                held.append(r["iou"])
        cells.append(f"{np.mean(held):.3f} / {min(held):.3f}")
        # Romania: every date (3-D arrays are per-pixel; seeded growth is per date)
        water, maybe, observed, _ = classify_bands(ro_bands, scl=ro["dn"]["SCL"], **kw)
        per_date_list = [false_lakes(seeded(water[t], maybe[t]), 20.0) for t in range(water.shape[0])]
        per_date = sum(per_date_list)
        summer = sum(n for n, m in zip(per_date_list, months) if 7 <= m <= 9)
        comp = 0
        for y in np.unique(years):
            sel = years == y
            wc = water[sel].sum(0)
            mc = maybe[sel].sum(0)
            oc = observed[sel].sum(0)
            comp += false_lakes(seeded((wc >= 0.5 * oc) & (oc > 0), (mc >= 0.5 * oc) & (oc > 0)), 20.0)
        pw, _ = water_map(pat, None, kw)
        dw, _ = water_map(des, des_scl, kw)
        cells.append(f"{per_date} / {summer} / {comp}, {false_lakes(pw, 20.0)}, {false_lakes(dw, 200.0)}")
        print(f"| {name} | " + " | ".join(cells) + " |")
        sigma_rows.append(f"| {name} | " + " | ".join(sigma_cells) + " |")
    print("\nShare of lakes whose area error is within the inventory's one-sigma area_err (Hanshaw & Bookhagen 2014)")
    print("| method | " + " | ".join(scenes) + " |")
    print("|---" * (len(scenes) + 1) + "|")
    print("\n".join(sigma_rows))


if __name__ == "__main__":
    main()
