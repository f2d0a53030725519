"""The benchmark's outputs: a plain-text table for the terminal, the same table in Markdown,
the full result as JSON, and a bar chart of the ratios against their targets."""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path

from ..outputs import atomic_dir

_FMT = {"s": "{:.3f} s", "tok/s": "{:.1f} tok/s", "MB": "{:.1f} MB", "GFLOP/s": "{:.1f} GFLOP/s"}


def _value(v: float, unit: str) -> str:
    return _FMT.get(unit, "{:.3g} " + unit).format(v)


def table_rows(result: dict) -> list[list[str]]:
    out = [["measure", "subject", "reference", "ratio (min-max)", "target", "met"]]
    for r in result["rows"]:
        s, ref = r["subject"], r["reference"]
        ratio = f"{r['ratio']:.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"
        out.append([r["what"], f"{_value(s['median'], r['unit'])} {s['name']}",
                    f"{_value(ref['median'], r['unit'])} {ref['name']}", ratio,
                    "" if r["target"] is None else f">= {r['target']:.2f}x",
                    "" if r["met"] is None else ("yes" if r["met"] else "NO")])
    return out


def text_table(result: dict) -> str:
    rows = table_rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(result: dict) -> str:
    rows = table_rows(result)
    md = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    md += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows[1:]]
    notes = [f"- {r['id']}: {r['note']} (ratio = {r['ratio_is']})" for r in result["rows"]]
    m, mach = result.get("model", {}), result["machine"]
    head = [f"Command: `{result['command']}`", f"Date: {result['date']}, wall time {result['wall_s']} s",
            f"Machine: {mach.get('cpu')}, {mach.get('nproc')} CPUs, {mach.get('ram_gb')} GB RAM, "
            f"load average {mach.get('loadavg_start')} at start, {mach.get('loadavg_end')} at end; "
            f"mlx {mach.get('mlx')}, mlx-lm {mach.get('mlx_lm')}, BLAS {mach.get('blas')}"]
    if m:
        head.append(f"Model: {m['name']}, {m['params']:,} params ({m['bytes'] / 1e6:.1f} MB), "
                    f"prompt {m['prompt_tokens']} tokens, adapter rank {m['adapter_rank']}")
    return "\n\n".join(["\n".join(head), "\n".join(md), "\n".join(notes)]) + "\n"


def plot(result: dict, path: Path) -> bool:
    """Bar chart of the ratios with their targets; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in result["rows"] if math.isfinite(r["ratio"])]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    ys = range(len(rows))
    colors = ["tab:green" if r["met"] else "tab:red" if r["met"] is False else "tab:gray" for r in rows]
    ax.barh(list(ys), [r["ratio"] for r in rows], color=colors,
            xerr=[[r["ratio"] - r["ratio_min"] for r in rows], [r["ratio_max"] - r["ratio"] for r in rows]])
    for y, r in zip(ys, rows):
        if r["target"] is not None:
            ax.plot([r["target"]] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
        # the value, right of its whisker and target tick, so it never sits on either
        right = max(r["ratio"], r["ratio_max"], r["target"] or 0)
        ax.text(right * 1.08, y, f"{r['ratio']:.2f}x", va="center", fontsize=7)
    ax.set_yticks(list(ys), [r["id"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    if rows:  # room on the right for the value labels
        ax.set_xlim(right=max(max(r["ratio"], r["ratio_max"], r["target"] or 0) for r in rows) * 2.2)
    ax.set_xlabel("ratio (median over rounds; bar: min-max; black tick: target)")
    ax.set_title(textwrap.fill(f"mlx-lc bench: {result.get('model', {}).get('name', '')}", 110), fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)  # never a half-written picture
    return True


def write(result: dict, out: str | Path) -> list[Path]:
    """bench.json, bench.md and bench.png (if matplotlib is there) in `out`: all of them or none.

    They are made in a temporary folder that replaces `out` (new, empty or an earlier bench) only
    when all were made, so a failing chart (say) leaves no bench.json beside an older bench.md.
    """
    out = Path(out)
    with atomic_dir(out, kind="bench") as stage:
        (stage / "bench.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (stage / "bench.md").write_text(markdown(result))
        names = ["bench.json", "bench.md"] + (["bench.png"] if plot(result, stage / "bench.png") else [])
    return [out / name for name in names]
