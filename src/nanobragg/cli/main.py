"""The ``nanoBragg`` command: flags -> configuration -> engine -> files.

Errors in the command line or input files end the run with one line on
stderr naming the problem, a usage hint and exit status 2, before any
output file is written.
"""
from __future__ import annotations

import sys
import time

from . import startup  # noqa: F401  (first: torch loads, and the start-up clock starts)

# isort: split
from ..errors import ConfigError, InputError, UsageError
from .interrupts import run_interruptible
from .loaders import load_inputs
from .parser import parse
from .settings import Settings
from .usage import usage_text
from .validate import validate

PROG = "nanoBragg"


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    print(f"Try '{PROG} -h' for the list of flags.", file=sys.stderr)
    return 2


def build_settings(argv: list[str]) -> Settings:
    """Parse argv into Settings by the flag table (the -mask, then the -img header before the other
    flags: C's precedence, the table's stages)."""
    return parse(argv)


def _seed(settings: Settings) -> int:
    if settings.output.seed is None:
        settings.output.seed = -int(time.time())
    return settings.output.seed


def run(argv: list[str], log=print) -> int:
    """Run the command; returns the exit status."""
    try:
        settings = build_settings(argv)
        if settings.run.help:
            print(usage_text())
            return 0
        validate(settings)
        dump = load_inputs(settings, log)
        seed = _seed(settings)
        if settings.run.prepare:
            from .prepare import prepare_kernel
            return prepare_kernel(settings, seed, log)
        if settings.files.geom is not None:
            from .panels import simulate_panels
            return simulate_panels(settings, seed, log, dump)
        from .simulate import simulate_and_write
        return simulate_and_write(settings, seed, log, dump)
    except (UsageError, InputError, ConfigError) as exc:
        return _fail(str(exc))


def main(argv: list[str] | None = None) -> int:
    """Run the command and return its exit status (usable in-process).

    Ctrl-C (SIGINT), SIGTERM and SIGHUP end the run with exit status 128 +
    the signal's number after removing every unfinished output (old files
    stay as they were).
    """
    return run_interruptible(PROG, run, sys.argv[1:] if argv is None else argv)
