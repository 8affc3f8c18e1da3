"""Glacier distance and lake type on boxes with known geometry; scale against brute force."""


import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from gli_toolbox.glaciers import (
    CONTACT_M,
    LAKE_TYPES,
    MAX_GLACIER_DIST_M,
    glacier_context,
    lake_type_counts,
    near_glaciers,
)

UTM = "EPSG:32643"  # Tien Shan / Pamir


def gdf(geoms, crs=UTM, **cols):
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=crs)


@pytest.fixture
def glacier():
    """One 2 x 1 km glacier tongue at the origin."""
    return gdf([box(0, 0, 2000, 1000)], RGIId=["RGI60-13.00001"])


def test_types_and_distances_follow_the_rule(glacier):
    lakes = gdf(
        [
            box(100, 100, 300, 300),  # fully on the ice
            box(1900, 400, 2100, 600),  # half on the ice: 50 % -> supraglacial
            box(1950, 400, 2150, 600),  # 25 % on the ice, touching -> proglacial, distance 0
            box(2300, 0, 2400, 100),  # 300 m from the snout
            box(2000 + CONTACT_M + 1, 0, 2600 + CONTACT_M, 100),  # just beyond contact
            box(9000, 0, 9100, 100),  # 7 km away
        ],
        name=list("abcdef"),
    )
    out = glacier_context(lakes, glacier)
    assert out.glac_dist.tolist() == pytest.approx([0, 0, 0, 300, CONTACT_M + 1, 7000])
    assert out.lake_type.tolist() == [
        "supraglacial", "supraglacial", "proglacial", "proglacial", "unconnected", "unconnected",
    ]
    # a copy with the input columns untouched
    assert out.name.tolist() == list("abcdef")
    assert "glac_dist" not in lakes.columns
    assert out.glac_dist.dtype == np.float64 and out.lake_type.dtype == object
    assert set(out.lake_type) <= set(LAKE_TYPES)


def test_contact_distance_and_share_are_parameters(glacier):
    lakes = gdf([box(2300, 0, 2400, 100), box(1950, 400, 2150, 600)])
    strict = glacier_context(lakes, glacier, contact_m=100.0, supraglacial_min_share=0.2)
    assert strict.lake_type.tolist() == ["unconnected", "supraglacial"]
    with pytest.raises(ValueError, match="contact_m"):
        glacier_context(lakes, glacier, contact_m=-1)
    with pytest.raises(ValueError, match="supraglacial_min_share"):
        glacier_context(lakes, glacier, supraglacial_min_share=0)


def test_lake_in_a_nunatak_hole_is_outside_the_ice():
    ice = Polygon([(0, 0), (3000, 0), (3000, 3000), (0, 3000)], [[(1000, 1000), (2000, 1000), (2000, 2000), (1000, 2000)]])
    lakes = gdf([box(1400, 1400, 1600, 1600)])
    out = glacier_context(lakes, gdf([ice]))
    assert out.glac_dist.iloc[0] == pytest.approx(400)
    assert out.lake_type.iloc[0] == "proglacial"


def test_glaciers_are_reprojected_to_the_lake_crs(glacier):
    lakes = gdf([box(2300, 0, 2400, 100)])
    in_wgs84 = glacier.to_crs("EPSG:4326")
    a = glacier_context(lakes, glacier).glac_dist.iloc[0]
    b = glacier_context(lakes, in_wgs84).glac_dist.iloc[0]
    assert b == pytest.approx(a, abs=0.5)  # the round trip through degrees moves vertices < 0.5 m


def test_geographic_lakes_are_refused_with_advice(glacier):
    lakes = gdf([box(70, 39, 70.01, 39.01)], crs="EPSG:4326")
    with pytest.raises(ValueError, match="to_crs"):
        glacier_context(lakes, glacier)
    with pytest.raises(ValueError, match="set_crs"):
        glacier_context(gdf([box(0, 0, 1, 1)], crs=None), glacier)
    with pytest.raises(ValueError, match="glacier outlines have no CRS"):
        glacier_context(gdf([box(0, 0, 1, 1)]), gdf([box(0, 0, 1, 1)], crs=None))


def test_empty_inputs_give_well_formed_columns(glacier):
    empty_lakes = gdf([])
    out = glacier_context(empty_lakes, glacier)
    assert len(out) == 0
    assert out.glac_dist.dtype == np.float64 and out.lake_type.dtype == object
    assert out.crs == empty_lakes.crs

    lakes = gdf([box(0, 0, 10, 10), box(50, 50, 60, 60)])
    none = glacier_context(lakes, gdf([]))
    assert none.glac_dist.isna().all()
    assert none.lake_type.tolist() == ["unconnected", "unconnected"]
    assert len(near_glaciers(none)) == 0


def test_invalid_and_degenerate_outlines_are_repaired(glacier):
    bowtie = Polygon([(0, 0), (1000, 1000), (1000, 0), (0, 1000)])  # self-intersecting
    assert not bowtie.is_valid
    glaciers = gdf([bowtie, None, Polygon()], RGIId=["bow", "none", "empty"])
    lakes = gdf([box(850, 400, 950, 600), box(1100, 450, 1200, 550)])
    out = glacier_context(lakes, glaciers, id_column="auto")
    # make_valid keeps both triangles of the bowtie: the first lake sits in the eastern one
    assert out.lake_type.tolist() == ["supraglacial", "proglacial"]
    assert out.glac_dist.tolist() == pytest.approx([0.0, 100.0])
    assert out.glac_id.tolist() == ["bow", "bow"]


def test_point_and_line_lakes(glacier):
    lakes = gdf([Point(500, 500), Point(2500, 500), shapely.LineString([(1500, 500), (2500, 500)])])
    out = glacier_context(lakes, glacier)
    assert out.lake_type.tolist() == ["supraglacial", "proglacial", "supraglacial"]
    assert out.glac_dist.tolist() == pytest.approx([0, 500, 0])


def test_id_column(glacier):
    glaciers = pd.concat([glacier, gdf([box(5000, 0, 6000, 1000)], RGIId=["RGI60-13.00002"])], ignore_index=True)
    lakes = gdf([box(4500, 0, 4600, 100), box(2100, 0, 2200, 100)])
    out = glacier_context(lakes, glaciers, id_column="RGIId")
    assert out.glac_id.tolist() == ["RGI60-13.00002", "RGI60-13.00001"]
    assert "glac_id" not in glacier_context(lakes, glaciers).columns
    with pytest.raises(KeyError, match="not found"):
        glacier_context(lakes, glaciers, id_column="nope")


def test_near_glaciers_keeps_lakes_within_the_distance():
    lakes = gdf([Point(0, 0)] * 4, glac_dist=[0.0, MAX_GLACIER_DIST_M, MAX_GLACIER_DIST_M + 1, np.nan])
    kept = near_glaciers(lakes)
    assert kept.glac_dist.tolist() == [0.0, MAX_GLACIER_DIST_M]
    assert kept.index.tolist() == [0, 1]
    assert len(near_glaciers(lakes, max_glacier_dist_m=0)) == 1
    with pytest.raises(KeyError, match="glacier_context"):
        near_glaciers(gdf([Point(0, 0)]))


def test_lake_type_counts():
    lakes = gdf([Point(0, 0)] * 3, lake_type=["proglacial", "unconnected", "proglacial"])
    assert lake_type_counts(lakes) == {"supraglacial": 0, "proglacial": 2, "unconnected": 1}


def test_thousands_of_lakes_against_tens_of_thousands_of_glaciers():
    """5,000 lakes and 30,000 glaciers (an RGI region's worth): distances and types equal a
    brute-force computation on a sample (speed is measured by benchmarks, not asserted here)."""
    rng = np.random.default_rng(7)
    gx, gy = rng.uniform(0, 300_000, (2, 30_000))
    gs = rng.uniform(100, 1500, 30_000)
    glaciers = gdf(shapely.box(gx, gy, gx + gs, gy + gs * 0.6))
    lx, ly = rng.uniform(0, 300_000, (2, 5_000))
    ls = rng.uniform(30, 400, 5_000)
    lakes = gdf(shapely.box(lx, ly, lx + ls, ly + ls))
    out = glacier_context(lakes, glaciers)

    g = glaciers.geometry.to_numpy()
    for i in rng.choice(len(lakes), 60, replace=False):
        lake = lakes.geometry.iloc[i]
        d = shapely.distance(lake, g).min()
        ice = shapely.union_all(g[shapely.intersects(lake, g)])
        share = shapely.intersection(lake, ice).area / lake.area
        expected = "supraglacial" if share >= 0.5 else ("proglacial" if d <= CONTACT_M else "unconnected")
        assert out.glac_dist.iloc[i] == pytest.approx(d, abs=1e-6)
        assert out.lake_type.iloc[i] == expected
    assert min(lake_type_counts(out).values()) > 100  # all three types occur
