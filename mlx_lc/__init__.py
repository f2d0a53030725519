"""mlx-lc: compositional multi-tasking for on-device LLMs (LoRA merges + Learnable Calibration).

Importing mlx_lc first loads an optimised BLAS on Linux so mlx's CPU matmuls run fast.
"""

import os

from . import _blas

# transformers (the tokenizers' home) warns on import that PyTorch is missing; mlx-lc never uses
# PyTorch, and the line would break a command's one-line error.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

_blas.preload()

__version__ = "0.1.0"

from .errors import MlxLcError  # noqa: E402
from .generate import generate, load, multi_step, stream  # noqa: E402

__all__ = ["load", "generate", "stream", "multi_step", "MlxLcError", "__version__"]
