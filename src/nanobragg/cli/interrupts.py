"""Ending a command on Ctrl-C, SIGTERM or SIGHUP through one exception path.

SIGINT raises KeyboardInterrupt and SIGTERM/SIGHUP raise :class:`Terminated`
in the main thread, so every ``with`` block unwinds: unfinished outputs are
removed and old files stay as they were (see :mod:`nanobragg.io.atomic`).
The exit status is then 128 + the signal's number.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that every output's temporary file is removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def _catch_termination() -> dict:
    """Turn SIGTERM and SIGHUP into Terminated (main thread only); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}


def run_interruptible(prog: str, run: Callable[[list], int], argv: list, interrupted: str = "",
                      terminated: str = "") -> int:
    """``run(argv)``'s exit status; Ctrl-C, SIGTERM or SIGHUP give one line on stderr (``prog``, what
    happened, then ``interrupted``/``terminated``, e.g. what to do next) and 128 + the signal."""
    previous = _catch_termination()
    try:
        status = run(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted{interrupted}", file=sys.stderr)
        status = 128 + signal.SIGINT
    except Terminated as exc:
        print(f"{prog}: terminated by signal {exc.signum}{terminated}", file=sys.stderr)
        status = 128 + exc.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stdout.flush()
    return status
