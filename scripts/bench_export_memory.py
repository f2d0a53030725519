"""Peak memory of `mlx-lc export coreml` on a Qwen2.5-0.5B-shaped model with random weights
(no download), measured by /usr/bin/time as the process's maximum resident set size, against the
model's float16 bytes.

One composition as users export it: two rank-32 LoRAs on every projection and an LC calibration,
int4 and float16, with and without --verify. A process that only imports mlx-lc and coremltools
is measured the same way, for the fixed part. `--compare PYTHON` runs the same exports, in the
same run, with another Python that has another mlx-lc installed (an earlier release, say), and
prints this one's peak over that one's.

    python scripts/bench_export_memory.py [--layers 24] [--context 512] [--out DIR] [--work DIR]
                                          [--compare OTHER_VENV/bin/python]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_export import write_random_adapter, write_random_calibration, write_random_model  # noqa: E402

def cli(python: str) -> list[str]:
    return [python, "-c", "from mlx_lc.cli import main; main()"]


def time_command() -> list[str]:
    if not Path("/usr/bin/time").exists():
        sys.exit("needs /usr/bin/time (GNU time on Linux, BSD time on macOS)")
    return ["/usr/bin/time", "-l" if platform.system() == "Darwin" else "-v"]


def peak(cmd: list[str]) -> dict:
    """Run `cmd` under /usr/bin/time: its exit status, wall seconds and maximum RSS in bytes."""
    # From the filesystem root: run from a checkout, `python -c` would import the checkout's
    # mlx_lc instead of the one installed beside that Python.
    res = subprocess.run(time_command() + cmd, capture_output=True, text=True, cwd="/")
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
    ap.add_argument("--compare", default=None, metavar="PYTHON", help="another mlx-lc's Python, run side by side")
    args = ap.parse_args()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        run(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_export_memory.") as tmp:
            run(args, Path(tmp))


def run(args, work: Path) -> None:
    work = work.resolve()
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

    pythons = {"this": sys.executable, **({"compare": args.compare} if args.compare else {})}
    base = peak([sys.executable, "-c", "import mlx_lc, mlx_lm, coremltools"])
    base.pop("last_line")
    print(f"imports only (mlx-lc, mlx-lm, coremltools): {base['peak_rss_bytes'] / 1e9:.2f} GB")
    rows = []
    for q in ("int4", "none"):
        for verify in (False, True):
            for who, python in pythons.items():
                out = work / f"export_{who}_{q}{'_verify' if verify else ''}"
                shutil.rmtree(out, ignore_errors=True)
                cmd = cli(python) + ["export", "coreml", "-m", str(model), "-a", str(a[0]), "-a", str(a[1]),
                                     "-c", str(cal), "-t", "summarize+es", "-o", str(out), "-q", q,
                                     "--context", str(args.context)] + (["--verify"] if verify else [])
                r = peak(cmd)
                if r["exit"] != 0:
                    sys.exit(f"export failed ({who}, {q}, verify={verify}): {r['last_line']}")
                report = json.loads((out / "export.json").read_text())
                fp16 = 2 * report["base_params"]
                r.pop("last_line")  # it names this machine's folders
                row = {"mlx_lc": who, "quantize": q, "verify": verify, **r, "fp16_bytes": fp16,
                       "ratio_to_fp16": r["peak_rss_bytes"] / fp16, "package_bytes": report["package_bytes"]}
                if verify:
                    v = report["verify"]["summarize+es"]
                    row["verify_passed"], row["max_rel_err"] = v.get("passed"), v.get("max_rel_err")
                rows.append(row)
                print(f"  {who:<8} {q:<5} {'--verify' if verify else '        '} peak "
                      f"{r['peak_rss_bytes'] / 1e9:5.2f} GB = {row['ratio_to_fp16']:.2f}x the float16 weights "
                      f"({fp16 / 1e9:.2f} GB), {r['seconds']:.0f} s"
                      + (f", verify passed: {row['verify_passed']}" if verify else ""), flush=True)
            if args.compare:
                this, other = rows[-2], rows[-1]
                print(f"  -> this / compare: peak {this['peak_rss_bytes'] / other['peak_rss_bytes']:.2f}x, "
                      f"time {this['seconds'] / other['seconds']:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"layers": args.layers, "rank": args.rank, "context": args.context, "imports_only": base, "exports": rows}
    (args.out / "bench_export_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.out / "bench_export_memory.png")
    print(f"wrote {args.out / 'bench_export_memory.json'} and the PNG beside it")


def plot(rows: list[dict], path: Path) -> None:
    from mlx_lc.plots import grouped_bars

    groups = [f"{q}{' --verify' if v else ''}" for q in ("int4", "none") for v in (False, True)]
    series = {}
    for who in dict.fromkeys(r["mlx_lc"] for r in rows):
        peaks = {f"{r['quantize']}{' --verify' if r['verify'] else ''}": r["peak_rss_bytes"] / 1e9
                 for r in rows if r["mlx_lc"] == who}
        series[f"{who} mlx-lc"] = [peaks.get(g) for g in groups]
    fp16 = rows[0]["fp16_bytes"] / 1e9
    series["float16 weights x2"] = [2 * fp16] * len(groups)
    grouped_bars(groups, series, path, title="mlx-lc export coreml, peak memory (max RSS), Qwen2.5-0.5B shape",
                 ylabel="GB")


if __name__ == "__main__":
    main()
