"""Exit codes of ``gli`` and the closing line of a run that finished with gaps.

=====  =========================================================================================
code   meaning
=====  =========================================================================================
0      finished; every output written
1      error: the run stopped with one line saying what to do (bad input, no scenes, service
       unavailable, no space left, output folder in use ...); nothing in ``--out`` was changed
2      usage error: a wrong option or value (click's code)
3      finished but incomplete: outputs written, but some band files could not be read even after
       retries; ``run.json`` ("incomplete") and the last lines name them; run again to fill the gaps
129    stopped because the terminal or SSH session closed (SIGHUP); ``--out`` as before the run
130    interrupted with Ctrl-C (SIGINT); ``--out`` as before the run
143    stopped by SIGTERM (e.g. ``kill``, a batch system's time limit); ``--out`` as before the run
=====  =========================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["EXIT_CODES_HELP", "INCOMPLETE", "exit_if_incomplete", "incomplete_summary", "signal_exit_code"]

OK = 0
ERROR = 1
USAGE = 2
INCOMPLETE = 3

#: The exit code section of ``gli --help`` (click keeps the lines of a ``\b`` paragraph as they are).
EXIT_CODES_HELP = """\b
Exit codes:
  0    finished, all outputs written
  1    error (one line says what to do); --out unchanged
  2    usage error (wrong option or value)
  3    finished but incomplete: some band files could not be read even
       after retries; run.json "incomplete" lists them; run again later
  129  stopped: terminal/SSH session closed (SIGHUP); --out unchanged
  130  interrupted (Ctrl-C); --out unchanged
  143  stopped by SIGTERM (kill, batch time limit); --out unchanged

\b
Transient network failures are retried; tune with GLI_HTTP_RETRIES (4),
GLI_HTTP_RETRY_DELAY_S (2), GLI_HTTP_TIMEOUT_S (30), GLI_HTTP_BUDGET_S (300).
A Dask cluster without workers is waited for GLI_WORKER_WAIT_S (600) seconds."""


def signal_exit_code(signum: int) -> int:
    """128 + the signal number, as shells report a process ended by that signal.

    >>> import signal
    >>> signal_exit_code(signal.SIGINT), signal_exit_code(signal.SIGTERM)
    (130, 143)
    """
    return 128 + int(signum)


def incomplete_summary(run: Mapping[str, Any], out: object, kept: object = None) -> list[str]:
    """Closing lines of a run with failed reads or chunk tasks: which periods are incomplete and why
    (one line per failure, at most five per period), and what to do. ``kept``: the work folder
    whose finished chunks ``--resume`` reuses, so that only what failed is done again.

    >>> run = {"complete": False, "incomplete": {"2019": ["2019-07-23: cannot read X: HTTP 503"]}}
    >>> incomplete_summary(run, "o")[0]
    'INCOMPLETE: 2019 has failures (1); its lakes may be missing or cut:'
    >>> incomplete_summary(run, "o", kept=".o.gli-work")[-1]
    'Results in o are incomplete (exit code 3); the finished chunks are kept in .o.gli-work: run the same command again with --overwrite --resume to redo only what failed (a read that failed may succeed later).'
    """
    if run.get("complete", True):
        return []
    lines = []
    for period, failures in (run.get("incomplete") or {}).items():
        lines.append(f"INCOMPLETE: {period} has failures ({len(failures)}); its lakes may be missing or cut:")
        lines.extend(f"  {f}" for f in failures[:5])
        if len(failures) > 5:
            lines.append(f"  ... and {len(failures) - 5} more (see run.json)")
    if kept is not None:
        lines.append(f"Results in {out} are incomplete (exit code 3); the finished chunks are kept in {kept}: run the "
                     "same command again with --overwrite --resume to redo only what failed (a read that failed may "
                     "succeed later).")
    else:
        lines.append(f"Results in {out} are incomplete (exit code 3); run the same command again with --overwrite "
                     "to redo what failed (a read that failed may succeed later).")
    return lines


def exit_if_incomplete(run: Mapping[str, Any], out: object, kept: object = None) -> None:
    """Print the closing lines of an incomplete run and exit with code 3 (``run["complete"]`` false)."""
    import sys

    import click

    lines = incomplete_summary(run, out, kept)
    for line in lines:
        click.echo(line, err=True)
    if lines:
        sys.exit(INCOMPLETE)
