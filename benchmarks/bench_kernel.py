"""Water kernel against a plain numpy copy of the same bytes (issue 12, benchmark 4; target <= 3x).

The kernel is what the engine runs per chunk and date: digital numbers to reflectance (green, NIR,
SWIR1), scene classification and extra mask, the index test, snow/ice, and the per-pixel counts
(water, maybe, observed, snow). Inputs are real Sentinel-2 pixels (the bundled Havel L1C bands and
the Barbellino SCL) tiled to a ``--px`` square (10980 = one full tile; default 4096 so that the
previous code fits next to the new one on a shared machine).

Printed, measured side by side in one run (best of ``--repeat``):

- floor: ``np.copyto`` of the same input bytes (3 x uint16 + uint8 SCL);
- previous: the full-array code this project used before (``np.isin`` on SCL twice, full-size
  temporaries), kept verbatim below as the reference;
- new: :func:`gli_toolbox.classify.count_observations` for ``threshold`` and ``multi``;

each as a ratio to the floor, plus the peak of extra traced memory per pixel (tracemalloc).

Run: ``python benchmarks/bench_kernel.py [--px 4096] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
import rasterio

from gli_toolbox.classify import count_observations

ROOT = Path(__file__).resolve().parents[1]


def _tile(a: np.ndarray, px: int) -> np.ndarray:
    reps = (-(-px // a.shape[0]), -(-px // a.shape[1]))
    return np.ascontiguousarray(np.tile(a, reps)[:px, :px])


def inputs(px: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    havel = ROOT / "sample_data" / "sentinel-2-l1c" / "S2A_33UUU_20170216_0_L1C"
    dn = {}
    for k, f in [("green", "B03"), ("nir", "B08"), ("swir16", "B11")]:
        with rasterio.open(havel / f"{f}.tif") as s:
            dn[k] = _tile(s.read(1, out_shape=(s.height * (2 if f == "B11" else 1), s.width * (2 if f == "B11" else 1))), px)
    barb = next((ROOT / "sample_data" / "sentinel-2-c1-l2a").glob("S2A_T32TNS_2017*_L2A"))
    with rasterio.open(barb / "SCL.tif") as s:
        scl = _tile(np.repeat(np.repeat(s.read(1), 2, 0), 2, 1), px)
    masked = np.zeros((px, px), dtype=bool)
    masked[: px // 10] = True
    return dn, scl, masked


# ---- the previous full-array kernel (verbatim logic of gli_toolbox.water before the blockwise rewrite)
def _prev_refl(dn: np.ndarray) -> np.ndarray:
    out = dn.astype(np.float32)
    out += np.float32(0.0)
    out /= np.float32(1.0 / 1e-4)
    out[(dn == 0) | (dn == 65535)] = np.nan
    return out


def _prev_nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a32, b32 = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    num, den = a32 - b32, a32 + b32
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den == 0, np.float32(1), den), np.float32(np.nan)).astype(np.float32)


def previous(dn: dict, scl: np.ndarray, masked: np.ndarray, counts: list[np.ndarray]) -> None:
    g, n, s = (_prev_refl(dn[k]) for k in ("green", "nir", "swir16"))
    clear = np.isfinite(g) & np.isfinite(n)
    clear &= ~np.isin(scl, (0, 1, 3, 8, 9, 10))
    clear &= ~masked
    snow = np.zeros_like(clear)
    snow |= scl == 11
    with np.errstate(invalid="ignore"):
        snow |= (_prev_nd(g, s) > 0.4) & (n > 0.11)
    snow &= clear
    idx = _prev_nd(np.maximum(g, 1e-4), np.maximum(n, 1e-4))
    observed = clear & ~snow & np.isfinite(idx)
    with np.errstate(invalid="ignore"):
        water = observed & (idx > 0.2)
    # the engine also masks with np.isin(scl, ...) once more in load.read_day (valid = scl_valid(scl))
    observed &= ~np.isin(scl, (0, 1, 3, 8, 9, 10))
    counts[0] += water
    counts[1] += water
    counts[2] += observed
    counts[3] += snow


def floor(dn: dict, scl: np.ndarray, out: dict) -> None:
    for k, v in dn.items():
        np.copyto(out[k], v)
    np.copyto(out["scl"], scl)


def best(fn, repeat: int) -> tuple[float, float]:
    times, peak = [], 0
    for _ in range(repeat):
        tracemalloc.start()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return min(times), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--px", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-previous", action="store_true",
                    help="do not run the previous code (its 39 B/px of temporaries do not fit a full tile here)")
    args = ap.parse_args()
    dn, scl, masked = inputs(args.px)
    npx = args.px * args.px
    out = {k: np.empty_like(v) for k, v in dn.items()} | {"scl": np.empty_like(scl)}
    counts = [] if args.skip_previous else [np.zeros((args.px, args.px), np.uint8) for _ in range(4)]
    shared = None if not args.skip_previous else [np.zeros((args.px, args.px), np.uint8) for _ in range(4)]
    new_counts = {m: shared or [np.zeros((args.px, args.px), np.uint8) for _ in range(4)] for m in ("threshold", "multi")}

    def run_new(method: str) -> None:
        c = new_counts[method]
        count_observations(dn, scale=1e-4, offset=0.0, nodata=0, scl=scl, masked=masked, method=method,
                           threshold=0.2, index="ndwi", water_count=c[0], maybe_count=c[1], valid_count=c[2],
                           snow_count=c[3])

    # compile the Numba kernels before measuring (cached on disk for later runs)
    for m in ("threshold", "multi"):
        count_observations({k: v[:8, :8] for k, v in dn.items()}, scale=1e-4, offset=0.0, scl=scl[:8, :8],
                           masked=masked[:8, :8], method=m, water_count=np.zeros((8, 8), np.uint16),
                           maybe_count=np.zeros((8, 8), np.uint16), valid_count=np.zeros((8, 8), np.uint16),
                           snow_count=np.zeros((8, 8), np.uint16))
    t_floor, m_floor = best(lambda: floor(dn, scl, out), args.repeat)
    t_prev, m_prev = (float("nan"), 0) if args.skip_previous else best(lambda: previous(dn, scl, masked, counts),
                                                                       args.repeat)
    t_thr, m_thr = best(lambda: run_new("threshold"), args.repeat)
    t_multi, m_multi = best(lambda: run_new("multi"), args.repeat)
    same = None if args.skip_previous else all(np.array_equal(a, b) for a, b in zip(counts, new_counts["threshold"]))
    print(f"water kernel on {args.px}x{args.px} px of real Sentinel-2 DN (green, NIR, SWIR1, SCL), best of {args.repeat}")
    print(f"{'':28s} {'time s':>8s} {'x copy':>8s} {'extra B/px':>11s}")
    for name, t, m in [("numpy copy of the inputs", t_floor, m_floor), ("previous full-array code", t_prev, m_prev),
                       ("new, method=threshold", t_thr, m_thr), ("new, method=multi", t_multi, m_multi)]:
        print(f"{name:28s} {t:8.3f} {t / t_floor:8.2f} {m / npx:11.2f}")
    print(f"threshold counts identical to the previous code: {same}")
    print(f"speed-up threshold vs previous: {t_prev / t_thr:.1f}x (target: new <= 3x copy)")


if __name__ == "__main__":
    main()
