"""Checks run inside a real QGIS (Debian's python3-qgis), as a subprocess of /usr/bin/python3.

Usage: ``/usr/bin/python3 qgis_check.py JOB.json`` prints one JSON line with the results. The job
lists what to inspect: ``layers`` (uri, provider), ``project`` (a .qgz to read), ``render``
(PNG path, size and map points whose pixel colours to report), ``processing`` (algorithms of the
gli plugin to run, with the plugin folder). Importable without QGIS (pytest collects doctests).
"""

from __future__ import annotations

import json
import sys


def _text(v):
    if v is None:
        return None
    if hasattr(v, "toString") and hasattr(v, "year"):  # QDate
        return v.toString("yyyy-MM-dd")
    return str(v)


def _layer_info(layer) -> dict:
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    info: dict = {"valid": layer.isValid(), "crs": layer.crs().authid(), "name": layer.name()}
    if isinstance(layer, QgsVectorLayer):
        r = layer.renderer()
        info.update(
            kind="vector",
            renderer=r.type() if r else None,
            legend=[i.label() for i in r.legendSymbolItems()] if r else [],
            categories=[c.value() for c in r.categories()] if r and r.type() == "categorizedSymbol" else [],
            count=layer.featureCount(),
            fields=[f.name() for f in layer.fields()],
            aliases={f.name(): layer.attributeAlias(i) for i, f in enumerate(layer.fields())},
            widths={f.name(): [f.length(), f.precision(), f.typeName()] for f in layer.fields()},
            labels=layer.labelsEnabled(),
            label_field=layer.labeling().settings().fieldName if layer.labeling() else None,
        )
        if "area_km2" in info["fields"]:
            fld = layer.fields().field("area_km2")
            info["display_2_0884"] = fld.displayString(2.0884)
        tp = layer.temporalProperties()
        info["temporal"] = [tp.isActive(), int(tp.mode()), tp.startField(), tp.endField()]
        info["values"] = {}
        for name in ("name", "status", "lake_id", "date"):
            if name in info["fields"]:
                info["values"][name] = [_text(f[name]) for f in layer.getFeatures()]
    elif isinstance(layer, QgsRasterLayer):
        r = layer.renderer()
        info.update(kind="raster", renderer=r.type() if r else None,
                    legend=[x[0] for x in r.legendSymbologyItems()] if r else [],
                    use_src_nodata=layer.dataProvider().useSourceNoDataValue(1))
    return info


def _render(project, job: dict) -> dict:
    from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings, QgsRectangle
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    root = project.layerTreeRoot()
    layers = [lyr for lyr in root.layerOrder() if root.findLayer(lyr.id()).isVisible()]
    ms = QgsMapSettings()
    ms.setLayers(layers)
    ms.setDestinationCrs(project.crs())
    ms.setBackgroundColor(QColor(255, 255, 255))
    ms.setOutputSize(QSize(*job["size"]))
    ms.setOutputDpi(96)
    ms.setExtent(QgsRectangle(*job["extent"]))
    ms.setTransformContext(project.transformContext())
    ms.setFlag(ms.Antialiasing, True)
    r = QgsMapRendererSequentialJob(ms)
    r.start()
    r.waitForFinished()
    img = r.renderedImage()
    img.save(job["png"], "PNG")
    m2p = ms.mapToPixel()
    colours = {}
    for key, pts in job["points"].items():
        out = []
        for x, y in pts:
            p = m2p.transform(x, y)
            c = img.pixelColor(int(p.x()), int(p.y()))
            out.append([c.red(), c.green(), c.blue()])
        colours[key] = out
    return {"layers": [lyr.name() for lyr in layers], "colours": colours,
            "size": [img.width(), img.height()]}


def _figure(project, job: dict) -> dict:
    """A page with the map and its legend, as partners see the project (for docs/)."""
    from qgis.core import (
        QgsLayoutExporter,
        QgsLayoutItemLabel,
        QgsLayoutItemLegend,
        QgsLayoutItemMap,
        QgsLayoutPoint,
        QgsLayoutSize,
        QgsPrintLayout,
        QgsRectangle,
        QgsUnitTypes,
    )
    from qgis.PyQt.QtGui import QFont

    root = project.layerTreeRoot()
    visible = [lyr for lyr in root.layerOrder() if root.findLayer(lyr.id()).isVisible()]
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    page = layout.pageCollection().page(0)
    w_mm, h_mm = job["page_mm"]
    page.setPageSize(QgsLayoutSize(w_mm, h_mm, QgsUnitTypes.LayoutMillimeters))
    title = QgsLayoutItemLabel(layout)
    title.setText(job["title"])
    title.setFont(QFont("Sans Serif", 12))
    title.attemptMove(QgsLayoutPoint(5, 3, QgsUnitTypes.LayoutMillimeters))
    title.attemptResize(QgsLayoutSize(w_mm - 10, 9, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(title)
    map_w = job["map_mm"]
    m = QgsLayoutItemMap(layout)
    m.attemptMove(QgsLayoutPoint(5, 13, QgsUnitTypes.LayoutMillimeters))
    m.attemptResize(QgsLayoutSize(map_w, h_mm - 18, QgsUnitTypes.LayoutMillimeters))
    m.setCrs(project.crs())
    m.setLayers(visible)
    m.setExtent(QgsRectangle(*job["extent"]))
    m.setFrameEnabled(True)
    layout.addLayoutItem(m)
    legend = QgsLayoutItemLegend(layout)
    legend.setLinkedMap(m)
    legend.setLegendFilterByMapEnabled(False)
    legend.setAutoUpdateModel(False)
    model_root = legend.model().rootGroup()
    for node in list(model_root.findLayers()):
        if not node.isVisible():
            node.parent().removeChildNode(node)
    for group in list(model_root.children()):
        if hasattr(group, "findLayers") and not group.findLayers():
            model_root.removeChildNode(group)
    legend.setTitle("Legend")
    legend.attemptMove(QgsLayoutPoint(map_w + 8, 13, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(legend)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = job.get("dpi", 110)
    res = QgsLayoutExporter(layout).exportToImage(job["png"], settings)
    return {"ok": res == QgsLayoutExporter.Success, "legend_layers": [n.name() for n in model_root.findLayers()]}


def _processing(job: dict) -> dict:
    sys.path.append("/usr/share/qgis/python/plugins")
    sys.path.insert(0, job["plugins_dir"])
    from processing.core.Processing import Processing
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProject

    Processing.initialize()
    import importlib

    import processing

    plugin = importlib.import_module(job["plugin"]).classFactory(None)
    plugin.initProcessing()  # what QGIS does when the plugin is enabled
    provider = QgsApplication.processingRegistry().providerById("gli")
    out: dict = {"algorithms": sorted(a.id() for a in provider.algorithms()),
                 "names": sorted(a.displayName() for a in provider.algorithms())}
    out["params"] = {a.id(): {p.name(): [p.type(), bool(p.flags() & p.FlagOptional)] for p in a.parameterDefinitions()}
                     for a in provider.algorithms()}
    runs = []
    project = QgsProject.instance()
    for run in job["runs"]:
        project.clear()
        fb = _feedback(run.get("cancel_on_message"))
        ctx = QgsProcessingContext()
        ctx.setProject(project)
        rec: dict = {"id": run["id"]}
        try:
            res = processing.runAndLoadResults(run["id"], run["params"], feedback=fb, context=ctx)
            rec["result"] = {k: str(v) for k, v in res.items()}
            rec["ok"] = True
        except Exception as exc:  # noqa: BLE001
            rec["ok"] = False
            rec["error"] = str(exc)
        rec["progress"] = fb.progress_values
        rec["log"] = fb.lines[-60:]
        rec["canceled"] = fb.isCanceled()
        rec["loaded"] = {lyr.name(): _layer_info(lyr) for lyr in project.mapLayers().values()}
        runs.append(rec)
    project.clear()
    plugin.unload()
    out["runs"] = runs
    return out


def _feedback(cancel_on_message: str | None):
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []
            self.progress_values: list[float] = []
            self.progressChanged.connect(self._progress)

        def _progress(self, value: float) -> None:
            self.progress_values.append(value)

        def _maybe_cancel(self, text: str) -> None:
            if cancel_on_message and cancel_on_message in text:
                self.cancel()  # like pressing Cancel once gli has started reading scenes

        def pushInfo(self, info: str) -> None:
            self.lines.append(info)
            self._maybe_cancel(info)

        def pushWarning(self, warning: str) -> None:
            self.lines.append("WARNING " + warning)
            self._maybe_cancel(warning)

        def reportError(self, error: str, fatalError: bool = False) -> None:
            self.lines.append("ERROR " + error)

    return Feedback()


def main() -> None:
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer

    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    app = QgsApplication([], False)
    app.initQgis()
    out: dict = {"layers": {}}
    for uri, provider in job.get("layers", []):
        layer = QgsVectorLayer(uri, uri, provider) if provider == "ogr" else QgsRasterLayer(uri, uri, provider)
        out["layers"][uri] = _layer_info(layer)
        if job.get("reload_default_style") and provider == "ogr":
            layer.loadDefaultStyle()
            tp = layer.temporalProperties()
            out["layers"][uri]["temporal_after_default_style"] = [tp.isActive(), int(tp.mode()), tp.startField(), tp.endField()]
        del layer
    project = QgsProject.instance()
    if job.get("project"):
        ok = project.read(job["project"])
        root = project.layerTreeRoot()
        ts = project.timeSettings()
        rng = ts.temporalRange()
        out["project"] = {
            "read": ok,
            "crs": project.crs().authid(),
            "absolute_paths": project.readBoolEntry("Paths", "/Absolute", True)[0],
            "groups": [[g.name(), [c.name() for c in g.children()], [c.isVisible() for c in g.children()]]
                       for g in root.children()],
            "layers": {lyr.name(): _layer_info(lyr) for lyr in project.mapLayers().values()},
            "sources": {lyr.name(): lyr.source() for lyr in project.mapLayers().values()},
            "time": [rng.begin().toString("yyyy-MM-dd"), rng.end().toString("yyyy-MM-dd"), ts.timeStep(),
                     int(ts.timeStepUnit())],
        }
        if job.get("render"):
            out["render"] = _render(project, job["render"])
        if job.get("figure"):
            out["figure"] = _figure(project, job["figure"])
    if job.get("processing"):
        out["processing"] = _processing(job["processing"])
    project.clear()
    app.exitQgis()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
