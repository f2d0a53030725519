"""Load a base model with merged (and calibrated) adapters, and generate in one pass.

Mirrors mlx-lm: `load(...) -> (model, tokenizer)` and `generate(model, tokenizer, prompt, ...)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from . import adapters as adapters_io
from . import calibration as calib_io
from . import model_folder
from . import tasks
from .adapters import LoRA
from .errors import MlxLcError
from .merge import MergeConfig, merge
from .training.rows import encode_prompt


def recorded_task(adapter_paths: Sequence[str | Path] = (), calibration: str | Path | None = None) -> str | None:
    """The task or composition the adapters (or the calibration) were trained for, as their configs
    record it (mlx-lc writes the training data's task there); None when they record none, as PEFT
    adapters and hand-made ones do. Two single-task adapters record their composition, primary first."""
    if calibration is not None:
        found = calib_io.read_config(calibration).get("train", {})
        found = found.get("tasks") if isinstance(found, dict) else None
        return found[0] if isinstance(found, list) and len(found) == 1 and isinstance(found[0], str) else None
    names = [adapters_io.recorded_task(p) for p in adapter_paths]
    if not names or None in names:
        return None
    if len(names) == 1:
        return names[0]
    joined = "+".join(names)
    return joined if tasks.is_composition(joined) else None


def calibration_inputs(model: str | None, adapter_paths: Sequence[str | Path],
                       calibration: str | Path) -> tuple[str, list[str]]:
    """The base model and adapters for `calibration`: the ones given, else the ones its config
    records. A given model that contradicts a recorded one still there is refused (the adapters
    are checked by hash when they load)."""
    cfg = calib_io.read_config(calibration)
    where = Path(calibration) / calib_io.CONFIG
    recorded = cfg.get("base_model")
    if model is None:
        if not isinstance(recorded, str) or not recorded:
            raise MlxLcError(f"model not given, and {where} records no base model", param="model")
        model = recorded
    elif isinstance(recorded, str) and _comparable(model, recorded) and _model_key(model) != _model_key(recorded):
        raise MlxLcError(f"model {model} is not the base model {calibration} was trained on ({recorded}); "
                         "leave it out to use that one", param="model")
    if adapter_paths:
        return model, [str(p) for p in adapter_paths]
    paths = [s.get("path") for s in cfg.get("sources", [])]
    if len(paths) < 2 or not all(isinstance(p, str) and p for p in paths):
        raise MlxLcError(f"adapters not given, and {where} does not record their folders: give each one",
                         param="adapters")
    missing = [p for p in paths if not Path(p).is_dir()]
    if missing:
        raise MlxLcError(f"adapters not given, and the adapter {missing[0]} recorded in {where} is not there: "
                         "give each one", param="adapters")
    return model, paths


def _model_key(model: str) -> str:
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def _comparable(given: str, recorded: str) -> bool:
    """Two folders that exist, or two hub ids, name comparable things; a folder and a hub id do
    not (the folder may be that repo's snapshot), nor does a recorded folder that has since moved."""
    here = lambda m: Path(m).expanduser().exists()  # noqa: E731
    return here(given) == here(recorded) and (here(recorded) or not recorded.startswith((".", "/", "~")))


def resolve_task(task: str | None, adapter_paths: Sequence[str | Path] = (),
                 calibration: str | Path | None = None) -> str | None:
    """The task to prompt with: the one given, else the one recorded. A calibration is trained for
    one composition, so a different task is refused; adapters with no task give raw text, which
    an adapter trained on instructions answers with nothing, so that is refused too."""
    recorded = recorded_task(adapter_paths, calibration)
    if task is not None:
        tasks.get(task)  # an unknown name fails here, before the model loads
        if calibration is not None and recorded is not None and task != recorded:
            raise MlxLcError(f"task {task} does not match the calibration {calibration}, trained for {recorded}; "
                             "leave it out to use that one", param="task")
        return task
    if adapter_paths and recorded is None:
        raise MlxLcError("task not given, and the adapters record none to prompt with (e.g. summarize+es)",
                         param="task")
    return recorded


def check_sampling(temp: float = 0.0, top_p: float = 0.0, min_p: float = 0.0, top_k: int = 0,
                   max_tokens: int = 1) -> None:
    """mlx-lm accepts some nonsense silently (a negative temperature, top-p 2) and fails on other
    (min-p -1) deep inside; refuse all of it before a model is loaded. 0 turns a filter off."""
    checks = (("max_tokens", max_tokens, max_tokens >= 1, "at least 1"),
              ("temp", temp, temp >= 0, ">= 0 (0: greedy)"), ("top_p", top_p, 0 <= top_p <= 1, "in [0, 1] (0: off)"),
              ("min_p", min_p, 0 <= min_p <= 1, "in [0, 1] (0: off)"), ("top_k", top_k, top_k >= 0, ">= 0 (0: off)"))
    for name, value, ok, want in checks:
        if not ok:  # NaN fails every comparison, so it lands here too
            raise MlxLcError(f"{name} must be {want}, got {value}", param=name)


class LoRALayer(nn.Module):
    """A linear layer with a frozen LoRA update, for generation: y = linear(x) + (x @ a) @ (scale * b).

    mlx-lm's LoRALinear multiplies by the scale (and casts) on every call; folding the scale into b
    once saves those kernels in every adapted layer at every token, which a CPU decode of a small
    model feels (see BENCHMARKS.md). fuse() gives the same fused linear as mlx-lm's.
    """

    def __init__(self, linear: nn.Module, a: mx.array, b: mx.array, scale: float):
        super().__init__()
        self.linear = linear
        self.lora_a, self.lora_b = a, scale * b

    def __call__(self, x):
        z = (x @ self.lora_a) @ self.lora_b
        return self.linear(x) + (z if z.dtype == x.dtype else z.astype(x.dtype))

    def fuse(self, dequantize: bool = False) -> nn.Module:
        from mlx_lm.tuner.lora import LoRALinear  # here: mlx_lm costs ~1.1 s (see stream)

        layer = LoRALinear.from_base(self.linear, r=self.lora_a.shape[1], scale=1.0)
        layer.lora_a, layer.lora_b = self.lora_a, self.lora_b
        return layer.fuse(dequantize=dequantize)


def apply_lora(model: nn.Module, lora: LoRA) -> nn.Module:
    """Replace each target linear with a LoRALayer holding the adapter's factors (in fp32)."""
    modules = dict(model.named_modules())
    layers = []
    for path, (a, b) in lora.factors.items():
        base = modules[path]
        base = getattr(base, "linear", base)  # replace an adapter already there
        layers.append((path, LoRALayer(base, a.astype(mx.float32), b.astype(mx.float32), lora.scale)))
    model.update_modules(tree_unflatten(layers))
    mx.eval([layer.lora_b for _, layer in layers])  # scale * b now, not inside the first token
    return model


def remove_adapters(model: nn.Module) -> nn.Module:
    """Put the base linears back (undoes apply_lora and calibration.apply)."""
    layers = [(p, m.linear) for p, m in model.named_modules() if hasattr(m, "lora_a") and hasattr(m, "linear")]
    if layers:
        model.update_modules(tree_unflatten(layers))
    if "calibration" in model:
        del model["calibration"]
    return model


def compose(model: nn.Module, adapter_paths: Sequence[str | Path], merge_cfg: MergeConfig | None = None,
            calibration: str | Path | None = None, model_name: str | None = None) -> LoRA | None:
    """Attach adapters to a loaded model: one as is, several merged, optionally calibrated
    (the calibration folded into the merge, for generation; training uses calibration.apply).

    Returns the merged adapter (for a calibration: the merge underneath it).
    """
    if not adapter_paths:
        if calibration:
            raise MlxLcError("adapters not given: a calibration needs the ones it was trained on", param="adapters")
        return None
    loras = adapters_io.load_for(model, adapter_paths, model_name)
    if calibration is not None:
        _, merged, calib = calib_io.merge_for(calibration, loras)
        # Folded: the same function as calibration.apply's layers, but a plain LoRA of rank r
        # (lc scale), r+1 (lc bias) or r+k (lc++), with none of the per-call calibration ops.
        apply_lora(model, calib_io.fold(merged, calib))
        return merged
    merged = merge(loras, merge_cfg or MergeConfig()) if len(loras) > 1 else loras[0]
    apply_lora(model, merged)
    return merged


def load(model: str, adapters: Sequence[str | Path] = (), merge: str = "linear",
         weights: Sequence[float] | None = None, calibration: str | Path | None = None,
         density: float = 0.5, rank: int | None = None, seed: int = 0):
    """Load a base model (hub id or folder) with single-task adapters merged, and calibrated.

    >>> model, tokenizer = mlx_lc.load("Qwen/Qwen2.5-0.5B-Instruct", adapters=["sum", "es"],
    ...                                calibration="sum_es_lc")
    """
    m, tok = model_folder.load(model)
    cfg = MergeConfig(merge, list(weights) if weights else None, density, rank, seed)
    compose(m, list(adapters), cfg, calibration, model)
    m.eval()
    return m, tok


def stream(model, tokenizer, text: str, task: str | None = None, max_tokens: int = 256,
           temp: float = 0.0, top_p: float = 0.0, min_p: float = 0.0, top_k: int = 0,
           seed: int | None = None) -> Iterator[str]:
    """Yield text segments as they are generated. `task` names a single task or a composition."""
    from mlx_lm import stream_generate  # here: mlx_lm costs ~1.1 s, which `mlx-lc --help` does not need
    from mlx_lm.sample_utils import make_sampler

    check_sampling(temp, top_p, min_p, top_k, max_tokens)
    prompt = encode_prompt(tokenizer, tasks.format_prompt(tokenizer, tasks.get(task) if task else None, text))
    model_folder.check_fits(model_folder.model_context(model), len(prompt), max_tokens)
    if seed is not None:
        mx.random.seed(seed)
    sampler = make_sampler(temp=temp, top_p=top_p, min_p=min_p, top_k=top_k)
    for response in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens, sampler=sampler):
        yield response.text


def generate(model, tokenizer, text: str, task: str | None = None, **kwargs) -> str:
    """Generate a complete response in one pass (see `stream` for the options)."""
    return "".join(stream(model, tokenizer, text, task, **kwargs))


def multi_step(model, tokenizer, loras: Sequence[LoRA], text: str, composition: str, **kwargs) -> list[str]:
    """The multi-step baseline for one input: each task of the composition with its adapter, in
    order, on the output of the one before. -> every step's output (the last is the answer)."""
    comp = tasks.get(composition)
    if not isinstance(comp, tasks.Composition) or len(comp.steps) != len(loras):
        raise MlxLcError(f"multi-step needs a composition of {len(loras)} tasks (one per adapter, in order), "
                         f"got {composition!r}")
    outputs, current = [], text
    for task, lora in zip(comp.steps, loras):
        apply_lora(model, lora)
        current = generate(model, tokenizer, current, task.name, **kwargs) if current.strip() else ""
        outputs.append(current)
    remove_adapters(model)
    return outputs
