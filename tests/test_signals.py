"""SIGINT, SIGTERM and SIGKILL sent to a real nanoBragg process while it writes a 4096x4096 image:
the old file is intact (or the new one complete), never a mix, and no temporary file is left."""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SIDE = 4096
FLOAT_BYTES = 4 * SIDE * SIDE
#: A cheap 4096x4096 render whose float file is written band by band while it renders (small budget: 16 MB,
#: a quarter of the float image, so that a run holding the image whole cannot pass the memory test).
ARGS = ["-default_F", "100", "-cell", "100", "100", "100", "90", "90", "90", "-lambda", "1", "-N", "5",
        "-distance", "100", "-detpixels", str(SIDE), "-nonoise", "-nopgm", "-nocompile", "-max_memory", "16",
        "-noprogress", "-floatfile", "float.bin", "-intfile", "int.img"]


def _digest(path: Path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _partial_output(pid: int, folder: Path):
    """True once the process holds an output file in ``folder`` that is partly written."""
    fds = Path(f"/proc/{pid}/fd")
    for fd in list(fds.iterdir()) if fds.exists() else []:
        try:
            if os.readlink(fd).startswith(str(folder)) and 0 < os.stat(fd).st_size < FLOAT_BYTES:
                return True
        except OSError:
            continue
    return False


def _interrupt(folder: Path, sig: int) -> int:
    """Start a run in ``folder``, send ``sig`` once its float file is partly written; the exit status."""
    proc = subprocess.Popen([sys.executable, "-m", "nanobragg"] + ARGS, cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not _partial_output(proc.pid, folder):
        assert proc.poll() is None, f"finished before it was interrupted: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no partial output seen"
        time.sleep(0.002)
    proc.send_signal(sig)
    status = proc.wait(60)
    proc.stderr.close()
    return status


def _memory_runs_args() -> dict:
    """The memory test's three runs: ARGS (16 MB budget), the default budget (the whole image held) and a
    64x64 baseline, both without -max_memory."""
    at = ARGS.index("-max_memory")
    base = ARGS[:at] + ARGS[at + 2:]
    small = list(base)
    small[small.index(str(SIDE))] = "64"
    return {"bounded": ARGS, "whole": base, "small": small}


@pytest.fixture(scope="module")
def memory_runs(tmp_path_factory):
    """The memory test's three runs (_memory_runs_args), started together in fresh interpreters at the
    module's first test, each in a folder of its own (a process's peak is its own, and the bounded run keeps
    about one core busy): a function giving a run's (peak resident memory in MB, digest of its float file)."""
    started = {name: _start_peak_rss(tmp_path_factory.mktemp(f"memory-{name}"), args)
               for name, args in _memory_runs_args().items()}
    done = {}

    def result(name):
        if name not in done:
            done[name] = _finish_peak_rss(*started[name])
        return done[name]

    try:
        yield result
    finally:
        for _, proc in started.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def complete_run(memory_runs):
    """(peak resident memory in MB, digest of the float file) of a complete run of ARGS: the file the
    interrupted runs may leave, and the bounded run of the memory test (one 4096x4096 run for both)."""
    return memory_runs("bounded")


@pytest.fixture(scope="module")
def new_digest(complete_run):
    """The float file a complete run writes."""
    return complete_run[1]


@pytest.mark.parametrize("old_size", [FLOAT_BYTES, 1 << 20, None], ids=["same-size", "other-size", "none"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["INT", "TERM", "KILL"])
def test_an_interrupted_write_leaves_the_old_file_or_the_new_one(tmp_path, sig, old_size, new_digest):
    old = tmp_path / "float.bin"
    if old_size is not None:
        old.write_bytes(os.urandom(old_size))
    before = _digest(old)
    status = _interrupt(tmp_path, sig)
    after = _digest(old)
    assert after in (before, new_digest)
    assert after != new_digest or status == 0  # new contents only from a run that completed
    if sig == signal.SIGKILL:
        assert status == -signal.SIGKILL
    else:
        assert status == 128 + sig
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "float.bin"]
    assert leftovers == []  # no temporary (even after SIGKILL: the temporaries have no name)


def _start_peak_rss(folder: Path, args) -> tuple:
    """(folder, process) of one run of ``args`` in a fresh interpreter in ``folder``, which prints its peak
    resident memory (_finish_peak_rss reads it)."""
    # VmHWM, not ru_maxrss: ru_maxrss carries the parent's peak across fork and exec. The command's thread
    # policy first (importing cli.entry sets it before torch loads, as the program does; nothing else of it):
    # without it idle OpenMP threads spin, and a 4096x4096 run took minutes on a shared 2-core machine.
    code = ("import sys\nimport nanobragg.cli.entry\nfrom nanobragg.cli.main import main\n"
            "status = main(sys.argv[1:])\n"
            "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
            "print('PEAK', int(hwm.split()[1]) / 1024)\nsys.exit(status)")
    proc = subprocess.Popen([sys.executable, "-c", code] + list(args), cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return folder, proc


def _finish_peak_rss(folder: Path, proc) -> tuple:
    """(peak resident memory in MB, digest of the float file) of a run _start_peak_rss started."""
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    peak = float(stdout.rsplit("PEAK", 1)[1])
    return peak, _digest(folder / "float.bin")


def test_memory_stays_within_the_budget_and_bands_equal_one_image(memory_runs):
    """A 4096x4096 run with a 16 MB budget (ARGS, also the complete_run of the interrupt tests) holds about
    16 MB more than a 64x64 run; with the default budget (the whole image in memory) it holds well over
    100 MB more; both write the same files (the three runs of memory_runs)."""
    budget = float(ARGS[ARGS.index("-max_memory") + 1])
    assert FLOAT_BYTES / 2**20 > budget + 40  # the float image alone, held whole, would exceed the bar
    assert "-max_memory" not in _memory_runs_args()["whole"] and "64" in _memory_runs_args()["small"]
    baseline, _ = memory_runs("small")
    bounded, bounded_digest = memory_runs("bounded")
    whole, whole_digest = memory_runs("whole")
    assert bounded_digest == whole_digest
    assert bounded - baseline < budget + 40, (baseline, bounded, whole)
    assert whole - baseline > 100, (baseline, bounded, whole)
