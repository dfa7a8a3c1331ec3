"""The command sets its OpenMP thread policy before torch (and so libgomp) is loaded.

A child interpreter spies on imports: the first time anything looks for
``torch`` it writes the OMP_WAIT_POLICY then in force to a file, then the
command runs as the installed script or ``python -m nanobragg`` would run it.
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
    report = sys.argv.pop(1)
    how = sys.argv.pop(1)

    class Spy:
        """Notes the policy at the first look-up of torch (the command ends with os._exit)."""
        def find_spec(self, name, path=None, target=None):
            if name == "torch" and not os.path.exists(report):
                with open(report, "w") as f:
                    f.write(repr((os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules)))
            return None

    sys.meta_path.insert(0, Spy())
    sys.argv[0] = "nanoBragg"
    if how == "module":
        runpy.run_module("nanobragg", run_name="__main__", alter_sys=True)
    else:
        from nanobragg.cli.entry import console  # what the installed script does
        console()
''')


def _policy_at_torch_import(tmp_path, how, env_value=None):
    report = tmp_path / "report.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    env.pop("OMP_WAIT_POLICY", None)
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    subprocess.run([sys.executable, "-c", SPY, str(report), how, *TINY], env=env, cwd=tmp_path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert report.exists(), "torch was never imported"
    return eval(report.read_text())  # noqa: S307 (our own repr)


@pytest.mark.parametrize("how", ["module", "script"])
def test_policy_is_set_before_torch_loads(tmp_path, how):
    assert _policy_at_torch_import(tmp_path, how) == ("PASSIVE", False)


def test_users_policy_wins(tmp_path):
    assert _policy_at_torch_import(tmp_path, "script", "ACTIVE") == ("ACTIVE", False)


def test_entry_module_imports_no_torch_itself():
    code = "import sys, nanobragg.cli.entry as e; print('torch' in sys.modules, e.THREAD_POLICY)"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[0] == "False", out.stderr
