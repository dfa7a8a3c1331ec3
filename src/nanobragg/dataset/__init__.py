"""Whole datasets: rotation series and serial shots in one process, or across a Dask cluster.

``run_dataset(outdir, flags, images=N)`` renders image i (0-based) as the
``nanoBragg`` run with ``flags`` and ``-phi phi0 + i * osc`` (a rotation
series of contiguous wedges), or with ``random_orientations=True, seed=S``
a uniformly random ``-misset`` drawn from (S, i) alone. Every image goes
through the command's own parser and pipeline, so it is byte-identical to
``nanoBragg <its args>`` (recorded in ``OUTDIR/manifest.jsonl``). The
``nb-dataset`` command (:mod:`nanobragg.cli.dataset`) is the same on the
command line.
"""
from .manifest import MANIFEST, SPEC, read_manifest, sha256_file
from .orientations import random_misset
from .runner import Summary, run_dataset
from .spec import DatasetError, DatasetSpec, make_spec, numbered

__all__ = ["run_dataset", "Summary", "DatasetError", "DatasetSpec", "make_spec", "numbered", "random_misset",
           "read_manifest", "sha256_file", "MANIFEST", "SPEC"]
