"""``gli qgis-plugin``: build the QGIS Processing plugin zip."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("qgis-plugin")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path), default=Path("gli_toolbox_processing.zip"))
def qgis_plugin_cmd(out: Path) -> None:
    """Write the QGIS plugin (Processing toolbox: Detect glacial lakes, Search scenes, Track lakes)
    as OUT (a .zip): install it in QGIS with Plugins > Manage and Install Plugins > Install from ZIP."""
    from ..qgis_plugin.build import build_plugin

    path = build_plugin(out)
    click.echo(f"wrote {path}; in QGIS: Plugins > Manage and Install Plugins > Install from ZIP", err=True)
