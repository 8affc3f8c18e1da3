"""Run the ``gli`` command as a subprocess: stream its messages, read its progress, stop it on cancel.

Pure Python (no QGIS), so it can be tested anywhere. The progress bar of ``gli`` (tqdm) is only drawn
on a terminal: on Linux/macOS the child's stderr is a pseudo-terminal, so the percentages can be
read; on Windows only the messages are shown. Cancelling sends Ctrl-C (SIGINT; CTRL_BREAK on
Windows), which makes ``gli`` delete its staging folder and leave ``--out`` as it was; if it does
not stop within ``grace_s`` it is killed, and any staging folder it created is removed here.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PERCENT = re.compile(r"(\d{1,3})%\|")
#: the bars of ``gli detect`` in the order they run, and the share of QGIS's one bar each fills, so
#: that it only moves forward (the lake phase of a region takes minutes to hours after the chunks)
PHASES = {"cloud pass": (0, 10), "chunks": (10, 85), "lakes": (85, 100)}

#: environment variables of QGIS's own GDAL/PROJ that must not leak into the gli process, whose
#: rasterio/pyproj/pyogrio wheels bring their own data files (a foreign proj.db breaks PROJ)
_FOREIGN_ENV = ("GDAL_DATA", "PROJ_LIB", "PROJ_DATA", "GDAL_DRIVER_PATH")


def find_gli() -> list[str]:
    """The command that runs ``gli``.

    In order: ``$GLI_COMMAND`` (e.g. ``/home/me/venv/bin/gli``), ``gli`` on the PATH, the ``gli``
    script next to QGIS's Python (``Scripts/gli.exe`` in OSGeo4W), QGIS's Python itself with
    gli-toolbox installed in it.

    >>> os.environ["GLI_COMMAND"] = "/opt/gli/bin/gli --foo"; find_gli()
    ['/opt/gli/bin/gli', '--foo']
    >>> del os.environ["GLI_COMMAND"]
    """
    env = os.environ.get("GLI_COMMAND", "").strip()
    if env:
        return shlex.split(env, posix=os.name != "nt")
    found = shutil.which("gli")
    if found:
        return [found]
    prefix = Path(sys.exec_prefix)
    for cand in (prefix / "Scripts" / "gli.exe", prefix / "bin" / "gli"):
        if cand.exists():
            return [str(cand)]
    exe = Path(sys.executable)
    if "python" not in exe.name.lower():  # inside QGIS, sys.executable is QGIS itself
        exe = prefix / ("python.exe" if os.name == "nt" else "bin/python3")
    return [str(exe), "-c", "from gli_toolbox.cli import main; main()"]


def child_env() -> dict[str, str]:
    """Environment for the gli process: UTF-8, unbuffered, without QGIS's GDAL/PROJ data paths."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env.update(PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1", COLUMNS="100")
    return env


def staging_dirs(out: Path | None) -> set[Path]:
    """Hidden folders gli creates next to ``--out`` while it works: staging (``.<out>.partial-*``) and
    the chunk results kept for ``--resume`` (``.<out>.gli-work``), which a canceled run from QGIS does
    not need."""
    if out is None or not out.parent.exists():
        return set()
    return set(out.parent.glob(f".{out.name}.partial-*")) | set(out.parent.glob(f".{out.name}.gli-work"))


@dataclass
class RunResult:
    """What a gli run gave."""

    returncode: int
    stdout: str
    canceled: bool
    lines: list[str] = field(default_factory=list)


def split_messages(text: str) -> list[tuple[str, int | None]]:
    """Split raw stderr text into (message, percent) pieces; progress bar redraws give a percent
    of the whole run (:func:`_overall`).

    >>> split_messages("WARNING: x\\r\\nreading scenes:  50%|#####     | 1/2\\r")
    [('WARNING: x', None), ('reading scenes:  50%|#####     | 1/2', 50)]
    """
    out: list[tuple[str, int | None]] = []
    for piece in re.split(r"[\r\n]+", ANSI.sub("", text)):
        piece = piece.strip()
        if not piece:
            continue
        m = PERCENT.search(piece)
        out.append((piece, _overall(piece, int(m.group(1))) if m else None))
    return out


def _overall(bar: str, percent: int) -> int:
    """The percent of one of gli's bars on QGIS's single bar (:data:`PHASES`; another bar as is).

    >>> _overall("chunks:  50%|#####     | 1/2", 50), _overall("lakes: 100%|###| 2/2", 100), _overall("x: 7%|", 7)
    (48, 100, 7)
    """
    lo, hi = PHASES.get(bar.split(":", 1)[0].strip(), (0, 100))
    return lo + round((hi - lo) * min(percent, 100) / 100)


def run_gli(
    args: Sequence[str],
    *,
    on_message: Callable[[str], None],
    on_progress: Callable[[float], None],
    is_canceled: Callable[[], bool],
    out_dir: Path | None = None,
    grace_s: float = 20.0,
    command: Sequence[str] | None = None,
) -> RunResult:
    """Run ``gli ARGS``; call ``on_message`` per line and ``on_progress`` (0-100) per bar update.

    ``is_canceled`` is polled ten times a second; when it turns true the process is interrupted
    (then killed after ``grace_s``) and staging folders it left next to ``out_dir`` are removed.
    """
    cmd = list(command or find_gli()) + [str(a) for a in args]
    before = staging_dirs(out_dir)
    use_pty = os.name == "posix"
    kwargs: dict = {}
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(subprocess, "CREATE_NO_WINDOW", 0)
    if use_pty:
        import pty

        master, slave = pty.openpty()
        _set_width(slave, 100)  # a new pseudo-terminal is 0 columns wide: tqdm would draw nothing
        stderr: int = slave
    else:
        stderr = subprocess.PIPE
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=child_env(),
                            **kwargs)
    chunks: queue.Queue[str | None] = queue.Queue()
    stdout_parts: list[bytes] = []

    def read_stderr() -> None:
        while True:
            try:
                data = os.read(master, 4096) if use_pty else proc.stderr.read1(4096)  # type: ignore[union-attr]
            except OSError:  # EIO: the child closed the terminal
                data = b""
            if not data:
                break
            chunks.put(data.decode("utf-8", errors="replace"))
        chunks.put(None)

    def read_stdout() -> None:
        stdout_parts.append(proc.stdout.read())  # type: ignore[union-attr]

    if use_pty:
        os.close(slave)
    threads = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for t in threads:
        t.start()
    canceled = False
    lines: list[str] = []
    pending = ""
    stderr_done = False
    deadline: float | None = None
    try:
        while True:
            try:
                while True:
                    chunk = chunks.get_nowait()
                    if chunk is None:
                        stderr_done = True
                        break
                    pending += chunk
            except queue.Empty:
                pass
            # keep an unfinished last line for the next round, unless the stream ended
            cut = max(pending.rfind("\n"), pending.rfind("\r"))
            ready, pending = (pending, "") if stderr_done else (pending[: cut + 1], pending[cut + 1:])
            for text, pct in split_messages(ready):
                if pct is not None:
                    on_progress(float(min(pct, 100)))
                else:
                    lines.append(text)
                    on_message(text)
            if stderr_done and proc.poll() is not None:
                break
            if not canceled and is_canceled():
                canceled = True
                deadline = time.monotonic() + grace_s
                _interrupt(proc)
            if deadline is not None and proc.poll() is None and time.monotonic() > deadline:
                proc.kill()
            if deadline is not None and proc.poll() is not None and time.monotonic() > deadline + 5:
                break  # killed; a grandchild may still hold the terminal open
            time.sleep(0.1)
        proc.wait()
        threads[1].join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if use_pty:
            try:
                os.close(master)
            except OSError:
                pass
    if canceled:
        for d in staging_dirs(out_dir) - before:
            shutil.rmtree(d, ignore_errors=True)
    return RunResult(proc.returncode, b"".join(stdout_parts).decode("utf-8", errors="replace"), canceled, lines)


def _set_width(fd: int, columns: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def _interrupt(proc: subprocess.Popen) -> None:
    try:
        if os.name == "nt":
            proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        else:
            proc.send_signal(signal.SIGINT)  # gli cleans up like on Ctrl-C
    except (OSError, ValueError):
        proc.kill()
