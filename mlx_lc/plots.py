"""PNG figures: loss curves beside trained artifacts, and the demo's bar chart.

matplotlib is optional (the `eval` extra); without it these functions print one install hint
and return None instead of failing the run that called them.
"""

from __future__ import annotations

import sys
import textwrap
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
    fig.savefig(path, bbox_inches="tight")  # the legend beside the axes and a long title stay in
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
    """One cluster of bars per group, one bar per series (see grouped_bars_figure) -> PNG at `path`."""
    plt = _pyplot(warn)
    if plt is None:
        return None
    return _save(plt, grouped_bars_figure(plt, groups, series, title, ylabel), path)


def grouped_bars_figure(plt, groups: list[str], series: dict[str, list[float | None]], title: str = "",
                        ylabel: str = ""):
    """The figure of grouped_bars. Each bar carries its value; a zero is drawn as a thick line on
    the axis so it reads as measured, not missing (missing values are left out). `groups` may
    hold line breaks (a group's name, then what it covers); a long title is wrapped."""
    names = list(series)
    width = 0.8 / max(1, len(names))
    fig_w = max(7, 1.6 * len(groups) + 0.25 * len(names))
    fig, ax = plt.subplots(figsize=(fig_w, 4.6), dpi=110)
    cmap = plt.get_cmap("tab20")
    for i, name in enumerate(names):
        color = cmap(i % 20)
        pts = [(g + (i - (len(names) - 1) / 2) * width, v) for g, v in enumerate(series[name]) if v is not None]
        bars = ax.bar([x for x, _ in pts], [v for _, v in pts], width=width, label=name, color=color)
        for x, v in pts:
            if v == 0:
                ax.plot([x - width / 2, x + width / 2], [0, 0], color=color, lw=3, solid_capstyle="butt",
                        clip_on=False, zorder=3)
        ax.bar_label(bars, [_short(v) for _, v in pts], rotation=90, fontsize=6, padding=2)
    top = max([v for vals in series.values() for v in vals if v is not None], default=0)
    ax.set_ylim(0, max(1.0, 1.15 * top))  # room for the labels; all-zero bars still get an axis
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(title, width=int(9 * fig_w)), fontsize=10)  # ~9 characters an inch
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _short(v: float) -> str:
    """A bar's value at the precision a reader compares by eye: 86, 4.3, 0."""
    return f"{v:.0f}" if v == 0 or abs(v) >= 10 else f"{v:.1f}"
