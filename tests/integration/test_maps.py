"""Interactive maps from result objects: layers, legend, and drawing offline in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from browser import render

import gli_toolbox
from gli_toolbox.figures import status_colour


@pytest.fixture(scope="module")
def result(sample_data: Path):
    return gli_toolbox.detect(sample_data / "barbellino.geojson", years=(2017, 2018, 2019),
                              stac=str(sample_data / "catalog.json"), progress=False)


def _no_remote_resources(page: str) -> None:
    assert not re.search(r"""<(script|link)[^>]+(src|href)\s*=\s*["']https?://""", page)
    assert "tile.openstreetmap" not in page and "L.tileLayer(" not in page


def test_detect_map_has_a_layer_per_year_and_a_legend(result, tmp_path: Path):
    m = result.explore()
    page = m.get_root().render()
    _no_remote_resources(page)
    for name in ("area of interest", "lakes 2017 (1)", "lakes 2019 (1)", "change status (all periods)"):
        assert f'"{name}"' in page or f">{name}<" in page or name in page
    assert "lakes 2018" not in page  # no scene that year: no layer
    assert "status: growing" in page and status_colour("growing") in page
    lake_id = result.lakes[2019]["lake_id"].item()
    assert lake_id in page  # in the GeoJSON properties shown as tooltip


def test_tracking_map_colours_lakes_by_status(result):
    page = result.tracking.explore().get_root().render()
    _no_remote_resources(page)
    assert "growing (1)" in page
    assert f'"fillColor": "{status_colour("growing")}"' in page or status_colour("growing") in page


def test_maps_draw_without_a_network(result, tmp_path: Path):
    path = tmp_path / "map.html"
    result.explore().save(str(path))
    urls, dom = render(path, tmp_path)
    assert urls == set()
    # Leaflet ran: the AOI and the two yearly outlines are SVG paths, and the layer control lists them
    assert dom.count("leaflet-interactive") >= 3
    assert "lakes 2017 (1)" in dom and "lakes 2019 (1)" in dom


def test_thousands_of_lakes_keep_one_status_layer_with_every_lake():
    import geopandas as gpd
    import shapely

    from gli_toolbox.maps import MANY_LAKES
    from gli_toolbox.tracking import track

    n = MANY_LAKES + 500
    xs = 500_000 + (np.arange(n) % 50) * 400.0
    ys = 4_500_000 + (np.arange(n) // 50) * 400.0
    layer = gpd.GeoDataFrame({"lake_id": [f"L{k}" for k in range(n)]}, geometry=shapely.box(xs, ys, xs + 90, ys + 90),
                             crs="EPSG:32643")
    tr = track({2016: layer, 2023: layer})
    m = tr.explore()
    page = m.get_root().render()
    assert "lakes 2016" not in page and "change status (all periods)" in page  # per-period layers left out
    assert page.count('"lake_id": "L') == n  # every lake once, in the status layer
    assert f"stable ({n})" in page
    assert "lakes 2016" in tr.explore(layers=True).get_root().render()
