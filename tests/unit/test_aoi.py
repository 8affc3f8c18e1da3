"""AOI checks on files written in the test (every bad case the detect issue lists)."""

import json

import geopandas as gpd
import pytest
from shapely.geometry import Point, Polygon, box

from gli_toolbox.aoi import read_aoi
from gli_toolbox.errors import AoiError


def _write(tmp_path, name, geoms, crs="EPSG:4326"):
    p = tmp_path / name
    gpd.GeoDataFrame({"id": list(range(len(geoms)))}, geometry=geoms, crs=crs).to_file(p)
    return p


def test_reads_and_dissolves(tmp_path):
    p = _write(tmp_path, "a.geojson", [box(74.0, 42.0, 74.1, 42.1), box(74.1, 42.0, 74.2, 42.1)])
    aoi = read_aoi(p)
    assert aoi.geometry_wgs84.bounds == pytest.approx((74.0, 42.0, 74.2, 42.1))
    assert 150 < aoi.area_km2 < 190  # 0.2 x 0.1 degree at 42 N ~ 16.5 km x 11.1 km


def test_projected_file_is_reprojected(tmp_path):
    p = _write(tmp_path, "utm.gpkg", [box(580560, 5101700, 580800, 5102120)], crs="EPSG:32632")
    aoi = read_aoi(p)
    assert 9.9 < aoi.centre[0] < 10.1 and 46.0 < aoi.centre[1] < 46.1
    assert aoi.area_km2 == pytest.approx(0.1008, rel=0.01)


def test_missing(tmp_path):
    with pytest.raises(AoiError, match="not found"):
        read_aoi(tmp_path / "nope.geojson")


def test_unreadable(tmp_path):
    p = tmp_path / "broken.geojson"
    p.write_text("{ this is not json")
    with pytest.raises(AoiError, match="cannot read"):
        read_aoi(p)


def test_empty(tmp_path):
    p = tmp_path / "empty.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(AoiError, match="no features"):
        read_aoi(p)


def test_not_polygon(tmp_path):
    with pytest.raises(AoiError, match="Point"):
        read_aoi(_write(tmp_path, "pt.geojson", [Point(74, 42)]))


def test_self_intersecting(tmp_path):
    bowtie = Polygon([(74.0, 42.0), (74.1, 42.1), (74.1, 42.0), (74.0, 42.1)])
    with pytest.raises(AoiError, match="Self-intersection"):
        read_aoi(_write(tmp_path, "bow.geojson", [bowtie]))


def test_no_crs(tmp_path):
    p = tmp_path / "nocrs.shp"
    with pytest.warns(UserWarning, match="crs"):
        gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(p)
    with pytest.raises(AoiError, match="no CRS"):
        read_aoi(p)


def test_projected_coordinates_labelled_wgs84(tmp_path):
    p = tmp_path / "wrong.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                 "geometry": box(580560, 5101700, 580800, 5102120).__geo_interface__}]}))
    with pytest.raises(AoiError, match="not longitude/latitude"):
        read_aoi(p)


def test_any_area_is_read_and_max_km2_is_an_optional_guard(tmp_path):
    """No area limit by default (Kazakhstan, 2.7 million km2, and more: the run's plan states the
    cost); an explicit ``max_km2`` refuses larger areas with a line that says what to do."""
    from gli_toolbox.aoi import geodesic_area_km2

    big = box(46.5, 40.5, 87.3, 55.4)  # Kazakhstan's bounding box
    path = _write(tmp_path, "big.geojson", [big])
    aoi = read_aoi(path)
    assert aoi.area_km2 == pytest.approx(geodesic_area_km2(big)) and aoi.area_km2 > 2.7e6
    with pytest.raises(AoiError, match=r"more than max_km2=1,000,000; raise or drop the limit"):
        read_aoi(path, max_km2=1e6)
