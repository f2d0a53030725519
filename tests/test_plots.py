"""The demo's charts and report text, on the committed default run's results (no training)."""

import json
from pathlib import Path

import pytest

from mlx_lc import plots
from mlx_lc.demo import report as demo_report

ROOT = Path(__file__).resolve().parents[1]
plt = plots._pyplot(warn=False)
pytestmark = pytest.mark.skipif(plt is None, reason="matplotlib is not installed")


def test_every_bar_shows_its_value_and_zero_bars_are_drawn():
    fig = plots.grouped_bars_figure(plt, ["a", "b"], {"zero": [0.0, 0.0], "some": [86.0, 4.25], "gap": [None, 3.0]},
                                    "t", "%")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert sorted(labels) == sorted(["0", "0", "86", "4.2", "3.0"])
    zero_color = ax.patches[0].get_facecolor()
    marks = [ln for ln in ax.lines if ln.get_color() == zero_color or tuple(ln.get_color()) == zero_color]
    # one thick line on the axis per zero bar, as wide as the bar
    assert len(marks) == 2 and all(list(ln.get_ydata()) == [0, 0] and ln.get_linewidth() >= 2 for ln in marks)
    plt.close(fig)


def test_a_long_title_is_wrapped_to_the_figure(tmp_path):
    title = "ROUGE per task group (ROUGE-L: summaries; weighted ROUGE: replies) (mean over seeds 0, 1, 2) " * 2
    fig = plots.grouped_bars_figure(plt, ["a"], {"x": [1.0]}, title, "%")
    fig.canvas.draw()
    box, width = fig.axes[0].title.get_window_extent(), fig.bbox.width
    assert box.x0 >= 0 and box.x1 <= width and "\n" in fig.axes[0].get_title()
    plt.close(fig)


def test_groups_name_their_sub_tasks():
    subs = ["summarize+es", "summarize+fr", "reply+casual", "summarize+professional"]
    assert demo_report.group_label("sum+trans", subs) == "sum+trans\nsummarize+es, +fr"
    assert demo_report.group_label("reply+tone", subs) == "reply+tone\nreply+casual"
    assert demo_report.group_label("reply+trans", subs) == "reply+trans"


def test_the_report_names_no_issue_and_keeps_the_runs_machine(tmp_path):
    results = json.loads((ROOT / "results/demo-default/results.json").read_text())
    results["machine"], results["arch"] = "Elsewhere-1.0", "riscv64"
    md = demo_report.markdown(results)
    assert "## Targets: judge score as a fraction of multi-step's" in md and "issue" not in md.lower()
    assert "on riscv64 (Elsewhere-1.0)" in md
    demo_report.write_results(results, tmp_path)
    for name in ("results.png", "results-rouge.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["machine"] == "Elsewhere-1.0"
