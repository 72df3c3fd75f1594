"""symgrad._malloc: glibc's thresholds raised once per process, unless switched off."""

import os
import subprocess
import sys

import pytest

CODE = """
import symgrad, symgrad.tensor as st
from symgrad import _malloc
x = st.dvector("x")
symgrad.function([x], x * 2)
print(_malloc._done, _malloc.tune())
"""


def _run(env_value):
    env = dict(os.environ)
    env.pop("SYMGRAD_TUNE_MALLOC", None)
    if env_value is not None:
        env["SYMGRAD_TUNE_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         check=True)
    return out.stdout.split()


def test_tuned_once_at_the_first_compile():
    # the first function() tuned malloc; a second try does nothing
    assert _run(None) == ["True", "False"]


def test_switched_off_by_the_environment():
    assert _run("0") == ["False", "False"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_thresholds_are_set_on_glibc():
    code = ("import symgrad._malloc as m, ctypes; ctypes.CDLL(None).gnu_get_libc_version; "
            "print(m.tune())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if out.returncode != 0:
        pytest.skip("not glibc")
    assert out.stdout.strip() == "True"
