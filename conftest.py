"""Repository-level pytest settings."""

# The QGIS plugin's algorithm and provider modules import QGIS (Debian's python3-qgis, not the
# venv): pytest's --doctest-modules must not import them. tests/integration/test_qgis_plugin.py
# runs them in a real QGIS.
collect_ignore_glob = [
    "src/gli_toolbox/qgis_plugin/gli_processing/algorithms.py",
    "src/gli_toolbox/qgis_plugin/gli_processing/provider.py",
]
