"""Lakes from chunked rasters: labels across chunk and UTM-zone borders, memory bounded by the chunk.

The engine writes, per period and per UTM-zone part of the AOI, aligned rasters on the zone's 10 m
grid (contract 3): ``class`` uint8 (0 land, 1 water, 2 possible water, 255 never observed or outside
the AOI), ``nobs`` uint16 and optionally ``elev``/``slope`` float32. :func:`extract_zone_lakes`
turns a list of them into one lake layer while holding only a few chunks in memory at a time; the
in-memory :func:`gli_toolbox.lakes.extract_lakes` runs the same passes on one chunk. Three steps
in two passes, each a map over chunks (tasks on a ``dask.distributed`` client when one is given)
and a small reduction:

1. *seeds* (first pass): per chunk, the 4-connected components of class 1 or 2 on its edges (found
   by flooding from the edge pixels; the others are decided in the second pass) and whether they
   hold a class-1 pixel (hysteresis: seed and grow);
2. *holes* (second pass): 8-connected components of the background of that water; those of at
   most ``max_hole_m2`` not touching the raster border are filled;
3. *lakes* (same pass): 4-connected components of the candidates plus the holes, found by merging
   the candidate components through the holes (no second labelling; those components are the lakes
   and the candidate components without a seed, told apart by their class-1 pixel), with pixel
   counts, fewest observations, edge contacts (read with a one-pixel halo) and terrain medians.
   Lakes complete within a chunk are finished in their task, all polygonized by one
   ``rasterio.features.shapes`` call per chunk on a canvas where their bounding boxes are packed
   (GDAL scans every pixel it is given); the parts of lakes cut by chunk borders come back as
   bit-packed masks, are pasted into the lake's bounding window and polygonized once. A hole cut by
   a chunk border is only known after the reduction: chunks with background on their edges that
   may be such a hole do their lake step after it (labelling the candidates plus the hole pixels,
   which the hole pass returns; few: each hole is small and enclosed by water).

The per-label bookkeeping of a chunk (counts, seeds, edge contacts, fewest observations, bounding
boxes, hole pixels, the merge through holes) and the flooding of edge components are small loops
compiled with Numba, one pass over the labels each.

Only labels on chunk edges cross a chunk border, so only they enter the union-find
(``scipy.sparse.csgraph.connected_components`` over the label pairs facing each other on the border
rows and columns, diagonal neighbours included for the 8-connected background); the others are
decided inside their chunk. Polygons are traced in pixel coordinates and moved to the grid's CRS
afterwards, so a lake gets the same vertices whatever the chunk size.

Lakes cut by a UTM-zone border: each zone runs the passes on its own grid, keeping the lakes touching
never-observed/outside pixels whatever their size, and possible water touching them even without a
seed. Such lakes of different zones whose outlines, reprojected to the output CRS, come within one
pixel are one lake: its area is the sum of its parts' pixel areas on their own grids, its outline the
union of the reprojected parts (the sub-pixel gap between the two grids is closed along the seam
only), and the minimum mapping unit, the seed test, ``n_obs``, the terrain medians and the slope
filter apply to the joined lake. ``edge`` is set where a lake touches a pixel that no zone observes.
Holes cut by the zone border are not filled (each zone sees them open to the other zone's part).

This module reads the zone rasters (window by window); its chunk passes are pure functions of a
window reader, which :func:`extract_grid_lakes` feeds from arrays.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
import shapely.geometry
from affine import Affine
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .attributes import area_uncertainty_km2, lake_attributes
from .lakes import LakeParams

logger = logging.getLogger(__name__)

__all__ = ["LakeParams", "ZoneRaster", "extract_grid_lakes", "extract_zone_lakes", "multi_zone_crs"]

NEVER_OBSERVED = 255
WATER = 1
MAYBE_WATER = 2

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)

#: Default chunk side (pixels) of the labelling passes.
DEFAULT_CHUNK_PX = 1024


@dataclass(frozen=True)
class ZoneRaster:
    """The rasters of one UTM-zone part of the AOI for one period (contract 3), all on one grid.

    ``class_path`` (uint8: 0 land, 1 water, 2 possible water, 255 never observed or outside the AOI)
    is required; ``nobs_path`` (uint16 valid observations) gives ``n_obs``; ``elev_path`` and
    ``slope_path`` (float32, NaN = no data) give ``elev_m``/``slope_deg`` and the slope filter.
    """

    class_path: str | Path
    nobs_path: str | Path | None = None
    elev_path: str | Path | None = None
    slope_path: str | Path | None = None


# --------------------------------------------------------------------------------------------------
# Raster sources: whole-array (for lakes.extract_lakes) or on-disk (windows read by each task)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Grid:
    shape: tuple[int, int]
    transform: Affine
    crs: CRS

    @property
    def pixel_area(self) -> float:
        t = self.transform
        return abs(t.a * t.e - t.b * t.d)


class _Source:
    """Windowed reads of the layers ``class``, ``nobs``, ``elev``, ``slope``, ``inside`` of one grid."""

    grid: _Grid
    layers: frozenset[str]

    def read(self, layer: str, r0: int, r1: int, c0: int, c1: int) -> NDArray[Any]:  # pragma: no cover
        raise NotImplementedError

    def read_halo(self, layer: str, r0: int, r1: int, c0: int, c1: int, fill: Any) -> NDArray[Any]:
        """The window grown by one pixel on each side, padded with ``fill`` beyond the raster."""
        ny, nx = self.grid.shape
        a0, a1, b0, b1 = max(r0 - 1, 0), min(r1 + 1, ny), max(c0 - 1, 0), min(c1 + 1, nx)
        inner = self.read(layer, a0, a1, b0, b1)
        if (a0, a1, b0, b1) == (r0 - 1, r1 + 1, c0 - 1, c1 + 1):
            return inner
        out = np.full((r1 - r0 + 2, c1 - c0 + 2), fill, dtype=inner.dtype)
        out[a0 - (r0 - 1):a1 - (r0 - 1), b0 - (c0 - 1):b1 - (c0 - 1)] = inner
        return out


class _ArraySource(_Source):
    def __init__(self, grid: _Grid, arrays: Mapping[str, NDArray[Any] | None]) -> None:
        self.grid = grid
        self.arrays = {k: v for k, v in arrays.items() if v is not None}
        for k, v in self.arrays.items():
            if v.shape != grid.shape:
                raise ValueError(f"{k} has shape {v.shape}, the class raster {grid.shape}; put them on one grid")
        self.layers = frozenset(self.arrays)

    def read(self, layer: str, r0: int, r1: int, c0: int, c1: int) -> NDArray[Any]:
        return self.arrays[layer][r0:r1, c0:c1]


class _FileSource(_Source):
    """Reads windows from the GeoTIFFs of a :class:`ZoneRaster`; picklable (opens files per read)."""

    def __init__(self, zone: ZoneRaster) -> None:
        self.paths = {"class": zone.class_path, "nobs": zone.nobs_path, "elev": zone.elev_path,
                      "slope": zone.slope_path}
        self.paths = {k: str(v) for k, v in self.paths.items() if v is not None}
        with rasterio.open(self.paths["class"]) as src:
            if src.crs is None:
                raise ValueError(f"{self.paths['class']} has no CRS; write the zone's UTM CRS into it")
            self.grid = _Grid((src.height, src.width), src.transform, CRS.from_user_input(src.crs))
        for k, p in self.paths.items():
            with rasterio.open(p) as src:
                if (src.height, src.width) != self.grid.shape or src.transform != self.grid.transform:
                    raise ValueError(f"{p} ({k}) is not on the grid of {self.paths['class']}; write them aligned")
        self.layers = frozenset(self.paths)

    def read(self, layer: str, r0: int, r1: int, c0: int, c1: int) -> NDArray[Any]:
        from rasterio.windows import Window

        with rasterio.open(self.paths[layer]) as src:
            return src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))


# --------------------------------------------------------------------------------------------------
# Chunk passes (pure functions of a source, a window and small per-chunk tables)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Chunk:
    index: int
    i: int
    j: int
    r0: int
    r1: int
    c0: int
    c1: int


def _chunks(shape: tuple[int, int], chunk_px: int) -> list[_Chunk]:
    ny, nx = shape
    rows = list(range(0, ny, chunk_px))
    cols = list(range(0, nx, chunk_px))
    out: list[_Chunk] = []
    for i, r0 in enumerate(rows):
        for j, c0 in enumerate(cols):
            out.append(_Chunk(len(out), i, j, r0, min(r0 + chunk_px, ny), c0, min(c0 + chunk_px, nx)))
    return out


_Runs = tuple[NDArray[np.int32], NDArray[np.int32], int]


def _runs(line: NDArray[np.integer]) -> _Runs:
    """Run-length code of a label line (a land label runs along whole chunk edges: a few bytes per
    chunk are kept until the union, not 16 per pixel of edge).

    >>> _unruns(_runs(np.array([0, 0, 3, 3, 3, 0, 5])))
    array([0, 0, 3, 3, 3, 0, 5], dtype=int32)
    """
    starts = np.flatnonzero(np.diff(line, prepend=np.int64(-1)) != 0).astype(np.int32)
    return starts, line[starts].astype(np.int32), len(line)


def _unruns(r: _Runs) -> NDArray[np.int32]:
    starts, values, n = r
    return np.repeat(values, np.diff(np.append(starts, n)))


def _edges(lab: NDArray[np.integer]) -> tuple[_Runs, ...]:
    """Labels along the top, bottom, left and right edges of a chunk, run-length coded."""
    return _runs(lab[0]), _runs(lab[-1]), _runs(lab[:, 0]), _runs(lab[:, -1])


def _edge_ids(lab: NDArray[np.integer], ch: _Chunk, shape: tuple[int, int], *, inner_only: bool) -> NDArray[np.int64]:
    """Sorted labels on the chunk's edges (only the edges shared with another chunk if ``inner_only``).
    Only these take part in the union across chunks; the others are complete within the chunk."""
    ny, nx = shape
    lines = [line for inner, line in ((ch.r0 > 0, lab[0]), (ch.r1 < ny, lab[-1]), (ch.c0 > 0, lab[:, 0]),
                                      (ch.c1 < nx, lab[:, -1])) if inner or not inner_only]
    ids = np.unique(np.concatenate(lines)) if lines else np.zeros(0, np.int64)
    return ids[ids > 0].astype(np.int64)


_KERNELS: dict[str, Callable[..., Any]] = {}


def _kernels() -> dict[str, Callable[..., Any]]:
    """One-pass loops over a chunk's labels, compiled by Numba on first use (cached on disk): each
    replaces several numpy passes over the whole chunk (``bincount``, gathers, ``find_objects``,
    ``minimum.at``), which cost as much as the labelling itself. Integer bookkeeping only: the same
    numbers as the numpy operations they replace."""
    if _KERNELS:
        return _KERNELS
    import numba

    jit = numba.njit(cache=True, nogil=True)

    @jit
    def label_stats(lab, n, one, bad, nobs, has_nobs):  # pragma: no cover  (compiled)
        h, w = lab.shape
        size = np.zeros(n + 1, dtype=np.int64)
        seed = np.zeros(n + 1, dtype=np.bool_)
        edge = np.zeros(n + 1, dtype=np.bool_)
        low = np.full(n + 1, np.iinfo(np.int64).max, dtype=np.int64)
        box = np.zeros((n + 1, 4), dtype=np.int64)
        col = np.zeros(n + 1, dtype=np.int64)
        for i in range(h):
            for j in range(w):
                q = lab[i, j]
                if q == 0:
                    continue
                if size[q] == 0:  # the first pixel in raster-scan order
                    box[q, 0], box[q, 2], col[q] = i, j, j
                size[q] += 1
                box[q, 1] = i + 1
                box[q, 2] = min(box[q, 2], j)
                box[q, 3] = max(box[q, 3], j + 1)
                if one[i, j]:
                    seed[q] = True
                if bad[i, j + 1] or bad[i + 2, j + 1] or bad[i + 1, j] or bad[i + 1, j + 2]:
                    edge[q] = True
                if has_nobs and nobs[i, j] < low[q]:
                    low[q] = nobs[i, j]
        return size, seed, edge, low, box, col

    @jit
    def label_counts(lab, n):  # pragma: no cover  (compiled)
        out = np.zeros(n + 1, dtype=np.int64)
        for q in lab.ravel():
            out[q] += 1
        return out

    @jit
    def pick(lab, kind, total):  # pragma: no cover  (compiled)
        at = np.empty(total, dtype=np.int32)
        labels = np.empty(total, dtype=np.int32)
        flat = lab.ravel()
        k = 0
        for p in range(flat.size):
            if kind[flat[p]] != 0:
                at[k] = p
                labels[k] = flat[p]
                k += 1
        return at, labels

    @jit
    def holding(lab, n, cls, value):  # pragma: no cover  (compiled)
        out = np.zeros(n + 1, dtype=np.bool_)
        h, w = lab.shape
        for i in range(h):
            for j in range(w):
                if cls[i, j] == value:
                    out[lab[i, j]] = True
        return out

    @jit
    def lookup(table, lab):  # pragma: no cover  (compiled)
        out = np.empty(lab.shape, dtype=np.bool_)
        h, w = lab.shape
        for i in range(h):
            for j in range(w):
                out[i, j] = table[lab[i, j]]
        return out

    # (no calls between compiled functions: a function calling another one defined here is not
    # cached on disk by Numba, and would be compiled again in every process)
    @jit
    def fill_labels(lab, n, holes):  # pragma: no cover  (compiled)
        h, w = lab.shape
        nh = holes.size
        parent = np.arange(n + 1 + nh)  # nodes: the labels 0..n, then one per hole pixel
        for k in range(nh):
            p = holes[k]
            i, j = p // w, p % w
            for d in range(5):  # the pixel's own candidate label (one without a seed inside the hole), its 4 neighbours
                ii, jj = (i, j) if d == 0 else (i - 1, j) if d == 1 else (i + 1, j) if d == 2 else (i, j - 1) \
                    if d == 3 else (i, j + 1)
                if ii < 0 or ii >= h or jj < 0 or jj >= w:
                    continue
                if lab[ii, jj] > 0:
                    b = lab[ii, jj]
                elif d == 0:
                    continue
                else:
                    q = np.searchsorted(holes, ii * w + jj)
                    if q >= nh or holes[q] != ii * w + jj:
                        continue
                    b = n + 1 + q
                a = n + 1 + k
                while parent[a] != a:  # roots, halving the paths
                    parent[a] = parent[parent[a]]
                    a = parent[a]
                while parent[b] != b:
                    parent[b] = parent[parent[b]]
                    b = parent[b]
                if a != b:
                    parent[b] = a
        new = np.zeros(n + 1 + nh, dtype=np.int32)  # per root, its final number
        of = np.zeros(n + 1, dtype=np.int32)  # per label, its final number once seen
        out = np.zeros((h, w), dtype=np.int32)
        m = 0
        k = 0
        nxt = holes[0] if nh else -1
        p = -1
        for i in range(h):  # numbered in raster-scan order of their first pixel, as scipy numbers them
            for j in range(w):
                p += 1
                q = lab[i, j]
                if p == nxt:
                    r = n + 1 + k
                    k += 1
                    nxt = holes[k] if k < nh else -1
                elif q == 0:
                    continue
                elif of[q] != 0:
                    out[i, j] = of[q]
                    continue
                else:
                    r = q
                while parent[r] != r:
                    r = parent[r]
                if new[r] == 0:
                    m += 1
                    new[r] = m
                if q > 0:
                    of[q] = new[r]
                out[i, j] = new[r]
        return out, m

    @jit
    def edge_components(cls, bad, provisional):  # pragma: no cover  (compiled)
        h, w = cls.shape
        lab = np.zeros((h, w), dtype=np.int32)
        stack = np.empty(h * w, dtype=np.int32)
        seed = np.zeros(2 * (h + w) + 1, dtype=np.bool_)
        m = 0
        for k in range(2 * (h + w)):  # the top and bottom rows, then the left and right columns
            i, j = (0, k) if k < w else (h - 1, k - w) if k < 2 * w else (k - 2 * w, 0) if k < 2 * w + h \
                else (k - 2 * w - h, w - 1)
            if lab[i, j] != 0 or not (cls[i, j] == 1 or cls[i, j] == 2):
                continue
            m += 1  # flood this component
            lab[i, j] = m
            stack[0] = i * w + j
            top = 1
            while top > 0:
                top -= 1
                y, x = stack[top] // w, stack[top] % w
                if cls[y, x] == 1:
                    seed[m] = True
                if provisional and (bad[y, x + 1] or bad[y + 2, x + 1] or bad[y + 1, x] or bad[y + 1, x + 2]):
                    seed[m] = True
                for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= yy < h and 0 <= xx < w and lab[yy, xx] == 0 and (cls[yy, xx] == 1 or cls[yy, xx] == 2):
                        lab[yy, xx] = m
                        stack[top] = yy * w + xx
                        top += 1
        return lab, m, seed[:m + 1]

    _KERNELS.update(label_stats=label_stats, label_counts=label_counts, pick=pick, holding=holding, lookup=lookup,
                    fill_labels=fill_labels, edge_components=edge_components)
    return _KERNELS


def _label_stats(lab: NDArray[np.int32], n: int, one: NDArray[np.bool_], bad: NDArray[np.bool_],
                 nobs: NDArray[np.integer] | None) -> tuple[NDArray[Any], ...]:
    """Per label ``0..n`` of a chunk, in one pass: pixel count, holds a ``one`` pixel, has a
    4-neighbour ``bad`` (``bad`` is the chunk grown by one pixel on each side), fewest ``nobs``,
    bounding box ``(row0, row1, col0, col1)`` and the column of its first pixel (on ``row0``).

    >>> lab = np.array([[0, 1, 1], [2, 0, 1]], dtype=np.int32)
    >>> bad = np.zeros((4, 5), dtype=bool); bad[3, 1] = True
    >>> size, seed, edge, low, box, col = _label_stats(lab, 2, lab == 2, bad, None)
    >>> size.tolist(), seed.tolist(), edge.tolist(), box[1].tolist(), col.tolist()
    ([0, 3, 1], [False, False, True], [False, False, True], [0, 2, 1, 3], [0, 1, 0])
    """
    has = nobs is not None
    return tuple(_kernels()["label_stats"](lab, n, one, bad, nobs if has else np.zeros((1, 1), np.uint16), has))


def _water_candidates(cls: NDArray[np.uint8]) -> tuple[NDArray[np.int32], int]:
    return ndimage.label((cls == WATER) | (cls == MAYBE_WATER), structure=_FOUR)


def _local_seeds(src: _Source, ch: _Chunk, cls: NDArray[np.uint8], lab: NDArray[np.int32], n: int,
                 provisional: bool) -> NDArray[np.bool_]:
    """Per label: holds a class-1 pixel (or, ``provisional``, touches a never-observed/outside pixel:
    in a multi-zone run its seed may lie across the zone border; decided when the zones are joined)."""
    seed = _kernels()["holding"](lab, n, cls, WATER)
    if provisional:
        bad = src.read_halo("class", ch.r0, ch.r1, ch.c0, ch.c1, NEVER_OBSERVED) == NEVER_OBSERVED
        h, w = lab.shape
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            seed[lab[bad[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]]] = True
    seed[0] = False
    return seed


def _seed_pass(src: _Source, ch: _Chunk, provisional: bool) -> dict[str, Any]:
    """The candidate components on the chunk's edges (only they take part in the union; the others
    are decided in the next pass) and whether each holds a seed (see :func:`_local_seeds`). They are
    found by flooding from the edge pixels (compiled): no labelling of the whole chunk."""
    if provisional:
        halo = src.read_halo("class", ch.r0, ch.r1, ch.c0, ch.c1, NEVER_OBSERVED)
        cls, bad = halo[1:-1, 1:-1], halo == NEVER_OBSERVED
    else:
        cls, bad = src.read("class", ch.r0, ch.r1, ch.c0, ch.c1), np.zeros((1, 1), dtype=bool)
    lab, n, seed = _kernels()["edge_components"](cls, bad, provisional)
    ids = np.arange(1, n + 1, dtype=np.int64)  # every one is on an edge
    return {"ids": ids, "flag": seed[ids], "maybe": bool((cls == MAYBE_WATER).any()), "edges": _edges(lab)}


_Table = tuple[NDArray[np.int64], NDArray[np.bool_]]  # (edge labels, their global decision)
#: the seed decisions for a chunk: its seed-pass labels along its four edges, those labels and their
#: global decision (another pass labels the chunk differently: edge pixels tell which is which)
_Seeds = tuple[tuple[_Runs, ...], NDArray[np.int64], NDArray[np.bool_]]

#: the chunk is the whole grid: every decision is local (no union pass needed)
_ONE_CHUNK: _Seeds = ((), np.zeros(0, np.int64), np.zeros(0, bool))


def _water(src: _Source, ch: _Chunk, seeded: _Seeds | None, provisional: bool,
           cls: NDArray[np.uint8] | None = None) -> NDArray[np.bool_]:
    """The seeded water of a chunk (class 1, and class 2 connected to it); ``cls``: its class window
    if already read."""
    if cls is None:
        cls = src.read("class", ch.r0, ch.r1, ch.c0, ch.c1)
    if seeded is None:  # no class 2 anywhere: water is class 1
        return cls == WATER
    return _seeded(src, ch, cls, *_water_candidates(cls), seeded, provisional)


def _seeded(src: _Source, ch: _Chunk, cls: NDArray[np.uint8], lab: NDArray[np.int32], n: int,
            seeded: _Seeds | None, provisional: bool) -> NDArray[np.bool_]:
    """The seeded water from the candidate labels ``lab`` of a chunk."""
    if seeded is None:  # no class 2 anywhere: water is class 1
        return cls == WATER
    table = _local_seeds(src, ch, cls, lab, n, provisional)  # complete within the chunk: the local answer
    edges, ids, decision = seeded  # on chunk edges: the answer of the union across chunks
    for runs, line in zip(edges, (lab[0], lab[-1], lab[:, 0], lab[:, -1])):
        theirs = _unruns(runs)
        on = theirs > 0
        table[line[on]] = decision[np.searchsorted(ids, theirs[on])]
    # table[lab], compiled: 4x faster than numpy fancy indexing
    return _kernels()["lookup"](table, lab)  # type: ignore[no-any-return]


def _hole_pass(src: _Source, ch: _Chunk, seeded: _Seeds | None, provisional: bool, max_hole_px: int,
               min_px: int) -> dict[str, Any]:
    """Background components (8-connected) of the seeded water of a chunk. Those complete within the
    chunk of at most ``max_hole_px`` are holes: their pixels are returned (``holes``, flat indices in
    the chunk; few: each hole is at most ``max_hole_px`` and enclosed by water). Those on chunk edges
    are joined across chunks; the pixels of the ones that may still be holes (small so far, not on
    the raster border) come back in ``maybe``.

    With the candidate labels at hand, the lake pass of the chunk follows (``lakes``), its labels
    the candidate components merged through the holes (no second labelling), unless there are
    ``maybe`` components (``lakes`` is then ``None``: the lake pass runs after the union)."""
    halo = src.read_halo("class", ch.r0, ch.r1, ch.c0, ch.c1, NEVER_OBSERVED)
    cls = halo[1:-1, 1:-1]
    cand, nc = _water_candidates(cls)
    bg, n = ndimage.label(~_seeded(src, ch, cls, cand, nc, seeded, provisional), structure=_EIGHT)
    ids = _edge_ids(bg, ch, src.grid.shape, inner_only=False)
    size = _kernels()["label_counts"](bg, n)
    ny, nx = src.grid.shape
    border = np.zeros(n + 1, dtype=bool)
    for on, line in ((ch.r0 == 0, bg[0]), (ch.r1 == ny, bg[-1]), (ch.c0 == 0, bg[:, 0]), (ch.c1 == nx, bg[:, -1])):
        if on:
            border[line] = True
    kind = np.zeros(n + 1, dtype=np.int8)  # 1: a hole; 2: on a chunk edge, a hole if small once joined
    kind[size <= max_hole_px] = 1
    kind[ids] = np.where((size[ids] <= max_hole_px) & ~border[ids], 2, 0)
    kind[0] = 0
    at, labels = _kernels()["pick"](bg, kind, int(size[kind != 0].sum()))
    edges = _edges(bg)
    del bg
    k = kind[labels]
    holes = at[k == 1]
    out = {"ids": ids, "size": size[ids], "flag": border[ids], "edges": edges, "holes": holes,
           "maybe": (at[k == 2], labels[k == 2]), "lakes": None}
    if (k == 2).any():  # its holes are known after the union only: the lake pass comes then
        return out
    # candidates + holes: the candidate components merged through the holes (exactly what labelling
    # them would give); an AOI mask labels the seeded water itself (see _lake_pass)
    lab = None if "inside" in src.layers else _kernels()["fill_labels"](cand, nc, holes)
    del cand
    out["lakes"] = _lake_pass(src, ch, seeded, holes, min_px, provisional, halo=halo, labelled=lab)
    return out


def _hole_pixels(res: Mapping[str, Any], table: _Table) -> NDArray[np.int32]:
    """The hole pixels of a chunk: those of its complete holes and of its edge components that are
    holes once joined across chunks (``table``: the decision for its edge labels)."""
    at, lab = res["maybe"]
    ids, flags = table
    yes = at[flags[np.searchsorted(ids, lab)]] if len(at) else at
    return np.sort(np.concatenate([res["holes"], yes])) if len(yes) else res["holes"]


def _polygon(g: Mapping[str, Any], dx: float = 0.0, dy: float = 0.0) -> Any:
    """A shapely polygon from a GeoJSON-like polygon of ``rasterio.features.shapes`` (rings of
    coordinate pairs), moved by ``(dx, dy)``, through numpy (``shapely.geometry.shape`` walks the
    coordinates in Python, 10x slower on large lakes).

    >>> _polygon({"type": "Polygon", "coordinates": [[(0, 0), (2, 0), (2, 2), (0, 0)]]}).area
    2.0
    """
    off = np.array([dx, dy])
    rings = [shapely.linearrings(np.fromiter(chain.from_iterable(r), np.float64, count=2 * len(r)).reshape(-1, 2) + off)
             for r in g["coordinates"]]  # fromiter: 3x faster than asarray on a list of pairs
    return shapely.polygons(rings[0], holes=rings[1:] or None)


def _shelves(hs: NDArray[np.int64], ws: NDArray[np.int64], width: int) -> tuple[NDArray[np.int64], int, int]:
    """Boxes of heights ``hs`` and widths ``ws`` on shelves of a canvas ``width`` wide, tallest first,
    one pixel apart: their (row, column) on the canvas, its height and width.

    >>> at, h, w = _shelves(np.array([2, 3, 1]), np.array([2, 2, 2]), 5)
    >>> at.tolist(), h, w
    ([[0, 3], [0, 0], [4, 0]], 5, 5)
    """
    at = np.zeros((len(hs), 2), dtype=np.int64)
    x = y = shelf = 0
    for k in np.argsort(-hs, kind="stable"):
        if x + ws[k] > width:
            x, y, shelf = 0, y + shelf + 1, 0
        at[k] = y, x
        x += int(ws[k]) + 1
        shelf = max(shelf, int(hs[k]))
    return at, y + shelf, width


def _polygons(lab: NDArray[np.int32], labels: NDArray[np.int64], boxes: NDArray[np.int64], r0: int, c0: int,
              ) -> dict[int, Any]:
    """The polygon of each of ``labels`` (4-connected components of ``lab``), in pixel coordinates of
    the grid (``r0, c0``: the window's first row and column), from one ``rasterio.features.shapes``
    call.

    GDAL scans every pixel of the raster it polygonizes, and a chunk is mostly land: the labels'
    bounding boxes (``boxes``: rows ``row0, row1, col0, col1`` in the window) are packed on shelves
    of a small canvas, one pixel apart, and each polygon is moved back by whole pixels (the same
    vertices).

    >>> lab = np.array([[1, 0, 0], [0, 0, 2], [0, 0, 2]], dtype=np.int32)
    >>> p = _polygons(lab, np.array([1, 2]), np.array([[0, 1, 0, 1], [1, 3, 2, 3]]), 10, 20)
    >>> p[2].bounds
    (22.0, 11.0, 23.0, 13.0)
    """
    out: dict[int, Any] = {}
    if len(labels) == 0:
        return out
    hs = boxes[:, 1] - boxes[:, 0]
    ws = boxes[:, 3] - boxes[:, 2]
    side = math.isqrt(int(((hs + 1) * (ws + 1)).sum()))
    at, height, width = min((_shelves(hs, ws, max(int(ws.max()), w)) for w in (0, side * 3 // 4, side)),
                            key=lambda p: p[1] * p[2])
    canvas = np.zeros((height, width), dtype=lab.dtype)
    for k, lb in enumerate(labels):
        b0, b1, b2, b3 = boxes[k]
        canvas[at[k, 0]:at[k, 0] + hs[k], at[k, 1]:at[k, 1] + ws[k]][lab[b0:b1, b2:b3] == lb] = lb
    index = {int(lb): k for k, lb in enumerate(labels)}
    for g, v in rasterio.features.shapes(canvas, mask=canvas > 0, connectivity=4):
        k = index[int(v)]
        out[int(v)] = _polygon(g, float(c0 + boxes[k, 2] - at[k, 1]), float(r0 + boxes[k, 0] - at[k, 0]))
    return out


def _lake_pass(src: _Source, ch: _Chunk, seeded: _Seeds | None, holes: NDArray[np.int32], min_px: int,
               zone_join: bool, *, halo: NDArray[np.uint8] | None = None,
               labelled: tuple[NDArray[np.int32], int] | None = None) -> dict[str, Any]:
    """Label the filled water of a chunk. Lakes complete within the chunk are finished here (stats,
    terrain medians and polygons from one polygonization call, in pixel coordinates of the grid);
    for labels on edges shared with other chunks ("parts") it returns stats, masks and terrain values
    to be joined. ``holes``: the hole pixels (flat indices in the chunk). ``zone_join`` keeps edge
    lakes below ``min_px``, their terrain values and the never-observed pixels they touch (for
    joining across zone borders). ``halo``: the class window grown by one pixel, if already read;
    ``labelled``: the labels of the candidates plus the holes and their number, if already known.

    What is labelled is the candidates (class 1 or 2) plus the holes, not the seeded water: no
    relabelling of the candidates is needed. Its components are exactly the lakes and the candidate
    components without a seed: distinct candidate components are not 4-adjacent, and one 4-adjacent
    to a hole lies in that hole (both are background of the water, 8-connected). A component is a
    lake if it holds a class-1 pixel or, ``zone_join`` (provisional seeds), touches a never-observed
    pixel (``water`` below; decided once joined for parts). An AOI mask (``inside``) can cut a lake
    into pieces without a class-1 pixel: then the seeded water itself is labelled."""
    nx = src.grid.shape[1]
    if halo is None:
        halo = src.read_halo("class", ch.r0, ch.r1, ch.c0, ch.c1, NEVER_OBSERVED)
    cls = halo[1:-1, 1:-1]
    exact = "inside" in src.layers
    one = cls == WATER
    if labelled is None:
        water = _water(src, ch, seeded, zone_join, cls) if exact else one | (cls == MAYBE_WATER)
        if len(holes):
            water.reshape(-1)[holes] = True
        if exact:
            water &= src.read("inside", ch.r0, ch.r1, ch.c0, ch.c1)
        labelled = ndimage.label(water, structure=_FOUR)
        del water
    lab, n = labelled
    ids = _edge_ids(lab, ch, src.grid.shape, inner_only=True)
    out: dict[str, Any] = {"ids": ids, "edges": _edges(lab)}
    if n == 0:
        return out
    # edge: a 4-neighbour never observed / outside the AOI / beyond the raster (halo: across chunks)
    bad = halo == NEVER_OBSERVED
    del halo, cls
    if exact:
        bad |= ~src.read_halo("inside", ch.r0, ch.r1, ch.c0, ch.c1, False)
    has_nobs = "nobs" in src.layers
    nobs = src.read("nobs", ch.r0, ch.r1, ch.c0, ch.c1) if has_nobs else None
    # seeds: holds a class-1 pixel (multi-zone: decided when joining)
    size, seeds, edge, low, box, col = _label_stats(lab, n, one, bad, nobs)
    del one, nobs
    contacts: list[NDArray[np.int64]] = []
    if zone_join:  # the never-observed/outside pixels touched: another zone may observe them
        h, w = lab.shape
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            m = bad[1 + dr:1 + dr + h, 1 + dc:1 + dc + w] & (lab > 0)
            if m.any():
                rr, cc = np.nonzero(m)
                contacts.append(np.column_stack([lab[m], rr + ch.r0 + dr, cc + ch.c0 + dc]).astype(np.int64))
    del bad
    part = np.zeros(n + 1, dtype=bool)
    part[ids] = True
    lake = np.ones(n + 1, dtype=bool) if exact else seeds | (edge & zone_join)
    whole = ~part & lake & ((size >= min_px) | (edge & zone_join))
    whole[0] = False
    wanted = np.flatnonzero(whole | part)  # labels reported (the others are dropped here, for good)
    if wanted.size == 0:
        return out
    first = (box[wanted, 0] + ch.r0) * nx + col[wanted] + ch.c0
    n_obs = low[wanted] if has_nobs else np.ones(len(wanted), dtype=np.int64)
    terrain = "elev" in src.layers and "slope" in src.layers
    elev = np.full(len(wanted), np.nan)
    slope = np.full(len(wanted), np.nan)
    if terrain:
        from .terrain import lake_terrain

        dem = src.read("elev", ch.r0, ch.r1, ch.c0, ch.c1)
        slp = src.read("slope", ch.r0, ch.r1, ch.c0, ch.c1)
        w_ = whole[wanted]
        if w_.any():
            elev[w_], slope[w_] = lake_terrain(lab, dem, slp, index=wanted[w_])
    # one polygonization call for all lakes complete within this chunk
    wl = wanted[whole[wanted]]
    geoms = _polygons(lab, wl, box[wl], ch.r0, ch.c0)
    cts: dict[int, NDArray[np.int64]] = {}
    if contacts:
        cat = np.unique(np.concatenate(contacts), axis=0)  # sorted by label
        labels, starts = np.unique(cat[:, 0], return_index=True)
        for lb, a, b in zip(labels, starts, np.append(starts[1:], len(cat))):
            cts[int(lb)] = cat[a:b, 1:]
    # complete lakes as columns; parts (few: those on chunk edges) as records
    w_ = whole[wanted]
    wl = wanted[w_]
    out["whole"] = {"size": size[wl], "first": first[w_], "edge": edge[wl], "n_obs": n_obs[w_], "elev": elev[w_],
                    "slope": slope[w_], "seed": seeds[wl], "geom": [geoms[int(lb)] for lb in wl]}
    values: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    contacts_w: dict[int, NDArray[np.int64]] = {}
    parts = []
    for k, lb in enumerate(wanted):
        if not (part[lb] or (zone_join and edge[lb])):
            continue
        rs, cs = slice(*box[lb, :2]), slice(*box[lb, 2:])
        m = lab[rs, cs] == lb
        vals = (dem[rs, cs][m].astype(np.float64), slp[rs, cs][m].astype(np.float64)) if terrain else None
        if part[lb]:
            parts.append({"label": int(lb), "size": int(size[lb]), "first": int(first[k]), "edge": bool(edge[lb]),
                          "seed": bool(seeds[lb]), "water": bool(lake[lb]),
                          "n_obs": int(n_obs[k]), "contacts": cts.get(int(lb)), "mask": np.packbits(m, axis=None),
                          "values": vals,
                          "bbox": (rs.start + ch.r0, rs.stop + ch.r0, cs.start + ch.c0, cs.stop + ch.c0)})
        else:
            i = int(np.searchsorted(wl, lb))
            if vals is not None:
                values[i] = vals
            if int(lb) in cts:
                contacts_w[i] = cts[int(lb)]
    out.update(parts=parts, values=values, contacts=contacts_w)
    return out


# --------------------------------------------------------------------------------------------------
# Union across chunk borders
# --------------------------------------------------------------------------------------------------

def _pairs(a: NDArray[np.int32], b: NDArray[np.int32], eight: bool) -> list[tuple[NDArray[np.int32], NDArray[np.int32]]]:
    out: list[tuple[NDArray[np.int32], NDArray[np.int32]]] = []
    shifts = ((0, 0), (0, 1), (1, 0)) if eight else ((0, 0),)
    for sa, sb in shifts:
        x = a[sa:len(a) - sb] if sb else a[sa:]
        y = b[sb:len(b) - sa] if sa else b[sb:]
        m = (x > 0) & (y > 0)
        out.append((x[m], y[m]))
    return out


def _union(chunks: Sequence[_Chunk], results: Sequence[dict[str, Any]], eight: bool = False,
           ) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Connected components over the edge labels (``ids``) of all chunks, linked through the border
    rows and columns of neighbouring chunks. Returns the offset of each chunk's ids in the node
    numbering, the component of each node and the number of components."""
    counts = np.array([len(r["ids"]) for r in results], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    at = {(c.i, c.j): c.index for c in chunks}
    us: list[NDArray[np.int64]] = []
    vs: list[NDArray[np.int64]] = []

    def node(k: int, labels: NDArray[np.int32]) -> NDArray[np.int64]:
        return offsets[k] + np.searchsorted(results[k]["ids"], labels)

    def link(k1: int, a: NDArray[np.int32], k2: int, b: NDArray[np.int32], diagonal: bool = False) -> None:
        for x, y in ([(a, b)] if diagonal else _pairs(a, b, eight)):
            m = (x > 0) & (y > 0)
            if m.any():  # distinct pairs only: a land label runs along whole chunk edges
                xy = np.unique((x[m].astype(np.int64) << 32) | y[m].astype(np.int64))
                us.append(node(k1, xy >> 32))
                vs.append(node(k2, xy & 0xFFFFFFFF))

    for c in chunks:
        _, bottom, _, right = (_unruns(e) for e in results[c.index]["edges"])
        below = at.get((c.i + 1, c.j))
        if below is not None:
            link(c.index, bottom, below, _unruns(results[below]["edges"][0]))
        rightn = at.get((c.i, c.j + 1))
        if rightn is not None:
            link(c.index, right, rightn, _unruns(results[rightn]["edges"][2]))
        if eight:
            diag = at.get((c.i + 1, c.j + 1))
            if diag is not None:
                link(c.index, bottom[-1:], diag, _unruns(results[diag]["edges"][0])[:1], diagonal=True)
            anti = at.get((c.i + 1, c.j - 1))
            if anti is not None:
                link(c.index, bottom[:1], anti, _unruns(results[anti]["edges"][0])[-1:], diagonal=True)
    u = np.concatenate(us) if us else np.zeros(0, dtype=np.int64)
    v = np.concatenate(vs) if vs else np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(total, total))
    k, comp = connected_components(graph, directed=False)
    return offsets, comp.astype(np.int64), int(k)


def _tables(chunks: Sequence[_Chunk], results: Sequence[dict[str, Any]], offsets: NDArray[np.int64],
            comp: NDArray[np.int64], decision: NDArray[np.bool_]) -> list[_Table]:
    """Per chunk: its edge labels and the decision taken for their component."""
    return [(results[c.index]["ids"], decision[comp[offsets[c.index]:offsets[c.index + 1]]]) for c in chunks]


def _run(fn: Callable[..., dict[str, Any]], src: _Source, chunks: Sequence[_Chunk], per_chunk: Sequence[tuple[Any, ...]],
         client: Any) -> list[dict[str, Any]]:
    """``fn(src, chunk, *args)`` for every chunk, serially or as tasks on a Dask client (same results;
    a task that fails there, or finds no worker, runs here: :func:`gli_toolbox.engine.results_or_here`)."""
    if client is None:
        return [fn(src, c, *a) for c, a in zip(chunks, per_chunk)]
    from .engine import CHUNK_RETRIES, results_or_here

    if isinstance(src, _ArraySource):
        try:
            if not client.nthreads():  # scattering to no worker would wait for one to join
                raise TimeoutError("no worker")
            src_f = client.scatter(src, broadcast=True, hash=False)
        except (TimeoutError, OSError):  # no worker, or none running (all paused): no need of one
            logger.warning("the Dask cluster has no worker: lakes are extracted in this process")
            return [fn(src, c, *a) for c, a in zip(chunks, per_chunk)]
    else:
        src_f = src
    futures = [client.submit(fn, src_f, c, *a, pure=False, retries=CHUNK_RETRIES) for c, a in zip(chunks, per_chunk)]
    return results_or_here(client, futures, lambda i: fn(src, chunks[i], *per_chunk[i]))


# --------------------------------------------------------------------------------------------------
# One grid -> lake table (pixel-coordinate polygons, counts, stats)
# --------------------------------------------------------------------------------------------------

@dataclass
class _ZoneLakes:
    """Lakes of one grid, in raster-scan order of their first pixel."""

    grid: _Grid
    size_px: NDArray[np.int64]
    first: NDArray[np.int64]
    edge: NDArray[np.bool_]
    n_obs: NDArray[np.int64]
    geoms: list[Any]  # in the grid's CRS
    elev: NDArray[Any] | None = None
    slope: NDArray[Any] | None = None
    values: list[tuple[NDArray[np.float64], NDArray[np.float64]]] | None = field(default=None)
    #: per lake, (row, col) of the never-observed/outside pixels it touches (multi-zone runs)
    contacts: list[NDArray[np.int64]] | None = field(default=None)
    #: per lake, holds a class-1 pixel (multi-zone runs: unseeded edge lakes wait for the join)
    seed: NDArray[np.bool_] | None = field(default=None)


def _batched(fn: Callable[[NDArray[np.float64]], NDArray[np.float64]], geoms: Sequence[Any], batch: int = 2000,
             ) -> NDArray[Any]:
    """``shapely.transform`` in batches (one coordinate array of all lakes would grow with the area)."""
    arr = np.asarray(geoms, dtype=object)
    out = np.empty(len(arr), dtype=object)
    for i in range(0, len(arr), batch):
        out[i:i + batch] = shapely.transform(arr[i:i + batch], fn)
    return out


def _pixel_to_crs(geoms: Sequence[Any], t: Affine) -> NDArray[Any]:
    def f(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f])

    return _batched(f, geoms)


def _nanmedian(v: NDArray[np.float64]) -> float:
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else math.nan


def _join_parts(parts: Sequence[dict[str, Any]], terrain: bool) -> dict[str, Any]:
    """One lake from its parts in several chunks: pasted into its bounding window, polygonized once."""
    r0 = min(p["bbox"][0] for p in parts)
    r1 = max(p["bbox"][1] for p in parts)
    c0 = min(p["bbox"][2] for p in parts)
    c1 = max(p["bbox"][3] for p in parts)
    m = np.zeros((r1 - r0, c1 - c0), dtype=np.uint8)
    for p in parts:
        b0, b1, b2, b3 = p["bbox"]  # masks kept packed, 1 bit per pixel, until joined
        m[b0 - r0:b1 - r0, b2 - c0:b3 - c0] |= np.unpackbits(p["mask"], count=(b1 - b0) * (b3 - b2)).reshape(b1 - b0, b3 - b2)
    shapes = [_polygon(g) for g, _ in rasterio.features.shapes(
        m, mask=m.astype(bool), connectivity=4, transform=Affine.translation(int(c0), int(r0)))]
    del m
    cts = [p["contacts"] for p in parts if p["contacts"] is not None]
    rec: dict[str, Any] = {
        "size": sum(p["size"] for p in parts), "first": min(p["first"] for p in parts),
        "edge": any(p["edge"] for p in parts), "n_obs": min(p["n_obs"] for p in parts),
        "seed": any(p["seed"] for p in parts),
        "geom": shapes[0] if len(shapes) == 1 else shapely.union_all(shapes),
        "contacts": np.concatenate(cts) if cts else None, "elev": math.nan, "slope": math.nan,
    }
    if terrain:
        rec["values"] = (np.concatenate([p["values"][0] for p in parts]), np.concatenate([p["values"][1] for p in parts]))
        rec["elev"], rec["slope"] = _nanmedian(rec["values"][0]), _nanmedian(rec["values"][1])
    return rec


def _zone_lakes(src: _Source, params: LakeParams, *, chunk_px: int, client: Any, zone_join: bool = False) -> _ZoneLakes:
    """All passes on one grid. ``zone_join`` keeps edge lakes below the minimum mapping unit, their
    terrain values and contacts, for joining across zone borders."""
    grid = src.grid
    chunks = _chunks(grid.shape, max(int(chunk_px), 1))
    min_px = int(np.ceil(params.min_area_m2 / grid.pixel_area - 1e-9))
    max_hole_px = int(params.hole_m2 // grid.pixel_area)
    if len(chunks) == 1:  # all decisions are local
        seeded: list[_Seeds | None] = [_ONE_CHUNK]
    else:
        # 1. seeds: components of class 1|2 holding a class-1 pixel
        res = _run(_seed_pass, src, chunks, [(zone_join,)] * len(chunks), client)
        offsets, comp, k = _union(chunks, res)
        comp_seed = np.zeros(k, dtype=bool)
        comp_seed[comp[np.concatenate([r["flag"] for r in res])]] = True
        no_maybe = not any(r["maybe"] for r in res)  # then water is class 1: no table needed
        seeded = [None] * len(chunks) if no_maybe else [
            (r["edges"], ids, flags) for r, (ids, flags) in zip(res, _tables(chunks, res, offsets, comp, comp_seed))]
        del res
    if max_hole_px <= 0:  # 3. lakes, without holes
        return _lake_stage(src, params, chunks, _run(_lake_pass, src, chunks, [
            (s, np.zeros(0, np.int32), min_px, zone_join) for s in seeded], client), min_px, zone_join)

    # 2. holes: 8-connected background components up to max_hole_px not touching the raster border,
    # and 3. lakes in the same pass
    res = _run(_hole_pass, src, chunks, [(s, zone_join, max_hole_px, min_px) for s in seeded], client)
    lakes = [r.pop("lakes") for r in res]
    if len(chunks) > 1:
        offsets, comp, k = _union(chunks, res, eight=True)
        size = np.zeros(k, dtype=np.int64)
        np.add.at(size, comp, np.concatenate([r["size"] for r in res]).astype(np.int64))
        border = np.zeros(k, dtype=bool)
        border[comp[np.concatenate([r["flag"] for r in res])]] = True
        tables = _tables(chunks, res, offsets, comp, (size <= max_hole_px) & ~border)
        holes = [_hole_pixels(r, t) for r, t in zip(res, tables)]
        del res
        # chunks with background on their edges that may be a hole: their lake pass now, holes known
        later = [c.index for c in chunks if lakes[c.index] is None]
        if later:
            for i, r in zip(later, _run(_lake_pass, src, [chunks[i] for i in later],
                                        [(seeded[i], holes[i], min_px, zone_join) for i in later], client)):
                lakes[i] = r
    assert all(r is not None for r in lakes)  # one chunk: its edges are the raster border, never holes
    return _lake_stage(src, params, chunks, lakes, min_px, zone_join)


def _lake_stage(src: _Source, params: LakeParams, chunks: Sequence[_Chunk], res: list[dict[str, Any]], min_px: int,
                zone_join: bool) -> _ZoneLakes:
    """3. lakes (``res``: the lake pass of each chunk): complete ones come finished from their chunk;
    parts are joined here."""
    grid = src.grid
    terrain = "elev" in src.layers and "slope" in src.layers
    offsets, comp, _ = _union(chunks, res)
    cols: dict[str, list[Any]] = {f: [] for f in ("size", "first", "edge", "n_obs", "elev", "slope", "seed")}
    geoms: list[Any] = []
    values: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    contacts: dict[int, NDArray[np.int64]] = {}
    parts: dict[int, list[dict[str, Any]]] = {}
    for c in chunks:
        r = res[c.index]
        res[c.index] = {}  # free as we go
        if "whole" not in r:
            continue
        base = len(geoms)
        for f, v in cols.items():
            v.append(r["whole"][f])
        geoms.extend(r["whole"]["geom"])
        values.update({base + i: v for i, v in r["values"].items()})
        contacts.update({base + i: v for i, v in r["contacts"].items()})
        for rec in r["parts"]:
            q = int(comp[offsets[c.index] + np.searchsorted(r["ids"], rec["label"])])
            parts.setdefault(q, []).append(rec)
    del res
    joined = [_join_parts(plist, terrain) for plist in parts.values() if any(p["water"] for p in plist)
              and (sum(p["size"] for p in plist) >= min_px or (zone_join and any(p["edge"] for p in plist)))]
    del parts
    for rec in joined:
        i = len(geoms)
        for f, v in cols.items():
            v.append(np.array([rec[f]]))
        geoms.append(rec["geom"])
        if terrain:
            values[i] = rec["values"]
        if rec["contacts"] is not None:
            contacts[i] = rec["contacts"]
    col = {f: np.concatenate(v) if v else np.zeros(0) for f, v in cols.items()}
    keep = np.ones(len(geoms), dtype=bool)
    if terrain and params.max_slope_deg is not None:
        # edge lakes of a multi-zone run are decided after joining across zones, on all their pixels
        steep = (col["slope"] > params.max_slope_deg) & ~(col["edge"].astype(bool) & zone_join)
        if steep.any():
            logger.info("removed %d water object(s) on slopes > %g deg", int(steep.sum()), params.max_slope_deg)
            keep &= ~steep
    order = np.flatnonzero(keep)
    order = order[np.argsort(col["first"][order], kind="stable")]
    return _ZoneLakes(
        grid,
        col["size"][order].astype(np.int64),
        col["first"][order].astype(np.int64),
        col["edge"][order].astype(bool),
        col["n_obs"][order].astype(np.int64),
        list(_pixel_to_crs([geoms[q] for q in order], grid.transform)) if len(order) else [],
        np.round(col["elev"][order].astype(np.float64), 1) if terrain else None,
        np.round(col["slope"][order].astype(np.float64), 2) if terrain else None,
        [values.get(int(q), (np.zeros(0), np.zeros(0))) for q in order] if (zone_join and terrain) else None,
        [contacts.get(int(q), np.zeros((0, 2), np.int64)) for q in order] if zone_join else None,
        col["seed"][order].astype(bool),
    )


# --------------------------------------------------------------------------------------------------
# Lake table -> GeoDataFrame
# --------------------------------------------------------------------------------------------------

def _table(size_m2: NDArray[Any], edge: NDArray[Any], n_obs: NDArray[np.int64], geoms: Sequence[Any] | NDArray[Any],
           crs: CRS, *, pixel_m: float, perim_m: NDArray[np.float64] | None = None,
           terrain: tuple[NDArray[Any] | None, NDArray[Any] | None] | None,
           attributes: Mapping[str, Any], has_nobs: bool) -> gpd.GeoDataFrame:
    from . import lakes as lk

    extra = tuple(k for k in attributes if k not in lk.LAKE_FIELDS)
    n = len(geoms)
    if n == 0:
        empty = lk.empty_lakes(crs, extra_fields=extra)
        if terrain is not None:
            empty = empty.assign(elev_m=pd.Series([], dtype="float64"), slope_deg=pd.Series([], dtype="float64"))
        return empty
    polys = gpd.GeoSeries(list(geoms), crs=crs)
    attrs = lake_attributes(polys, crs=crs, pixel_m=pixel_m, area_km2=np.asarray(size_m2, dtype=np.float64) / 1e6)
    data: dict[str, Any] = {
        **{k: attrs[k].tolist() if k == "lake_id" else attrs[k].to_numpy() for k in attrs.columns},
        "n_obs": np.asarray(n_obs, dtype=np.int64) if has_nobs else np.ones(n, dtype=np.int64),
        "edge": np.asarray(edge).astype(np.int64),
    }
    if perim_m is not None:  # perimeters measured on the lakes' own UTM grids (multi-zone output CRS)
        data["perim_km"] = np.asarray(perim_m, dtype=np.float64) / 1000.0
        data["area_err"] = area_uncertainty_km2(perim_m, pixel_m=pixel_m)
    terrain_cols = {} if terrain is None else {"elev_m": terrain[0], "slope_deg": terrain[1]}
    data.update(terrain_cols)
    # hook: the river flag (contract 5) is computed here per lake, once rivers.py lands
    for k, v in attributes.items():
        data[k] = [v] * n
    order = [f for f in lk.LAKE_FIELDS if f in data] + list(terrain_cols) + list(extra)
    gdf = gpd.GeoDataFrame({k: data[k] for k in order}, geometry=polys.values, crs=crs)
    return gdf.sort_values("lake_id", kind="stable").reset_index(drop=True)


def extract_grid_lakes(
    water_class: NDArray[np.uint8],
    valid_count: NDArray[np.integer] | None = None,
    *,
    transform: Affine,
    crs: Any,
    params: LakeParams,
    aoi_mask: NDArray[np.bool_] | None = None,
    dem: NDArray[np.floating] | None = None,
    slope: NDArray[np.floating] | None = None,
    attributes: Mapping[str, Any] | None = None,
    chunk_px: int | None = None,
    client: Any = None,
) -> gpd.GeoDataFrame:
    """Lakes of in-memory rasters of one grid (the engine behind :func:`gli_toolbox.lakes.extract_lakes`).

    ``chunk_px=None`` labels the whole array as one chunk; any chunk size gives the same layer.

    >>> wc = np.array([[1, 1, 0], [1, 2, 0], [0, 0, 2]], dtype=np.uint8)
    >>> g = extract_grid_lakes(wc, transform=Affine(10, 0, 500000, 0, -10, 4000000), crs="EPSG:32643",
    ...                        params=LakeParams(min_area_m2=100), chunk_px=2)
    >>> g.area_km2.tolist()
    [0.0004]
    """
    crs_obj = _projected(crs)
    grid = _Grid(water_class.shape, transform, crs_obj)
    terr = dem is not None and slope is not None
    src = _ArraySource(grid, {"class": water_class, "nobs": valid_count, "inside": aoi_mask,
                              "elev": dem if terr else None, "slope": slope if terr else None})
    z = _zone_lakes(src, params, chunk_px=chunk_px or max(water_class.shape), client=client)
    return _table(z.size_px * grid.pixel_area, z.edge, z.n_obs, z.geoms, crs_obj,
                  pixel_m=math.sqrt(grid.pixel_area), terrain=(z.elev, z.slope) if terr else None,
                  attributes=dict(attributes or {}), has_nobs=valid_count is not None)


def _projected(crs: Any) -> CRS:
    crs_obj = CRS.from_user_input(crs)
    if not crs_obj.is_projected:
        raise ValueError(f"lake areas need a projected CRS in metres, got {crs_obj.to_string()}; pass e.g. a UTM zone")
    return crs_obj


# --------------------------------------------------------------------------------------------------
# Several UTM zones -> one layer
# --------------------------------------------------------------------------------------------------

def multi_zone_crs(grids: Iterable[tuple[Affine, tuple[int, int], Any]]) -> CRS:
    """The equal-area output CRS of a multi-zone run: Albers conic centred on the zones' footprint,
    standard parallels at 1/6 and 5/6 of its latitude span (areas true, shapes close to true over a
    region).

    >>> t = Affine(10, 0, 300000, 0, -10, 4700000)
    >>> crs = multi_zone_crs([(t, (1000, 1000), "EPSG:32643")])
    >>> crs.coordinate_operation.method_name
    'Albers Equal Area'
    >>> round(crs.coordinate_operation.params[1].value, 1)  # central meridian
    72.6
    """
    lons: list[float] = []
    lats: list[float] = []
    for t, (ny, nx), crs in grids:
        tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        xs = np.array([0, nx, 0, nx, nx / 2, 0, nx / 2, nx])
        ys = np.array([0, 0, ny, ny, 0, ny / 2, ny, ny / 2])
        x, y = t * (xs, ys)
        lo, la = tr.transform(x, y)
        lons.extend(np.asarray(lo).tolist())
        lats.extend(np.asarray(la).tolist())
    lo0, lo1, la0, la1 = min(lons), max(lons), min(lats), max(lats)
    span = max(la1 - la0, 1.0)
    mid = (la0 + la1) / 2
    return CRS.from_proj4(
        f"+proj=aea +lat_0={mid:.4f} +lon_0={(lo0 + lo1) / 2:.4f} +lat_1={mid - span / 3:.4f} "
        f"+lat_2={mid + span / 3:.4f} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
    )


def extract_zone_lakes(
    zones: Sequence[ZoneRaster],
    params: LakeParams,
    *,
    attributes: Mapping[str, Any] | None = None,
    crs: Any = None,
    chunk_px: int = DEFAULT_CHUNK_PX,
    client: Any = None,
) -> gpd.GeoDataFrame:
    """One lake layer from the rasters of the UTM-zone parts of an AOI (contract 3).

    Parameters
    ----------
    zones
        One :class:`ZoneRaster` per zone part (each on its own UTM grid), for one period.
    params
        Minimum mapping unit, hole filling and slope filter.
    attributes
        Constant fields added to every lake (``year``, ``n_scenes``, ``date`` ...).
    crs
        Output CRS. Default: the zone's own UTM CRS for one zone; for several zones
        :func:`multi_zone_crs` (equal-area Albers). Areas are always pixel counts times pixel areas on
        the zone grids, never taken from the reprojected polygon.
    chunk_px
        Side of the square windows read and labelled at a time: memory is set by it, not by the area.
    client
        Optional ``dask.distributed.Client``: the chunk passes run as its tasks (same result).

    Returns
    -------
    GeoDataFrame
        :data:`gli_toolbox.lakes.LAKE_FIELDS` (+ ``elev_m``/``slope_deg`` with terrain rasters, +
        the ``attributes``), one row per lake, sorted by ``lake_id``.
    """
    if not zones:
        raise ValueError("no zone rasters given; pass at least one ZoneRaster")
    sources = [_FileSource(z) for z in zones]
    for s in sources:
        _projected(s.grid.crs)
    terrain = all("elev" in s.layers and "slope" in s.layers for s in sources)
    has_nobs = all("nobs" in s.layers for s in sources)
    attributes = dict(attributes or {})
    if len(sources) == 1:
        src = sources[0]
        z = _zone_lakes(src, params, chunk_px=chunk_px, client=client)
        out_crs = src.grid.crs if crs is None else CRS.from_user_input(crs)
        geoms: Sequence[Any] | NDArray[Any] = z.geoms
        perim = None
        if out_crs != src.grid.crs:
            perim = np.asarray(shapely.length(np.asarray(z.geoms, dtype=object)), dtype=np.float64)
            geoms = _reproject(z.geoms, src.grid.crs, out_crs)
        return _table(z.size_px * src.grid.pixel_area, z.edge, z.n_obs, geoms, _projected(out_crs),
                      pixel_m=math.sqrt(src.grid.pixel_area), perim_m=perim,
                      terrain=(z.elev, z.slope) if terrain else None, attributes=attributes, has_nobs=has_nobs)
    out_crs = multi_zone_crs((s.grid.transform, s.grid.shape, s.grid.crs) for s in sources) if crs is None \
        else _projected(crs)
    per_zone = [_zone_lakes(s, params, chunk_px=chunk_px, client=client, zone_join=True)
                for s in sources]
    return _join_zones(per_zone, sources, params, out_crs, terrain=terrain, has_nobs=has_nobs, attributes=attributes)


def _reproject(geoms: Sequence[Any], src: CRS, dst: CRS) -> NDArray[Any]:
    tr = Transformer.from_crs(src, dst, always_xy=True)

    def f(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return _batched(f, geoms)


def _join_zones(per_zone: Sequence[_ZoneLakes], sources: Sequence[_Source], params: LakeParams, out_crs: CRS, *,
                terrain: bool, has_nobs: bool, attributes: Mapping[str, Any]) -> gpd.GeoDataFrame:
    """Join the edge lakes of different zones whose reprojected outlines come within one pixel."""
    rows: list[dict[str, Any]] = []
    real_edge = [_real_edge(z, zi, sources) for zi, z in enumerate(per_zone)]
    for zi, z in enumerate(per_zone):
        out_geoms: Sequence[Any] | NDArray[Any] = _reproject(z.geoms, z.grid.crs, out_crs) if z.geoms else []
        lengths = shapely.length(np.asarray(z.geoms, dtype=object)) if z.geoms else []
        for q in range(len(z.geoms)):
            rows.append({
                "zone": zi, "geom": out_geoms[q], "area_m2": float(z.size_px[q] * z.grid.pixel_area),
                "perim_m": float(lengths[q]), "edge": bool(z.edge[q]), "real_edge": bool(real_edge[zi][q]),
                "n_obs": int(z.n_obs[q]), "seed": bool(z.seed[q]) if z.seed is not None else True,
                "pixel_m": math.sqrt(z.grid.pixel_area),
                "values": z.values[q] if (terrain and z.values is not None) else None,
                "elev": float(z.elev[q]) if terrain and z.elev is not None else math.nan,
                "slope": float(z.slope[q]) if terrain and z.slope is not None else math.nan,
            })
    n = len(rows)
    pixel_m = max((r["pixel_m"] for r in rows), default=10.0)
    cand = [i for i, r in enumerate(rows) if r["edge"]]
    u: list[int] = []
    v: list[int] = []
    if cand:
        tree = shapely.STRtree([rows[i]["geom"] for i in cand])
        a, b = tree.query([rows[i]["geom"] for i in cand], predicate="dwithin", distance=pixel_m)  # seam gap < 1 px
        for x, y in zip(a, b):
            i, j = cand[x], cand[y]
            if rows[i]["zone"] != rows[j]["zone"]:
                u.append(i)
                v.append(j)
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n, n))
    k, comp = connected_components(graph, directed=False)
    groups: list[list[int]] = [[] for _ in range(k)]
    for i, c in enumerate(comp):
        groups[c].append(i)
    min_m2 = params.min_area_m2
    out = []
    for g in groups:
        if not any(rows[i]["seed"] for i in g):  # possible water never connected to water, in any zone
            continue
        area = sum(rows[i]["area_m2"] for i in g)
        pix = min(rows[i]["pixel_m"] for i in g)
        if area < min_m2 - 1e-6:  # the minimum mapping unit, on the joined lake
            continue
        if len(g) == 1:
            r = rows[g[0]]
            geom, perim, elev, slp = r["geom"], r["perim_m"], r["elev"], r["slope"]
        else:
            geom = _seam_union([[rows[i]["geom"] for i in g if rows[i]["zone"] == z]
                                for z in sorted({rows[i]["zone"] for i in g})], pix)
            # perimeter without the seam: the joined outline measured on a UTM grid of the lake
            perim = float(shapely.length(_reproject([geom], out_crs, per_zone[rows[g[0]]["zone"]].grid.crs)[0]))
            elev = slp = math.nan
            if terrain:
                ev = np.concatenate([_vals(rows[i])[0] for i in g])
                sv = np.concatenate([_vals(rows[i])[1] for i in g])
                elev, slp = round(_nanmedian(ev), 1), round(_nanmedian(sv), 2)
        if terrain and params.max_slope_deg is not None and slp > params.max_slope_deg:
            continue
        out.append({"geom": geom, "area": area, "perim": perim, "edge": any(rows[i]["real_edge"] for i in g),
                    "n_obs": min(rows[i]["n_obs"] for i in g), "elev": elev, "slope": slp, "pixel_m": pix})
    return _table(np.array([o["area"] for o in out]), np.array([o["edge"] for o in out], dtype=bool),
                  np.array([o["n_obs"] for o in out], dtype=np.int64), [o["geom"] for o in out], out_crs,
                  pixel_m=pixel_m, perim_m=np.array([o["perim"] for o in out], dtype=np.float64),
                  terrain=(np.array([o["elev"] for o in out]), np.array([o["slope"] for o in out])) if terrain else None,
                  attributes=attributes, has_nobs=has_nobs)


def _real_edge(z: _ZoneLakes, zi: int, sources: Sequence[_Source]) -> NDArray[np.bool_]:
    """Per lake of zone ``zi``: does it touch a pixel that no other zone observes? (The other zone's
    part of the AOI is never observed on this zone's grid; across the seam, land or water observed on
    the other zone's grid is no edge.)"""
    out = np.zeros(len(z.geoms), dtype=bool)
    assert z.contacts is not None
    lake = np.concatenate([np.full(len(c), q) for q, c in enumerate(z.contacts)]) if z.contacts else np.zeros(0, int)
    if lake.size == 0:
        return out
    rc = np.concatenate(z.contacts)
    x, y = z.grid.transform * (rc[:, 1] + 0.5, rc[:, 0] + 0.5)
    seen = np.zeros(len(rc), dtype=bool)
    for zj, other in enumerate(sources):
        if zj == zi:
            continue
        tr = Transformer.from_crs(z.grid.crs, other.grid.crs, always_xy=True)
        ox, oy = tr.transform(x, y)
        col, row = ~other.grid.transform * (np.asarray(ox), np.asarray(oy))
        r0, c0 = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
        # the two grids' pixels straddle the seam: the pixel holding the point or a 4-neighbour
        for dr, dc in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            seen |= _observed(other, r0 + dr, c0 + dc)
    out[np.unique(lake[~seen])] = True
    return out


def _observed(src: _Source, rows: NDArray[np.int64], cols: NDArray[np.int64], tile: int = DEFAULT_CHUNK_PX,
              ) -> NDArray[np.bool_]:
    """Whether ``src`` observes these pixels (class != 255), read tile by tile (bounded memory)."""
    ny, nx = src.grid.shape
    ok = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    out = np.zeros(len(rows), dtype=bool)
    keys = (rows // tile) * (nx // tile + 1) + cols // tile
    for key in np.unique(keys[ok]):
        sel = np.flatnonzero(ok & (keys == key))
        r0, r1, c0, c1 = rows[sel].min(), rows[sel].max() + 1, cols[sel].min(), cols[sel].max() + 1
        cls = src.read("class", int(r0), int(r1), int(c0), int(c1))
        out[sel] = cls[rows[sel] - r0, cols[sel] - c0] != NEVER_OBSERVED
    return out


def _seam_union(by_zone: Sequence[Sequence[Any]], d: float) -> Any:
    """Union of the parts of one lake from several zone grids, closing the sub-pixel gaps and slivers
    between the grids along the seam only (a closing by ``d`` limited to where the parts of two zones
    come within ``d`` of each other), so the lake's other inlets keep their pixel outline.

    >>> a = shapely.box(0, 0, 10, 10)
    >>> b = shapely.box(10.4, 0, 20, 10)  # a 0.4 m gap between the two grids
    >>> _seam_union([[a], [b]], 10.0).normalize().wkt
    'POLYGON ((0 0, 0 10, 20 10, 20 0, 0 0))'
    """
    zones = [shapely.union_all(list(p)) for p in by_zone]
    whole = shapely.union_all(zones)
    grown = [z.buffer(d, join_style="mitre") for z in zones]
    seam = shapely.union_all([grown[i].intersection(grown[j]) for i in range(len(zones)) for j in range(i + 1, len(zones))])
    closed = whole.buffer(d, join_style="mitre").buffer(-d, join_style="mitre")
    out = shapely.union_all([whole, closed.intersection(seam)])
    return shapely.simplify(out, 0) if out.geom_type == "Polygon" else out


def _vals(row: Mapping[str, Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    v = row["values"]
    assert v is not None  # edge lakes of a multi-zone run carry their terrain values
    return v
