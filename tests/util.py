"""Helpers shared by the tests."""
import contextlib
import os


@contextlib.contextmanager
def in_folder(path):
    """Run the block with ``path`` as the current folder, restoring the previous one afterwards
    (the command writes its default outputs, and reads Fdump.bin, in the current folder)."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(previous)
