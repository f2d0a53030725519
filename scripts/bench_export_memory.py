"""Peak memory of `mlx-lc export coreml` on a Qwen2.5-0.5B-shaped model with random weights
(no download), measured by /usr/bin/time as the process's maximum resident set size, against the
model's float16 bytes.

One composition as users export it: two rank-32 LoRAs on every projection and an LC calibration,
int4 and float16, with and without --verify. A process that only imports mlx-lc and coremltools
is measured the same way, for the fixed part.

    python scripts/bench_export_memory.py [--layers 24] [--context 512] [--out DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_export import write_random_adapter, write_random_calibration, write_random_model  # noqa: E402

CLI = [sys.executable, "-c", "from mlx_lc.cli import main; main()"]
IMPORTS = [sys.executable, "-c", "import mlx_lc, mlx_lm, coremltools"]


def time_command() -> list[str]:
    if not Path("/usr/bin/time").exists():
        sys.exit("needs /usr/bin/time (GNU time on Linux, BSD time on macOS)")
    return ["/usr/bin/time", "-l" if platform.system() == "Darwin" else "-v"]


def peak(cmd: list[str]) -> dict:
    """Run `cmd` under /usr/bin/time: its exit status, wall seconds and maximum RSS in bytes."""
    res = subprocess.run(time_command() + cmd, capture_output=True, text=True)
    err = res.stderr
    if m := re.search(r"Maximum resident set size \(kbytes\): (\d+)", err):  # GNU time
        rss = int(m.group(1)) * 1024
    elif m := re.search(r"(\d+)\s+maximum resident set size", err):  # BSD time: bytes
        rss = int(m.group(1))
    else:
        sys.exit(f"could not read the peak memory from /usr/bin/time:\n{err[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err)
    seconds = None
    if wall:
        parts = [float(p) for p in wall.group(1).split(":")]
        seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    elif m := re.search(r"([\d.]+) real", err):
        seconds = float(m.group(1))
    return {"exit": res.returncode, "seconds": seconds, "peak_rss_bytes": rss,
            "last_line": (res.stdout.strip().splitlines() or [""])[-1] if res.returncode == 0
            else (err.strip().splitlines() or [""])[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path("bench_export_memory"))
    ap.add_argument("--work", type=Path, default=None, help="keep the random model and adapters here")
    args = ap.parse_args()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        run(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_export_memory.") as tmp:
            run(args, Path(tmp))


def run(args, work: Path) -> None:
    model = work / "qwen"
    if not (model / "config.json").is_file():
        write_random_model(model, args.layers)
    a = [work / n for n in ("summarize", "es")]
    for seed, path in enumerate(a, 1):
        if not (path / "adapter_config.json").is_file():
            write_random_adapter(path, args.layers, args.rank, seed)
    cal = work / "c_sum_es"
    if not cal.is_dir():
        write_random_calibration(cal, a, 0)

    base = peak(IMPORTS)
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"imports only (mlx-lc, mlx-lm, coremltools): {base['peak_rss_bytes'] / 1e9:.2f} GB")
    for q in ("int4", "none"):
        for verify in (False, True):
            out = work / f"export_{q}{'_verify' if verify else ''}"
            cmd = CLI + ["export", "coreml", "-m", str(model), "-a", str(a[0]), "-a", str(a[1]), "-c", str(cal),
                         "-t", "summarize+es", "-o", str(out), "-q", q, "--context", str(args.context)]
            r = peak(cmd + (["--verify"] if verify else []))
            if r["exit"] != 0:
                sys.exit(f"export failed ({q}, verify={verify}): {r['last_line']}")
            report = json.loads((out / "export.json").read_text())
            fp16 = 2 * report["base_params"]
            row = {"quantize": q, "verify": verify, **r, "fp16_bytes": fp16,
                   "ratio_to_fp16": r["peak_rss_bytes"] / fp16, "package_bytes": report["package_bytes"]}
            if verify:
                v = report["verify"]["summarize+es"]
                row["verify_passed"], row["max_rel_err"] = v["passed"], v["max_rel_err"]
            rows.append(row)
            print(f"  {q:<5} {'--verify' if verify else '        '} peak {r['peak_rss_bytes'] / 1e9:5.2f} GB = "
                  f"{row['ratio_to_fp16']:.2f}x the float16 weights ({fp16 / 1e9:.2f} GB), {r['seconds']:.0f} s"
                  + (f", verify {'passed' if row['verify_passed'] else 'FAILED'}" if verify else ""))
    result = {"layers": args.layers, "rank": args.rank, "context": args.context, "imports_only": base, "exports": rows}
    (args.out / "bench_export_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'bench_export_memory.json'}")


if __name__ == "__main__":
    main()
