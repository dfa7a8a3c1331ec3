"""OUTDIR/manifest.jsonl and OUTDIR/dataset.json: what is finished, and what the dataset is.

``manifest.jsonl`` holds one JSON object per finished image: ``index``
(0-based), ``files`` (file name in OUTDIR -> sha256), ``args`` (the
complete ``nanoBragg`` argument list of the image), ``seed`` (its noise
seed), ``phi`` or ``misset`` (degrees) and C's statistics ``max_I``,
``mean``, ``rms`` (and ``rmsd``); with ``--format nxmx`` also ``nxmx``
(``{"file": data file, "frame": its frame, from 0}``), the data file among
``files``. A line is appended (one ``write`` on an
``O_APPEND`` file, then ``fsync``) only after every file of the image has
been renamed into place, so a listed image is always complete; once the run
completes the manifest is rewritten in index order, one line per image (a
temporary renamed over it). Nothing in it depends on time, host or worker,
so an interrupted and resumed dataset has the same manifest as one run
straight through.

``dataset.json`` records the dataset's identity (flags, mode, seeds,
image count): ``--resume`` continues only the same dataset.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os

from ..io import atomic_write

MANIFEST = "manifest.jsonl"
SPEC = "dataset.json"


def sha256_file(path: str) -> str:
    """The file's sha256 (hex), hashed from a read-only map of it: no copies of its bytes, about half the
    time of reading it in blocks (a dataset hashes every file it writes, megabytes an image)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:  # an empty file cannot be mapped
            return hashlib.sha256().hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return hashlib.sha256(data).hexdigest()


def record_line(record: dict) -> str:
    return json.dumps(record, separators=(", ", ": ")) + "\n"


def read_manifest(outdir: str) -> dict:
    """index -> record of every well-formed line (the last one of an index wins; a torn last line is skipped)."""
    path = os.path.join(outdir, MANIFEST)
    records = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("index"), int) and isinstance(rec.get("files"), dict):
                    records[rec["index"]] = rec
    except FileNotFoundError:
        pass
    return records


def record_is_valid(record: dict, outdir: str, args: list, files: dict) -> bool:
    """Whether a manifest record is image's finished state: same args, the same files, each matching its sha256."""
    if record.get("args") != args or sorted(record["files"]) != sorted(files.values()):
        return False
    for name, digest in record["files"].items():
        try:
            if sha256_file(os.path.join(outdir, name)) != digest:
                return False
        except OSError:
            return False
    return True


class ManifestAppender:
    """Appends one record a line, durable before the next image is counted as finished."""

    def __init__(self, outdir: str):
        self.fd = os.open(os.path.join(outdir, MANIFEST), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def append(self, record: dict) -> None:
        data = record_line(record).encode()
        written = os.write(self.fd, data)
        if written != len(data):  # a full disk: the torn line is skipped by read_manifest
            raise OSError(f"short write to {MANIFEST}")
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def rewrite_manifest(outdir: str, records: dict) -> None:
    """The final manifest: every record once, in index order (atomically replaces the appended one)."""
    text = "".join(record_line(records[i]) for i in sorted(records))
    atomic_write(os.path.join(outdir, MANIFEST), text.encode())


def read_spec(outdir: str):
    try:
        with open(os.path.join(outdir, SPEC), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        return {}


def write_spec(outdir: str, description: dict) -> None:
    atomic_write(os.path.join(outdir, SPEC), (json.dumps(description, indent=1) + "\n").encode())
