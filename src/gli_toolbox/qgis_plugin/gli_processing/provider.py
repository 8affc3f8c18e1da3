"""The "GLI Toolbox" Processing provider."""

from qgis.core import QgsProcessingProvider

from .algorithms import DetectAlgorithm, SearchAlgorithm, TrackAlgorithm, gli_version


class GliProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "gli"

    def name(self) -> str:
        return "GLI Toolbox"

    def longName(self) -> str:
        return f"GLI Toolbox (gli-toolbox {gli_version()})"

    def loadAlgorithms(self) -> None:
        for alg in (DetectAlgorithm(), SearchAlgorithm(), TrackAlgorithm()):
            self.addAlgorithm(alg)
