"""PNG figures: loss curves beside trained artifacts, and the demo's bar chart.

matplotlib is optional (the `eval` extra); without it these functions print one install hint
and return None instead of failing the run that called them.
"""

from __future__ import annotations

import sys
from pathlib import Path

HINT = "matplotlib is not installed, so no PNG was written: pip install 'mlx-lc[eval]'"
_warned = False


def _pyplot(warn: bool):
    global _warned
    try:
        import matplotlib

        matplotlib.use("Agg")  # headless: files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        if warn and not _warned:
            print(f"mlx-lc: {HINT}", file=sys.stderr)
            _warned = True
        return None
    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def loss_curve(history: dict, path: str | Path, title: str = "", warn: bool = True) -> Path | None:
    """history: {"train": [[step, loss, ...]], "valid": [[step, loss]]} -> PNG at `path`."""
    plt = _pyplot(warn)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for key, style in (("train", "-"), ("valid", "o-")):
        pts = history.get(key) or []
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=key, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def grouped_bars(groups: list[str], series: dict[str, list[float | None]], path: str | Path,
                 title: str = "", ylabel: str = "", warn: bool = True) -> Path | None:
    """One cluster of bars per group, one bar per series (missing values are left out)."""
    plt = _pyplot(warn)
    if plt is None:
        return None
    names = list(series)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(groups) + 0.25 * len(names)), 4.2), dpi=110)
    cmap = plt.get_cmap("tab20")
    for i, name in enumerate(names):
        xs = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
        vals = series[name]
        ax.bar([x for x, v in zip(xs, vals) if v is not None], [v for v in vals if v is not None],
               width=width, label=name, color=cmap(i % 20))
    top = max([v for vals in series.values() for v in vals if v is not None], default=0)
    ax.set_ylim(0, max(1.0, 1.1 * top))  # all-zero bars still get an axis from 0
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(plt, fig, path)
