"""manifest.json: the contract between an exported Core ML package and the iOS app.

The app never renders chat templates: each composition carries its prompt as a `prefix` and a
`suffix` around the user's text, rendered here in Python through the same code that mlx-lc uses
to generate (`tasks.format_prompt`), so the phone builds byte-identical prompts.

Schema (version 1):
{
  "format": "mlx-lc-manifest", "version": 1,
  "package": "Model.mlpackage",
  "model": {"architecture", "vocab_size", "hidden_size", "num_layers", "num_kv_heads",
            "head_dim", "context_length", "quantization"},
  "tokenizer": {"files": [...], "kind": "bpe-bytelevel" | "sentencepiece", "bos_token_id",
                "eos_token_ids": [...], "pad_token_id", "add_bos": bool},
  "compositions": [{"name": "summarize+es", "title": "Summary in Spanish", "primary",
                    "secondary", "instruction", "prompt": {"prefix", "suffix"},
                    "functions": {"prefill": NAME, "decode": NAME}}],
  "io": {"inputs": {NAME: {"shape": [...], "dtype"}}, "outputs": {...}, "states": {...}},
  "generation": {"max_new_tokens": int, "stop_token_ids": [...]}
}
Shapes use integers, or strings for flexible dimensions ("T" tokens in this call, "P" tokens
already in the cache). Python's `validate` and Swift's decoder both check this schema.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import tasks
from .errors import MlxLcError

FORMAT, VERSION = "mlx-lc-manifest", 1
_SENTINEL = "\u2063MLXLCINPUT\u2063"  # invisible separator, never in real input


def title(comp: tasks.Composition) -> str:
    """What the Shortcut shows: "Summary in Spanish" for the paper's preset, else the task names."""
    prim = {"summarize": "Summary", "reply": "Reply"}.get(comp.primary.name)
    sec = comp.secondary
    if prim is None or len(comp.steps) != 2 or not sec.family:
        return ", then ".join(t.name.replace("-", " ").replace("_", " ") for t in comp.steps).capitalize()
    if sec.family == "trans":
        return f"{prim} in {tasks.LANGUAGES[sec.name]}"
    return f"{prim}, {'paraphrased' if sec.name == 'paraphrase' else sec.name}"


def prompt_parts(tokenizer, task: tasks.Task | tasks.Composition) -> dict:
    """Split the rendered prompt around the input: prompt(text) == prefix + text.strip() + suffix."""
    rendered = tasks.format_prompt(tokenizer, task, _SENTINEL)
    prefix, sep, suffix = rendered.partition(_SENTINEL)
    if not sep:
        raise MlxLcError("the chat template dropped the user text; cannot build a prompt template")
    return {"prefix": prefix, "suffix": suffix}


def tokenizer_info(tokenizer, files: list[str]) -> dict:
    tok = getattr(tokenizer, "_tokenizer", tokenizer)
    kind = "sentencepiece" if any(f.endswith(".model") for f in files) else "bpe-bytelevel"
    ids = tok.encode("a")
    bos = getattr(tok, "bos_token_id", None)
    eos = sorted(getattr(tokenizer, "eos_token_ids", None) or {tok.eos_token_id})
    return {"files": files, "kind": kind, "bos_token_id": bos, "eos_token_ids": eos,
            "pad_token_id": getattr(tok, "pad_token_id", None),
            "add_bos": bool(bos is not None and ids and ids[0] == bos)}


def build(tokenizer, compositions: dict[str, list[str] | str], model: dict, io: dict,
          functions: dict[str, dict[str, str]], package: str, tokenizer_files: list[str],
          max_new_tokens: int = 128) -> dict:
    """compositions: composition name -> task name (e.g. {"sum_es": "summarize+es"})."""
    comps = []
    for name, task_name in compositions.items():
        comp = tasks.get(task_name)
        if not isinstance(comp, tasks.Composition):
            raise MlxLcError(f"composition {name!r} must name a primary+secondary task, got {task_name!r}")
        comps.append({"name": name, "task": comp.name, "title": title(comp), "primary": comp.primary.name,
                      "secondary": comp.secondary.name, "instruction": comp.instruction,
                      "prompt": prompt_parts(tokenizer, comp), "functions": functions[name]})
    tok = tokenizer_info(tokenizer, tokenizer_files)
    return {"format": FORMAT, "version": VERSION, "package": package, "model": model, "tokenizer": tok,
            "compositions": comps, "io": io,
            "generation": {"max_new_tokens": max_new_tokens, "stop_token_ids": tok["eos_token_ids"]}}


def validate(manifest: dict) -> None:
    for key in ("format", "version", "package", "model", "tokenizer", "compositions", "io", "generation"):
        if key not in manifest:
            raise MlxLcError(f"manifest lacks {key!r}")
    if manifest["format"] != FORMAT or manifest["version"] != VERSION:
        raise MlxLcError(f"unsupported manifest {manifest['format']} v{manifest['version']}")
    names = [c["name"] for c in manifest["compositions"]]
    if len(set(names)) != len(names) or not names:
        raise MlxLcError(f"manifest compositions must be unique and non-empty: {names}")


def write(manifest: dict, path: str | Path) -> None:
    validate(manifest)
    Path(path).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MlxLcError(f"missing manifest: {path}")
    manifest = json.loads(path.read_text())
    validate(manifest)
    return manifest
