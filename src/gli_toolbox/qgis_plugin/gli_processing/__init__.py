"""QGIS plugin: gli-toolbox algorithms in the Processing toolbox (see ``docs/qgis.md``).

QGIS calls :func:`classFactory`; everything that needs QGIS is imported there, so this file stays
importable anywhere.
"""


def provider_class():
    """The Processing provider class (imports QGIS)."""
    from .provider import GliProvider

    return GliProvider


class GliPlugin:
    """Registers the Processing provider while the plugin is loaded."""

    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider = None

    def initProcessing(self) -> None:
        from qgis.core import QgsApplication

        self.provider = provider_class()()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()

    def unload(self) -> None:
        from qgis.core import QgsApplication

        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None


def classFactory(iface):
    """QGIS plugin entry point."""
    return GliPlugin(iface)
