"""Output files that are either complete or not there: one policy for every writer.

A regular target (or a symbolic link to one, whose target is written) is
replaced atomically: the data go to a temporary file in the target's folder,
which is renamed over the target only when complete, so the old file stays
intact until then. The temporary is an unnamed Linux ``O_TMPFILE`` file
(linked under a temporary name just before the rename), so a process killed
even by SIGKILL leaves nothing but, at most, for the instant between the link
and the rename, one ``.tmp-`` file; where the file system lacks ``O_TMPFILE`` a
named temporary is used and removed on any failure. A target that exists and
is not a regular file (a character device such as ``/dev/null``, a FIFO, a
socket, ``/dev/stdout``) is opened and written in place, as C's ``fopen``
does; it is never replaced.

Usage::

    with OutputSet() as outputs:          # every path checked before any work
        f = outputs.add("float.bin", size=nbytes)
        ...                               # render
        f.write_at(block, offset)
    # leaving the block renames every temporary into place; an error (or
    # SIGINT/SIGTERM turned into an exception) removes them all instead
"""

import contextlib
import os
import signal
import stat
import tempfile
import threading

from .errors import InputError

#: Whether unnamed temporaries can be made and later named (O_TMPFILE, and /proc to link them).
_UNNAMED = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")

#: Signals held back while the temporaries are renamed, so a run ends with all or none renamed.
_COMMIT_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _default_mode():
    """Permission bits a plain ``fopen(path, "w")`` would give (0666 & ~umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def output_target(path):
    """``(real path, in_place)`` of an output: where its bytes go, and whether the node is written in place.

    A symbolic link is followed (a dangling one names the file to create);
    an existing node that is not a regular file is written in place. A
    directory, a missing or unwritable folder is an InputError naming ``path``.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise InputError(path, f"cannot write file ({exc.strerror})") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise InputError(path, "is a directory, not a file")
    if info is not None and not stat.S_ISREG(info.st_mode):
        return os.path.abspath(path), True
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise InputError(path, f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(path, f"output folder {folder} is not writable")
    return real, False


class OutputFile:
    """One output being written: a temporary next to its target, or the target itself when in place.

    ``write_at(data, offset)`` stores bytes at a file offset (in place, the
    offsets must follow one another: a FIFO cannot seek); ``commit()``
    publishes the file, ``abort()`` discards it. Both are idempotent.
    """

    def __init__(self, path):
        self.path = path
        self.target, self.in_place = output_target(path)
        self._named = None  #: name of a named temporary (no O_TMPFILE), or None
        self._written = 0  #: bytes written so far in place
        self.fd = self._open()

    def _open(self):
        try:
            if self.in_place:
                return os.open(self.target, os.O_WRONLY | os.O_CLOEXEC)
            folder = os.path.dirname(self.target)
            if _UNNAMED:
                with contextlib.suppress(OSError):  # a file system without O_TMPFILE: a named temporary
                    return os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
            fd, self._named = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(self.target))
            return fd
        except OSError as exc:
            raise InputError(self.path, f"cannot create file ({exc.strerror})") from None

    def write_at(self, data, offset: int) -> None:
        """Write all of ``data`` (bytes-like) at byte ``offset``; an OS error (disk full) is an InputError."""
        view = memoryview(data).cast("B")
        try:
            if self.in_place:
                if offset != self._written:
                    raise InputError(self.path, "in-place output written out of order")
                while view:
                    done = os.write(self.fd, view)
                    view, self._written = view[done:], self._written + done
                return
            while view:
                done = os.pwrite(self.fd, view, offset)
                view, offset = view[done:], offset + done
        except OSError as exc:
            raise InputError(self.path, f"cannot write file ({exc.strerror})") from None

    def read_into(self, buffer, offset: int) -> None:
        """Fill ``buffer`` (writable bytes-like) with the bytes written at ``offset`` (a replaced output only)."""
        view = memoryview(buffer).cast("B")
        while view:
            done = os.preadv(self.fd, [view], offset)
            if done == 0:
                raise InputError(self.path, "read back past the end of the file")
            view, offset = view[done:], offset + done

    def commit(self) -> None:
        """Publish the file: rename the complete temporary onto the target (or close the node written in place)."""
        if self.fd is None:
            return
        try:
            if not self.in_place:
                os.fchmod(self.fd, _default_mode())
                if self._named is None:
                    self._named = self._link_unnamed()
                os.replace(self._named, self.target)
                self._named = None
        except OSError as exc:
            self.abort()
            raise InputError(self.path, f"cannot write file ({exc.strerror})") from None
        os.close(self.fd)
        self.fd = None

    def _link_unnamed(self):
        """Give the O_TMPFILE file a temporary name in its folder (the step before the rename)."""
        folder = os.path.dirname(self.target)
        name = f".tmp-{os.getpid()}-{os.urandom(4).hex()}-{os.path.basename(self.target)}"
        # a folder descriptor makes os.link call linkat with AT_SYMLINK_FOLLOW, which links
        # the open file itself (plain link() would try to link the /proc entry)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        return os.path.join(folder, name)

    def abort(self) -> None:
        """Discard the temporary (the target is left as it was)."""
        if self._named is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._named)
            self._named = None
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _same_file(a: OutputFile, b: OutputFile) -> bool:
    if a.target == b.target:
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a.target, b.target)
    return False


class OutputSet:
    """The outputs of one run: all opened before the work starts, all published or none.

    ``add(path, size)`` checks and opens one output (see OutputFile); two
    regular outputs naming the same file, or outputs that need more space than
    their file systems have free (when ``size`` is given), are InputErrors.
    Leaving the ``with`` block normally commits every output, with SIGINT,
    SIGTERM and SIGHUP held back meanwhile; an exception aborts them all.
    """

    def __init__(self):
        self.files = []
        self._sizes = {}

    def add(self, path, size: int | None = None) -> OutputFile:
        out = OutputFile(path)
        try:
            for other in self.files:
                if not out.in_place and not other.in_place and _same_file(out, other):
                    raise InputError(path, f"is also named as another output ({other.path})")
            if size and not out.in_place:
                self._reserve(out, size)
        except InputError:
            out.abort()
            raise
        self.files.append(out)
        return out

    def _reserve(self, out: OutputFile, size: int) -> None:
        """Refuse an output whose file system has less free space than this run's outputs there need."""
        info = os.fstatvfs(out.fd)
        device = os.fstat(out.fd).st_dev
        need = self._sizes.get(device, 0) + size
        free = info.f_bavail * info.f_frsize
        if need > free:
            raise InputError(out.path, f"not enough free space: the outputs need {need} bytes, "
                                       f"{free} are free in {os.path.dirname(out.target)}")
        self._sizes[device] = need

    def commit(self) -> None:
        """Publish every output (signals held back until all are renamed)."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _COMMIT_SIGNALS)
        try:
            for out in self.files:
                out.commit()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def abort(self) -> None:
        for out in self.files:
            out.abort()

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()
        return False


@contextlib.contextmanager
def atomic_open(path):
    """A binary file object for writing ``path`` sequentially, published when the block ends without error.

    Usage::

        with atomic_open("out.png") as handle:
            image.save(handle, format="PNG")
    """
    with OutputSet() as outputs:
        out = outputs.add(path)
        try:
            with os.fdopen(os.dup(out.fd), "wb") as handle:
                yield handle
        except OSError as exc:
            raise InputError(path, f"cannot write file ({exc.strerror})") from None


def atomic_write(path, *parts):
    """Write ``parts`` (bytes-like objects, in order) to ``path``; see OutputFile."""
    with OutputSet() as outputs:
        out = outputs.add(path)
        offset = 0
        for data in parts:
            out.write_at(data, offset)
            offset += memoryview(data).nbytes


#: Writes smaller than this (headers) are made on the caller's thread: handing them over costs more.
SMALL_WRITE = 1 << 16
#: Threads of the process's writer pool (QueuedWrites), made once and reused by every run: a dataset
#: writes image after image, and starting a thread per write cost about a millisecond each.
WRITER_THREADS = 2
_pool = (None, None)  #: (process id, ThreadPoolExecutor): a forked child makes its own
_pool_lock = threading.Lock()


def _writer_pool():
    global _pool
    with _pool_lock:
        if _pool[0] != os.getpid():
            from concurrent.futures import ThreadPoolExecutor
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="nanobragg-write"))
        return _pool[1]


class QueuedWrites:
    """Writes on background threads, so that writing one band or file overlaps computing the next.

    ``write(out, data, offset)`` first waits for ``out``'s previous write (so
    each output has at most one pending write and its writes stay in order),
    then writes on a thread of the process's writer pool (a small write, on
    the caller's); the caller must not modify ``data`` afterwards.
    Leaving the ``with`` block waits for every write and raises the first
    error; after an exception in the block it waits and discards theirs, so
    that no thread touches a file once it is aborted.
    """

    def __init__(self):
        self._pending = {}  #: id(OutputFile) -> future of its last write

    def write(self, out: OutputFile, data, offset: int) -> None:
        self._join(self._pending.pop(id(out), None))
        if memoryview(data).nbytes < SMALL_WRITE:
            out.write_at(data, offset)
        else:
            self._pending[id(out)] = _writer_pool().submit(out.write_at, data, offset)

    @staticmethod
    def _join(future) -> None:
        if future is not None:
            future.result()  # re-raises the write's error on the caller's thread

    def wait(self) -> None:
        """Wait for every pending write; raise the first error."""
        futures, self._pending = list(self._pending.values()), {}
        errors = [f.exception() for f in futures]  # waits for each
        for exc in errors:
            if exc is not None:
                raise exc

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.wait()
        else:
            with contextlib.suppress(Exception):
                self.wait()
        return False
