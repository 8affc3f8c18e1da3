"""The ``gli`` command line: a thin click layer over the Python API."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import GliError


class _GliGroup(click.Group):
    """A click group that turns library errors into one line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GliError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("Aborted; the output folder was left as it was before this run.", err=True)
            sys.exit(130)


@click.group(cls=_GliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gli")
def cli() -> None:
    """Glacial lake inventories from Sentinel-2: detect lakes, list scenes, track change."""


def _register() -> None:
    from .detect import detect_cmd
    from .qgis_plugin import qgis_plugin_cmd
    from .search import search_cmd
    from .track import track_cmd

    cli.add_command(detect_cmd)
    cli.add_command(search_cmd)
    cli.add_command(track_cmd)
    cli.add_command(qgis_plugin_cmd)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gli")
