"""The command sets its thread policy before torch (and so libgomp) and numpy (and its OpenBLAS) load.

A child interpreter spies on imports: the first time anything looks for
a module (``torch``, ``numpy``) it writes the value of a variable then in
force to a file, then the command runs as the installed script or
``python -m nanobragg`` would run it.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ("-default_F 10 -cell 50 50 50 90 90 90 -lambda 1 -N 1 -distance 50 -detpixels 4 -nonoise -nopgm "
        "-floatfile f.bin -intfile i.img").split()

SPY = textwrap.dedent('''
    import os, runpy, sys
    report, how, module, variable = (sys.argv.pop(1) for _ in range(4))

    class Spy:
        """Notes the variable at the first look-up of the module (the command ends with os._exit)."""
        def find_spec(self, name, path=None, target=None):
            if name == module and not os.path.exists(report):
                with open(report, "w") as f:
                    f.write(repr((os.environ.get(variable), module in sys.modules)))
            return None

    sys.meta_path.insert(0, Spy())
    sys.argv[0] = "nanoBragg"
    if how == "module":
        runpy.run_module("nanobragg", run_name="__main__", alter_sys=True)
    else:
        from nanobragg.cli.entry import console  # what the installed script does
        console()
''')


def _policy_at_torch_import(tmp_path, how, env_value=None, module="torch", variable="OMP_WAIT_POLICY"):
    report = tmp_path / "report.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    env.pop(variable, None)
    if env_value is not None:
        env[variable] = env_value
    subprocess.run([sys.executable, "-c", SPY, str(report), how, module, variable, *TINY], env=env, cwd=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert report.exists(), f"{module} was never imported"
    return eval(report.read_text())  # noqa: S307 (our own repr)


@pytest.mark.parametrize("how", ["module", "script"])
def test_policy_is_set_before_torch_loads(tmp_path, how):
    assert _policy_at_torch_import(tmp_path, how) == ("PASSIVE", False)


def test_users_policy_wins(tmp_path):
    assert _policy_at_torch_import(tmp_path, "script", "ACTIVE") == ("ACTIVE", False)


@pytest.mark.parametrize("how", ["module", "script"])
def test_openblas_is_single_threaded_before_numpy_loads(tmp_path, how):
    assert _policy_at_torch_import(tmp_path, how, module="numpy", variable="OPENBLAS_NUM_THREADS") == ("1", False)


def test_users_openblas_threads_win(tmp_path):
    assert _policy_at_torch_import(tmp_path, "script", "4", "numpy", "OPENBLAS_NUM_THREADS") == ("4", False)


def test_entry_module_imports_no_torch_itself():
    code = "import sys, nanobragg.cli.entry as e; print('torch' in sys.modules, e.THREAD_POLICY)"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[0] == "False", out.stderr
