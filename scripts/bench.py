"""Run the mlx-lc benchmark: `python scripts/bench.py [--quick] [--model M | --shape S] ...`

The same as `mlx-lc bench`; see `python scripts/bench.py --help`.
"""

import sys

import mlx_lc  # noqa: F401  (first: loads the optimised BLAS before mlx)
from mlx_lc.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]], prog_name="bench.py"))
