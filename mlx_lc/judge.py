"""An LLM judge: a binary pass/fail verdict per compositional output, as the paper's headline metric.

The paper judged with Llama 3.1 70B; here the judge is any mlx-lm model. The rubric per task group
(sum+trans, sum+tone, reply+trans, reply+tone) lives in judge_rubrics.json beside this file. The
verdict parser accepts the messy ways models answer (PASS/FAIL, yes/no, "**Verdict:** yes", JSON,
extra prose) and counts what it cannot read (refusals, both or neither verdict) as unparseable,
separately from passes and fails. Verdicts are cached per example like compositional targets.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from . import tasks
from .errors import MlxLcError
from .io import atomic_dir, read_text

DEFAULT_JUDGE = "mlx-community/Meta-Llama-3.1-8B-Instruct-4bit"
RUBRICS_PATH = Path(__file__).with_name("judge_rubrics.json")

# Paper Table 1: LLM-judge pass rate (%), mean over its three models.
PAPER_TABLE1 = {
    "zero-shot": (0.44, 6.52, 4.11, 33.66),
    "primary-task LoRA": (3.49, 4.18, 7.17, 36.25),
    "linear merge": (0.33, 2.74, 12.81, 41.93),
    "TIES merge": (0.81, 6.06, 8.30, 47.87),
    "multi-step LoRA (2 passes)": (72.92, 34.32, 69.83, 45.78),
    "joint-expert LoRA": (49.85, 16.14, 65.73, 47.06),
    "LC": (59.23, 28.89, 57.46, 44.99),
    "LC++": (65.15, 34.34, 63.81, 45.40),
}

# ---------------------------------------------------------------- verdict parsing

_POS = {"pass", "passed", "passes", "yes", "true", "correct", "acceptable", "y"}
_NEG = {"fail", "failed", "fails", "no", "false", "incorrect", "unacceptable", "n"}
_STRONG = {"pass", "passed", "passes", "fail", "failed", "fails"}  # safe to find anywhere in prose
_LABELS = r"(?:final\s+)?(?:verdict|answer|decision|result|judg(?:e)?ment|evaluation|grade|rating|output)"
_LABELED = re.compile(_LABELS + r"\s*[:=\-]\s*[\"'\[(]?\s*([a-z]+)", re.IGNORECASE)
_NEGATED_PASS = re.compile(r"\b(?:not|n't|never)\s+(?:\w+\s+)?pass(?:es|ed)?\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")


def _word_verdict(word: str) -> str | None:
    w = word.lower()
    return "pass" if w in _POS else ("fail" if w in _NEG else None)


def _json_verdict(text: str) -> str | None:
    for m in re.finditer(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        for k, v in obj.items():
            if not isinstance(k, str) or not re.fullmatch(_LABELS + r"|pass(?:ed)?|passes|ok", k.strip(), re.IGNORECASE):
                continue
            if isinstance(v, bool):
                return "pass" if v else "fail"
            if isinstance(v, str) and (verdict := _word_verdict(v.strip().strip(".!"))):
                return verdict
    return None


def parse_verdict(text: str | None) -> str | None:
    """'pass', 'fail', or None when the judge's answer cannot be read as exactly one of them."""
    if not text or not text.strip():
        return None
    plain = re.sub(r"[*_`#>]", " ", text)  # markdown emphasis and headers
    if (v := _json_verdict(text)) is not None:
        return v
    labeled = [_word_verdict(m.group(1)) for m in _LABELED.finditer(plain)]
    labeled = [v for v in labeled if v]
    if labeled:
        return labeled[-1]  # "Reasoning ... Verdict: FAIL" — the last labelled verdict is the final one
    words = _WORD.findall(plain.lower())
    found = {"pass" if w in _POS else "fail" for w in words if w in _STRONG}  # pass/fail words anywhere
    if _NEGATED_PASS.search(plain):
        found.discard("pass")
        found.add("fail")
    if words and words[0] not in ("y", "n") and (v := _word_verdict(words[0])) and found <= {v}:
        return v  # "Yes, the summary ...", "FAIL. It is in English." (unless the prose says the opposite)
    last_line = [ln for ln in plain.strip().splitlines() if ln.strip()][-1]
    lw = _WORD.findall(last_line.lower())
    if len(lw) == 1 and (v := _word_verdict(lw[0])):
        return v  # reasoning, then the verdict alone on the last line
    return found.pop() if len(found) == 1 else None


# ---------------------------------------------------------------- prompts and inputs

def load_rubrics(path: Path = RUBRICS_PATH) -> dict:
    try:
        r = json.loads(Path(path).read_text())
        assert set(r["groups"]) == set(tasks.GROUPS) and "template" in r and "tone_rules" in r
        return r
    except (OSError, json.JSONDecodeError, KeyError, AssertionError, TypeError):
        raise MlxLcError(f"judge rubric file {path} is missing or malformed") from None


def judge_message(rubrics: dict, task: str, input_text: str, output: str, reference: str | None) -> str:
    comp = tasks.get(task)
    if not isinstance(comp, tasks.Composition):
        raise MlxLcError(f"the judge scores compositional tasks (e.g. summarize+es), got {task!r}")
    sec = comp.secondary.name
    fill = {"language": tasks.LANGUAGES.get(sec, ""), "tone_rule": rubrics["tone_rules"].get(sec, "")}
    criteria = "\n".join(f"{i}. {c.format(**fill)}" for i, c in enumerate(rubrics["groups"][comp.group], 1))
    return rubrics["template"].format(instruction=comp.instruction, input=input_text.strip(),
                                      output=output.strip(), reference=(reference or "").strip()
                                      or rubrics["no_reference"], criteria=criteria)


_TASK_KEYS = ("task", "sub_task", "subtask", "composition")
_INPUT_KEYS = ("input", "source", "text", "dialogue")
_OUTPUT_KEYS = ("output", "prediction", "generated", "generation", "response", "hypothesis")
_REF_KEYS = ("reference", "target", "completion", "gold", "answer")


def _first(row: dict, keys) -> str | None:
    for k in keys:
        if isinstance(row.get(k), str):
            return row[k]
    return None


def input_from_prompt(task: str, prompt: str) -> str | None:
    """The raw input inside a prompt built by tasks.prompt_text (None if it was built otherwise)."""
    head = tasks.get(task).instruction + "\n\n"
    return prompt[len(head):] if prompt.startswith(head) else None


def read_outputs(path: str | Path) -> list[dict]:
    """Rows from JSON lines, a JSON list, or {"examples": [...]} (as `mlx-lc eval` writes per example)."""
    path = Path(path)
    if path.is_dir():
        raise MlxLcError(f"{path} is a folder; give the file of outputs (e.g. {path / 'examples.jsonl'})")
    text = read_text(path, "file of outputs")
    try:
        data = json.loads(text) if text.lstrip()[:1] in ("[", "{") and not _looks_jsonl(text) else None
    except json.JSONDecodeError:
        data = None
    if data is None:
        data = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    data.append(json.loads(line))
                except json.JSONDecodeError:
                    raise MlxLcError(f"{path}:{n}: not valid JSON") from None
    if isinstance(data, dict):
        listed = data.get("examples") or data.get("per_example") or data.get("results")
        data = listed if isinstance(listed, list) else [data]  # a one-line JSON-lines file
    if not isinstance(data, list):
        raise MlxLcError(f"{path}: expected JSON lines or a list of examples")
    return data


def _looks_jsonl(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return len(lines) > 1 and all(ln.lstrip().startswith("{") and ln.rstrip().endswith("}") for ln in lines)


# ---------------------------------------------------------------- running the judge

@dataclass
class JudgeConfig:
    model: str = DEFAULT_JUDGE
    max_tokens: int = 64
    batch_size: int = 8
    cache_dir: Path | None = None
    task: str | None = None  # for rows without a task field
    method: str | None = None  # a label for the table (default: the rows' "method" field)


def judge(rows: list[dict], cfg: JudgeConfig) -> tuple[list[dict], dict]:
    """Verdict records per row and a summary per sub-task and task group."""
    from .data import generation

    for name in ("max_tokens", "batch_size"):  # before the judge model is loaded, not after
        if getattr(cfg, name) < 1:
            raise MlxLcError(f"{name} must be at least 1, got {getattr(cfg, name)}", param=name)
    rubrics = load_rubrics()
    records, messages = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise MlxLcError(f"example {i}: not a JSON object")
        task = _first(row, _TASK_KEYS) or cfg.task
        inp, out = _first(row, _INPUT_KEYS), _first(row, _OUTPUT_KEYS)
        if inp is None and task and isinstance(row.get("prompt"), str):
            inp = input_from_prompt(task, row["prompt"])  # `mlx-lc eval` keeps the prompt, not the input
        missing = [n for n, v in (("task (and no default task)", task), ("input", inp), ("output", out)) if v is None]
        if missing:
            raise MlxLcError(f"example {i}: missing {', '.join(missing)}; output fields accepted: "
                             f"{', '.join(_OUTPUT_KEYS)}")
        messages.append(judge_message(rubrics, task, inp, out, _first(row, _REF_KEYS)))
        records.append({"index": i, "id": row.get("id", i), "task": task,
                        "method": cfg.method or row.get("method"), "group": tasks.get(task).group})
    gen = generation.TextGenerator(cfg.model, cfg.max_tokens, cfg.batch_size)
    cache = generation.GenerationCache(generation.cache_path(cfg.cache_dir, cfg.model, prefix="judge-"))
    raws, stats = generation.run(gen, gen.key, cache, messages, cfg.batch_size, desc=f"judge {cfg.model}")
    gen.unload()
    for rec, raw in zip(records, raws):
        rec["verdict"] = parse_verdict(raw) or "unparseable"
        rec["raw"] = raw
    return records, summarize(records, cfg.model, asdict(stats))


def summarize(records: list[dict], model: str, stats: dict | None = None) -> dict:
    def block(recs):
        c = Counter(r["verdict"] for r in recs)
        n, parsed = len(recs), c["pass"] + c["fail"]
        return {"n": n, "pass": c["pass"], "fail": c["fail"], "unparseable": c["unparseable"],
                "pass_rate": round(100 * c["pass"] / n, 2) if n else None,
                "pass_rate_parsed": round(100 * c["pass"] / parsed, 2) if parsed else None}

    by = lambda key: {k: block([r for r in records if r[key] == k]) for k in sorted({r[key] for r in records})}
    return {"judge": model, "rubric_version": load_rubrics()["version"], "overall": block(records),
            "by_task": by("task"), "by_group": by("group"), "generation": stats or {}}


def write(out: str | Path, records: list[dict], summary: dict) -> Path:
    with atomic_dir(out, marker="judge_summary.json", kind="judge output") as tmp:
        (tmp / "verdicts.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        (tmp / "judge_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / "judge_table.md").write_text(table({"this run": summary}, paper=False))
    return Path(out)


def check_summary(summary, where: str | Path) -> dict:
    """A judge_summary.json with the types `table` and `plot` read, or one line naming the field."""
    def bad(what):
        return MlxLcError(f"{where}: {what}")

    if not isinstance(summary, dict):
        raise bad(f"expected a JSON object, got {type(summary).__name__}")
    if not isinstance(summary.get("overall", {}), dict):
        raise bad("'overall' must be an object")
    groups = summary.get("by_group", {})
    if not isinstance(groups, dict):
        raise bad("'by_group' must be an object")
    for g, b in groups.items():
        ok = (isinstance(b, dict) and isinstance(b.get("n"), int)
              and (b.get("pass_rate") is None or isinstance(b.get("pass_rate"), (int, float))))
        if not ok:
            raise bad(f"'by_group.{g}' must hold a number 'pass_rate' (or null) and an integer 'n'")
    return summary


def table(summaries: dict[str, dict], paper: bool = True) -> str:
    """Markdown table in the paper's layout: pass rate per task group, ours beside the paper's."""
    head = "| method | " + " | ".join(tasks.GROUPS) + " | unparseable |\n|---|" + "---|" * (len(tasks.GROUPS) + 1) + "\n"
    lines = []
    for method, s in summaries.items():
        cells = []
        for g in tasks.GROUPS:
            b = s.get("by_group", {}).get(g)
            cells.append(f"{b['pass_rate']:.2f} (n={b['n']})" if b and b["pass_rate"] is not None else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {s.get('overall', {}).get('unparseable', 0)} |")
    if paper:
        lines += [f"| paper: {m} | " + " | ".join(f"{v:.2f}" for v in vals) + " | - |" for m, vals in PAPER_TABLE1.items()]
    return head + "\n".join(lines) + "\n"


def png_path(path: str | Path) -> Path:
    """The file `plot` will write: matplotlib adds ".png" to a name without a suffix (we report
    that name, not the one given) and refuses suffixes it has no writer for (checked up front)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MlxLcError("plotting needs matplotlib: pip install 'mlx-lc[eval]'") from None
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    fmt = path.suffix[1:].lower()
    if fmt not in Figure().canvas.get_supported_filetypes():
        raise MlxLcError(f"{path}: matplotlib cannot write .{fmt} files; use .png, .svg or .pdf")
    return path


def plot(summaries: dict[str, dict], path: str | Path) -> Path:
    """Grouped bar chart of judge pass rates per task group, with the paper's LC++ and multi-step as lines."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MlxLcError("plotting needs matplotlib: pip install 'mlx-lc[eval]'") from None
    import numpy as np

    path = png_path(path)
    methods, x = list(summaries), np.arange(len(tasks.GROUPS))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(methods) + 4), 4.2))
    for i, m in enumerate(methods):
        groups = summaries[m].get("by_group", {})
        vals = [(groups.get(g) or {}).get("pass_rate") or 0.0 for g in tasks.GROUPS]
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=m)
    for ref, style in (("multi-step LoRA (2 passes)", "--"), ("LC++", ":")):
        for j, v in enumerate(PAPER_TABLE1[ref]):
            ax.hlines(v, j - 0.4, j + 0.4, colors="black", linestyles=style, label=f"paper: {ref}" if j == 0 else None)
    ax.set_xticks(x, tasks.GROUPS)
    ax.set_ylabel("LLM-judge pass rate (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax.set_title("Compositional tasks: judge pass rate per task group")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
