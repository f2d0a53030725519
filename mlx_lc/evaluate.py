"""Score every method the same way: greedy generation in batches, ROUGE, and the world's judge.

Metrics (paper): ROUGE-L F1 for summaries; weighted ROUGE = R1/6 + R2/3 + R3/2 (F1) for replies,
from Google's `rouge-score` package. Its default tokenizer keeps only [a-z0-9], which would cut
"café" and "Grüße" into pieces, so we pass one that keeps Unicode letters. The judge
(`mlx_lc.world.judge`) scores facts, language and tone against the row's hidden `frame`; rows
without a frame get judge n/a.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import adapters as adapters_io
from .adapters import LoRA
from . import batch, model_folder, tasks
from .errors import MlxLcError
from .generate import apply_lora, compose, remove_adapters
from .merge import MergeConfig
from .training.rows import encode_prompt, read_jsonl
from .world.frames import Frame
from .world.judge import judge, target

EVAL_HINT = "rouge-score is not installed: pip install 'mlx-lc[eval]'"


# ---------------------------------------------------------------- generation

def encode_prompts(tokenizer, messages: Sequence[str]) -> list[list[int]]:
    return [encode_prompt(tokenizer, tasks.wrap_message(tokenizer, m)) for m in messages]


def generate_batch(model, tokenizer, messages: Sequence[str], max_tokens: int = 128, batch_size: int = 32,
                   progress=None, rows: Sequence[int] | None = None, confidence: list | None = None) -> list[str]:
    """Greedy completions of user messages (wrapped as at training time), many rows per forward
    pass (mlx_lc.batch); each equals unbatched greedy decoding. `rows`: the messages' row numbers
    in the data, for the error naming a prompt too long for the model. `confidence` (a list)
    receives each output's mean token log-probability."""
    texts = batch.generate(model, tokenizer, encode_prompts(tokenizer, messages), max_tokens, batch_size, progress,
                           name=lambda i: f"the prompt of row {rows[i] if rows else i + 1}", confidence=confidence)
    # mlx-lm's streaming detokenizer drops the first token's leading space; strip to match it
    return [t.strip() for t in texts]


# ---------------------------------------------------------------- metrics

class UnicodeTokenizer:
    """rouge-score tokenizer: lowercase words of Unicode letters and digits (keeps é, ü, ß, ñ)."""

    _word = re.compile(r"\w+", re.UNICODE)

    def tokenize(self, text: str) -> list[str]:
        return self._word.findall(text.lower().replace("_", " "))


_scorer = None


def rouge(reference: str, output: str) -> dict[str, float]:
    """F1 of ROUGE-1, -2, -3 and -L, plus the paper's weighted ROUGE."""
    global _scorer
    if _scorer is None:
        try:
            from rouge_score import rouge_scorer
        except ImportError:
            raise MlxLcError(EVAL_HINT) from None
        _scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rouge3", "rougeL"], tokenizer=UnicodeTokenizer())
    s = {k: v.fmeasure for k, v in _scorer.score(reference, output).items()}
    s["weighted_rouge"] = s["rouge1"] / 6 + s["rouge2"] / 3 + s["rouge3"] / 2
    return s


def metric_name(task: str) -> str:
    """ROUGE-L for summaries (and single secondary tasks), weighted ROUGE for replies."""
    try:
        return tasks.get(task).metric
    except MlxLcError:
        return "rougeL"


def score(rows: Sequence[dict], outputs: Sequence[str]) -> list[dict]:
    """Per-example records: metric, ROUGE family and (when the row has a frame) the judge."""
    records = []
    for row, out in zip(rows, outputs):
        task = row.get("task", "?")
        r = rouge(row["completion"], out)
        rec = {"task": task, "prompt": row["prompt"], "reference": row["completion"], "output": out,
               "metric": metric_name(task), "score": r[metric_name(task)], "rouge": r, "judge": None}
        if row.get("frame") is not None:
            rec["judge"] = judge(row["frame"], task, out)
        records.append(rec)
    return records


def _mean(xs):
    xs = [float(x) for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def summarize(records: Sequence[dict]) -> dict[str, dict]:
    """Per task: n, metric mean, and judge pass rate / fact accuracy / language and tone checks (0-1)."""
    out = {}
    for task in sorted({r["task"] for r in records}):
        rs = [r for r in records if r["task"] == task]
        judged = [r["judge"] for r in rs if r["judge"]]
        out[task] = {
            "n": len(rs), "metric": rs[0]["metric"], "score": _mean(r["score"] for r in rs),
            "rougeL": _mean(r["rouge"]["rougeL"] for r in rs),
            "weighted_rouge": _mean(r["rouge"]["weighted_rouge"] for r in rs),
            "judge_pass": _mean(j.get("pass") for j in judged) if judged else None,
            "fact_acc": _mean(j.get("fact_acc") for j in judged) if judged else None,
            # each fact on its own (who, what, where, when): which ones a method loses
            "slots": {k: _mean(j["facts"][k] for j in judged) for k in judged[0]["facts"]} if judged else None,
            "language_ok": _mean(j.get("language_ok") for j in judged) if judged else None,
            "tone_ok": _mean(j.get("tone_ok") for j in judged) if judged else None,
        }
    return out


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def markdown(per_task: dict[str, dict], title: str = "") -> str:
    lines = [f"### {title}", ""] if title else []
    lines += ["| task | n | metric | score | judge pass % | facts % | language ok % | tone ok % |",
              "|---|---|---|---|---|---|---|---|"]
    for task, s in per_task.items():
        lines.append(f"| {task} | {s['n']} | {s['metric']} | {pct(s['score'])} | {pct(s['judge_pass'])} | "
                     f"{pct(s['fact_acc'])} | {pct(s['language_ok'])} | {pct(s['tone_ok'])} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- methods

@dataclass
class EvalConfig:
    max_tokens: int = 128
    batch_size: int = 32
    limit: int | None = None  # first N rows only


def chain(model, tokenizer, steps: Sequence[tuple[tasks.Task, LoRA | None]], texts: Sequence[str],
          cfg: EvalConfig, progress=None, confidence: list | None = None) -> list[list[str]]:
    """The multi-step baseline: step 1's task (with its adapter) on each text, step 2's on that
    output, and so on. -> each text's output at every step; a text whose output comes back empty
    stops there (its later outputs are ""). `progress(n)`: n more rows done at some step.
    `confidence` (a list) receives per text the mean token log-probability of each step's output."""
    outputs = [[""] * len(steps) for _ in texts]
    conf = [[float("-inf")] * len(steps) for _ in texts]
    current, todo = list(texts), [i for i, t in enumerate(texts) if t.strip()]
    for k, (task, lora) in enumerate(steps):
        remove_adapters(model)
        if lora is not None:
            apply_lora(model, lora)
        means: list = []
        got = generate_batch(model, tokenizer, [tasks.prompt_text(task, current[i]) for i in todo], cfg.max_tokens,
                             cfg.batch_size, progress, rows=[i + 1 for i in todo], confidence=means)
        for i, g, c in zip(todo, got, means):
            outputs[i][k] = current[i] = g
            conf[i][k] = c
        todo = [i for i in todo if current[i].strip()]
    remove_adapters(model)
    if confidence is not None:
        confidence[:] = conf
    return outputs


def multi_step(model, tokenizer, loras: Sequence[LoRA], rows: Sequence[dict], cfg: EvalConfig) -> list[str]:
    """The chain of each composition row's tasks, one adapter per task in order -> final outputs."""
    comps = [tasks.get(r.get("task", "")) for r in rows]
    bad = sorted({r.get("task", "?") for r, c in zip(rows, comps)
                  if not isinstance(c, tasks.Composition) or len(c.steps) != len(loras)})
    if bad or any("input" not in r for r in rows):
        raise MlxLcError(f"multi-step needs rows of a composition of {len(loras)} tasks with an 'input' field "
                         f"(got tasks {bad or 'without input'})")
    names = {c.name for c in comps}
    if len(names) > 1:  # one adapter per step: the rows must share their steps
        raise MlxLcError(f"multi-step runs one composition at a time; the rows hold {', '.join(sorted(names))}")
    steps = list(zip(comps[0].steps, loras)) if comps else []
    return [out[-1] for out in chain(model, tokenizer, steps, [r["input"] for r in rows], cfg)]


def check_rows(rows: Sequence[dict], data: str | Path, multi: bool = False) -> None:
    """Every row's task (and frame, for the judge) checked up front: a bad last row must not
    cost a whole run of generation before it fails."""
    for i, row in enumerate(rows, 1):
        task = row.get("task")
        if task is None:
            raise MlxLcError(f"{data}: row {i} has no 'task' field (eval needs it for the metric and the judge)")
        if not isinstance(task, str):
            raise MlxLcError(f"{data}: row {i}: 'task' must be a string, got {task!r}")
        try:
            t = tasks.get(task)
            if multi and (not isinstance(t, tasks.Composition) or not isinstance(row.get("input"), str)):
                raise MlxLcError(f"multi-step needs composition rows with a string 'input' field (task {task!r})")
            frame = row.get("frame")
            if frame is not None:
                if not isinstance(frame, dict):
                    raise MlxLcError(f"'frame' must be an object, got {type(frame).__name__}")
                Frame.from_dict(frame)
                target(task, frame.get("kind"))
        except MlxLcError as e:
            raise MlxLcError(f"{data}: row {i}: {e}") from None
        except (TypeError, ValueError) as e:  # a frame with values of the wrong type
            raise MlxLcError(f"{data}: row {i}: malformed frame ({e})") from None


def evaluate(model_path: str, data: str | Path, adapters: Sequence[str | Path] = (), merge: str = "linear",
             calibration: str | Path | None = None, multi: bool = False, cfg: EvalConfig | None = None) -> dict:
    """Generate for every row of `data` with one method and score it. -> report dict."""
    cfg = cfg or EvalConfig()
    if cfg.limit is not None and cfg.limit < 1:  # 0 and negatives would be read as "all" or "all but N"
        raise MlxLcError(f"limit must be at least 1, got {cfg.limit}", param="limit")
    rows = read_jsonl(data)[: cfg.limit]
    check_rows(rows, data, multi)
    model, tok = model_folder.load(model_path)
    if multi:
        if len(adapters) < 2 or calibration:
            raise MlxLcError("multi-step takes an adapter per task, in order (at least two), and no calibration")
        outputs = multi_step(model, tok, adapters_io.load_for(model, adapters, model_path), rows, cfg)
        method = "multi-step"
    else:
        compose(model, list(adapters), MergeConfig(merge), calibration, model_path)
        method = ("zero-shot" if not adapters else "lora" if len(adapters) == 1 and not calibration
                  else f"calibrated ({Path(calibration).name})" if calibration else f"{merge} merge")
        outputs = generate_batch(model, tok, [r["prompt"] for r in rows], cfg.max_tokens, cfg.batch_size)
    records = score(rows, outputs)
    return {"method": method, "model": model_path, "adapters": [str(a) for a in adapters],
            "calibration": str(calibration) if calibration else None, "data": str(data),
            "per_task": summarize(records), "examples": records}
