"""The documentation site builds with ``mkdocs build --strict`` and holds what it must.

Strict mode turns every broken link, missing nav target and docstring the API reference cannot
render into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _nav_targets(nav: list) -> set[str]:
    out: set[str] = set()
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            out |= _nav_targets(value)
        else:
            out.add(value)
    return out


def _config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)  # !!python/name tags of the theme
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_every_page_and_notebook_is_in_the_nav():
    nav = _nav_targets(_config()["nav"])
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    notebooks = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert pages | notebooks == nav


def test_cli_reference_is_generated_from_the_code(site: Path):
    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    for text in ("gli detect", "gli search", "gli track", "--aoi", "--max-cloud", "--year-field", "--overwrite"):
        assert text in page


def test_api_reference_is_generated_from_the_docstrings(site: Path):
    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    for text in ("DetectConfig", "min_area_m2", "explore_tracking", "write_report", "change_status",
                 "Detect glacial lakes in"):
        assert text in page


def test_notebooks_and_russian_pages_are_rendered(site: Path):
    for name in ("detect_sample", "your_area", "change_analysis", "quality_control"):
        page = (site / "notebooks" / name / "index.html").read_text(encoding="utf-8")
        assert "gli_toolbox" in page
    ru = (site / "ru" / "partner-guide" / "index.html").read_text(encoding="utf-8")
    assert "Руководство для партнёров" in ru and "gli track" in ru
    assert (site / "ru" / "quickstart" / "index.html").exists()


def test_the_site_requests_no_web_fonts(site: Path):
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in page and "fonts.gstatic.com" not in page
