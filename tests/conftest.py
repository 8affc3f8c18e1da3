"""Project-wide test fixtures: where the repository and its sample data are."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root folder (the one with ``pyproject.toml``)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_data(repo_root: Path) -> Path:
    """The bundled ``sample_data/`` folder (static STAC catalog, band files, AOI)."""
    return repo_root / "sample_data"
