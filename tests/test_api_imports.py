"""Import only what a run needs: the API and the command load neither numba nor the tools' extras."""
import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_the_api_and_the_command_load_no_tool_dependencies():
    out = _run("import sys, nanobragg.api, nanobragg.simulator, nanobragg.cli.main, nanobragg.rng; "
               "print(*[m in sys.modules for m in ('numba', 'scipy', 'matplotlib')])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "False"]


def test_nb_compare_without_scipy_names_the_extra():
    """scipy is in the tools extra: nb-compare says so, and exits with status 2, when it is missing."""
    out = _run("import sys; sys.modules['scipy'] = None; "
               "from nanobragg.tools import compare; sys.exit(compare.main(['--', '-default_F', '1']))")
    assert out.returncode == 2, out.stderr
    assert "scipy" in out.stderr and "nanobragg[tools]" in out.stderr
