"""Session fixtures that run real servers on loopback: nginx for band files, a pgstac STAC API.

Without the system packages (see ``servers.DEBIAN_PACKAGES``) the tests that need them are skipped,
unless ``GLI_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where a missing service fails the run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers

_SERVICES = pytest.StashKey[list[servers.Service]]()


def _unavailable(reason: str) -> None:
    if os.environ.get("GLI_REQUIRE_SERVICES") == "1":
        pytest.fail(f"GLI_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _register(config: pytest.Config, svc: servers.Service) -> None:
    config.stash.setdefault(_SERVICES, []).append(svc)


def _unregister(config: pytest.Config, svc: servers.Service) -> None:
    running = config.stash.get(_SERVICES, [])
    if svc in running:
        running.remove(svc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Attach the end of the server logs to the report of a failed test that used a server."""
    outcome = yield
    report = outcome.get_result()
    uses_server = {"http_server", "stac_api"} & set(getattr(item, "fixturenames", ()))
    if report.when == "call" and report.failed and uses_server:
        for svc in item.config.stash.get(_SERVICES, []):
            report.sections.append((f"{svc.name} log (pid {svc.pid})", svc.log_tail()))


@pytest.fixture(scope="session")
def fixtures_dir(repo_root: Path) -> Path:
    """Recorded STAC responses (``tests/data/stac_fixtures``, provenance in ``MANIFEST.json``)."""
    return repo_root / "tests" / "data" / "stac_fixtures"


@pytest.fixture(scope="session")
def http_server(
    sample_data: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Base URL of nginx serving ``sample_data/`` on 127.0.0.1, range requests included."""
    reason = servers.missing_for_http_server()
    if reason:
        _unavailable(reason)
    try:
        svc = servers.start_nginx(sample_data, tmp_path_factory.mktemp("nginx"))
    except servers.ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    _register(request.config, svc)
    try:
        yield svc.url
    finally:
        _unregister(request.config, svc)
        svc.stop()


@pytest.fixture(scope="session")
def stac_api(
    http_server: str,
    sample_data: Path,
    fixtures_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """URL of a stac-fastapi-pgstac API on 127.0.0.1, loaded with:

    * the collections and items of ``sample_data/catalog.json``, asset hrefs rewritten to
      ``http_server`` URLs, so band files are read over HTTP as from cloud storage;
    * ``servers.PAGING_COLLECTION``: ``servers.PAGING_ITEM_COUNT`` copies of a sample item, one a day;
    * ``sentinel-2-l2a``: a recorded original (``_0_``) and reprocessed (``_1_``) item of one acquisition.
    """
    reason = servers.missing_for_stac_api()
    if reason:
        _unavailable(reason)
    catalog = sample_data / "catalog.json"
    if not catalog.exists():
        pytest.fail(
            f"{catalog} is missing: the STAC API is loaded from the sample catalog", pytrace=False
        )

    collections, items = servers.catalog_records(
        catalog, files_root=sample_data, base_url=http_server
    )
    template_coll = next((c for c in collections if c["id"] == servers.SAMPLE_COLLECTION), None)
    template_item = next((i for i in items if i["collection"] == servers.SAMPLE_COLLECTION), None)
    if template_coll is None or template_item is None:
        pytest.fail(
            f"{catalog} has no {servers.SAMPLE_COLLECTION} collection with items", pytrace=False
        )
    paging_coll, paging_items = servers.paging_records(template_coll, template_item)
    dup_coll, dup_items = servers.recorded_records(
        fixtures_dir,
        servers.DUPLICATE_COLLECTION,
        [servers.DUPLICATE_OLD_ID, servers.DUPLICATE_NEW_ID],
    )

    logdir = tmp_path_factory.mktemp("stac_api")
    try:
        pg = servers.start_postgres(logdir)
    except servers.ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    _register(request.config, pg)
    try:
        port = int(urlparse(pg.url).port or 0)
        try:
            servers.load_pgstac(
                f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                [*collections, paging_coll, dup_coll],
                [*items, *paging_items, *dup_items],
            )
        except Exception as exc:  # noqa: BLE001 - any loader error ends the fixture with the log
            pytest.fail(f"loading pgstac failed: {exc}\n{pg.log_tail()}", pytrace=False)
        try:
            api = servers.start_stac_fastapi(port, logdir)
        except servers.ServiceError as exc:
            pytest.fail(str(exc), pytrace=False)
        _register(request.config, api)
        try:
            yield api.url
        finally:
            _unregister(request.config, api)
            api.stop()
    finally:
        _unregister(request.config, pg)
        pg.stop()
