"""Staged writing: nothing half-written, earlier runs replaced as a whole, user files kept,
and an interrupted overwrite rolled back."""

import json
import os

import pytest

from gli_toolbox import export
from gli_toolbox.errors import OutputError, OutputExistsError


def previous_run(out):
    out.mkdir()
    (out / "lakes_2017.shp").write_text("old 2017")
    (out / "lakes_2019.shp").write_text("old 2019")
    (out / "figures").mkdir()
    (out / "figures" / "total_area.png").write_text("old png")
    (out / "run.json").write_text(json.dumps(
        {"outputs": ["figures/total_area.png", "lakes_2017.shp", "lakes_2019.shp", "run.json"]}))
    (out / "partner_edits.gpkg").write_text("hand-made")


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_text() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_overwrite_replaces_the_whole_previous_run_but_keeps_user_files(tmp_path):
    out = tmp_path / "out"
    previous_run(out)
    with export.staged_output(out, overwrite=True) as stage:
        (stage / "lakes_20190723.shp").write_text("new")
        export.write_run_json({}, stage / "run.json")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["lakes_20190723.shp", "partner_edits.gpkg", "run.json"]  # stale 2017/2019 layers gone
    assert (out / "partner_edits.gpkg").read_text() == "hand-made"
    assert json.loads((out / "run.json").read_text())["outputs"] == ["lakes_20190723.shp", "run.json"]
    assert not list(tmp_path.glob(".out.*")) and not list(out.glob(".gli-*"))


def test_interrupted_overwrite_is_rolled_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    previous_run(out)
    before = snapshot(out)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if str(src).startswith(str(out / ".gli-partial-")) and calls["n"] > 5:
            raise KeyboardInterrupt  # Ctrl-C in the middle of moving the new files in
        return real_replace(src, dst)

    monkeypatch.setattr(export.os, "replace", flaky)
    with pytest.raises(KeyboardInterrupt), export.staged_output(out, overwrite=True) as stage:
        for name in ("lakes_2017.shp", "lakes_2018.shp", "lakes_2019.shp", "inventory.gpkg"):
            (stage / name).write_text("new")
        export.write_run_json({}, stage / "run.json")
    monkeypatch.setattr(export.os, "replace", real_replace)
    assert snapshot(out) == before
    assert not list(tmp_path.glob(".out.*"))
    assert calls["n"] > 5  # the interruption really happened while moving new files in


def test_failure_inside_the_block_leaves_nothing(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError), export.staged_output(out, overwrite=False) as stage:
        (stage / "lakes_2019.shp").write_text("half")
        raise RuntimeError("boom")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_unwritable_places_are_refused_up_front(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        export.check_output_dir(tmp_path / "afile" / "sub", overwrite=False)
    with pytest.raises(OutputExistsError, match="is a file"):
        export.check_output_dir(tmp_path / "afile", overwrite=False)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permission bits
            pytest.skip("running as root: permission bits are not enforced")
        with pytest.raises(OutputError, match="cannot write"):
            export.check_output_dir(ro / "out", overwrite=False)
    finally:
        ro.chmod(0o700)
