"""Field definitions, aliases, descriptions and stored styles, checked in the files themselves
(no QGIS needed; tests/integration/test_qgis.py checks the same in a real QGIS)."""

from __future__ import annotations

import sqlite3
import struct
import xml.etree.ElementTree as ET

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from gli_toolbox.export import lakes_all, write_layer
from gli_toolbox.schema import FIELDS


def dbf_fields(path):
    """(name, type, width, decimals) of every field, from the DBF header (dBase III layout)."""
    raw = path.read_bytes()
    header_len = struct.unpack("<H", raw[8:10])[0]
    out = []
    for off in range(32, header_len - 1, 32):
        d = raw[off:off + 32]
        if d[0] == 0x0D:
            break
        out.append((d[:11].split(b"\0")[0].decode(), chr(d[11]), d[16], d[17]))
    return out


@pytest.fixture
def lakes():
    return gpd.GeoDataFrame({
        "lake_id": ["GL076400E43100N", "GL076420E43100N"], "year": [2020, 2020],
        "area_km2": [2.0884, 12345.123456789], "perim_km": [7.12, 900.0], "area_err": [0.0123456, 0.5],
        "lon": [76.4000012, 76.42], "lat": [43.1, 43.1000049], "n_obs": [12, 7], "edge": [0, 1], "n_scenes": [14, 14],
        "name": ["Озеро Ала-Кёль", None],
    }, geometry=[box(0, 0, 10, 10), box(20, 20, 30, 30)], crs="EPSG:32643")


def test_shapefile_widths_and_decimals_fit_the_values(lakes, tmp_path):
    write_layer(lakes, tmp_path, "lakes_2020")
    f = {name: (t, w, d) for name, t, w, d in dbf_fields(tmp_path / "lakes_2020.dbf")}
    # areas to 1 m2; 12345.123457 needs 5 integer digits (+ sign and point)
    assert f["area_km2"] == ("N", 5 + 6 + 2, 6)
    assert f["lon"][2] == 6 and f["lat"][2] == 6 and f["perim_km"] == ("N", 4 + 3 + 2, 3)  # at least 4 integer digits (9999 km)
    assert f["year"] == ("N", 4, 0) and f["edge"] == ("N", 1, 0) and f["n_obs"] == ("N", 5, 0)
    assert f["lake_id"] == ("C", 16, 0)
    assert f["name"] == ("C", len("Озеро Ала-Кёль".encode()), 0)  # UTF-8 bytes, not 80 or 254
    back = gpd.read_file(tmp_path / "lakes_2020.shp")
    assert back["area_km2"].tolist() == [2.0884, 12345.123457]  # rounded to 1 m2, not truncated
    assert back["lon"].tolist()[0] == 76.400001 and back["name"].tolist()[0] == "Озеро Ала-Кёль"


def test_geopackage_aliases_descriptions_and_default_style(lakes, tmp_path):
    gpkg = tmp_path / "inventory.gpkg"
    write_layer(lakes, tmp_path, "lakes_2020", gpkg=gpkg)
    with sqlite3.connect(gpkg) as con:
        cols = {c: (t, d) for c, t, d in con.execute(
            "select column_name, name, description from gpkg_data_columns where table_name='lakes_2020'")}
        styles = con.execute("select f_table_name, f_geometry_column, useAsDefault, styleQML from layer_styles").fetchall()
        version = con.execute("pragma user_version").fetchone()[0]
    for name in ("lake_id", "area_km2", "lon", "edge"):
        assert cols[name][0] == FIELDS[name].alias and FIELDS[name].alias_ru in cols[name][1]
    assert "name" not in cols  # a partner's own field: no invented alias
    assert version == 10200  # GeoPackage 1.2
    (table, geom, default, qml), = styles
    assert (table, geom, default) == ("lakes_2020", "geom", 1)
    assert qml == (tmp_path / "lakes_2020.qml").read_text(encoding="utf-8")
    root = ET.fromstring(qml.split("\n", 1)[1])
    aliases = {a.get("field"): a.get("name") for a in root.iter("alias")}
    assert aliases["area_km2"] == "Area (km²)" and aliases["name"] == ""


def test_lakes_all_dates_per_period(lakes):
    later = lakes.assign(year=2021)
    scenes = {"20200715": lakes.iloc[:1], "20200802": lakes.iloc[1:]}
    yearly = lakes_all({"2020": lakes, "2021": later}, months=(7, 9))
    assert yearly["period"].tolist() == ["2020", "2020", "2021", "2021"]
    assert [str(d.date()) for d in yearly["date"]] == ["2020-07-01", "2020-07-01", "2021-07-01", "2021-07-01"]
    assert str(yearly["date_end"].iloc[0].date()) == "2020-09-30"
    whole_year = lakes_all({"2020": lakes})
    assert (str(whole_year["date"].iloc[0].date()), str(whole_year["date_end"].iloc[0].date())) == ("2020-01-01",
                                                                                                    "2020-12-31")
    per_scene = lakes_all(scenes)
    assert np.array_equal(per_scene["date"].to_numpy(), per_scene["date_end"].to_numpy())
    assert [str(d.date()) for d in per_scene["date"]] == ["2020-07-15", "2020-08-02"]
    assert list(per_scene.columns[:4]) == ["lake_id", "year", "period", "date"]
