"""Batched generation with an mlx-lm model, cached per example on disk and resumable.

Used for compositional targets (translator, tone rewriter) and for the LLM judge. The cache is
content-addressed: the key is a hash of the model's identity, the message sent and the generation
settings, so a rerun (after an interruption, or a second build) only generates what is missing,
and an unchanged rerun loads no model at all. Entries are appended to a JSON-lines file after
every batch (flushed and fsynced); a line torn by a kill is detected and ignored on reload.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import MlxLcError


def default_cache_dir() -> Path:
    """$MLX_LC_HOME/generations, default ~/.cache/mlx-lc/generations."""
    home = os.environ.get("MLX_LC_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "mlx-lc")
    return Path(home) / "generations"


def model_fingerprint(model: str) -> str:
    """A model's identity for cache keys: the hub id, or a local folder's path and weight files."""
    p = Path(model)
    if not p.is_dir():
        return f"hub:{model}"
    h = hashlib.sha256()
    for f in sorted(p.iterdir()):
        if f.suffix in (".json", ".safetensors", ".model", ".txt") and f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}".encode())
            if f.suffix == ".json" and st.st_size < 1 << 20:
                h.update(f.read_bytes())
    return f"dir:{p.resolve()}:{h.hexdigest()[:16]}"


def cache_path(cache_dir: str | Path | None, model: str, prefix: str = "") -> Path:
    """One cache file per model (keys are content hashes, so this only shards the store)."""
    tail = "-".join(Path(model).parts[-2:]) if Path(model).is_dir() else model.replace("/", "--")
    digest = hashlib.sha256(model_fingerprint(model).encode()).hexdigest()[:8]
    return Path(cache_dir or default_cache_dir()) / f"{prefix}{tail[:60]}-{digest}.jsonl"


class GenerationCache:
    """Append-only JSON-lines store of {key: output}."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, str] = {}
        self.torn_lines = 0
        if self.path.is_file():
            with open(self.path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.entries[rec["k"]] = rec["v"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        self.torn_lines += 1  # a write cut short by a kill: regenerate that entry

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put_many(self, items: dict[str, str]) -> None:
        if not items:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Start on a fresh line in case the file ends in a torn (unterminated) line.
        needs_newline = self.path.is_file() and self.path.stat().st_size > 0 and not self._ends_with_newline()
        data = ("\n" if needs_newline else "") + "".join(
            json.dumps({"k": k, "v": v}, ensure_ascii=False) + "\n" for k, v in items.items())
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.entries.update(items)

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"


@dataclass
class TextGenerator:
    """Greedy generation from an mlx-lm model (hub id or folder), loaded on first use.

    `chat`: wrap each message in the tokenizer's chat template (plain instruction format when the
    tokenizer has none); False sends the message as raw text (for base models with their own format).
    """

    model: str
    max_tokens: int = 256
    batch_size: int = 16
    chat: bool = True
    stop: tuple[str, ...] = ()
    generated: int = 0  # messages sent to the model so far
    _loaded: tuple | None = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def key(self, message: str) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        spec = json.dumps([self._fingerprint, self.chat, self.max_tokens, list(self.stop), message])
        return hashlib.sha256(spec.encode()).hexdigest()

    def _load(self):
        if self._loaded is None:
            from ..model_folder import load

            self._loaded = load(self.model)
        return self._loaded

    def unload(self) -> None:
        self._loaded = None
        try:
            import mlx.core as mx

            mx.clear_cache()
        except (ImportError, AttributeError):
            pass

    def __call__(self, messages: Sequence[str]) -> list[str]:
        from ..batch import generate
        from ..tasks import wrap_message
        from ..training.rows import encode_prompt

        model, tok = self._load()
        prompts = [wrap_message(tok, m) if self.chat else m for m in messages]
        ids = [encode_prompt(tok, p) for p in prompts]  # BOS as mlx-lm adds it
        texts = generate(model, tok, ids, self.max_tokens, self.batch_size,
                         name=lambda i: f"the prompt of message {i + 1} of {len(ids)}")
        self.generated += len(messages)
        return [self._cut(t) for t in texts]

    def _cut(self, text: str) -> str:
        for s in self.stop:
            i = text.find(s)
            if i >= 0:
                text = text[:i]
        return text


@dataclass
class RunStats:
    requested: int = 0
    cached: int = 0
    generated: int = 0


def run(generator: Callable[[Sequence[str]], list[str]], key: Callable[[str], str], cache: GenerationCache,
        messages: Sequence[str], batch_size: int = 16, desc: str = "generating") -> tuple[list[str], RunStats]:
    """Outputs for `messages` (in order), generating only those not in `cache`, with a progress bar."""
    from tqdm import tqdm

    if batch_size < 1:
        raise MlxLcError(f"batch size must be at least 1, got {batch_size}")
    keys = [key(m) for m in messages]
    todo: dict[str, str] = {}
    for k, m in zip(keys, messages):
        if k not in cache and k not in todo:
            todo[k] = m
    stats = RunStats(requested=len(messages), cached=len(messages) - sum(1 for k in keys if k in todo))
    items = list(todo.items())
    if items:
        with tqdm(total=len(items), desc=desc, unit="ex", dynamic_ncols=True) as bar:
            for i in range(0, len(items), batch_size):
                chunk = items[i:i + batch_size]
                outs = generator([m for _, m in chunk])
                if len(outs) != len(chunk):
                    raise MlxLcError(f"generator returned {len(outs)} outputs for {len(chunk)} messages")
                cache.put_many({k: o for (k, _), o in zip(chunk, outs)})
                stats.generated += len(chunk)
                bar.update(len(chunk))
    return [cache.get(k) for k in keys], stats
