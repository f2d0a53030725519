"""Train single-task (or joint-expert) LoRAs, and pretrain a tiny base model, with `fit.fit`.

`train_lora` writes a standard mlx-lm adapter folder (`mlx_lm.generate --adapter-path` loads it)
whose config records the base model, its architecture and the resolved training config, with a
loss-curve PNG beside it. Data are JSON lines with `prompt` and `completion` (mlx-lm's
completions format) plus `task`; the loss covers the completion only.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from . import adapters as adapters_io
from . import model_folder
from . import plots
from . import tasks
from .adapters import LoRA
from .checks import MAX_SCALE, MIN_SCALE
from .errors import MlxLcError
from .fit import Example, FitConfig, FitResult, evaluate_loss, fit
from .io import atomic_dir, atomic_write_text, read_text, write_json
from .model_folder import model_id
from .outputs import move_into, run_dir
from .tiny import TinyConfig, tiny_model_files

# METHOD.md: rank 32, alpha 16 (mlx-lm scale = alpha / rank = 0.5), dropout 0.05, Adam, lr 5e-5.
DEFAULT_RANK, DEFAULT_ALPHA, DEFAULT_DROPOUT, DEFAULT_LR = 32, 16.0, 0.05, 5e-5


@dataclass
class LoRAConfig:
    rank: int = DEFAULT_RANK
    scale: float = DEFAULT_ALPHA / DEFAULT_RANK
    dropout: float = DEFAULT_DROPOUT
    keys: list[str] | None = None  # module paths inside a block; default: every linear layer
    fit: FitConfig = field(default_factory=lambda: FitConfig(lr=DEFAULT_LR))

    def validate(self) -> None:
        if self.rank < 1:
            raise MlxLcError(f"LoRA rank must be at least 1, got {self.rank}")
        # scale 0 trains an adapter that changes nothing; nan/inf poison every weight
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise MlxLcError(f"LoRA scale must be a positive number, got {self.scale}")
        if not MIN_SCALE <= self.scale <= MAX_SCALE:  # an adapter every reader would refuse
            raise MlxLcError(f"LoRA scale must be between {MIN_SCALE:g} and {MAX_SCALE:g}, got {self.scale:g}")
        if not 0 <= self.dropout < 1:
            raise MlxLcError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        self.fit.validate()


# ---------------------------------------------------------------- data

def read_jsonl(path: str | Path) -> list[dict]:
    """Rows with string `prompt` and `completion`; errors name the file and line."""
    path = Path(path)
    text = read_text(path, "data file")
    # a JSON array (one big list) is the usual mistake; its rows would fail one by one below
    hint = "; expected JSON Lines (one object per line), not a JSON array" if text.lstrip().startswith("[") else ""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise MlxLcError(f"{path}:{n}: not JSON ({e.msg}){hint}") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) \
                or not isinstance(row.get("completion"), str):
            raise MlxLcError(f"{path}:{n}: each row needs string fields 'prompt' and 'completion'{hint}")
        rows.append(row)
    if not rows:
        raise MlxLcError(f"{path}: no rows")
    return rows


def load_splits(data: str | Path, valid_fraction: float = 0.1, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A folder with train.jsonl (+ valid.jsonl), or one .jsonl file whose last `valid_fraction`
    (after a seeded shuffle) becomes the dev split."""
    data = Path(data)
    if data.is_dir():
        train = read_jsonl(data / "train.jsonl")
        valid = read_jsonl(data / "valid.jsonl") if (data / "valid.jsonl").exists() else []
        return train, valid
    rows = read_jsonl(data)
    order = np.random.RandomState(seed).permutation(len(rows))
    n_valid = int(len(rows) * valid_fraction) if len(rows) >= 10 else 0
    return [rows[i] for i in order[n_valid:]], [rows[i] for i in order[:n_valid]]


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Token ids of a formatted prompt, exactly as mlx-lm's generate encodes it."""
    bos = getattr(tokenizer, "bos_token", None)
    return tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos))


def encode_rows(tokenizer, rows: list[dict]) -> list[Example]:
    """(prompt + completion + eos, prompt length) per row; the prompt goes through wrap_message."""
    eos = tokenizer.eos_token_id
    out = []
    for row in rows:
        p = encode_prompt(tokenizer, tasks.wrap_message(tokenizer, row["prompt"]))
        c = tokenizer.encode(row["completion"], add_special_tokens=False)
        out.append((p + c + ([eos] if eos is not None else []), len(p)))
    return out


# ---------------------------------------------------------------- LoRA

def block_keys(model: nn.Module) -> list[str]:
    """Every linear layer inside a transformer block (q, k, v, o, gate, up, down for Llama)."""
    return sorted({adapters_io.split_path(p)[2] for p in adapters_io.linear_shapes(model)})


def add_lora(model: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Freeze the model and put trainable LoRA layers on `cfg.keys` of every block."""
    from mlx_lm.tuner.utils import linear_to_lora_layers  # here: mlx_lm costs ~1.1 s, which `mlx-lc --help` does not need

    keys = cfg.keys or block_keys(model)
    missing = sorted(set(keys) - set(block_keys(model)))
    if missing:
        raise MlxLcError(f"no linear layer {', '.join(missing)} in the model's blocks; "
                         f"available: {', '.join(block_keys(model))}")
    model.freeze()
    linear_to_lora_layers(model, len(model.layers),
                          {"rank": cfg.rank, "scale": cfg.scale, "dropout": cfg.dropout, "keys": keys})
    return keys


def lora_from_model(model: nn.Module, scale: float, base_model: str | None, meta: dict) -> LoRA:
    params = dict(_flat(model.trainable_parameters()))
    factors = {p[: -len(".lora_a")]: (v, params[p[: -len(".lora_a")] + ".lora_b"])
               for p, v in params.items() if p.endswith(".lora_a")}
    return LoRA(factors, scale, base_model=base_model, base_arch=adapters_io.model_arch(model), meta=meta)


def train_lora(model_path: str, data: str | Path, out: str | Path, cfg: LoRAConfig | None = None,
               resume: bool = False, progress: bool = True) -> FitResult:
    """Train one LoRA on `data` and write an mlx-lm adapter folder to `out` (rank 0 only)."""
    cfg = cfg or LoRAConfig()
    cfg.validate()
    out = Path(out)
    with run_folder(out, "adapter", [model_path, data], resume) as tmp:
        model, tok = model_folder.load(model_path)
        train_rows, valid_rows = load_splits(data, seed=cfg.fit.seed)
        mx.random.seed(cfg.fit.seed)  # LoRA's `a` init
        cfg.keys = add_lora(model, cfg)
        result = fit(model, encode_rows(tok, train_rows), encode_rows(tok, valid_rows), cfg.fit, out=tmp,
                     resume=resume, progress=progress, desc=f"lora {out.name}",
                     setup={"kind": "lora", "base_model": model_id(model_path),
                            "base_arch": adapters_io.model_arch(model), "rank": cfg.rank, "scale": cfg.scale,
                            "keys": cfg.keys})
        meta = {"train": {**asdict(cfg), "data": str(data), "n_train": len(train_rows), "n_valid": len(valid_rows),
                          "tasks": sorted({r.get("task", "?") for r in train_rows}),
                          "world_size": mx.distributed.init().size()},
                "result": _result_meta(result), "kind": "lora"}
        if mx.distributed.init().rank() == 0:
            lora = lora_from_model(model, cfg.scale, model_path, meta)
            move_into(tmp, lambda part: adapters_io.write_mlx(lora, part))
            write_curves(tmp, result, f"LoRA {out.name}")
    return result


def run_folder(out: Path, kind: str, inputs: list, resume: bool):
    """Where a training run writes: on rank 0 a temporary folder that replaces `out` as a unit when
    the run succeeded (outputs.run_dir: everything checked before any work); on the other ranks,
    which write nothing, `out` itself (a resume reads its checkpoint there)."""
    if mx.distributed.init().rank() == 0:
        return run_dir(out, kind=kind, inputs=inputs, resume=resume)
    return contextlib.nullcontext(out)


def write_curves(out: Path, result: FitResult, title: str) -> None:
    """history.json always; loss.png when matplotlib is installed."""
    atomic_write_text(out / "history.json", json.dumps(result.history))
    plots.loss_curve(result.history, out / "loss.png", title, warn=True)


def _result_meta(r: FitResult) -> dict:
    return {"steps": r.steps, "best_step": r.best_step, "best_val_loss": r.best_val, "stopped_early": r.stopped_early,
            "seconds": round(r.seconds, 2), "tokens": r.tokens,
            "tokens_per_s": round(r.tokens / max(r.seconds, 1e-9), 1),
            "rows": r.rows}  # per split: rows, cut at max_seq_len, left with no scored token


def _flat(tree):
    return tree_flatten(tree)


# ---------------------------------------------------------------- pretraining

def corpus_examples(tokenizer, text: str, seq_len: int) -> list[Example]:
    """Documents (separated by blank lines, else lines), each ended by eos, packed whole into
    windows of at most seq_len + 1 tokens; no task formatting, loss on every token.

    A document is split only when it is longer than a window. Cutting one stream into fixed
    windows instead puts most of a dialogue's last turn in another window than the turns it
    restates, and a model never sees the reason to copy from its context (README, demo)."""
    docs = [d.strip() for d in (text.split("\n\n") if "\n\n" in text else text.splitlines()) if d.strip()]
    if not docs:
        raise MlxLcError("the corpus is empty")
    eos = tokenizer.eos_token_id
    hf = getattr(tokenizer, "_tokenizer", tokenizer)  # mlx-lm wraps the HF tokenizer
    windows: list[Example] = []
    cur: list[int] = []
    for ids in hf(docs, add_special_tokens=False)["input_ids"]:
        ids = ids + [eos]
        if cur and len(cur) + len(ids) > seq_len + 1:
            windows.append((cur, 0))
            cur = []
        cur += ids
        while len(cur) > seq_len + 1:
            windows.append((cur[: seq_len + 1], 0))
            cur = cur[seq_len + 1:]
    if len(cur) > 1:
        windows.append((cur, 0))
    return windows


@dataclass
class PretrainConfig:
    fit: FitConfig = field(default_factory=lambda: FitConfig(lr=3e-3, batch_size=16, epochs=1.0, max_seq_len=128,
                                                             warmup=50, schedule="cosine", weight_decay=0.01,
                                                             patience=1000))
    valid_fraction: float = 0.02


def read_corpus(corpus: str | Path) -> str:
    """The corpus text; one-line errors for a missing, non-UTF-8 or blank file."""
    path = Path(corpus)
    text = read_text(path, "corpus")
    if not text.strip():
        raise MlxLcError(f"{path}: the corpus is empty")
    return text


def pretrain(model_dir: str | Path, corpus: str | Path, cfg: PretrainConfig | None = None,
             progress: bool = True) -> FitResult:
    """Train every weight of the model in `model_dir` as a causal LM on `corpus`; rewrite it in place."""
    cfg = cfg or PretrainConfig()
    cfg.fit.validate()
    text = read_corpus(corpus)
    model_dir = Path(model_dir)
    model, tok = model_folder.load(str(model_dir))
    examples = corpus_examples(tok, text, cfg.fit.max_seq_len)
    n_valid = max(1, int(len(examples) * cfg.valid_fraction)) if len(examples) > 20 else 0
    valid, train = examples[:n_valid], examples[n_valid:]
    model.unfreeze()
    result = fit(model, train, valid, cfg.fit, out=model_dir / ".pretrain", progress=progress, desc="pretrain")
    if mx.distributed.init().rank() == 0:
        model_folder.save_weights(model_dir, model)
        write_json(model_dir / "pretrain.json", {"config": asdict(cfg), "result": _result_meta(result),
                                                 "n_train_windows": len(train), "n_valid_windows": len(valid),
                                                 "params": sum(v.size for _, v in _flat(model.parameters()))})
        write_curves(model_dir, result, "pretraining")
    return result


def pretrain_new(out: str | Path, tiny: TinyConfig, corpus: str | Path, cfg: PretrainConfig | None = None,
                 progress: bool = True) -> FitResult:
    """A new tiny model (its tokenizer trained on `corpus`) pretrained on `corpus`, written to `out`.

    Settings and corpus are checked before anything is written; the model is built and trained in
    a temporary folder beside `out` that replaces it only once training succeeded, so a failed run
    leaves no untrained model behind and an existing `out` as it was."""
    cfg = cfg or PretrainConfig()
    tiny.validate()
    cfg.fit.validate()
    text = read_corpus(corpus)
    # Only rank 0 writes `out` (as `pretrain` saves on rank 0 only); the other ranks build the
    # same seeded model in a folder of their own that goes away afterwards.
    rank0 = mx.distributed.init().rank() == 0
    with (atomic_dir(out, marker="config.json", kind="model folder") if rank0 else tempfile.TemporaryDirectory(prefix="mlx-lc-pretrain.")) as tmp:
        tiny_model_files(Path(tmp), tiny, text.splitlines())
        return pretrain(tmp, corpus, cfg, progress)


def perplexity(model, examples: list[Example], batch_size: int = 16, max_seq_len: int = 512) -> float:
    return math.exp(evaluate_loss(model, examples, batch_size, max_seq_len, mx.distributed.init()))
