"""Load an optimised BLAS before mlx on Linux.

The Linux `mlx[cpu]` wheel links a reference BLAS that runs matmuls about 30x slower than
OpenBLAS. Loading an optimised BLAS with RTLD_GLOBAL *before* mlx is imported makes the
dynamic linker resolve mlx's `cblas_*` symbols to it. macOS uses Accelerate/Metal: nothing to do.

Importing prints nothing, even when no optimised BLAS is found: a script's one-line error or a
quick command's output stays clean. `mlx-lc doctor` reports what was loaded, and the CLI says it
once (`hint_after`) when a command without one runs long enough for the slowness to matter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
import threading

# What got loaded (path) or why nothing was, for `mlx-lc doctor`.
LOADED: str | None = None
REASON: str = ""
MISSING = False  # Linux, not disabled, and no optimised BLAS found: the case worth a hint

NOT_FOUND = "no optimised BLAS found (apt-get install libopenblas0-pthread, or set MLX_LC_BLAS)"
_hinted = False  # hint_after printed it already (once per process)

_CANDIDATES = [
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libblis.so.4",
    "/usr/lib/x86_64-linux-gnu/libmkl_rt.so",
]


def _candidates() -> list[str]:
    found = []
    if env := os.environ.get("MLX_LC_BLAS"):
        found.append(env)
    for name in ("openblas", "blis", "mkl_rt"):
        if lib := ctypes.util.find_library(name):
            found.append(lib)
    found += _CANDIDATES
    # A conda env or a pip-installed OpenBLAS with plain cblas symbols.
    found += sorted(glob.glob(os.path.join(sys.prefix, "lib", "libopenblas*.so*")))
    return found


def preload() -> str | None:
    """Load the first optimised BLAS that exports cblas_sgemm. Idempotent."""
    global LOADED, REASON, MISSING
    if LOADED or REASON:
        return LOADED
    if not sys.platform.startswith("linux"):
        REASON = "not needed on this platform"
        return None
    if os.environ.get("MLX_LC_BLAS") == "none":
        REASON = "disabled by MLX_LC_BLAS=none"
        return None
    if "mlx.core" in sys.modules:
        REASON = "mlx was imported before mlx_lc; import mlx_lc first for OpenBLAS speed"
        return None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            lib.cblas_sgemm  # only a library with the CBLAS interface helps
        except (OSError, AttributeError):
            continue
        LOADED = path
        return LOADED
    REASON, MISSING = NOT_FOUND, True
    return None


def hint() -> str | None:
    """The one-line install hint when no optimised BLAS was found, else None."""
    if not MISSING:
        return None
    return f"mlx-lc: {NOT_FOUND}; matmuls use mlx's bundled reference BLAS, about 30x slower"


def hint_after(seconds: float) -> threading.Timer | None:
    """Print `hint()` on stderr once if the caller is still running after `seconds`; cancel the
    returned timer when done. Long runs learn early why they are slow; quick commands and
    one-line errors stay one line."""
    if hint() is None:
        return None

    def say():
        global _hinted
        if _hinted:
            return
        _hinted = True
        from tqdm import tqdm

        tqdm.write(hint(), file=sys.stderr)  # above any progress bar, not through it

    timer = threading.Timer(seconds, say)
    timer.daemon = True  # never keeps a finished process alive
    timer.start()
    return timer
