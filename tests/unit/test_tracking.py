"""Tracking with hand-made outlines: every status, merges, splits, gaps; and invariants (hypothesis)."""

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from gli_toolbox.lakes import area_uncertainty_km2
from gli_toolbox.tracking import STATUSES, change_status, track

CRS = "EPSG:32643"


def layer(*specs):
    """specs: (lake_id, minx, miny, maxx, maxy) in metres."""
    geoms = [box(*s[1:]) for s in specs]
    g = gpd.GeoDataFrame({"lake_id": [s[0] for s in specs]}, geometry=geoms, crs=CRS)
    g["area_km2"] = g.area / 1e6
    g["area_err"] = area_uncertainty_km2(g.length.to_numpy(), pixel_m=10.0)
    return g


def status(res, lake_id):
    return res.changes.set_index("lake_id").loc[lake_id, "status"]


def pair(res, lake_id, to):
    p = res.pairs[(res.pairs.lake_id == lake_id) & (res.pairs["to"] == to)]
    return p.iloc[0].status if len(p) else None


def event(res, lake_id, to):
    p = res.pairs[(res.pairs.lake_id == lake_id) & (res.pairs["to"] == to)]
    return p.iloc[0].event if len(p) else None


def test_stable_lake_keeps_first_id_even_if_point_moves():
    res = track({2016: layer(("A16", 0, 0, 300, 300)), 2017: layer(("A17", 0, 0, 300, 300)),
                 2018: layer(("A18", 5, 0, 305, 300))})
    assert set(res.changes.lake_id) == {"A16"}
    assert status(res, "A16") == "stable" and res.changes.iloc[0].signif == 0
    assert all((g.lake_id == "A16").all() for g in res.layers.values())


def test_growing_and_shrinking_need_significance():
    big = {2016: layer(("G", 0, 0, 300, 300)), 2020: layer(("G2", 0, 0, 300, 600))}
    res = track(big)
    row = res.changes.iloc[0]
    assert row.status == "growing" and row.signif == 1
    assert row.a_first == pytest.approx(0.09) and row.a_last == pytest.approx(0.18)
    assert row.d_area == pytest.approx(0.09) and row.d_pct == pytest.approx(100.0)
    assert row.rate_yr == pytest.approx(0.09 / 4)
    shrink = track({2016: layer(("S", 0, 0, 300, 600)), 2017: layer(("S2", 0, 0, 300, 300))})
    assert status(shrink, "S") == "shrinking"
    tiny = track({2016: layer(("T", 0, 0, 300, 300)), 2017: layer(("T2", 0, 0, 300, 310))})
    # 3000 m2 change < combined one-sigma error of ~0.0058 km2 -> stable
    assert status(tiny, "T") == "stable"


def test_new_and_vanished():
    res = track({2016: layer(("A", 0, 0, 300, 300)),
                 2017: layer(("A1", 0, 0, 300, 300), ("N", 2000, 2000, 2300, 2300)),
                 2018: layer(("N1", 2000, 2000, 2300, 2300))})
    assert status(res, "N") == "new" and status(res, "A") == "vanished"
    assert pair(res, "N", 2017) == "new" and pair(res, "A", 2018) == "vanished"


def test_gap_year_keeps_id():
    res = track({2016: layer(("A", 0, 0, 300, 300)), 2017: layer(), 2018: layer(("Z", 0, 0, 300, 300))})
    assert set(res.changes.lake_id) == {"A"}
    assert res.changes.iloc[0].n_years == 2 and status(res, "A") == "stable"
    assert pair(res, "A", 2017) == "vanished" and pair(res, "A", 2018) == "stable"


def test_merge_keeps_largest_id_and_records_event():
    res = track({2016: layer(("BIG", 0, 0, 400, 400), ("SMALL", 500, 0, 700, 200)),
                 2017: layer(("M", 0, 0, 700, 400))})
    ch = res.changes.set_index("lake_id")
    # the merge is in its own fields; the status says what happened to the area
    assert ch.loc["SMALL", "merged_to"] == "BIG" and ch.loc["SMALL", "n_merges"] == 1
    assert ch.loc["SMALL", "status"] == "not_assessed"  # one observation of its own, then part of BIG
    assert ch.loc["BIG", "status"] == "growing" and ch.loc["BIG", "n_merges"] == 1
    assert pair(res, "BIG", 2017) == "growing" and pair(res, "SMALL", 2017) == "merged"
    assert event(res, "BIG", 2017) == "merged" and event(res, "SMALL", 2017) == "merged"
    assert res.events.to_dict("records") == [{"period": 2017, "kind": "merged", "lake_id": "SMALL", "other_id": "BIG"}]
    assert list(res.layers[2017].lake_id) == ["BIG"]


def test_split_largest_part_keeps_id():
    res = track({2016: layer(("P", 0, 0, 700, 400)),
                 2017: layer(("PA", 0, 0, 400, 400), ("PB", 500, 0, 700, 400))})
    ch = res.changes.set_index("lake_id")
    assert set(ch.index) == {"P", "PB"}
    assert ch.loc["PB", "split_from"] == "P" and ch.loc["PB", "status"] == "new" and ch.loc["PB", "n_splits"] == 1
    assert ch.loc["P", "status"] == "shrinking" and ch.loc["P", "n_splits"] == 1  # 0.28 -> 0.16 km2
    assert pair(res, "P", 2017) == "shrinking" and pair(res, "PB", 2017) == "new"
    assert event(res, "P", 2017) == "split" and event(res, "PB", 2017) == "split"
    assert res.events.kind.tolist() == ["split"]


def test_small_lake_that_moved_matches_by_proximity():
    res = track({2016: layer(("S", 0, 0, 50, 50)), 2017: layer(("S2", 70, 0, 120, 50))})
    assert set(res.changes.lake_id) == {"S"}
    far = track({2016: layer(("S", 0, 0, 50, 50)), 2017: layer(("S2", 200, 0, 250, 50))})
    assert set(far.changes.lake_id) == {"S", "S2"}


def test_per_scene_dates_give_rates_per_year():
    res = track({"20190701": layer(("A", 0, 0, 300, 300)), "20190731": layer(("B", 0, 0, 300, 600))})
    row = res.changes.iloc[0]
    assert row.first_dt == "2019-07-01" and row.last_dt == "2019-07-31"
    assert row.rate_yr == pytest.approx(0.09 / (30 / 365), rel=1e-6)
    assert "date" in res.areas.columns


def test_area_table_is_long_format():
    res = track({2016: layer(("A", 0, 0, 300, 300)), 2017: layer(("A2", 0, 0, 300, 300))})
    assert list(res.areas.columns) == ["lake_id", "year", "area_km2", "area_err"]
    assert res.areas.year.tolist() == [2016, 2017]


def test_change_status_threshold():
    assert change_status(1.0, 0.03, 1.0 + 0.0499, 0.04) == ("stable", 0)
    assert change_status(1.0, 0.03, 1.0 - 0.0501, 0.04) == ("shrinking", 1)


def test_mixed_crs_is_refused():
    a = layer(("A", 0, 0, 300, 300))
    with pytest.raises(ValueError, match="one CRS"):
        track({2016: a, 2017: a.to_crs("EPSG:32644")})


# ---- properties -------------------------------------------------------------------------------

boxes = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(1, 4), st.integers(1, 4)),
                 min_size=0, max_size=8)


def random_layer(spec, year):
    specs = [(f"L{year}_{x}_{y}", x * 100, y * 100, (x + w) * 100, (y + h) * 100) for x, y, w, h in spec]
    g = layer(*specs) if specs else layer()
    # overlapping boxes in one year are one lake after union (as the detector would produce)
    if len(g):
        g = g.dissolve().explode(index_parts=False).reset_index(drop=True)
        g["lake_id"] = [f"L{year}_{int(p.x)}_{int(p.y)}" for p in g.representative_point()]
        g["area_km2"] = g.area / 1e6
        g["area_err"] = area_uncertainty_km2(g.length.to_numpy(), pixel_m=10.0)
    return g


@settings(max_examples=40, deadline=None)
@given(boxes, boxes, boxes, st.randoms(use_true_random=False))
def test_invariants(s1, s2, s3, rnd):
    layers = {2016: random_layer(s1, 2016), 2017: random_layer(s2, 2017), 2018: random_layer(s3, 2018)}
    res = track(layers)
    # ids unique within a year, every status known
    for g in res.layers.values():
        assert g.lake_id.is_unique
    assert set(res.changes.status) <= set(STATUSES)
    assert res.changes.lake_id.is_unique
    # shuffling rows does not change the result
    shuffled = {k: v.sample(frac=1.0, random_state=rnd.randint(0, 10_000)) for k, v in layers.items()}
    res2 = track(shuffled)
    cols = ["lake_id", "first_yr", "last_yr", "n_years", "status", "merged_to", "split_from"]
    assert res.changes[cols].sort_values("lake_id").values.tolist() == res2.changes[cols].sort_values("lake_id").values.tolist()
    # every observation is in the area table exactly once
    assert len(res.areas) == sum(len(v) for v in layers.values())


@settings(max_examples=25, deadline=None)
@given(boxes.filter(lambda b: len(b) > 0), st.integers(2, 5))
def test_identical_in_all_years_is_stable_with_one_id(spec, n_years):
    base = random_layer(spec, 2000)
    layers = {2015 + i: base.assign(lake_id=[f"Y{i}_{j}" for j in range(len(base))]) for i in range(n_years)}
    res = track(layers)
    assert (res.changes.status == "stable").all()
    assert len(res.changes) == len(base)
    assert (res.changes.n_years == n_years).all()
    ids = [set(g.lake_id) for g in res.layers.values()]
    assert all(i == ids[0] for i in ids)


def test_unobserved_absence_is_not_vanished():
    layers = {2016: layer(("A", 0, 0, 300, 300)), 2017: layer(), 2018: layer()}
    res = track(layers, observed=lambda period, geom: period == 2018)  # 2017 cloudy/frozen all season
    assert pair(res, "A", 2017) == "not_observed"
    assert status(res, "A") == "vanished"  # seen empty in 2018
    res2 = track(layers, observed=lambda period, geom: False)
    assert status(res2, "A") == "not_observed"  # never seen missing: neither gone nor claimed stable
    assert pair(res2, "A", 2018) is None


def test_split_largest_part_keeps_id_even_if_it_overlaps_less():
    # the old outline covers the small part fully but only a sliver of the large part
    res = track({2016: layer(("P", 0, 0, 300, 300)),
                 2017: layer(("SMALL", 0, 0, 250, 250), ("LARGE", 280, 0, 1000, 700))})
    keeper = res.layers[2017].set_index("lake_id")
    assert keeper.loc["P"].area_km2 == pytest.approx(0.72 * 0.70)  # the large part kept "P"
    ch = res.changes.set_index("lake_id")
    assert ch.loc["SMALL", "split_from"] == "P"


def test_a_lake_that_triples_and_split_once_is_growing_with_its_split_counted():
    """Issue 9: one split in its history must not hide the growth of a lake that tripled."""
    res = track({
        2000: layer(("L", 0, 0, 400, 300)),  # 0.12 km2
        2005: layer(("L5", 0, 0, 400, 375)),  # 0.15
        2010: layer(("L10", 0, 0, 400, 450), ("PART", 420, 0, 520, 100)),  # 0.18 + a part split off
        2015: layer(("L15", 0, 0, 400, 675), ("PART2", 420, 0, 520, 100)),  # 0.27
        2020: layer(("L20", 0, 0, 400, 900), ("PART3", 420, 0, 520, 100)),  # 0.36: three times 2000
    })
    # PART (0.01 km2) lies 20 m from L's 2005 outline: small, within proximity -> split from L in 2010
    ch = res.changes.set_index("lake_id")
    assert set(ch.index) == {"L", "PART"}
    assert ch.loc["L", "status"] == "growing" and ch.loc["L", "signif"] == 1
    assert ch.loc["L", "a_last"] / ch.loc["L", "a_first"] == pytest.approx(3.0)
    assert ch.loc["L", "n_splits"] == 1 and ch.loc["L", "n_merges"] == 0
    assert ch.loc["PART", "split_from"] == "L" and ch.loc["PART", "status"] == "new"
    assert res.events.to_dict("records") == [{"period": 2010, "kind": "split", "lake_id": "L", "other_id": "PART"}]
    assert [pair(res, "L", y) for y in (2005, 2010, 2015, 2020)] == ["growing"] * 4
    assert event(res, "L", 2010) == "split" and event(res, "L", 2015) == ""


def test_one_period_gives_ids_but_no_status():
    res = track({2019: layer(("A", 0, 0, 300, 300), ("B", 1000, 0, 1100, 100))})
    assert set(res.changes.status) == {"not_assessed"} and (res.changes.signif == 0).all()
    assert len(res.pairs) == 0 and sorted(res.layers[2019].lake_id) == ["A", "B"]


def test_pixel_centres_inside_a_lake_equal_rasterio_rasterize():
    """observed_share's pixel test (shapely.contains_xy on pixel centres) selects exactly the pixels
    GDAL burns for the polygon, also for outlines off the pixel grid (moved, rotated, with a hole)."""
    import rasterio.features
    from affine import Affine
    from shapely.affinity import rotate, translate
    from shapely.geometry import Point

    from gli_toolbox.results import _centres_inside

    rng = np.random.default_rng(3)
    transform = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_600_000.0)
    for k in range(60):
        centre = Point(500_000 + rng.uniform(100, 900), 4_600_000 - rng.uniform(100, 900))
        lake = centre.buffer(rng.uniform(20, 90), quad_segs=int(rng.integers(2, 9)))
        if k % 3 == 0:
            lake = lake.difference(centre.buffer(12))
        lake = rotate(translate(lake, rng.uniform(-5, 5), rng.uniform(-5, 5)), rng.uniform(0, 90))
        want = rasterio.features.geometry_mask([lake], out_shape=(110, 120), transform=transform, invert=True)
        got = _centres_inside(lake, transform, (110, 120))
        assert want.sum() > 10
        np.testing.assert_array_equal(got, want)
