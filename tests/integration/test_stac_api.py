"""The STAC search adapter against a real STAC API (stac-fastapi-pgstac) on loopback.

The API holds the sample catalog (band files served by nginx), a paging collection and a recorded
Earth Search pair of one acquisition in two processings; see ``conftest.py`` and ``servers.py``.
Expected answers come from the static catalog on disk, read here with pystac, not from the adapter.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import servers
import shapely
import shapely.affinity
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from gli_toolbox import detect
from gli_toolbox.errors import StacError
from gli_toolbox.search import SceneSource, group_by_day, open_source, search_year

pytestmark = pytest.mark.stac_server

C1 = servers.SAMPLE_COLLECTION
WORLD = shapely.geometry.box(-180, -90, 180, 90)


def _season(year: int) -> dict[str, str]:
    return {"start": f"{year}-07-01T00:00:00Z", "end": f"{year}-09-30T23:59:59Z"}


@pytest.fixture(scope="module")
def barbellino(sample_data: Path) -> BaseGeometry:
    """The Barbellino AOI in WGS84."""
    gdf = gpd.read_file(sample_data / "barbellino.geojson").to_crs(4326)
    return shapely.union_all(gdf.geometry.to_numpy())


@pytest.fixture(scope="module")
def catalog_items(sample_data: Path) -> list[pystac.Item]:
    """The items of the static sample catalog, read from disk (the expected answers)."""
    return list(
        pystac.Catalog.from_file(str(sample_data / "catalog.json")).get_items(recursive=True)
    )


def _sample_item(items: list[pystac.Item], day: dt.date) -> pystac.Item:
    found = [
        i
        for i in items
        if i.collection_id == C1 and i.datetime is not None and i.datetime.date() == day
    ]
    assert len(found) == 1, (
        f"the sample catalog should have one {C1} item on {day}, has {[i.id for i in found]}"
    )
    return found[0]


@pytest.fixture(scope="module")
def api(stac_api: str) -> SceneSource:
    source = open_source(stac_api)
    assert not source.is_local
    return source


def test_api_lists_the_loaded_collections(api: SceneSource) -> None:
    assert {C1, "sentinel-2-l1c", servers.PAGING_COLLECTION, servers.DUPLICATE_COLLECTION} <= set(
        api.collections()
    )


@pytest.mark.parametrize("year, day", [(2017, dt.date(2017, 7, 3)), (2019, dt.date(2019, 7, 23))])
def test_barbellino_season_gives_the_one_scene_of_the_year(
    api: SceneSource,
    barbellino: BaseGeometry,
    catalog_items: list[pystac.Item],
    year: int,
    day: dt.date,
) -> None:
    expected = _sample_item(catalog_items, day)
    scenes, dropped = search_year(
        api, collection=C1, aoi_wgs84=barbellino, max_cloud_pct=100.0, **_season(year)
    )
    assert [s.id for s in scenes] == [expected.id]
    assert dropped == []
    scene = scenes[0]
    assert scene.day == day
    assert scene.collection == C1
    assert scene.cloud_pct == pytest.approx(expected.properties["eo:cloud_cover"])
    assert list(group_by_day(scenes)) == [day]


def test_year_without_scenes_gives_none(api: SceneSource, barbellino: BaseGeometry) -> None:
    assert search_year(
        api, collection=C1, aoi_wgs84=barbellino, max_cloud_pct=100.0, **_season(2018)
    ) == ([], [])


def test_cloud_filter_excludes_scene_above_max_cloud(
    api: SceneSource, barbellino: BaseGeometry, catalog_items: list[pystac.Item]
) -> None:
    item = _sample_item(catalog_items, dt.date(2017, 7, 3))
    cloud = float(item.properties["eo:cloud_cover"])
    assert cloud > 1.0, "the test needs a sample scene with some cloud"
    below, _ = search_year(
        api, collection=C1, aoi_wgs84=barbellino, max_cloud_pct=cloud - 0.05, **_season(2017)
    )
    at, _ = search_year(
        api, collection=C1, aoi_wgs84=barbellino, max_cloud_pct=cloud, **_season(2017)
    )
    assert below == []
    assert [s.id for s in at] == [item.id]  # the limit is inclusive


@pytest.mark.parametrize("year", [2017, 2019])
def test_aoi_far_away_gives_none(api: SceneSource, barbellino: BaseGeometry, year: int) -> None:
    far = shapely.affinity.translate(barbellino, xoff=100.0)  # same latitude, in Mongolia
    assert search_year(api, collection=C1, aoi_wgs84=far, max_cloud_pct=100.0, **_season(year)) == (
        [],
        [],
    )
    # the same search at the real place does find the scene
    assert (
        len(
            search_year(
                api, collection=C1, aoi_wgs84=barbellino, max_cloud_pct=100.0, **_season(year)
            )[0]
        )
        == 1
    )


def test_collection_filter_keeps_collections_apart(
    api: SceneSource, catalog_items: list[pystac.Item]
) -> None:
    l1c = [i for i in catalog_items if i.collection_id == "sentinel-2-l1c"]
    assert len(l1c) == 1
    havel = shapely.geometry.shape(l1c[0].geometry)
    assert l1c[0].datetime is not None
    year = l1c[0].datetime.year
    window = {"start": f"{year}-01-01T00:00:00Z", "end": f"{year}-12-31T23:59:59Z"}
    found, _ = search_year(
        api, collection="sentinel-2-l1c", aoi_wgs84=havel, max_cloud_pct=100.0, **window
    )
    assert [s.id for s in found] == [l1c[0].id]
    assert search_year(api, collection=C1, aoi_wgs84=havel, max_cloud_pct=100.0, **window) == (
        [],
        [],
    )


def test_all_pages_come_back(api: SceneSource) -> None:
    assert servers.PAGING_ITEM_COUNT > 2 * 100, (
        "the adapter asks for 100 items a page; load more than two pages"
    )
    scenes, dropped = search_year(
        api,
        collection=servers.PAGING_COLLECTION,
        aoi_wgs84=WORLD,
        start="2018-01-01T00:00:00Z",
        end="2018-12-31T23:59:59Z",
        max_cloud_pct=100.0,
    )
    assert dropped == []
    assert len(scenes) == servers.PAGING_ITEM_COUNT
    assert {s.id for s in scenes} == {
        f"{servers.PAGING_COLLECTION}-{i:03d}" for i in range(servers.PAGING_ITEM_COUNT)
    }
    days = [s.day for s in scenes]
    assert days == sorted(days) and len(set(days)) == len(days)


def test_reprocessed_duplicate_is_dropped(api: SceneSource) -> None:
    lucerne = shapely.geometry.box(8.3, 47.2, 8.4, 47.3)  # inside MGRS 32TMT
    window = {"start": "2020-03-01T00:00:00Z", "end": "2020-03-31T23:59:59Z"}
    raw = api.search(
        collection=servers.DUPLICATE_COLLECTION, intersects=lucerne, max_cloud_pct=100.0, **window
    )
    assert {i.id for i in raw} == {
        servers.DUPLICATE_OLD_ID,
        servers.DUPLICATE_NEW_ID,
    }  # the API returns both
    scenes, dropped = search_year(
        api,
        collection=servers.DUPLICATE_COLLECTION,
        aoi_wgs84=lucerne,
        max_cloud_pct=100.0,
        **window,
    )
    assert [s.id for s in scenes] == [servers.DUPLICATE_NEW_ID]
    assert dropped == [servers.DUPLICATE_OLD_ID]


def test_band_files_are_read_over_http(
    api: SceneSource, http_server: str, barbellino: BaseGeometry, catalog_items: list[pystac.Item]
) -> None:
    scenes, _ = search_year(
        api, collection=C1, aoi_wgs84=barbellino, max_cloud_pct=100.0, **_season(2019)
    )
    href = scenes[0].item.assets["green"].href
    assert href.startswith(http_server + "/")
    local = _sample_item(catalog_items, dt.date(2019, 7, 23)).assets["green"].get_absolute_href()
    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_MAX_RETRY="0"),
        rasterio.open(href) as remote,
        rasterio.open(local) as disk,
    ):
        assert remote.crs == disk.crs and remote.transform == disk.transform
        np.testing.assert_array_equal(remote.read(1), disk.read(1))


def test_http_server_answers_range_requests(http_server: str, sample_data: Path) -> None:
    req = urllib.request.Request(http_server + "/catalog.json", headers={"Range": "bytes=2-9"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 206
        assert resp.read() == (sample_data / "catalog.json").read_bytes()[2:10]


def test_url_where_nothing_listens_raises_quickly() -> None:
    url = f"http://127.0.0.1:{servers.free_port()}"
    t0 = time.monotonic()
    with pytest.raises(StacError, match="cannot reach"):
        open_source(url)
    assert time.monotonic() - t0 < 5.0


@pytest.fixture
def api_whose_search_is_down() -> Iterator[str]:
    """A landing page that advertises item search at a port where nothing listens."""
    dead = servers.free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    landing = json.dumps(
        {
            "type": "Catalog",
            "id": "half-down",
            "stac_version": "1.0.0",
            "description": "search is down",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
            ],
            "links": [
                {"rel": "self", "href": base + "/", "type": "application/json"},
                {"rel": "root", "href": base + "/", "type": "application/json"},
                {
                    "rel": "search",
                    "href": f"http://127.0.0.1:{dead}/search",
                    "type": "application/geo+json",
                    "method": "POST",
                },
            ],
        }
    ).encode()

    class Landing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(landing)))
            self.end_headers()
            self.wfile.write(landing)

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Landing
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base + "/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_search_endpoint_down_says_cannot_reach(
    api_whose_search_is_down: str, barbellino: BaseGeometry
) -> None:
    source = open_source(api_whose_search_is_down)
    t0 = time.monotonic()
    with pytest.raises(StacError) as err:
        search_year(
            source, collection=C1, aoi_wgs84=barbellino, max_cloud_pct=100.0, **_season(2019)
        )
    assert time.monotonic() - t0 < 5.0
    assert "cannot reach" in str(err.value)


def test_file_server_is_not_a_stac_api(http_server: str) -> None:
    with pytest.raises(StacError, match="did not answer as a STAC API"):
        open_source(http_server)


def test_static_catalog_over_http_is_not_a_stac_api(http_server: str) -> None:
    with pytest.raises(StacError, match="without item search"):
        open_source(http_server + "/catalog.json")


def test_detect_gives_same_lakes_from_api_and_local_catalog(
    stac_api: str, sample_data: Path
) -> None:
    aoi = str(sample_data / "barbellino.geojson")
    via_api = detect(aoi, years=(2017, 2019), stac=stac_api)
    local = detect(aoi, years=(2017, 2019), stac=str(sample_data / "catalog.json"))
    for year in (2017, 2019):
        api_km2 = float(via_api.lakes[year]["area_km2"].sum())
        local_km2 = float(local.lakes[year]["area_km2"].sum())
        assert len(via_api.lakes[year]) > 0, f"no lake found in {year}"
        assert len(via_api.lakes[year]) == len(local.lakes[year]), year
        assert api_km2 == pytest.approx(local_km2, rel=1e-9), year
