"""Processing algorithms "Detect glacial lakes", "Search scenes" and "Track lakes".

Their parameters are made from ``cli_spec.json`` (the click options of ``gli detect``/``search``/
``track``, written when the plugin zip is built), so they match the CLI they run. Each algorithm runs
``gli`` through :mod:`.runner`: messages go to the Processing log, the progress bar to the progress,
Cancel interrupts the run (nothing half-written is left). Detect and Track add the main results to
the map with the styles gli wrote (``.qml`` / GeoPackage default styles).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from .runner import run_gli

HERE = Path(__file__).resolve().parent

#: Parameter labels shown in the dialog (the CLI's help text is the tooltip / help panel).
LABELS = {
    "aoi": "Area of interest (polygon layer)",
    "years": "Years (e.g. 2016-2023 or 2019)",
    "months": "Season months (e.g. 7-9)",
    "stac": "STAC API URL or local catalog.json",
    "collection": "Sentinel-2 collection",
    "max_cloud": "Maximum scene cloud cover (%)",
    "crs": "Output CRS (EPSG code; empty: UTM zone of the area)",
    "min_area_m2": "Minimum lake area (m²)",
    "index": "Water index",
    "ndwi_threshold": "Water index threshold",
    "out": "Output folder",
    "save_masks": "Also write water masks (water_<year>.tif, nobs_<year>.tif)",
    "per_scene": "One layer per acquisition date instead of per year",
    "overwrite": "Replace the outputs of an earlier run in the output folder",
    "glaciers": "Glacier outlines (e.g. an RGI region file)",
    "max_glacier_dist_m": "Maximum distance to a glacier (m)",
    "dem": "DEM file, or 'auto' (Copernicus GLO-30)",
    "max_slope_deg": "Maximum median slope (°)",
    "cloud_detector": "Cloud masking",
    "inventories": "Lake inventories (one polygon layer per year or date)",
    "year_field": "Field holding the year (empty: year in the layer name)",
    "pixel_m": "Pixel size of the outlines (m)",
}
#: Options the plugin sets itself when the CLI has them (not shown in the dialog).
AUTOMATIC = {"progress"}
#: Shown in the main part of the dialog; the others are under "Advanced parameters".
MAIN = {"aoi", "years", "months", "stac", "out", "save_masks", "inventories", "overwrite", "glaciers", "dem"}


def load_spec() -> dict[str, Any]:
    path = HERE / "cli_spec.json"
    if not path.exists():
        raise QgsProcessingException(f"{path} is missing: build the plugin with `gli qgis-plugin OUT.zip`")
    return json.loads(path.read_text(encoding="utf-8"))


def gli_version() -> str:
    try:
        return str(load_spec().get("gli_version", "?"))
    except QgsProcessingException:
        return "?"


class _StyledLoad(QgsProcessingLayerPostProcessorInterface):
    """Applies the style gli wrote for a layer when Processing adds it to the map."""

    instances: ClassVar[list[_StyledLoad]] = []  # Processing keeps only a raw pointer: keep them alive here

    def __init__(self, water: bool = False) -> None:
        super().__init__()
        self.water = water
        _StyledLoad.instances.append(self)

    def postProcessLayer(self, layer, context, feedback) -> None:
        layer.loadDefaultStyle()  # the .qml beside the file / the GeoPackage's default style
        if self.water and isinstance(layer, QgsRasterLayer):
            layer.dataProvider().setUseSourceNoDataValue(1, False)  # never observed in its own grey
        layer.triggerRepaint()


class _GliAlgorithm(QgsProcessingAlgorithm):
    command = ""
    label = ""
    outputs_folder = True

    def createInstance(self):
        return type(self)()

    def name(self) -> str:
        return self.command

    def displayName(self) -> str:
        return self.label

    def group(self) -> str:
        return "Glacial lakes"

    def groupId(self) -> str:
        return "glacial_lakes"

    def spec(self) -> dict[str, Any]:
        return load_spec()["commands"][self.command]

    def shortHelpString(self) -> str:
        spec = self.spec()
        rows = "".join(f"<li><b>{LABELS.get(p['name'], p['name'])}</b> ({p['opt'] or p['name']}): {p['help']}</li>"
                       for p in spec["params"])
        return f"<p>{spec['help']}</p><p>Runs <code>gli {self.command}</code>.</p><ul>{rows}</ul>"

    # -- parameters from the CLI spec ------------------------------------------------------------
    def initAlgorithm(self, config=None) -> None:
        for p in self.spec()["params"]:
            if p["name"] in AUTOMATIC:
                continue
            param = self._parameter(p)
            if param is None:
                continue
            if p["name"] not in MAIN:
                param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            param.setHelp(p["help"])
            self.addParameter(param)
        self.add_outputs()

    def add_outputs(self) -> None:
        self.addOutput(QgsProcessingOutputFolder("OUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputFile("PROJECT", "QGIS project with every output"))

    def _parameter(self, p: dict[str, Any]):
        key, label = p["name"].upper(), LABELS.get(p["name"], p["help"].split(".")[0] or p["name"])
        optional = not p["required"] and p["default"] is None
        kind = p["kind"]
        if p["name"] == "aoi":
            return QgsProcessingParameterFeatureSource(key, label, [QgsProcessing.TypeVectorPolygon])
        if p["name"] == "out":
            return QgsProcessingParameterFolderDestination(key, label)
        if p["name"] == "inventories":
            return QgsProcessingParameterMultipleLayers(key, label, QgsProcessing.TypeVectorPolygon)
        if kind == "bool":
            return QgsProcessingParameterBoolean(key, label, bool(p["default"]), optional=True)
        if kind == "enum":
            default = p["choices"].index(p["default"]) if p["default"] in p["choices"] else 0
            return QgsProcessingParameterEnum(key, label, p["choices"], defaultValue=default)
        if kind in ("int", "float"):
            t = QgsProcessingParameterNumber.Integer if kind == "int" else QgsProcessingParameterNumber.Double
            param = QgsProcessingParameterNumber(key, label, t, p["default"], optional)
            if p.get("min") is not None:
                param.setMinimum(p["min"])
            if p.get("max") is not None:
                param.setMaximum(p["max"])
            return param
        if kind == "path":
            return QgsProcessingParameterFile(key, label, QgsProcessingParameterFile.File, optional=optional)
        if kind == "folder":
            return QgsProcessingParameterFile(key, label, QgsProcessingParameterFile.Folder, optional=optional)
        return QgsProcessingParameterString(key, label, p["default"], optional=optional)

    def cli_args(self, parameters, context, feedback, tmp: Path, out: str | None = None) -> list[str]:
        args: list[str] = [self.command]
        for p in self.spec()["params"]:
            key = p["name"].upper()
            name, opt, kind = p["name"], p["opt"], p["kind"]
            if name in AUTOMATIC:
                if kind == "bool":
                    args.append(opt)  # e.g. --progress: always on, QGIS shows the bar
                continue
            if name == "aoi":
                path = self.parameterAsCompatibleSourceLayerPath(parameters, key, context, ["gpkg", "shp", "geojson"],
                                                                 "gpkg", feedback)
                args += [opt, path]
            elif name == "inventories":
                for layer in self.parameterAsLayerList(parameters, key, context):
                    args.append(_layer_file(layer, tmp))
            elif name == "out":
                args += [opt, out or self.out_folder(parameters, context)]
            elif kind == "bool":
                if self.parameterAsBoolean(parameters, key, context):
                    args.append(opt)
            elif kind == "enum":
                args += [opt, p["choices"][self.parameterAsEnum(parameters, key, context)]]
            elif kind in ("int", "float"):
                if parameters.get(key) is None and p["default"] is None:
                    continue
                v = self.parameterAsDouble(parameters, key, context)
                args += [opt, str(int(v)) if kind == "int" else repr(float(v))]
            else:
                v = self.parameterAsString(parameters, key, context) or ""
                if v.strip():
                    args += [opt, v.strip()]
        return args

    def out_folder(self, parameters, context) -> str:
        """The output folder; "Save to temporary folder" becomes a new folder in Processing's temp."""
        return self.parameterAsFileOutput(parameters, "OUT", context)

    # -- running -----------------------------------------------------------------------------------
    def run_cli(self, args: list[str], feedback, out_dir: Path | None):
        feedback.pushInfo("gli " + " ".join(args))

        def message(line: str) -> None:
            if line.startswith(("WARNING", "Warning")):
                feedback.pushWarning(line)
            elif line.startswith(("Error", "ERROR")):
                feedback.reportError(line)
            else:
                feedback.pushInfo(line)

        res = run_gli(args, on_message=message, on_progress=feedback.setProgress, is_canceled=feedback.isCanceled,
                      out_dir=out_dir)
        if res.canceled:
            raise QgsProcessingException("Canceled: gli was stopped and the output folder left as it was before.")
        if res.returncode not in (0, 3):
            detail = next((line for line in reversed(res.lines) if line.startswith("Error")), None)
            raise QgsProcessingException(detail or f"gli {self.command} failed (exit code {res.returncode})")
        if res.returncode == 3:
            feedback.pushWarning("gli finished, but some periods are incomplete: see run.json")
        feedback.setProgress(100)
        return res

    def processAlgorithm(self, parameters, context, feedback):
        with tempfile.TemporaryDirectory(prefix="gli_qgis_") as tmp:
            out = Path(self.out_folder(parameters, context))  # once: a temporary folder is new per call
            args = self.cli_args(parameters, context, feedback, Path(tmp), str(out))
            self.run_cli(args + ["-v"], feedback, out)
        self.check_version(out, feedback)
        self.load_results(out, context)
        project = out / "inventory.qgz"
        return {"OUT_FOLDER": str(out), "PROJECT": str(project) if project.exists() else None}

    @staticmethod
    def check_version(out: Path, feedback) -> None:
        """Warn when the gli that ran is not the version this plugin was built from."""
        try:
            ran = json.loads((out / "run.json").read_text(encoding="utf-8"))["software"]["gli-toolbox"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        built = gli_version()
        if ran != built:
            feedback.pushWarning(f"gli {ran} ran, but this plugin was built for gli {built}: parameters may differ; "
                                 "rebuild it with `gli qgis-plugin OUT.zip` and reinstall")

    def load_results(self, out: Path, context: QgsProcessingContext) -> None:
        """Add the change layer, the newest period, all periods and the newest water mask to the map."""
        gpkg = out / "inventory.gpkg"
        if not gpkg.exists():
            return
        whole = QgsVectorLayer(str(gpkg), "x", "ogr")
        names = [s.split("!!::!!")[1] for s in whole.dataProvider().subLayers() if "!!::!!" in s]
        del whole
        periods = sorted((n for n in names if re.fullmatch(r"lakes_\d{4}(\d{4})?", n)), key=lambda n: n[6:])
        wanted = [n for n in ("lakes_all",) if n in names] + periods[-1:] + [n for n in ("lake_changes",) if n in names]
        masks = sorted(out.glob("water_*.tif"), key=lambda p: p.stem[6:])
        if masks:
            self._load(context, str(masks[-1]), masks[-1].stem, water=True)
        for n in wanted:
            self._load(context, f"{gpkg}|layername={n}", n)

    @staticmethod
    def _load(context: QgsProcessingContext, uri: str, name: str, water: bool = False) -> None:
        details = QgsProcessingContext.LayerDetails(name, context.project(), name)
        details.setPostProcessor(_StyledLoad(water))
        context.addLayerToLoadOnCompletion(uri, details)


def _layer_file(layer, tmp: Path) -> str:
    """A file gli can read for ``layer``, keeping the year in the name: the layer's own file when
    it is a whole file, else a copy named after the layer (its GeoPackage layer name)."""
    source = layer.source()
    path = source.split("|")[0]
    if layer.providerType() == "ogr" and "|" not in source and Path(path).exists():
        return path
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), source) if layer.providerType() else {}
    name = parts.get("layerName") or layer.name()  # "lakes_2019" of inventory.gpkg|layername=lakes_2019
    target = tmp / f"{re.sub(r'[^0-9A-Za-z_-]', '_', name)}.gpkg"
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName = "GPKG"
    opts.fileEncoding = "UTF-8"
    err = QgsVectorFileWriter.writeAsVectorFormatV2(layer, str(target), layer.transformContext(), opts)
    if err[0] != QgsVectorFileWriter.NoError:
        raise QgsProcessingException(f"cannot export {layer.name()} for gli track: {err[1]}")
    return str(target)


class DetectAlgorithm(_GliAlgorithm):
    command = "detect"
    label = "Detect glacial lakes"


class TrackAlgorithm(_GliAlgorithm):
    command = "track"
    label = "Track lakes"


class SearchAlgorithm(_GliAlgorithm):
    command = "search"
    label = "Search scenes"

    def initAlgorithm(self, config=None) -> None:
        super().initAlgorithm(config)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Scene list", "JSON files (*.json)"))

    def add_outputs(self) -> None:
        self.addOutput(QgsProcessingOutputNumber("N_SCENES", "Number of scenes"))

    def processAlgorithm(self, parameters, context, feedback):
        with tempfile.TemporaryDirectory(prefix="gli_qgis_") as tmp:
            args = self.cli_args(parameters, context, feedback, Path(tmp))
            res = self.run_cli(args + ["--json"], feedback, None)
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            raise QgsProcessingException("gli search gave no scene list; see the log") from None
        n = 0
        for year, entry in doc.items():
            if not str(year).isdigit():  # the run's "plan" beside the years
                continue
            scenes = entry.get("scenes", [])
            n += len(scenes)
            feedback.pushInfo(f"{year}: {len(scenes)} scenes")
            for s in scenes:
                cloud = s.get("cloud_pct")
                feedback.pushInfo(f"  {s.get('datetime', '')[:10]}  cloud {cloud if cloud is not None else 'n/a'}%  "
                                  f"{s.get('id', '')}")
        target = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        Path(target).write_text(json.dumps(doc, indent=2), encoding="utf-8")
        return {"OUTPUT": target, "N_SCENES": n}
