"""The one home of lake attributes: fields, GLIMS-style ids and their uniqueness, area uncertainty,
and the function that computes them from polygons.

Used by lake extraction (``gli detect``), by reading partners' inventories and by tracking
(``gli track``), so a lake gets the same area, perimeter, point, id and uncertainty whichever path
made it. Pure core: takes geometries in a projected (metric) CRS, never opens a file.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pyproj import CRS, Transformer

__all__ = [
    "LAKE_FIELDS",
    "area_uncertainty_km2",
    "glims_id",
    "lake_attributes",
    "unique_id",
    "unique_ids",
]

#: Attribute fields of a lake layer, in order (all <= 10 characters for shapefiles).
LAKE_FIELDS: tuple[str, ...] = (
    "lake_id", "year", "area_km2", "perim_km", "area_err", "lon", "lat", "n_obs", "edge", "n_scenes",
)

#: Hanshaw & Bookhagen (2014, The Cryosphere 8, 359-376): one-sigma share of the edge pixels'
#: area that is misclassified, used for area uncertainty from perimeter and pixel size.
HANSHAW_BOOKHAGEN_SIGMA = 0.6872


def glims_id(lon: float, lat: float) -> str:
    """GLIMS-style lake id from a WGS84 point: ``GL`` + lon and lat in thousandths of a degree.

    >>> glims_id(70.5494, 36.3651)
    'GL070549E36365N'
    >>> glims_id(-72.05, -49.3)
    'GL072050W49300S'
    """
    ew = "E" if lon >= 0 else "W"
    ns = "N" if lat >= 0 else "S"
    return f"GL{round(abs(lon) * 1000):06d}{ew}{round(abs(lat) * 1000):05d}{ns}"


def unique_id(base: str, used: set[str] | frozenset[str]) -> str:
    """``base`` if not in ``used``, else the first free of ``base`` + A..Z, then ``base`` + 2, 3, ...

    Never wraps: there is always a free id. Two lakes get the same GLIMS id when their points lie
    within 0.001 degree (about 100 m); ids given by partners are kept as they are when free.

    >>> unique_id("GL1N", set()), unique_id("GL1N", {"GL1N"}), unique_id("GL1N", {"GL1N", "GL1NA"})
    ('GL1N', 'GL1NA', 'GL1NB')
    >>> unique_id("X", {"X", *("X" + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")})
    'X2'
    """
    if base not in used:
        return base
    for letter in string.ascii_uppercase:
        if base + letter not in used:
            return base + letter
    k = 2
    while f"{base}{k}" in used:
        k += 1
    return f"{base}{k}"


def unique_ids(ids: Iterable[str], used: Iterable[str] = ()) -> list[str]:
    """Make ``ids`` unique in order with :func:`unique_id` (also against ``used``).

    >>> unique_ids(["A", "A", "B", "A"])
    ['A', 'AA', 'B', 'AB']
    >>> len(set(unique_ids(["A"] * 100)))
    100
    """
    taken = set(used)
    out = []
    for i in ids:
        u = unique_id(i, taken)
        taken.add(u)
        out.append(u)
    return out


def area_uncertainty_km2(perimeter_m: NDArray[np.floating] | float, *, pixel_m: float) -> NDArray[np.float64]:
    """One-sigma area uncertainty (km2) from the perimeter, after Hanshaw & Bookhagen (2014):
    ``(P / G) * (G**2 / 2) * 0.6872`` with perimeter ``P`` and pixel size ``G`` in metres.

    >>> float(area_uncertainty_km2(400.0, pixel_m=10.0))
    0.0013744
    """
    p = np.asarray(perimeter_m, dtype=np.float64)
    return (p / pixel_m) * (pixel_m**2 / 2.0) * HANSHAW_BOOKHAGEN_SIGMA / 1e6


def lake_attributes(
    geoms: gpd.GeoSeries | Sequence[Any],
    *,
    crs: Any,
    pixel_m: float,
    area_km2: NDArray[np.floating] | None = None,
    used_ids: Iterable[str] = (),
) -> pd.DataFrame:
    """Area, perimeter, uncertainty, representative point and unique GLIMS-style id of polygons.

    Parameters
    ----------
    geoms
        Lake polygons in ``crs``.
    crs
        A projected CRS in metres (UTM or equal-area); areas are never computed in degrees.
    pixel_m
        Pixel size the outlines were mapped at (for ``area_err``).
    area_km2
        Areas when known more exactly than from the polygon (pixel count times pixel area).
    used_ids
        Ids already taken (for example ids a partner gave to other lakes of the layer).

    Returns
    -------
    DataFrame
        ``lake_id, area_km2, perim_km, area_err, lon, lat`` in the order of ``geoms``
        (``lon``/``lat``: WGS84 representative point rounded to 1e-6 degree).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> a = lake_attributes([box(500000, 4000000, 500200, 4000100)], crs="EPSG:32643", pixel_m=10.0)
    >>> a.loc[0, "lake_id"], float(a.loc[0, "area_km2"]), float(a.loc[0, "perim_km"])
    ('GL075001E36145N', 0.02, 0.6)
    """
    crs_obj = CRS.from_user_input(crs)
    if not crs_obj.is_projected:
        raise ValueError(f"lake areas need a projected CRS in metres, got {crs_obj.to_string()}; pass e.g. a UTM zone")
    polys = geoms if isinstance(geoms, gpd.GeoSeries) else gpd.GeoSeries(list(geoms), crs=crs_obj)
    perim_m = polys.length.to_numpy()
    reps = polys.representative_point()
    lon, lat = Transformer.from_crs(crs_obj, "EPSG:4326", always_xy=True).transform(reps.x.to_numpy(), reps.y.to_numpy())
    return pd.DataFrame({
        "lake_id": unique_ids((glims_id(x, y) for x, y in zip(lon, lat)), used_ids),
        "area_km2": polys.area.to_numpy() / 1e6 if area_km2 is None else np.asarray(area_km2, dtype=np.float64),
        "perim_km": perim_m / 1000.0,
        "area_err": area_uncertainty_km2(perim_m, pixel_m=pixel_m),
        "lon": np.round(lon, 6),
        "lat": np.round(lat, 6),
    })
