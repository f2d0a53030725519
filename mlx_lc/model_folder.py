"""A model folder (a hub id or a local folder): resolve it to a local path, check it, load it,
save one, and the id artifacts record for it. Every place that reads or writes a model folder goes
through here, so the checks and the one-line errors are the same everywhere.

The checks run before anything loads a folder: one line for what is wrong, and no code from it runs.
mlx-lm and transformers import Python files a folder names (config.json `model_file`, `auto_map`),
and transformers asks "[y/N]" on stdin first, so `yes | mlx-lc ...` ran them. Every model and
tokenizer load goes through `resolve` (or `check`), which refuses such a folder outright; the loads
also pass trust_remote_code=False, so nothing depends on the answer to a prompt. The rest of the
checks turn what used to fail deep inside a loader (a truncated safetensors file, a config.json
that is a list, a string where a size belongs) into a sentence that names the file.

mlx_lm and huggingface_hub are imported inside the functions that use them, not here: they cost
about 1.1 s (transformers) and 0.05 s (huggingface_hub.utils) to 0.26 s (snapshot_download, the
hub's HTTP client), and `mlx-lc --help` imports this module through the commands.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

from . import tasks
from .errors import MlxLcError
from .io import atomic_dir, write_json

# Passed to every tokenizer load: refuse remote code explicitly, never prompt for it.
NO_REMOTE_CODE = {"trust_remote_code": False}

# Sizes that must be positive integers where present (a float or a string here fails deep in a model class).
CONFIG_INTS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
               "intermediate_size", "vocab_size", "max_position_embeddings", "head_dim")
CONFIG_NUMBERS = ("rms_norm_eps", "rope_theta", "layer_norm_eps")
TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
GENERATION_INTS = ("max_length", "max_new_tokens", "min_length", "top_k", "num_beams")
GENERATION_NUMBERS = ("temperature", "top_p", "min_p", "repetition_penalty")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tekken.json")
TOKENIZER_GLOBS = ("*.model", "*.tiktoken")  # sentencepiece (tokenizer.model, spiece.model), tiktoken
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Bytes per element of each safetensors dtype, to check a header's offsets against its shapes.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
               "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}
MAX_HEADER = 100 << 20  # safetensors caps its JSON header at 100 MB


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _is_ids(v) -> bool:
    return v is None or _is_int(v) or (isinstance(v, list) and all(_is_int(x) for x in v))


def read_json(path: Path, name: str) -> dict | None:
    """A JSON object file of the folder, or None when it is absent."""
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise MlxLcError(f"model {name}: {path.name} cannot be read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise MlxLcError(f"model {name}: {path.name} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise MlxLcError(f"model {name}: {path.name} is not valid JSON "
                         f"({e.msg}, line {e.lineno} column {e.colno})") from None
    if not isinstance(obj, dict):
        raise MlxLcError(f"model {name}: {path.name} must hold a JSON object, got {type(obj).__name__}")
    return obj


def _code_file(ref) -> str:
    """The Python file an auto_map entry points at: "tokenization_x.XTokenizer" -> tokenization_x.py
    ("repo--module.Class" names a module of another repo)."""
    refs = [r for r in (ref if isinstance(ref, (list, tuple)) else [ref]) if isinstance(r, str)]
    if not refs:
        return repr(ref)
    module = refs[0].split("--")[-1].rsplit(".", 1)[0]
    return f"{module}.py"


def refuse_custom_code(config: dict | None, tok_config: dict | None, name: str) -> None:
    """Custom code a loader would import (or prompt for) is refused before any loader sees the folder."""
    refuse = "mlx-lc does not run code from model folders"
    if config is not None and config.get("model_file") is not None:
        raise MlxLcError(f"model {name}: config.json 'model_file' names custom code ({config['model_file']}); {refuse}")
    for file, cfg, keys in (("tokenizer_config.json", tok_config, None), ("config.json", config, ("AutoTokenizer",))):
        auto_map = (cfg or {}).get("auto_map")
        if auto_map is None:
            continue
        if not isinstance(auto_map, dict):
            raise MlxLcError(f"model {name}: {file} 'auto_map' must be an object, got {type(auto_map).__name__}")
        for key, ref in auto_map.items():
            if keys is None or key in keys:
                raise MlxLcError(f"model {name}: {file} auto_map '{key}' names custom code ({_code_file(ref)}); {refuse}")


def _check_types(obj: dict, file: str, name: str, ints=(), numbers=(), ids=(), least: int = 1) -> None:
    """`ints` are at least `least` where present; a per-layer list of them is fine too (some
    architectures give one size per layer)."""
    for key in ints:
        v = obj.get(key)
        if v is not None and not all(_is_int(x) and x >= least for x in (v if isinstance(v, list) else [v])):
            kind = "a positive integer" if least == 1 else f"an integer >= {least}"
            raise MlxLcError(f"model {name}: {file} '{key}' must be {kind}, got {v!r}")
    for key in numbers:
        v = obj.get(key)
        if v is not None and not _is_number(v):
            raise MlxLcError(f"model {name}: {file} '{key}' must be a number, got {v!r}")
    for key in ids:
        if not _is_ids(obj.get(key)):
            raise MlxLcError(f"model {name}: {file} '{key}' must be a token id or a list of them, got {obj[key]!r}")


def check_config(config: dict, name: str) -> None:
    """config.json: the types mlx-lm's model classes assume (nested text_config too)."""
    if not isinstance(config.get("model_type"), str):
        got = "none" if "model_type" not in config else repr(config["model_type"])
        raise MlxLcError(f"model {name}: config.json 'model_type' must be a string naming the architecture, got {got}")
    for cfg in (config, config.get("text_config")):
        if not isinstance(cfg, dict):
            continue
        _check_types(cfg, "config.json", name, CONFIG_INTS, CONFIG_NUMBERS, TOKEN_IDS)
        scaling = cfg.get("rope_scaling")
        if scaling is not None and not isinstance(scaling, dict):
            raise MlxLcError(f"model {name}: config.json 'rope_scaling' must be an object, got {scaling!r}")
        factor = (scaling or {}).get("factor")
        if factor is not None and not (_is_number(factor) and factor > 0):
            raise MlxLcError(f"model {name}: config.json rope_scaling 'factor' must be a positive number, got {factor!r}")
    for key in ("quantization", "quantization_config"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise MlxLcError(f"model {name}: config.json '{key}' must be an object, got {config[key]!r}")
    _check_types(config.get("quantization") or {}, "config.json quantization", name, ("group_size", "bits"))


def check_tokenizer(folder: Path, name: str, tok_config: dict | None) -> None:
    """Some tokenizer file, tokenizer.json an object, tokenizer_config.json's fields of the right kind."""
    if not any((folder / f).is_file() for f in TOKENIZER_FILES) and not any(any(folder.glob(g)) for g in TOKENIZER_GLOBS):
        raise MlxLcError(f"model {name}: no tokenizer in {folder} (tokenizer.json, tokenizer.model or vocab.json)")
    if (folder / "tokenizer.json").is_file():
        read_json(folder / "tokenizer.json", name)
    if tok_config is None:
        return
    for key in ("tokenizer_class",):
        if tok_config.get(key) is not None and not isinstance(tok_config[key], str):
            raise MlxLcError(f"model {name}: tokenizer_config.json '{key}' must be a string, got {tok_config[key]!r}")
    template = tok_config.get("chat_template")
    if template is not None and not isinstance(template, (str, list)):
        raise MlxLcError(f"model {name}: tokenizer_config.json 'chat_template' must be a string, got {template!r}")
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        v = tok_config.get(key)
        if v is not None and not isinstance(v, (str, dict)):
            raise MlxLcError(f"model {name}: tokenizer_config.json '{key}' must be a string, got {v!r}")
    if tok_config.get("added_tokens_decoder") is not None and not isinstance(tok_config["added_tokens_decoder"], dict):
        raise MlxLcError(f"model {name}: tokenizer_config.json 'added_tokens_decoder' must be an object")
    v = tok_config.get("model_max_length")
    if v is not None and not _is_number(v):
        raise MlxLcError(f"model {name}: tokenizer_config.json 'model_max_length' must be a number, got {v!r}")


def check_safetensors(path: Path, name: str) -> None:
    """Header readable, every tensor's bytes inside the file and the size its shape needs
    (a truncated download otherwise fails in mx.load as a bare "[load_safetensors] ..." or crashes)."""
    bad = f"model {name}: {path.name} is not a readable safetensors file"
    try:  # a hub cache's dangling link (an interrupted download) fails here too
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise MlxLcError(f"{bad} ({size} bytes)")
            n = struct.unpack("<Q", head)[0]
            if n > min(MAX_HEADER, size - 8):
                raise MlxLcError(f"{bad} (header of {n} bytes in a file of {size}: truncated or not safetensors)")
            header = json.loads(f.read(n).decode("utf-8"))
    except OSError as e:
        raise MlxLcError(f"model {name}: {path.name} cannot be read ({e.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MlxLcError(f"{bad} (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise MlxLcError(f"{bad} (its header is not a JSON object)")
    data = size - 8 - n
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            begin, end = info["data_offsets"]
            shape, dtype = info["shape"], info["dtype"]
            ok = _is_int(begin) and _is_int(end) and 0 <= begin <= end and all(_is_int(d) and d >= 0 for d in shape)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise MlxLcError(f"{bad} (tensor {key!r} has a malformed header entry)")
        if end > data:
            raise MlxLcError(f"model {name}: {path.name} is truncated: tensor {key!r} ends at byte {end} "
                             f"of the data, the file holds {data}")
        if dtype in DTYPE_BYTES and math.prod(shape) * DTYPE_BYTES[dtype] != end - begin:
            raise MlxLcError(f"{bad} (tensor {key!r}: {end - begin} bytes for shape {shape} of {dtype})")


def check_weights(folder: Path, name: str) -> None:
    """The files mlx-lm loads (model*.safetensors) are there and whole; pickles are never loaded."""
    files = sorted(folder.glob("model*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
        if pickles:
            raise MlxLcError(f"model {name}: only PyTorch pickle weights ({', '.join(pickles[:3])}); mlx-lc loads "
                             "safetensors only (pickles can run code), so model*.safetensors files are needed")
        raise MlxLcError(f"model {name}: no model*.safetensors weights in {folder}")
    for path in files:
        check_safetensors(path, name)


def check_json_files(folder: Path, name: str, need_config: bool = True) -> tuple[dict | None, dict | None]:
    """The JSON files of the folder parse, hold no custom code and have sane types -> (config, tokenizer config)."""
    tok_config = read_json(folder / "tokenizer_config.json", name)
    config = read_json(folder / "config.json", name)
    refuse_custom_code(config, tok_config, name)
    if need_config and config is None:
        raise MlxLcError(f"model {name}: no config.json in {folder}")
    gen_config = read_json(folder / "generation_config.json", name)
    if gen_config is not None:
        # top_k 0 (off) and min_length 0 are ordinary here
        _check_types(gen_config, "generation_config.json", name, GENERATION_INTS, GENERATION_NUMBERS, TOKEN_IDS, least=0)
    if config is not None and need_config:
        check_config(config, name)
    return config, tok_config


def check(folder: str | Path, name: str | None = None, weights: bool = True) -> dict:
    """Every check above on a local model folder -> its config.json. `weights=False` for a
    tokenizer-only folder."""
    folder = Path(folder)
    name = name or str(folder)
    config, tok_config = check_json_files(folder, name, need_config=weights)
    check_tokenizer(folder, name, tok_config)
    if weights:
        check_weights(folder, name)
    return config or {}


def context_length(config: dict) -> int | None:
    """Positions the model was built for: max_position_embeddings, stretched by rope_scaling's factor
    (from original_max_position_embeddings when given: Llama 3.1's max is already the stretched one)."""
    text = config.get("text_config")
    if config.get("max_position_embeddings") is None and isinstance(text, dict):
        config = text
    n = config.get("max_position_embeddings")
    if not _is_int(n) or n < 1:
        return None
    scaling = config.get("rope_scaling") or {}
    factor = scaling.get("factor") if isinstance(scaling, dict) else None
    if not (_is_number(factor) and factor > 1):
        return n
    original = scaling.get("original_max_position_embeddings")
    return max(n, int(original * factor)) if _is_int(original) else int(n * factor)


def model_context(model) -> int | None:
    """context_length of a loaded mlx-lm model (from the args its config built), None if unknown."""
    args = getattr(model, "args", None)
    try:
        fields = dict(vars(args))
    except TypeError:
        return None
    return context_length(fields)


def check_fits(context: int | None, prompt_tokens: int, max_tokens: int, what: str = "the prompt") -> None:
    """Refuse a prompt that cannot fit the model's context with the tokens asked for: past the
    context a model's output is garbage, and a long prompt on CPU takes minutes to get there."""
    if context is not None and prompt_tokens + max_tokens > context:
        raise MlxLcError(f"{what} is {prompt_tokens} tokens and max tokens is {max_tokens}: {prompt_tokens + max_tokens} "
                         f"tokens, more than the model's context of {context}")


def in_hf_cache(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache  # here: see the docstring

        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except Exception:  # not a valid repo id, or no cache: either way not cached
        return False


def check_model_name(model: str) -> None:
    """Refuse, in one line, a model that is neither a folder nor possibly a hub repo id.
    Without this a typo'd folder reaches the hub client and fails as "Repo id must use
    alphanumeric chars" or a network error, which hides that the folder does not exist."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id  # here: see the docstring

    path = Path(model).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise MlxLcError(f"model not found: {model} is a file, not a model folder")
    if model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1 or model.endswith("/"):
        raise MlxLcError(f"model not found: {model} (no such folder)")
    try:
        validate_repo_id(model)
    except HFValidationError:
        raise MlxLcError(f"model not found: {model} (no such folder, and not a Hugging Face repo id)") from None


def resolve(model: str, download: bool = True, json_only: bool = False) -> Path:
    """A local folder or hub id -> a checked local folder. A hub id is fetched (or, with
    download=False, only looked up in the cache) as mlx-lm fetches it, then checked the same way.
    json_only: check the JSON files only (export reads config.json long before it loads weights)."""
    check_model_name(model)
    local = Path(model).expanduser()
    if local.is_dir():
        check_json_files(local, model) if json_only else check(local, model)
        return local
    from huggingface_hub import snapshot_download  # here, as mlx_lm: see the docstring
    from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS

    try:
        path = Path(snapshot_download(model, allow_patterns=DEFAULT_ALLOW_PATTERNS, local_files_only=not download))
    except Exception as e:  # hub and network errors: one line is enough for a user
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not download:
            raise MlxLcError(f"model not found: {model} (no such folder, and not in the Hugging Face cache)") from None
        if in_hf_cache(model):
            raise MlxLcError(f"cannot load model {model!r}: {msg}") from None
        raise MlxLcError(f"model not found: {model} (no such folder, and not in the Hugging Face cache; "
                         f"download failed: {msg})") from None
    check_json_files(path, model) if json_only else check(path, model)
    return path


def model_id(model: str) -> str:
    """The base model as artifacts record it and a resumed run compares it: a local folder by its
    absolute path (so `m` and `./m` match), anything else (a hub id) as given."""
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def read_config(folder: Path) -> dict:
    """config.json of a resolved folder as mlx-lm reads it (generation_config's eos_token_id merged in)."""
    from mlx_lm.utils import load_config

    return load_config(Path(folder))


def load(model: str, lazy: bool = False):
    """mlx_lm.load of a checked folder (`resolve`: one-line errors, no code from the folder runs),
    with remote code refused explicitly for the model and its tokenizer -> (model, tokenizer)."""
    import mlx_lm

    path = resolve(model)
    try:
        m, tok = mlx_lm.load(str(path), lazy=lazy, tokenizer_config=dict(NO_REMOTE_CODE), trust_remote_code=False)
    except Exception as e:  # what the checks cannot see (an unknown architecture, missing weights)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MlxLcError(f"cannot load model {model!r}: {msg}") from None
    try:  # a broken chat template: now, not after minutes of training or at the first eval row
        tasks.wrap_message(tok, "hello")
    except MlxLcError as e:
        raise MlxLcError(f"model {model}: {e}") from None
    return m, tok


def save_weights(folder: str | Path, model) -> None:
    """The model's weights as mlx_lm.load reads them (model*.safetensors and their index)."""
    from mlx_lm.utils import save_model

    save_model(Path(folder), model)


def save_files(folder: Path, model, tokenizer, config: dict, extra: dict | None = None,
               source: Path | None = None) -> None:
    """Weights, config.json, tokenizer files, `extra` JSON files ({name: object}) and the source
    folder's generation_config.json, into an existing `folder` (a caller's temporary one)."""
    from mlx_lm.utils import save_config

    save_weights(folder, model)
    save_config(dict(config), folder / "config.json")
    tokenizer.save_pretrained(str(folder))
    if source is not None and (Path(source) / "generation_config.json").is_file():
        shutil.copy(Path(source) / "generation_config.json", folder)
    for name, obj in (extra or {}).items():
        write_json(folder / name, obj)


def save(out: str | Path, model, tokenizer, config: dict, extra: dict | None = None,
         source: Path | None = None) -> Path:
    """An mlx_lm.load-able model folder at `out` (see save_files), written to a temporary folder
    and renamed into place."""
    with atomic_dir(out, marker="config.json", kind="model folder") as tmp:
        save_files(tmp, model, tokenizer, config, extra, source)
    return Path(out)
