"""The ``gli`` command line: a thin click layer over the Python API.

Signals are installed first, before any heavy import: Ctrl-C (SIGINT), SIGTERM and a closed
terminal or SSH session (SIGHUP) all stop a run the same way, with one line, the output folder as
before the run, and exit code 128 + the signal number.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable


class Stopped(KeyboardInterrupt):
    """A stop signal turned into an exception (a KeyboardInterrupt, so every cleanup runs)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_STOP_WORDS: dict[int, str] = {
    signal.SIGINT: "Interrupted (Ctrl-C)",
    signal.SIGTERM: "Stopped by SIGTERM",
    signal.SIGHUP: "Stopped: the terminal or SSH session closed (SIGHUP)",
}
_ABORT_TAIL = "; the output folder was left as it was before this run."
_started = False
#: Set by a command whose stop leaves something worth saying (``gli detect``: the finished chunks
#: kept for ``--resume``); called after the stop line, returns a line or None.
stop_hint: list[Callable[[], str | None]] = []


_stop_said = False


def _say_stop(signum: int) -> None:
    """The stop line (and the hints), once: the watchdog may end the process while the main thread,
    having said it, still closes a Dask cluster."""
    global _stop_said
    if _stop_said:
        return
    _stop_said = True
    _say(_STOP_WORDS.get(signum, "Stopped") + _ABORT_TAIL)
    for hint in stop_hint:
        try:
            line = hint()
        except Exception:  # noqa: BLE001, S112 - a hint must never hide the stop itself
            continue
        if line:
            _say(line)


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # the terminal is gone (SIGHUP): nothing to tell
        pass


def _on_signal(signum: int, frame: object) -> None:
    if not _started:  # still importing: nothing written yet, leave at once with the same line
        if _main_process():
            _say(_STOP_WORDS.get(signum, "Stopped") + _ABORT_TAIL)
        os._exit(128 + signum)
    raise Stopped(signum)


#: Seconds a stop signal may wait for the main thread before the watchdog ends the process.
GRACE_S = 2.0
_watching = False


def _watchdog(fd: int) -> None:
    """Stop the process when the main thread cannot take a signal in time.

    Python runs signal handlers only between bytecodes of the main thread; a read blocked inside
    GDAL/curl (a stalled connection) can hold it for minutes. The C-level handler writes the signal
    number into the wake-up pipe at once; if the process still lives ``GRACE_S`` later and is not
    moving outputs into place, nothing of this run is in the output folder yet (it is staged), so
    leaving at once is safe: the OS drops the folder lock.
    """
    import time

    while True:
        try:
            data = os.read(fd, 1)
        except OSError:
            return
        if not data:
            return
        signum = data[0]
        if signum not in _STOP_WORDS or not _started:
            continue
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            time.sleep(0.05)
            export = sys.modules.get("gli_toolbox.export")
            if export is not None and getattr(export, "writing_outputs", lambda: False)():
                deadline = time.monotonic() + GRACE_S  # the swap finishes or rolls back first
        _say_stop(signum)
        export = sys.modules.get("gli_toolbox.export")
        if export is not None:
            try:
                export.release_locks()  # remove the lock file (the OS would drop the lock anyway)
            except Exception:  # noqa: BLE001, S110 - leaving matters more
                pass
        os._exit(128 + signum)


def _install_signals() -> None:
    global _watching
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup: keep ignoring SIGHUP
                signal.signal(sig, _on_signal)
        except (ValueError, OSError):  # not the main thread (e.g. a test runner): leave as is
            return
    if not _watching:
        import threading

        r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        threading.Thread(target=_watchdog, args=(r,), name="gli-signal-watchdog", daemon=True).start()
        _watching = True


def _main_process() -> bool:
    """False in a process started by ``multiprocessing`` (the Dask workers of ``--workers N``): they
    get the console script's ``sys.argv`` and import this module, so its handlers, but a stop
    signal sent to the whole process group (Ctrl-C, a batch system) is said once, by the run.
    (Asked when a signal comes: while the child imports this module its parent is not known yet.)"""
    import multiprocessing

    return multiprocessing.parent_process() is None


if os.path.basename(sys.argv[0]) in ("gli", "gli.exe"):  # the console script, not a notebook or test
    _install_signals()

import click

from .. import __version__
from ..errors import GliError, redact
from .exitcodes import EXIT_CODES_HELP, signal_exit_code


class _GliGroup(click.Group):
    """A click group that turns library errors into one line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        global _stop_said
        _stop_said = False  # one invocation, one stop line (tests invoke the command line many times)
        stop_hint.clear()
        try:
            return super().invoke(ctx)
        except GliError as exc:
            raise click.ClickException(redact(str(exc))) from None
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            _say_stop(signum)
            sys.exit(signal_exit_code(signum))
        finally:
            export = sys.modules.get("gli_toolbox.export")
            if export is not None:
                export.release_locks()  # the output folder is free for the next run


@click.group(cls=_GliGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="gli")
def cli() -> None:
    """Glacial lake inventories from Sentinel-2: detect lakes, list scenes, track change."""


def _register() -> None:
    from .detect import detect_cmd
    from .qgis_plugin import qgis_plugin_cmd
    from .search import search_cmd
    from .track import track_cmd

    cli.add_command(detect_cmd)
    cli.add_command(search_cmd)
    cli.add_command(track_cmd)
    cli.add_command(qgis_plugin_cmd)


_register()


def main() -> None:
    """Console-script entry point."""
    global _started
    _install_signals()
    _started = True
    _install_redaction()
    try:
        cli(prog_name="gli")
    except KeyboardInterrupt as exc:  # a stop between click's parsing and the command
        signum = getattr(exc, "signum", signal.SIGINT)
        _say(_STOP_WORDS.get(signum, "Stopped") + _ABORT_TAIL)
        sys.exit(signal_exit_code(signum))


def _install_redaction() -> None:
    """Every log record of this process goes out without credentials (signed URLs, keys)."""
    import logging

    previous = logging.getLogRecordFactory()
    if getattr(previous, "_gli_redacts", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's business
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return record

    factory._gli_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
