"""Pretrain a tiny base model with `fit.fit`: every weight trains as a causal LM on a plain-text
corpus (no task formatting, loss on every token), and the model folder is rewritten in place.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from .. import model_folder
from ..errors import MlxLcError
from ..io import atomic_dir, read_text, write_json
from ..tiny import TinyConfig, tiny_model_files
from .batches import evaluate_loss
from .fit import FitConfig, FitResult, fit
from .rows import Example


def corpus_examples(tokenizer, text: str, seq_len: int) -> list[Example]:
    """Documents (separated by blank lines, else lines), each ended by eos, packed whole into
    windows of at most seq_len + 1 tokens; no task formatting, loss on every token.

    A document is split only when it is longer than a window. Cutting one stream into fixed
    windows instead puts most of a dialogue's last turn in another window than the turns it
    restates, and a model never sees the reason to copy from its context (docs/EXPERIMENTS.md)."""
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
        write_json(model_dir / "pretrain.json", {"config": asdict(cfg), "result": result.meta(),
                                                 "n_train_windows": len(train), "n_valid_windows": len(valid),
                                                 "params": sum(v.size for _, v in tree_flatten(model.parameters()))})
        result.write_curves(model_dir, "pretraining")
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
