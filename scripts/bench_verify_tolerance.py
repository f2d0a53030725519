"""What `mlx-lc export verify` measures on correct and on changed packages, on the tests' tiny
models (hidden 64, 2 layers; llama with tied embeddings, qwen2 untied): the margin behind its
tolerance (`mlx_lc.export.verify.REL_TOLERANCE`).

For each architecture and quantization (none, int8, int4): export one calibrated composition with
--verify (max |logit difference| / max |logit| of a correct package), then scale one stored tensor
of the package (layer 1's down_proj: its float16 weight, or its int8/int4 block scales) by 1.5
and by 1.1 and verify again.

    python scripts/bench_verify_tolerance.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import mlx_lc  # noqa: F401,E402  (BLAS before mlx)
import numpy as np  # noqa: E402
from export_fixtures import write_adapter, write_calibration, write_model  # noqa: E402

from mlx_lc.export import ExportConfig, export  # noqa: E402
from mlx_lc.export import quantize as quant  # noqa: E402
from mlx_lc.export.compositions import parse  # noqa: E402
from mlx_lc.export.package import load_model, verify_export  # noqa: E402
from mlx_lc.export.verify import REL_TOLERANCE  # noqa: E402

WEIGHTS = ("Data", "com.apple.CoreML", "weights", "weight.bin")
TENSOR = "model.layers.1.mlp.down_proj.weight"


def scale_stored(package: Path, arr: np.ndarray, factor: float) -> None:
    """Multiply one tensor inside the package's weight.bin, found by its exact float16 bytes."""
    blob = package.joinpath(*WEIGHTS)
    data = blob.read_bytes()
    old = np.ascontiguousarray(arr, dtype=np.float16).tobytes()
    at = data.find(old)
    if at < 0 or data.find(old, at + 1) >= 0:
        sys.exit(f"{TENSOR} is not stored exactly once in {blob}")
    new = (np.asarray(arr, np.float32) * factor).astype(np.float16).tobytes()
    blob.write_bytes(data[:at] + new + data[at + len(old):])


def run(root: Path) -> list[dict]:
    rows = []
    for arch, tie in (("llama", True), ("qwen2", False)):
        m = write_model(root / arch, arch=arch, tie=tie)
        a, b = write_adapter(root / f"a_{arch}", m, seed=1), write_adapter(root / f"b_{arch}", m, seed=3)
        c = write_calibration(root / f"c_{arch}", [a, b], "lc", "scale")
        w = load_model(str(m))[4][TENSOR]
        for q in ("none", "int8", "int4"):
            out = root / f"e_{arch}_{q}"
            rep = export(ExportConfig(model=str(m), out=str(out), quantize=q, context=64, verify=True,
                                      compositions=[parse(f"s:summarize+es={a},{b},{c}")]), progress=False)
            row = {"arch": arch, "quantize": q, "correct": rep["verify"]["s"]["max_rel_err"]}
            for factor in (1.5, 1.1):
                changed = root / f"e_{arch}_{q}_x{factor}"
                shutil.copytree(out, changed)
                scale_stored(changed / "Model.mlpackage", w if q == "none" else quant.quantize(w, q).scale, factor)
                row[f"x{factor}"] = verify_export(changed, progress=False)["verify"]["s"]["max_rel_err"]
            rows.append(row)
            print(f"{arch:<6} {q:<5} correct {row['correct']:.2e}   {TENSOR} x1.5: {row['x1.5']:.3f}   "
                  f"x1.1: {row['x1.1']:.3f}   (tolerance {REL_TOLERANCE:g})", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_verify_tolerance"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_verify_tolerance.") as tmp:
        rows = run(Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_verify_tolerance.json").write_text(json.dumps({"tolerance": REL_TOLERANCE, "rows": rows},
                                                                     indent=2) + "\n")
    print(f"wrote {args.out / 'bench_verify_tolerance.json'}")


if __name__ == "__main__":
    main()
