"""Without an optimised BLAS, importing mlx_lc stays silent (one-line errors stay one line) and
the hint comes once, only from a run that lasts."""

import os
import subprocess
import sys
from pathlib import Path

from mlx_lc.ios.golden import DEFAULT_OUT as GOLDEN

ROOT = Path(__file__).resolve().parents[1]
# A machine with no OpenBLAS/BLIS/MKL: every library mlx_lc tries to preload fails to open.
NO_BLAS = "import ctypes\ndef _absent(*a, **k): raise OSError('not installed')\nctypes.CDLL = _absent\n"


def python(code: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_without_blas_a_script_error_is_still_one_line(tmp_path):
    r = python(NO_BLAS + f"""
import runpy, sys
import mlx_lc
from mlx_lc import _blas
assert _blas.LOADED is None and _blas.hint(), _blas.REASON
sys.argv = ["make_shortcut.py", "--bundle-id", "com.example.mlxlc", "--composition", "zz",
            "--manifest", {str(GOLDEN / "manifest.json")!r}]
runpy.run_path({str(ROOT / "scripts/make_shortcut.py")!r}, run_name="__main__")
""", env={"MLX_LC_BLAS": ""}, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "zz" in r.stderr
    assert not list(tmp_path.iterdir())


def test_without_blas_the_hint_comes_once_and_only_after_the_delay():
    r = python(NO_BLAS + """
import time
from mlx_lc import _blas
quick = _blas.hint_after(5.0)
quick.cancel()                         # a command that ended first: nothing printed
time.sleep(0.2)
for _ in range(2):                     # two long ones in one process: printed once
    _blas.hint_after(0.01)
    time.sleep(0.3)
print(_blas.hint())
""", env={"MLX_LC_BLAS": ""})
    assert r.returncode == 0, r.stderr
    hint = r.stdout.strip()
    assert "no optimised BLAS found" in hint and "libopenblas" in hint
    assert r.stderr.strip().splitlines() == [hint]


def test_blas_switched_off_gives_no_hint():
    r = python("from mlx_lc import _blas\nprint(_blas.REASON, _blas.hint(), _blas.hint_after(0.0))",
               env={"MLX_LC_BLAS": "none"})
    assert r.returncode == 0 and r.stdout.strip() == "disabled by MLX_LC_BLAS=none None None" and not r.stderr
