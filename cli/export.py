"""`mlx-lc export coreml`: a model and its compositions as one stateful Core ML package."""

from __future__ import annotations

from pathlib import Path

import click

from mlx_lc.errors import MlxLcError

from . import main
from .paths import out_folder
from .tasks import from_store, store_option

QUANT_MODES = ("none", "int8", "int4")  # mlx_lc.export.quantize.MODES, without importing numpy work here


@main.group()
def export():
    """Export a model and its compositions for on-device use."""


def _kb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


def _export_folder(ctx, param, value):
    """--out: a folder (not NAME.mlpackage), new, empty or an earlier export; checked before any work."""
    # mlx_lc.export is imported in the functions here: it costs 35-60 ms (logging, the graph), which
    # `mlx-lc --help` does not need
    from mlx_lc.export.package import check_out_name

    if value is not None:
        check_out_name(value)
    return out_folder("export.json", "export")(ctx, param, value)


def composition_specs(model, adapters, calibration, fused, task, name, compositions):
    """(model to load, [CompositionSpec]) from the command's options; one line for each misuse."""
    from mlx_lc.export.compositions import CompositionSpec, parse

    single = bool(adapters or calibration or task or name)
    if task and not (model or adapters or calibration or fused or compositions):
        model, adapters, calibration = from_store(task, None)  # the store's composition: all of it
        adapters, calibration = [Path(a) for a in adapters], Path(calibration) if calibration else None
    if fused is not None:
        if model:
            raise MlxLcError("give --model or --fused (a fused model folder), not both")
        if adapters or calibration or compositions:
            raise MlxLcError("--fused already holds its update: it takes --task, not --adapter/--calibration/--composition")
        return str(fused), [CompositionSpec(name or task or fused.name, task)]
    if not model:
        raise MlxLcError("give --model (or --fused)")
    if compositions:
        if single:
            raise MlxLcError("use either --composition NAME[:TASK]=... or --adapter/--calibration/--task, not both")
        return model, [parse(c) for c in compositions]
    if not task and not calibration:
        raise MlxLcError("say which composition this is: --task summarize+es (or use --composition)")
    spec = CompositionSpec(name or task or calibration.name, task, [Path(a) for a in adapters], calibration)
    return model, [spec]


@export.command("coreml")
@click.option("--model", "-m", help="Base model: Hugging Face repo id or local folder.")
@click.option("--adapter", "-a", "adapters", multiple=True, type=click.Path(path_type=Path),
              help="Single-task LoRA folder; repeat for each task (merged as the calibration records, else linear).")
@click.option("--calibration", "-c", type=click.Path(path_type=Path), help="Calibration folder for the adapters.")
@click.option("--fused", type=click.Path(path_type=Path),
              help="A model folder with the composition already fused in (mlx-lc fuse); replaces --model.")
@click.option("--task", "-t", help="The composition's task, e.g. summarize+es (sets the prompt in the manifest); "
              "alone, a composition of the task store with its model, adapters and calibration.")
@click.option("--name", help="Composition name in the manifest and function names (default: the task).")
@click.option("--composition", "compositions", multiple=True, metavar="NAME[:TASK]=PATH[,PATH...]",
              help="A composition from adapter folders and at most one calibration folder; repeat to put "
                   "several in one package (base weights stored once).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), callback=_export_folder,
              help="Output folder: it will hold Model.mlpackage, the tokenizer files, manifest.json and export.json.")
@click.option("--quantize", "-q", type=click.Choice(QUANT_MODES), default="int4", show_default=True,
              help="Base weights: int8 per channel, int4 in blocks of 32, or float16.")
@click.option("--context", default=512, show_default=True, type=click.IntRange(min=2),
              help="KV cache length (prompt + generated tokens).")
@click.option("--max-new-tokens", default=128, show_default=True, help="Generation limit written to the manifest.")
@click.option("--verify", is_flag=True, help="Run the saved package in a numpy interpreter and compare with MLX "
              "(as `mlx-lc export verify`); exit non-zero when they disagree beyond float16 rounding.")
@click.option("--verify-steps", default=16, show_default=True, type=click.IntRange(min=1),
              help="Decode steps compared by --verify.")
@store_option
def coreml(model, adapters, calibration, fused, task, name, compositions, out, quantize, context, max_new_tokens,
           verify, verify_steps, store):
    """Export to a stateful Core ML package (iOS 18): prefill and decode functions per composition.

    \b
    mlx-lc export coreml -m Qwen/Qwen2.5-0.5B-Instruct -a a/summarize -a a/es -c c/sum_es \\
        -t summarize+es --out dist/sum_es --quantize int4 --verify
    mlx-lc export coreml -m Qwen/Qwen2.5-0.5B-Instruct --out dist/compose \\
        --composition sum_es:summarize+es=a/summarize,a/es,c/sum_es \\
        --composition sum_fr:summarize+fr=a/summarize,a/fr,c/sum_fr
    """
    from mlx_lc.export import ExportConfig
    from mlx_lc.export import export as run_export

    model_name, specs = composition_specs(model, adapters, calibration, fused, task, name, compositions)
    report = run_export(ExportConfig(model=model_name, out=str(out), compositions=specs, quantize=quantize,
                                     context=context, max_new_tokens=max_new_tokens, verify=verify,
                                     verify_steps=verify_steps, fused=fused is not None))
    click.echo(f"wrote {out}: Model.mlpackage ({_kb(report['package_bytes'])}, {report['bytes_per_param']:.2f} "
               f"bytes/param, {quantize}), tokenizer files and manifest.json, in {report['export_seconds']:.1f}s")
    for cname, info in report["compositions"].items():
        fns = info["functions"]
        click.echo(f"  {cname} ({info['task']}): {fns['prefill']}, {fns['decode']}  "
                   f"[{info.get('kind')}, low-rank {_kb(info['lowrank_bytes'])}]")
    verdict(report.get("verify") or {}, out)


def verdict(verify: dict, out, flag: str = "--verify") -> None:
    """Print the verify report per composition; exit non-zero (one line) when the package fails it."""
    from mlx_lc.export.verify import failures

    for cname, v in verify.items():
        q = v.get("quantization")
        click.echo(f"verify {cname}: max |logit diff| {v['max_abs_err']:.4g} ({100 * v['max_rel_err']:.3g}% of "
                   f"max |logit|, tolerance {100 * v['tolerance']:.3g}%), greedy tokens agree "
                   f"{v['greedy_agree']}/{v['greedy_total']}" + ("" if v["finite"] else "  NON-FINITE OUTPUT")
                   + (f"; against the float model (quantization, information only): {100 * q['max_rel_err']:.3g}%, "
                      f"{q['greedy_agree']}/{q['greedy_total']}" if q else ""))
    # The report above stays (and in export.json); a script running `export --verify && ship` stops here.
    broken = [c for c, v in verify.items() if not v["finite"]]
    if broken:
        raise MlxLcError(f"{flag}: the package gives non-finite logits (NaN or Inf) for {', '.join(broken)}; "
                         f"do not use {out} (report in export.json beside it): the update overflows float16 "
                         "somewhere, check the adapters' values")
    bad = failures(verify)
    if bad:
        raise MlxLcError(f"{flag}: the package disagrees with MLX on its own weights: {'; '.join(bad)}; "
                         f"do not use {out} (report in export.json beside it)")


@export.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Decode steps compared (default: the export's --verify-steps).")
def verify_cmd(folder, steps):
    """Check an export folder's package against MLX; exit non-zero when it disagrees.

    \b
    mlx-lc export verify dist/sum_es
    """
    from mlx_lc.export.package import verify_export

    report = verify_export(folder, steps=steps)
    verdict(report["verify"], folder, flag="verify")
    click.echo(f"verify passed: {folder} matches MLX within tolerance")
