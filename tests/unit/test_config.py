import datetime as dt

import pytest

from gli_toolbox.config import DetectConfig, parse_months, parse_years
from gli_toolbox.errors import ConfigError, GliError


def test_years_range_and_single():
    assert parse_years("2016-2023") == tuple(range(2016, 2024))
    assert parse_years(" 2019 ") == (2019,)


@pytest.mark.parametrize("bad,msg", [("2016_2023", "expected YYYY"), ("2023-2016", "comes after"),
                                     ("2010-2012", "start in 2015"), ("19", "expected YYYY"),
                                     (f"2016-{dt.date.today().year + 1}", "future")])
def test_bad_years(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_years(bad)


@pytest.mark.parametrize("bad", ["0-9", "7-13", "9-7", "july"])
def test_bad_months(bad):
    with pytest.raises(ConfigError):
        parse_months(bad)


def test_errors_inherit_builtin_and_root():
    with pytest.raises(ValueError):
        parse_years("x")
    with pytest.raises(GliError):
        parse_years("x")


def test_season_window_ends_on_last_day():
    cfg = DetectConfig(years=(2020,), months=(2, 2))
    assert cfg.season(2020) == ("2020-02-01T00:00:00Z", "2020-02-29T23:59:59Z")
    assert DetectConfig(years=(2020,), months=(11, 12)).season(2020)[1] == "2020-12-31T23:59:59Z"


@pytest.mark.parametrize("kw", [{"max_cloud_pct": 120}, {"ndwi_threshold": 2}, {"min_area_m2": -1},
                                {"months": (9, 7)}, {"min_water_fraction": 0}, {"index": "ndvi"}])
def test_config_validation(kw):
    with pytest.raises(ConfigError):
        DetectConfig(years=(2019,), **kw)


def test_config_is_frozen_and_sorted():
    cfg = DetectConfig(years=(2019, 2017, 2019))
    assert cfg.years == (2017, 2019)
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.years = (2020,)  # type: ignore[misc]
