"""Write the golden files the Swift tests in ios_shortcut/ compare against.

    python scripts/ios_golden.py [OUT]   (default: ios_shortcut/Tests/MLXLCCoreTests/Golden)
"""

import sys

import mlx_lc  # noqa: F401  (loads OpenBLAS before mlx)
from mlx_lc.ios.golden import DEFAULT_OUT, write_golden

if __name__ == "__main__":
    out = write_golden(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT)
    print(f"wrote {out}")
