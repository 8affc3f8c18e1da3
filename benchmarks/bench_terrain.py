"""Speed of the terrain core: seconds per megapixel for cast_shadow and slope_deg.

Synthetic fractal terrain (3,000 m of relief on 30 m pixels, like Copernicus GLO-30 in the Pamir) of
1000 x 1000 and 3000 x 3000 pixels, several sun azimuths (the sweep direction changes with them) and
elevations (the cost does not). The target is well under 2 s for 1000 x 1000 on the 2-core machine.

Usage: .venv/bin/python benchmarks/bench_terrain.py
"""

from __future__ import annotations

import time

import numpy as np
from affine import Affine

from gli_toolbox.terrain import cast_shadow, slope_deg

AZIMUTHS = (45.0, 100.0, 160.0, 200.0, 290.0)
ELEVATIONS = (15.0, 45.0)


def fractal_dem(n: int, *, relief_m: float = 3000.0, seed: int = 0) -> np.ndarray:
    """Spectral-synthesis terrain (power spectrum ~ f^-3), scaled to ``relief_m``."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**1.5
    spec[0, 0] = 0
    z = np.fft.irfft2(spec, s=(n, n))
    z = (z - z.min()) / (z.max() - z.min())
    return 2000.0 + relief_m * z


def best_of(fn, *args, repeat: int = 3, **kwargs) -> float:
    """Fastest of ``repeat`` runs of ``fn(*args, **kwargs)``, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    transform = Affine(30.0, 0, 500000, 0, -30.0, 4300000)
    for n in (1000, 3000):
        dem = fractal_dem(n)
        mpx = n * n / 1e6
        t_slope = best_of(slope_deg, dem, transform=transform)
        print(f"{n} x {n} ({mpx:.0f} Mpx)")
        print(f"  slope_deg:   {t_slope:.3f} s  = {t_slope / mpx:.3f} s/Mpx")
        for elev in ELEVATIONS:
            per_az = []
            for az in AZIMUTHS:
                per_az.append(
                    best_of(cast_shadow, dem, transform=transform, sun_azimuth_deg=az, sun_elevation_deg=elev)
                )
            frac = cast_shadow(dem, transform=transform, sun_azimuth_deg=160.0, sun_elevation_deg=elev).mean()
            print(
                f"  cast_shadow elevation {elev:.0f} deg: {min(per_az):.3f}-{max(per_az):.3f} s "
                f"= {max(per_az) / mpx:.3f} s/Mpx worst azimuth (shadow {frac:.0%} at azimuth 160)"
            )


if __name__ == "__main__":
    main()
