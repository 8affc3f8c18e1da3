"""Provider layouts and reflectance rules, read from real recorded STAC responses
(tests/data/stac_fixtures, see its MANIFEST.json for the origin of each file)."""

import json
from pathlib import Path

import pystac
import pytest

from gli_toolbox import providers
from gli_toolbox.search import Scene, _solar_day

# pystac migrates Earth Search's storage-extension v1 metadata and warns about it; metadata only.
pytestmark = pytest.mark.filterwarnings("ignore:Could not parse bucket/account from href:UserWarning")


FIX = Path(__file__).resolve().parents[1] / "data" / "stac_fixtures"


def item(rel):
    return pystac.Item.from_dict(json.loads((FIX / rel).read_text()), preserve_dict=False)


def page_items(*rels):
    out = []
    for rel in rels:
        doc = json.loads((FIX / rel).read_text())
        out += [pystac.Item.from_dict(f, preserve_dict=False) for f in doc["features"]]
    return out


ES1_C1 = "earth-search-v1/items/sentinel-2-c1-l2a/S2A_T13TDE_20240422T174753_L2A.json"
ES1_L2A_OLD = "earth-search-v1/items/sentinel-2-l2a/S2A_32TMT_20200305_0_L2A.json"
ES1_L2A_REPRO = "earth-search-v1/items/sentinel-2-l2a/S2A_32TMT_20200305_1_L2A.json"
ES1_L2A_2023 = "earth-search-v1/items/sentinel-2-l2a/S2A_13TDE_20231008_0_L2A.json"
ES0 = "earth-search-v0/items/sentinel-s2-l2a-cogs/S2B_20EPT_20250731_0_L2A.json"
PC_OLD = "planetary-computer/items/sentinel-2-l2a/S2B_MSIL2A_20200705T101559_R065_T32TMT_20200825T083452.json"
PC_B04 = "planetary-computer/items/sentinel-2-l2a/S2A_MSIL2A_20230216T235751_R087_T52CEB_20230217T134604.json"
PC_B05 = "planetary-computer/items/sentinel-2-l2a/S2B_MSIL2A_20240419T095549_R122_T47XML_20240419T123458.json"
CDSE = "cdse/items/sentinel-2-l2a/S2B_MSIL2A_20200705T101559_N0500_R065_T32TMT_20230530T175912.json"


@pytest.mark.parametrize("rel,keys", [
    (ES1_C1, ("green", "nir", "swir16", "scl")),
    (ES1_L2A_OLD, ("green", "nir", "swir16", "scl")),
    (ES0, ("B03", "B08", "B11", "SCL")),
    (PC_OLD, ("B03", "B08", "B11", "SCL")),
    (CDSE, ("B03_10m", "B08_10m", "B11_20m", "SCL_20m")),
])
def test_asset_keys(rel, keys):
    it = item(rel)
    assert tuple(providers.asset_key(it, b) for b in ("green", "nir", "swir16", "scl")) == keys


@pytest.mark.parametrize("rel,offset,verify", [
    (ES1_C1, -0.1, False),          # Collection 1: raster:bands offset -0.1 on every scene
    (ES1_L2A_OLD, 0.0, False),      # baseline 02.14: no offset
    (ES1_L2A_REPRO, 0.0, False),    # baseline 05.00 but earthsearch:boa_offset_applied = true
    (ES1_L2A_2023, 0.0, False),     # flag true although raster:bands says -0.1
    (ES0, 0.0, False),              # sentinel:boa_offset_applied = true
    (PC_OLD, 0.0, False),           # PC, baseline 02.12, no metadata
    (PC_B04, -0.1, False),          # PC, baseline 04.00: subtract 1000 DN
    (PC_B05, -0.1, False),          # PC, baseline 05.10
    (CDSE, -0.1, False),            # CDSE raster:offset on the asset (STAC 1.1)
])
def test_reflectance_rules(rel, offset, verify):
    rule = providers.reflectance_rule(item(rel))
    assert rule.scale == pytest.approx(1e-4)
    assert rule.offset == pytest.approx(offset)
    assert rule.verify_offset is verify
    assert rule.nodata == 0


def test_flag_false_on_new_baseline_is_verified_on_data():
    # Element84/earth-search#66: baseline >= 04.00 with boa_offset_applied=false is not trustworthy
    it = item(ES1_L2A_REPRO)
    it.properties["earthsearch:boa_offset_applied"] = False
    rule = providers.reflectance_rule(it)
    assert rule.offset == pytest.approx(-0.1) and rule.verify_offset


def test_same_acquisition_two_providers():
    # PC serves the original baseline-02.12 product, CDSE the 05.00 reprocessing of the same pass:
    # their DNs differ by 1000, and the rules must cancel that out.
    pc, cdse = item(PC_OLD), item(CDSE)
    assert providers.acquisition_key(pc)[1:] == providers.acquisition_key(cdse)[1:] == ("32TMT", "2020-07-05")
    dn_pc = 1500
    dn_cdse = dn_pc + 1000
    r_pc, r_cdse = providers.reflectance_rule(pc), providers.reflectance_rule(cdse)
    assert dn_pc * r_pc.scale + r_pc.offset == pytest.approx(dn_cdse * r_cdse.scale + r_cdse.offset)


@pytest.mark.parametrize("rel,baseline", [(ES1_C1, 5.10), (ES0, 5.11), (PC_B04, 4.00), (CDSE, 5.00)])
def test_processing_baseline(rel, baseline):
    assert providers.processing_baseline(item(rel)) == pytest.approx(baseline)


@pytest.mark.parametrize("rel,tile", [(ES1_C1, "13TDE"), (ES1_L2A_OLD, "32TMT"), (ES0, "20EPT"), (PC_B04, "52CEB"),
                                      (CDSE, "32TMT")])
def test_tile_id(rel, tile):
    assert providers.tile_id(item(rel)) == tile


def test_reprocessed_duplicates_in_one_search_page_are_dropped():
    items = page_items("earth-search-v1/search/search_s2l2a_bbox_20200301-05_page1.json",
                       "earth-search-v1/search/search_s2l2a_bbox_20200301-05_page2.json")
    kept, dropped = providers.dedupe_reprocessed(items)
    keys = [providers.acquisition_key(i) for i in kept]
    assert len(keys) == len(set(keys))
    assert "S2A_32TMT_20200305_0_L2A" in dropped and "S2A_32TMT_20200305_1_L2A" not in dropped
    assert all(i.id.endswith("_1_L2A") or providers.acquisition_key(i) not in
               {providers.acquisition_key(d) for d in items if d.id in dropped} for i in kept)
    assert len(kept) + len(dropped) == len(items)


def test_cdse_search_page_parses_and_groups_by_day():
    items = page_items("cdse/search/search_s2l2a_bbox_20200701-05.json")
    days = {_solar_day(i) for i in items}
    assert {d.isoformat() for d in days} == {"2020-07-03", "2020-07-05"}
    scenes = [Scene(i, "sentinel-2-l2a", i.properties.get("eo:cloud_cover"), _solar_day(i)) for i in items]
    rec = scenes[0].to_record()
    assert rec["reflectance_offset"] == pytest.approx(-0.1) and rec["has_scl"]


def test_items_without_assets_are_reported_not_crashing():
    items = page_items("earth-search-v1/search/search_c1l2a_fields_exclude_assets.json")
    assert items and all(providers.asset_key(i, "green") is None for i in items)
    with pytest.raises(KeyError, match="no green asset"):
        providers.reflectance_rule(items[0])


def test_cdse_without_credentials_is_a_clear_error(monkeypatch):
    from odc.geo.geobox import GeoBox

    from gli_toolbox.errors import ConfigError
    from gli_toolbox.load import read_day

    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    it = item(CDSE)
    scene = Scene(it, "sentinel-2-l2a", 0.0, _solar_day(it))
    tile = GeoBox.from_bbox((500000, 5200000, 501000, 5201000), "EPSG:32632", resolution=10)
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        read_day([scene], tile, need_swir=True)
