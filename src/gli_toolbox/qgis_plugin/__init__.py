"""The QGIS Processing plugin of gli-toolbox and the command that packs it as an installable zip.

The plugin itself is the folder :file:`gli_processing/` (installed into QGIS as
``gli_toolbox_processing``). It runs the installed ``gli`` command as a subprocess, so QGIS's own
Python does not need gli-toolbox's dependencies unless ``gli`` is installed there; see
``docs/qgis.md``. :func:`~gli_toolbox.qgis_plugin.build.build_plugin` writes the zip, including
``cli_spec.json``: the parameters of ``gli detect``, ``gli search`` and ``gli track`` read from the
click commands, from which the plugin makes its Processing parameters.
"""

from __future__ import annotations

PLUGIN_NAME = "gli_toolbox_processing"

__all__ = ["PLUGIN_NAME"]
