"""The ``nanoBragg`` console entry point: a prompt start and a prompt exit."""
import gc
import os
import sys


def console() -> None:
    """Run the command as a program.

    The garbage collector stays off while torch's modules load (its passes
    over their many new objects cost about 0.07 s) and the objects loaded
    are then frozen out of later passes. Every output file is complete and
    closed when main returns; tearing the interpreter down (torch's modules
    and caches) would add about 0.3 s, so the process ends with os._exit
    after flushing.
    """
    gc.disable()
    from .main import main
    gc.freeze()
    gc.enable()
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
