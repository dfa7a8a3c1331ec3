"""Atomic file writing: readers never see a partially written output file."""

import contextlib
import os
import tempfile

from .errors import InputError


def _check_folder(path):
    """Return the folder of ``path``; InputError if it is not a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(path, f"output folder {folder} does not exist")
    return folder


def _default_mode():
    """Permission bits a plain ``fopen(path, "w")`` would give (0666 & ~umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_open(path):
    """Open a temporary binary file next to ``path``; publish it on success.

    Usage::

        with atomic_open("out.img") as handle:
            handle.write(data)

    The data goes to a temporary file in the same folder, which is renamed
    onto ``path`` (``os.replace``) only when the block ends without error;
    otherwise the temporary file is removed and ``path`` is left untouched.
    A missing folder or any OS error raises InputError naming ``path``.
    """
    folder = _check_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    except OSError as exc:
        raise InputError(path, f"cannot create file ({exc.strerror})") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(path, f"cannot write file ({exc.strerror})") from exc
        raise


def atomic_write(path, data):
    """Write ``data`` (bytes-like) to ``path`` atomically; see atomic_open."""
    with atomic_open(path) as handle:
        handle.write(data)
