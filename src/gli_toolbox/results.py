"""What a detection run returns: :class:`DetectResult` and the per-period :class:`WaterMap`.

Water maps are backed by the run's composite rasters on disk (one raster per UTM zone part, period
and layer), not by arrays in memory: a map of a whole region costs a few paths, and
:meth:`WaterMap.observed_share` reads only the window under the geometry it is asked about.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from .errors import GliError

if TYPE_CHECKING:
    import geopandas as gpd

    from .aoi import Aoi
    from .config import DetectConfig
    from .tracking import TrackResult

logger = logging.getLogger(__name__)

__all__ = ["DetectResult", "WaterMap", "ZoneMap"]


@dataclass(frozen=True)
class ZoneMap:
    """One zone part of a water map: its rasters and grid."""

    zone: str
    crs: str
    transform: Affine
    shape: tuple[int, int]
    paths: dict[str, Path]
    """``class`` (uint8: 0 land, 1 water, 2 possible water, 255 never observed/outside), ``nobs``
    (valid observations), ``water`` (water observations), ``snow`` (snow/ice observations)."""
    part: BaseGeometry | None = None
    """The AOI part of this zone, in ``crs`` (None: the whole grid)."""


def _read(path: Path) -> NDArray[Any]:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


@dataclass
class WaterMap:
    """Water classification of one year (or one date) on the zone grids of the run.

    ``water_class``: 1 water, 2 possible water (only the permissive test), 0 not water, 255 never
    validly observed (or outside the AOI). ``valid_count`` / ``water_count`` / ``snow_count``:
    observations per pixel. The arrays are read from the rasters on demand (single-zone runs);
    a multi-zone map is handled zone by zone through :attr:`zones`.
    """

    label: str
    zones: list[ZoneMap]
    _open: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @contextlib.contextmanager
    def open_counts(self) -> Iterator[WaterMap]:
        """Keep the observation-count rasters open for many :meth:`observed_share` calls (tracking
        asks for every lake that vanished); they are closed on exit."""
        self._open = {}
        try:
            yield self
        finally:
            opened, self._open = self._open, None
            for ds in opened.values():
                ds.close()

    def _counts(self, z: ZoneMap) -> Any:
        import rasterio

        if self._open is None:
            return rasterio.open(z.paths["nobs"])
        key = str(z.paths["nobs"])
        if key not in self._open:
            self._open[key] = rasterio.open(z.paths["nobs"])
        return contextlib.nullcontext(self._open[key])

    @property
    def crs(self) -> str:
        return self._single().crs

    @property
    def transform(self) -> Affine:
        return self._single().transform

    def _single(self) -> ZoneMap:
        if len(self.zones) != 1:
            raise GliError(f"water map {self.label} spans {len(self.zones)} UTM zones; use .zones (one grid each)")
        return self.zones[0]

    @property
    def water_class(self) -> NDArray[np.uint8]:
        return _read(self._single().paths["class"])

    @property
    def valid_count(self) -> NDArray[np.uint16]:
        return _read(self._single().paths["nobs"]).astype(np.uint16, copy=False)

    @property
    def water_count(self) -> NDArray[np.uint16]:
        return _read(self._single().paths["water"]).astype(np.uint16, copy=False)

    @property
    def snow_count(self) -> NDArray[np.uint16] | None:
        p = self._single().paths.get("snow")
        return None if p is None else _read(p).astype(np.uint16, copy=False)

    @property
    def water_fraction(self) -> NDArray[np.float32]:
        """Share of valid observations that were water (NaN where never observed)."""
        valid, water = self.valid_count, self.water_count
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(valid > 0, water / np.maximum(valid, 1), np.nan).astype(np.float32)

    def observed_share(self, geom: BaseGeometry, crs: Any = None) -> float:
        """Share of the pixels under ``geom`` with at least one open-water observation.

        ``geom`` is in ``crs`` (default: the CRS of the first zone, the lake layers' CRS); without
        ``crs``, a geometry outside every grid of the map is an error (a lon/lat geometry, most
        often). Only the window of the raster under the geometry is read.
        """
        from rasterio.windows import Window, from_bounds

        src_crs = crs or self.zones[0].crs
        n_in = n_obs = 0
        touches = False
        for z in self.zones:
            g = geom if str(src_crs) == z.crs else _to_crs(geom, src_crs, z.crs)
            h, w = z.shape
            x0, y0 = z.transform * (0, 0)
            x1, y1 = z.transform * (w, h)
            gx0, gy0, gx1, gy1 = g.bounds
            touches = touches or (gx0 < max(x0, x1) and gx1 > min(x0, x1) and gy0 < max(y0, y1) and gy1 > min(y0, y1))
            if len(self.zones) > 1 and z.part is not None:
                g = g.intersection(z.part)
            if g.is_empty:
                continue
            win = from_bounds(*g.bounds, transform=z.transform).round_offsets(op="floor").round_lengths(op="ceil")
            c0, r0 = max(int(win.col_off) - 1, 0), max(int(win.row_off) - 1, 0)
            c1, r1 = min(int(win.col_off + win.width) + 1, w), min(int(win.row_off + win.height) + 1, h)
            if c1 <= c0 or r1 <= r0:
                continue
            window = Window(c0, r0, c1 - c0, r1 - r0)
            with self._counts(z) as src:
                nobs = src.read(1, window=window)
            inside = _centres_inside(g, z.transform * Affine.translation(c0, r0), nobs.shape)
            n_in += int(inside.sum())
            n_obs += int((nobs[inside] > 0).sum())
        if crs is None and not touches:  # most often a lon/lat geometry given without its CRS
            raise GliError(f"the geometry (bounds {', '.join(f'{v:g}' for v in geom.bounds)}) lies outside every grid "
                           f"of water map {self.label} ({src_crs}); give its CRS, e.g. crs=\"EPSG:4326\" for lon/lat")
        return float(n_obs / n_in) if n_in else 0.0


def _centres_inside(geom: BaseGeometry, transform: Affine, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """True for the pixels of a window whose centre lies inside ``geom``: the pixels
    ``rasterio.features.geometry_mask`` selects (tested), without its per-call set-up (about 4x
    faster on a lake's window, where tracking asks for each vanished lake).

    >>> from shapely.geometry import box
    >>> _centres_inside(box(0, 0, 20, 10), Affine(10, 0, 0, 0, -10, 20), (2, 3)).astype(int).tolist()
    [[0, 0, 0], [1, 1, 0]]
    """
    import shapely

    j = np.arange(shape[1]) + 0.5
    i = (np.arange(shape[0]) + 0.5)[:, None]
    t = transform
    return shapely.contains_xy(geom, t.c + t.a * j + t.b * i, t.f + t.d * j + t.e * i)  # type: ignore[no-any-return]


def _to_crs(geom: BaseGeometry, src: Any, dst: Any) -> BaseGeometry:
    import shapely

    return shapely.transform(geom, _transformer(str(src), str(dst)), interleaved=False)


@functools.lru_cache(maxsize=32)
def _transformer(src: str, dst: str) -> Any:
    from pyproj import Transformer

    t = Transformer.from_crs(src, dst, always_xy=True)
    return lambda x, y: t.transform(x, y)


@dataclass
class DetectResult:
    """What :func:`gli_toolbox.pipeline.detect` returns: per-year lake layers and water maps, plus
    the run record (``run.json``)."""

    config: DetectConfig
    aoi: Aoi
    grid: Any
    """The processing grid (odc-geo GeoBox) of the first zone part; all of them in :attr:`zones`."""
    lakes: dict[int, gpd.GeoDataFrame]
    masks: dict[int, WaterMap]
    scene_lakes: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    scene_masks: dict[str, WaterMap] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    tracking: TrackResult | None = None
    """Lakes matched across the exported layers (years, or dates with ``per_scene``)."""
    zones: list[Any] = field(default_factory=list)
    """The zone parts of the AOI (:class:`gli_toolbox.grids.ZonePart`), one grid each."""
    work_dir: Path | None = None
    """Folder holding the chunk results and the composite rasters the water maps read."""

    def explore(self, **kwargs: Any) -> Any:
        """Interactive map (folium) of the lakes by period and status: :func:`gli_toolbox.maps.explore_detect`."""
        from .maps import explore_detect

        return explore_detect(self, **kwargs)
