"""Figures on the edge cases of real series: one period, a gap, 36 periods, 1,000 lakes.

Each test renders the figure and checks what it must show from the drawn artists (line data, tick
label boxes, collection sizes), and the saved PNG's resolution.
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from gli_toolbox.figures import (
    DPI,
    STATUS_COLOURS,
    mask_figure,
    status_colour,
    status_map_figure,
    top_changes_figure,
    total_area_figure,
    write_figures,
)
from gli_toolbox.tracking import track

CRS = "EPSG:32643"


def _layer(year: int, sizes_m: list[float], *, x0: float = 500_000.0) -> gpd.GeoDataFrame:
    """Square lakes 2 km apart on a row, one per size (side in metres)."""
    geoms = [shapely.box(x0 + 2000 * k, 4_500_000, x0 + 2000 * k + s, 4_500_000 + s) for k, s in enumerate(sizes_m)]
    g = gpd.GeoDataFrame({"lake_id": [f"L{k:05d}" for k in range(len(sizes_m))]}, geometry=geoms, crs=CRS)
    g["area_km2"] = g.area / 1e6
    g["area_err"] = g.length / 1e3 * 0.005
    g["year"] = year
    return g


def _render(fig):
    FigureCanvasAgg(fig).draw()
    return fig.canvas.get_renderer()


def _tick_boxes_disjoint(ax, renderer) -> bool:
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    assert len(boxes) >= 2
    boxes.sort(key=lambda b: b.x0)
    return all(a.x1 <= b.x0 for a, b in itertools.pairwise(boxes))


def test_one_period_draws_one_point_and_titles_the_area():
    res = track({2020: _layer(2020, [300, 200])})
    fig = total_area_figure(res, area_name="Ala-Archa")
    _render(fig)
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "total_area_line"]
    assert list(line.get_xdata()) == [2020]
    assert line.get_ydata()[0] == pytest.approx(0.09 + 0.04)
    assert "Ala-Archa" in ax.get_title() and "2020" in ax.get_title()
    assert "km²" in ax.get_ylabel()
    top = top_changes_figure(res)
    _render(top)
    assert "no lake was observed in two periods" in [t.get_text() for t in top.axes[0].texts]


def test_a_year_without_data_breaks_the_total_area_line():
    layers = {y: _layer(y, [300 + 10 * (y - 2016), 200]) for y in (2016, 2017, 2019, 2020)}  # 2018 missing
    res = track(layers)
    fig = total_area_figure(res, periods=range(2016, 2021))
    _render(fig)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "total_area_line"]
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata(), dtype=float)
    assert list(x) == [2016, 2017, 2018, 2019, 2020]
    assert np.isnan(y[2]) and not np.isnan(y[[0, 1, 3, 4]]).any()  # matplotlib breaks the line at NaN
    # the gap is shaded and named in the legend
    assert "no valid observation" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_years_nobody_asked_for_are_not_gaps():
    res = track({y: _layer(y, [300, 200]) for y in (2016, 2019, 2023)})  # e.g. three inventories to gli track
    fig = total_area_figure(res)
    _render(fig)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "total_area_line"]
    assert list(line.get_xdata()) == [2016, 2019, 2023]
    assert not np.isnan(np.asarray(line.get_ydata(), dtype=float)).any()
    assert fig.axes[0].get_legend() is not None
    assert "no valid observation" not in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_a_lake_missing_inside_its_span_is_not_bridged():
    layers = {2016: _layer(2016, [300, 200]), 2017: _layer(2017, [400, 200]), 2018: _layer(2018, [200]),
              2019: _layer(2019, [600, 200])}
    layers[2018] = layers[2018].assign(geometry=layers[2018].geometry.translate(2000))  # only lake 1 in 2018
    res = track(layers)
    fig = top_changes_figure(res, area_name="Test")
    _render(fig)
    lines = {ln.get_gid(): ln for ln in fig.axes[0].get_lines() if str(ln.get_gid()).startswith("lake:")}
    big = lines["lake:L00000"]
    assert list(big.get_xdata()) == [2016, 2017, 2018, 2019]
    assert np.isnan(np.asarray(big.get_ydata(), dtype=float)[2])


def test_36_periods_have_non_overlapping_year_labels():
    years = list(range(1988, 2024))
    res = track({y: _layer(y, [300 + y - 1988]) for y in years})
    for fig in (total_area_figure(res), top_changes_figure(res)):
        renderer = _render(fig)
        ax = fig.axes[-1] if len(fig.axes) == 2 else fig.axes[0]
        assert _tick_boxes_disjoint(ax, renderer)
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert all(lb.lstrip("−-").isdigit() for lb in labels)  # whole years, never 2001.5


def test_two_close_years_are_labelled_as_years():
    """2019 and 2020 read "2019", "2020" on the time axis, not "-1", "0" with "+2.02e3" in the corner
    (matplotlib's offset notation for close large values)."""
    res = track({2019: _layer(2019, [300, 200]), 2020: _layer(2020, [320, 180])})
    for fig in (total_area_figure(res), top_changes_figure(res)):
        _render(fig)
        ax = fig.axes[-1] if len(fig.axes) == 2 else fig.axes[0]
        labels = {t.get_text() for t in ax.get_xticklabels() if t.get_text()}
        assert {"2019", "2020"} <= labels, labels
        assert ax.xaxis.get_offset_text().get_text() == ""


def test_36_dates_have_non_overlapping_labels():
    dates = [f"{y}{m:02d}15" for y in range(2018, 2024) for m in range(5, 11)]
    assert len(dates) == 36
    res = track({d: _layer(int(d[:4]), [300]).assign(date=f"{d[:4]}-{d[4:6]}-{d[6:]}") for d in dates})
    fig = total_area_figure(res, periods=range(2018, 2024))  # requested years do not apply to dates
    renderer = _render(fig)
    assert _tick_boxes_disjoint(fig.axes[-1], renderer)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "total_area_line"]
    assert len(line.get_xdata()) == 36 and not np.isnan(np.asarray(line.get_ydata(), dtype=float)).any()


def test_1000_lakes_status_map_shows_every_lake_and_counts_them():
    rng = np.random.default_rng(0)
    sizes = rng.uniform(80, 400, 1000)
    a = _layer(2016, list(sizes))
    b = _layer(2023, list(sizes * np.where(np.arange(1000) % 3 == 0, 1.5, 1.0)))
    b = b.iloc[:900]  # 100 vanish
    res = track({2016: a, 2023: b})
    fig = status_map_figure(res, area_name="Pamir")
    _render(fig)
    ax = fig.axes[0]
    n_points = sum(len(c.get_offsets()) for c in ax.collections if str(c.get_gid()).startswith("status:"))
    assert n_points == 1000
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    counts = res.changes["status"].value_counts()
    assert {f"{s} ({n})" for s, n in counts.items()} == legend
    for c in ax.collections:
        gid = str(c.get_gid())
        if gid.startswith("status:"):
            colour = c.get_facecolor()[0]
            assert np.allclose(colour[:3], _rgb(status_colour(gid.split(":")[1])))
    assert "Pamir" in ax.get_title()


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    return tuple(int(h[k:k + 2], 16) / 255 for k in (0, 2, 4))  # type: ignore[return-value]


def test_every_status_has_a_distinct_colour():
    statuses = ["new", "vanished", "growing", "shrinking", "stable", "not_observed", "not_assessed", "merged", "split"]
    colours = [STATUS_COLOURS[s] for s in statuses]
    assert len(set(colours)) == len(colours)


def test_mask_legend_names_water_land_and_never_observed():
    wc = np.zeros((20, 30), np.uint8)
    wc[5:10, 5:10] = 1
    wc[:, 25:] = 255
    fig = mask_figure(wc, title="Water 2019")
    _render(fig)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[0].startswith("land") and texts[1].startswith("water") and texts[-1].startswith("never observed")
    assert "water: 4.2%" in texts  # 25 of 600 pixels
    with pytest.raises(ValueError, match="7"):
        mask_figure(np.full((2, 2), 7, np.uint8))


def test_saved_figures_are_200_dpi(tmp_path):
    res = track({2016: _layer(2016, [300, 200]), 2019: _layer(2019, [350, 200])})
    paths = write_figures(res, tmp_path, area_name="Sample")
    assert [p.name for p in paths] == ["total_area.png", "top_changes.png", "status_map.png"]
    for p in paths:
        with Image.open(p) as im:
            assert im.info["dpi"] == pytest.approx((DPI, DPI), abs=0.1)
            assert im.size[0] >= 7 * DPI
