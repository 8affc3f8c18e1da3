"""MkDocs hook: publish the notebooks of ``notebooks/`` (outside ``docs/``) under ``notebooks/``.

The notebooks stay where users and CI run them; this adds them to the site's files before
mkdocs-jupyter converts them (hence the high event priority).
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@event_priority(100)
def on_files(files: Files, config) -> Files:
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(File(f"notebooks/{nb.name}", src_dir=str(NOTEBOOKS.parent), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files
