"""Export a model and its compositions into one folder: Model.mlpackage, the tokenizer files,
manifest.json (the contract the iOS app reads) and export.json (the resolved configuration,
sizes and, with verify, the measured agreement with MLX; it also marks the folder as an export).
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from .. import manifest as manifest_io
from .. import model_folder
from ..errors import MlxLcError
from ..outputs import atomic_dir, check_out, check_out_dir
from . import coreml, quantize
from .compositions import CompositionSpec, Resolved, resolve
from .graph import Graph, ModelSpec, TensorStore, check_context, check_weights, spec_from_config
from .weights import SafetensorsWeights

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json")
CONFIG_FILES = ("config.json", "generation_config.json")  # swift-transformers reads these beside a model
PACKAGE = "Model.mlpackage"  # inside --out; manifest.json names it


@dataclass
class ExportConfig:
    model: str  # hub id or folder (a fused model folder for --fused)
    out: str  # a folder: PACKAGE, tokenizer files, manifest.json, export.json
    compositions: list[CompositionSpec] = field(default_factory=list)
    quantize: str = "int4"
    context: int = 512
    max_new_tokens: int = 128
    verify: bool = False
    verify_steps: int = 16
    fused: bool = False  # the model folder already holds the update; compositions carry none


def model_dir(model: str) -> Path:
    """The local folder of `model`, its JSON files checked (export reads only the hub cache; a miss
    is a missing model). load_model's model_folder.load checks the rest."""
    return model_folder.resolve(model, download=False, json_only=True)


def read_spec(model: str) -> tuple[dict, ModelSpec]:
    """The model's config and ModelSpec, read before any weights (unsupported models fail fast)."""
    path = model_dir(model)  # config.json there and sane, or one line already
    config = model_folder.read_config(path)
    return config, spec_from_config(config, model)


def load_model(model: str):
    """(mlx model, tokenizer, config, ModelSpec, weights) with one-line errors.

    The mlx model is loaded lazily and export never evaluates it: its layers' shapes check the
    adapters. `weights` reads each base tensor from the safetensors files, in float32, when asked
    (mlx-quantized checkpoints dequantized per tensor; Core ML's quantization is applied after)."""
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.utils import dequantize_model

    config, spec = read_spec(model)
    m, tok = model_folder.load(model, lazy=True)
    quantized = {name: (mod.group_size, mod.bits, mod.mode) for name, mod in m.named_modules()
                 if isinstance(mod, (nn.QuantizedLinear, nn.QuantizedEmbedding))}
    if quantized:
        m = dequantize_model(m)  # lazy as well: float layers, for the shapes
    shapes = {k: tuple(v.shape) for k, v in tree_flatten(m.parameters())}
    check_weights(spec, shapes, model)
    return m, tok, config, spec, SafetensorsWeights(model_dir(model), shapes, quantized, model)


def check_out_name(out: str | Path) -> None:
    """`out` is the folder that holds the package: one naming the package itself is the old form."""
    out = Path(out)
    if out.suffix == ".mlpackage":
        raise MlxLcError(f"out is a folder that will hold {PACKAGE}, the tokenizer files and manifest.json: "
                         f"use {out.with_suffix('')}", param="out")


@contextlib.contextmanager
def temp_files_in(folder: Path):
    """Point Python's temporary files (coremltools writes its intermediate packages there) into
    `folder`, inside our own temporary output: a killed export leaves nothing in the system's."""
    folder.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(folder, ignore_errors=True)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def export(cfg: ExportConfig, progress: bool = True) -> dict:
    """Write the package, tokenizer files, manifest.json and export.json; return the report."""
    from tqdm import tqdm

    out = Path(cfg.out)
    check_out_name(out)
    inputs = [cfg.model] + [p for c in cfg.compositions for p in [*c.adapters, c.calibration]]
    check_out_dir(out, kind="export")
    check_out(out, inputs)
    if cfg.quantize not in quantize.MODES:
        raise MlxLcError(f"unknown quantization {cfg.quantize!r}; choose from {', '.join(quantize.MODES)}")
    if cfg.max_new_tokens < 1:  # it goes into the manifest; the app would generate nothing
        raise MlxLcError(f"max_new_tokens must be at least 1, got {cfg.max_new_tokens}", param="max_new_tokens")
    if not cfg.compositions:
        raise MlxLcError("nothing to export: the config holds no compositions")
    names = [c.name for c in cfg.compositions]
    if len(set(names)) != len(names):
        raise MlxLcError(f"composition names must be unique: {names}")
    coreml.import_coremltools()  # the install hint before any heavy work
    t0 = time.perf_counter()
    bar = partial(tqdm, disable=not progress, dynamic_ncols=True)

    check_context(read_spec(cfg.model)[1], cfg.context, cfg.model)
    model, tok, config, spec, weights = load_model(cfg.model)
    store = TensorStore()
    resolved: list[Resolved] = [resolve(c, model, store, cfg.model) for c in cfg.compositions]
    ids = [r.graph.name for r in resolved]
    if len(set(ids)) != len(ids):
        raise MlxLcError(f"composition names clash once made identifiers: {ids}")
    graph = Graph(spec, cfg.context, weights, store, [r.graph for r in resolved], cfg.model)

    src = model_dir(cfg.model)
    with atomic_dir(out, kind="export", inputs=inputs) as tmp, temp_files_in(tmp / ".tmp"):
        pkg = tmp / PACKAGE
        metadata = {
            "description": f"{spec.hf_architecture} with {len(resolved)} composition(s) exported by mlx-lc",
            "co.huggingface.exporters.name": cfg.model,
            "co.huggingface.exporters.task": "text-generation",
            "co.huggingface.exporters.architecture": spec.hf_architecture,
            "co.huggingface.exporters.framework": "mlx",
            "co.huggingface.exporters.precision": "float16",
            "co.mlx-lc.quantization": cfg.quantize,
            "co.mlx-lc.context_length": cfg.context,
            "co.mlx-lc.compositions": json.dumps({r.spec.name: coreml.function_names(r.graph) for r in resolved}),
        }
        qstats = coreml.write_package(graph, pkg, cfg.quantize, metadata, bar)
        files = []
        for name in TOKENIZER_FILES + CONFIG_FILES:
            if (src / name).is_file():
                shutil.copy(src / name, tmp / name)
                files.append(name)
        tok_files = [f for f in files if f in TOKENIZER_FILES]
        man = manifest_io.build(
            tok, {r.spec.name: r.graph.task for r in resolved},
            model={"architecture": spec.architecture, "vocab_size": spec.vocab_size, "hidden_size": spec.hidden_size,
                   "num_layers": spec.num_layers, "num_kv_heads": spec.num_kv_heads, "head_dim": spec.head_dim,
                   "context_length": cfg.context, "quantization": cfg.quantize},
            io=coreml.io_description(graph),
            functions={r.spec.name: coreml.function_names(r.graph) for r in resolved},
            package=PACKAGE, tokenizer_files=tok_files, max_new_tokens=cfg.max_new_tokens)
        manifest_io.validate(man)
        report = {
            "config": {**asdict(cfg), "compositions": [asdict(c) for c in cfg.compositions]},
            "package": str(out / PACKAGE), "package_bytes": dir_bytes(pkg), "base_params": graph.num_base_params(),
            "quantization": {"mode": cfg.quantize, **qstats},
            "compositions": {r.spec.name: {**r.graph.info, "task": r.graph.task,
                                           "functions": coreml.function_names(r.graph),
                                           "lowrank_bytes": store.nbytes(r.graph.tensor_keys())}
                             for r in resolved},
            "shared_lowrank_bytes": store.nbytes(store.tensors),
            "export_seconds": None,
        }
        report["bytes_per_param"] = report["package_bytes"] / report["base_params"]
        if cfg.verify:
            from .verify import verify_package

            del model, graph  # nothing of the float model stays for the check (it loads its own)
            gc.collect()
            report["verify"] = verify_package(pkg, resolved, cfg.model, steps=cfg.verify_steps, progress=progress,
                                              mode=cfg.quantize)
        report["export_seconds"] = round(time.perf_counter() - t0, 2)
        (tmp / "export.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        manifest_io.write(man, tmp / "manifest.json")
    return report


def read_export(folder: str | Path) -> tuple[ExportConfig, dict]:
    """The configuration and report an export wrote into `folder` (export.json), or one line."""
    folder = Path(folder)
    path = folder / "export.json"
    if not (folder / PACKAGE).is_dir() or not path.is_file():
        raise MlxLcError(f"{folder} is not an mlx-lc export folder (it needs {PACKAGE} and export.json)")
    try:
        report = json.loads(path.read_text())
        c = dict(report["config"])
        comps = [CompositionSpec(x["name"], x.get("task"), [Path(a) for a in x.get("adapters") or []],
                                 Path(x["calibration"]) if x.get("calibration") else None)
                 for x in c.pop("compositions")]
        cfg = ExportConfig(**{k: v for k, v in c.items() if k in ExportConfig.__dataclass_fields__}, compositions=comps)
    except (ValueError, KeyError, TypeError) as e:
        raise MlxLcError(f"{path} is not an mlx-lc export report ({type(e).__name__}: {e})") from None
    return cfg, report


def verify_export(folder: str | Path, steps: int | None = None, progress: bool = True) -> dict:
    """Check the package in an export folder against MLX, rebuilding the reference from the model and
    compositions export.json names; the result replaces export.json's "verify" and is returned."""
    from .verify import verify_package

    folder = Path(folder)
    cfg, report = read_export(folder)
    coreml.import_coremltools()
    model = load_model(cfg.model)[0]
    resolved = [resolve(c, model, TensorStore(), cfg.model) for c in cfg.compositions]
    report["verify"] = verify_package(folder / PACKAGE, resolved, cfg.model, steps=steps or cfg.verify_steps,
                                      progress=progress, mode=cfg.quantize)
    tmp = folder / "export.json.tmp"  # replaced in one rename: an interrupted verify keeps the old report
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    tmp.replace(folder / "export.json")
    return report
