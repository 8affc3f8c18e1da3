"""Lake attributes and periods: independent reference values and properties."""

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import box

from gli_toolbox.attributes import area_uncertainty_km2, glims_id, lake_attributes, unique_ids
from gli_toolbox.periods import Period


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["GL1N", "GL1NA", "GL2N", "X", "X2", "XA"]), max_size=80))
def test_unique_ids_are_unique_and_keep_the_first_of_each(ids):
    out = unique_ids(ids)
    assert len(set(out)) == len(out) == len(ids)
    assert all(o.startswith(i) for o, i in zip(out, ids))
    if ids:
        assert out[0] == ids[0]
    glims_like = [i for i in ids if i.endswith("N")]  # GLIMS ids end in N/S: a suffix never makes another one
    out_g = unique_ids(glims_like)
    for i in set(glims_like):
        assert out_g[glims_like.index(i)] == i  # the first lake with an id keeps it unchanged


def test_unique_ids_never_wrap():
    out = unique_ids(["GL070549E36365N"] * 60)
    assert len(set(out)) == 60
    assert out[:3] == ["GL070549E36365N", "GL070549E36365NA", "GL070549E36365NB"]
    assert out[26:29] == ["GL070549E36365NZ", "GL070549E36365N2", "GL070549E36365N3"]


def test_lake_attributes_of_boxes_against_hand_computed_values():
    crs = "EPSG:32643"
    boxes = [box(620000, 4770000, 620400, 4770300), box(630000, 4771000, 630050, 4771020)]
    a = lake_attributes(boxes, crs=crs, pixel_m=10.0)
    assert a["area_km2"].tolist() == pytest.approx([0.12, 0.001])
    assert a["perim_km"].tolist() == pytest.approx([1.4, 0.14])
    # Hanshaw & Bookhagen: edge pixels P/G, each half a pixel area, times 0.6872
    assert a["area_err"].tolist() == pytest.approx([140 * 50 * 0.6872 / 1e6, 14 * 50 * 0.6872 / 1e6])
    # a box's representative point lies inside it; its WGS84 position within the box's corners
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    for (lon, lat), b in zip(a[["lon", "lat"]].to_numpy(), boxes):
        lons, lats = to_wgs.transform(*np.array(b.exterior.coords).T)
        assert min(lons) <= lon <= max(lons) and min(lats) <= lat <= max(lats)
    assert a["lake_id"].tolist() == [glims_id(x, y) for x, y in a[["lon", "lat"]].to_numpy()]
    given = lake_attributes(boxes, crs=crs, pixel_m=10.0, area_km2=np.array([0.5, 0.25]))
    assert given["area_km2"].tolist() == [0.5, 0.25]
    with pytest.raises(ValueError, match="projected CRS"):
        lake_attributes(boxes, crs="EPSG:4326", pixel_m=10.0)


def test_area_uncertainty_scales_with_pixel_size():
    # same perimeter, twice the pixel: half as many edge pixels of four times the area
    assert float(area_uncertainty_km2(1000.0, pixel_m=20.0)) == pytest.approx(2 * float(area_uncertainty_km2(1000.0, pixel_m=10.0)))


@given(st.dates(min_value=dt.date(1984, 1, 1), max_value=dt.date(2100, 12, 31)),
       st.dates(min_value=dt.date(1984, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_periods_order_like_their_dates_and_round_trip_their_labels(d1, d2):
    p1, p2 = Period.of(d1), Period.of(d2)
    assert (p1 < p2) == (d1 < d2) and (p1 == p2) == (d1 == d2)
    assert Period.of(p1.label) == p1 == Period.of(p1.iso) and p1.date == d1
    assert p1.year <= p1.decimal_year < p1.year + 1
    assert Period.of(d1.year) < p1 or d1 == dt.date(d1.year, 1, 1)


def test_period_rejects_what_is_not_a_year_or_date():
    with pytest.raises(ValueError, match="not a period"):
        Period.of("2019-7")
    with pytest.raises(ValueError):
        Period(2019, dt.date(2020, 1, 1))
