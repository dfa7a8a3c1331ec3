"""Writing output files so that a failure never leaves a half-written one behind.

atomic_write/atomic_open publish a complete temporary file by renaming it
onto the target, which keeps the old file until then; write_file, used for
the images, rewrites the old file in place as C's fopen does, which costs
a fraction of a new file, and removes it if writing fails.
"""

import contextlib
import os
import stat
import tempfile
import threading

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
def atomic_open(path, drop_old: bool = False):
    """Open a temporary binary file next to ``path``; publish it on success.

    Usage::

        with atomic_open("out.img") as handle:
            handle.write(data)

    The data goes to a temporary file in the same folder, which is renamed
    onto ``path`` (``os.replace``) only when the block ends without error;
    otherwise the temporary file is removed. With ``drop_old`` an existing
    regular file at ``path`` is removed once the temporary file exists, so
    the system reuses its pages for the new one (keeping both until the
    rename costs twice as much for a large image); a failure then leaves no
    file there. A missing folder or any OS error raises InputError naming ``path``.
    """
    folder = _check_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    except OSError as exc:
        raise InputError(path, f"cannot create file ({exc.strerror})") from exc
    with _removed_on_failure(path, tmp):
        if drop_old:
            _remove_regular(path)
        # no fsync: like C's fopen/fwrite, the data reach the disk when the
        # system writes its cache back; the rename alone keeps readers safe
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)


@contextlib.contextmanager
def _removed_on_failure(path, partial):
    """On any error in the block remove the file ``partial``; an OS error becomes InputError naming ``path``."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        if isinstance(exc, OSError):
            raise InputError(path, f"cannot write file ({exc.strerror})") from exc
        raise


def _remove_regular(path):
    """Remove ``path`` if it is a regular file (a link or anything else is left to the rename)."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write(path, *parts):
    """Write ``parts`` (bytes-like objects, in order) to ``path`` atomically; see atomic_open."""
    with atomic_open(path) as handle:
        for data in parts:
            handle.write(data)


#: Smallest old file that write_file rewrites in place (smaller files go through a temporary file).
IN_PLACE_MIN_BYTES = 1 << 20


def _overwrite(path, parts):
    """Rewrite the existing file ``path`` in place; on any failure remove it."""
    with _removed_on_failure(path, path), open(os.open(path, os.O_WRONLY), "wb") as handle:
        for data in parts:
            handle.write(data)


def write_file(path, *parts):
    """Write an output image (``parts``: bytes-like, in order); a failure leaves no file at ``path``.

    An old regular file of exactly the new size (and at least
    IN_PLACE_MIN_BYTES) is rewritten in place, as C's fopen/fwrite rewrite
    it: the system reuses its cached pages, about a fifth of the cost of a
    new 64 MB file, and, as with C, a reader may see it mid-write. Any other
    old regular file is removed first (its pages are then reused for the
    new one), and the data go through a temporary file renamed into place.
    """
    size = sum(memoryview(data).nbytes for data in parts)
    try:
        info = os.lstat(path)
    except OSError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode) and info.st_size == size >= IN_PLACE_MIN_BYTES:
        _overwrite(path, parts)
        return
    with atomic_open(path, drop_old=True) as handle:
        for data in parts:
            handle.write(data)


class BackgroundWrites:
    """Atomic writes on worker threads, so that writing one output overlaps computing the next.

    Usage::

        with BackgroundWrites() as writes:
            write_float_image(path, image, write=writes.submit)
            ...  # more work while the file is written

    ``submit(path, *parts)`` checks the folder at once (so a bad path fails
    where it is named) and writes with write_file on a thread; the callers must not modify
    ``parts`` afterwards. Leaving the block waits for every write and
    raises the first error, after all threads have finished.
    """

    def __init__(self):
        self._threads, self._errors = [], []

    def submit(self, path, *parts):
        _check_folder(path)

        def job():
            try:
                write_file(path, *parts)
            except BaseException as exc:  # re-raised by the caller's thread in wait()
                self._errors.append(exc)
        thread = threading.Thread(target=job, name=f"write {os.path.basename(path)}")
        thread.start()
        self._threads.append(thread)

    def wait(self):
        for thread in self._threads:
            thread.join()
        self._threads = []
        if self._errors:
            raise self._errors[0]

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.wait()
            return False
        with contextlib.suppress(Exception):
            self.wait()
        return False
