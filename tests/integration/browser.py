"""Headless Chromium (Debian's package) for looking at pages as a reader does, offline.

``render`` opens a local page with every proxy pointing to a closed port and a network log, and
returns the URLs of the requests the page itself made (sub-resources: images, style sheets, fonts,
scripts), told apart from Chromium's own background traffic by their partitioned network state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def need_chromium() -> str:
    if CHROMIUM is None:
        msg = "Debian's chromium is not installed (apt-get install chromium fonts-dejavu-core)"
        if os.environ.get("GLI_REQUIRE_SERVICES") == "1":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return CHROMIUM


def render(page: Path, tmp: Path, *, screenshot: Path | None = None, height: int = 1400) -> tuple[set[str], str]:
    """Render ``page``; return the URLs of the page's own network requests and the DOM."""
    netlog = tmp / f"{page.stem}.netlog.json"
    args = [need_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--hide-scrollbars", "--disable-background-networking", "--disable-component-update",
            "--proxy-server=http://127.0.0.1:9", f"--log-net-log={netlog}", f"--window-size=1100,{height}",
            f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=3000"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run([*args, page.resolve().as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads(netlog.read_text())
    kinds = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = set()
    for ev in log["events"]:
        params = ev.get("params") or {}
        if kinds.get(ev["type"]) == "HTTP_STREAM_JOB_CONTROLLER" and "partitioned" in str(params.get("privacy_mode")):
            urls.add(params["url"])
    return urls, done.stdout
