"""Build the QGIS plugin zip: ``python -m gli_toolbox.qgis_plugin.build OUT.zip`` (or ``gli qgis-plugin OUT.zip``).

The zip holds one folder, ``gli_toolbox_processing/``, as QGIS's "Install from ZIP" expects: the
plugin's Python files, ``metadata.txt`` (with this package's version) and ``cli_spec.json``, the
command-line parameters of ``gli detect``/``search``/``track`` taken from the click commands so the
Processing parameters always match the CLI they run.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Any

import click

from . import PLUGIN_NAME

__all__ = ["build_plugin", "cli_spec"]

SOURCE = Path(__file__).resolve().parent / "gli_processing"

#: click options the plugin sets itself (logging level, machine-readable output)
_HANDLED_BY_PLUGIN = {"verbose", "quiet", "as_json", "help"}


def _default(p: click.Parameter) -> Any:
    d = p.default
    if callable(d) or type(d).__name__ in ("Sentinel", "_Sentinel") or repr(d).endswith("UNSET"):
        return False if getattr(p, "is_flag", False) else None
    if isinstance(d, (tuple, list)):
        return list(d)
    return d if isinstance(d, (str, int, float, bool)) or d is None else str(d)


def _kind(p: click.Parameter) -> dict[str, Any]:
    t = p.type
    if getattr(p, "is_flag", False):
        return {"kind": "bool"}
    if isinstance(t, click.Choice):
        return {"kind": "enum", "choices": [str(c) for c in t.choices]}
    if isinstance(t, (click.FloatRange, click.IntRange)):
        lo, hi = t.min, t.max
        return {"kind": "int" if isinstance(t, click.IntRange) else "float",
                "min": lo, "max": hi, "min_open": bool(getattr(t, "min_open", False))}
    if t is click.FLOAT or isinstance(t, click.types.FloatParamType):
        return {"kind": "float", "min": None, "max": None, "min_open": False}
    if t is click.INT or isinstance(t, click.types.IntParamType):
        return {"kind": "int", "min": None, "max": None, "min_open": False}
    if isinstance(t, click.Path):
        return {"kind": "folder" if (t.dir_okay and not t.file_okay) else "path", "dir_okay": bool(t.dir_okay),
                "file_okay": bool(t.file_okay)}
    return {"kind": "str"}


def cli_spec() -> dict[str, Any]:
    """The parameters of ``gli detect``, ``gli search`` and ``gli track`` as plain JSON data.

    >>> spec = cli_spec()
    >>> names = [p["name"] for p in spec["commands"]["search"]["params"]]
    >>> names[0], "years" in names, "aoi_layer" in names
    ('aoi', True, True)
    """
    from .. import __version__
    from ..cli import cli

    commands = {}
    for name in ("detect", "search", "track"):
        cmd = cli.commands[name]
        params = []
        for p in cmd.params:
            if p.name in _HANDLED_BY_PLUGIN or p.name is None:
                continue
            params.append({
                "name": p.name,
                "opt": None if isinstance(p, click.Argument) else max(p.opts, key=len),
                "argument": isinstance(p, click.Argument),
                "multiple": p.nargs == -1 or bool(getattr(p, "multiple", False)),
                "required": bool(p.required),
                "default": _default(p),
                "help": (getattr(p, "help", None) or "").strip(),
                **_kind(p),
            })
        commands[name] = {"help": (cmd.help or "").strip(), "params": params}
    return {"gli_version": __version__, "commands": commands}


def build_plugin(out: str | Path) -> Path:
    """Write the installable plugin zip to ``out`` and return its path."""
    from .. import __version__

    out = Path(out)
    if out.suffix.lower() != ".zip":
        out = out.with_suffix(".zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for f in sorted(SOURCE.rglob("*")):
                if f.is_dir() or "__pycache__" in f.parts or f.suffix in (".pyc", ".pyo"):
                    continue
                rel = f.relative_to(SOURCE).as_posix()
                data = f.read_bytes()
                if rel == "metadata.txt":
                    data = data.replace(b"@VERSION@", __version__.encode())
                z.writestr(f"{PLUGIN_NAME}/{rel}", data)
            z.writestr(f"{PLUGIN_NAME}/cli_spec.json", json.dumps(cli_spec(), indent=1, ensure_ascii=False))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m gli_toolbox.qgis_plugin.build OUT.zip``."""
    ap = argparse.ArgumentParser(prog="python -m gli_toolbox.qgis_plugin.build", description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="gli_toolbox_processing.zip", help="zip file to write")
    args = ap.parse_args(argv)
    path = build_plugin(args.out)
    print(f"wrote {path}: in QGIS, Plugins > Manage and Install Plugins > Install from ZIP")


if __name__ == "__main__":
    main()
