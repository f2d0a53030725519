"""The task store's commands: `mlx-lc task add`, `mlx-lc task rm`, `mlx-lc tasks`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mlx_lc import adapters as adapters_io
from mlx_lc import calibration as calib_io
from mlx_lc import tasks as tasks_lib
from mlx_lc.errors import MlxLcError
from mlx_lc.model_folder import check_model_name, model_id
from mlx_lc.store import HOME_ENV, Store, check_name

from . import main



def _use_store(ctx, param, value):
    """--store stands for the environment variable, so every task lookup in the command (and in
    worker processes) reads the same store."""
    if value is not None:
        os.environ[HOME_ENV] = str(Path(value).expanduser().absolute())
    return value


store_option = click.option("--store", type=click.Path(path_type=Path, file_okay=False), callback=_use_store,
                            expose_value=True, is_eager=True,
                            help=f"Task store folder (default: ${HOME_ENV}, else ~/.cache/mlx-lc).")


def open_store(path: Path | None) -> Store:
    return Store.default(path)


def from_store(task: str, store: Path | None, note=True) -> tuple[str, list[str], str | None]:
    """(model, adapters, calibration folder or None) of a task or composition in the store. A
    composition with no calibration runs on the plain merge, which is said on stderr."""
    found = open_store(store).resolve(task)
    calibration = str(calib_io.resolve(found.calibration)) if found.calibration else None
    if note and calibration is None and len(found.adapters) > 1:
        click.echo(f"mlx-lc: {task} has no calibration in the store: using the plain merge "
                   f"(mlx-lc calibrate --task {task} --inputs FILE.jsonl)", err=True)
    return found.model, found.adapters, calibration


@main.group()
def task():
    """Add or remove a task (or a composition) in the task store."""


@task.command("add")
@click.argument("name")
@click.option("--adapter", "-a", type=click.Path(path_type=Path), help="The task's LoRA folder (mlx-lm or PEFT).")
@click.option("--instruction", "-i", help="The instruction the LoRA was trained with (default for a built-in "
              "task: its own).")
@click.option("--kind", type=click.Choice(tasks_lib.KINDS), help="primary: transforms an input (summarise, reply, "
              "extract); secondary: rewrites an output (translate, change tone). [default: primary]")
@click.option("--modifier", help="Secondary tasks: the words a composition adds to the instruction before it, "
              "e.g. ' in Japanese' (default: none; the composed prompt then adds this task's instruction).")
@click.option("--model", "-m", help="Base model the LoRA was trained on (default: the one the adapter records).")
@click.option("--calibration", "-c", help="For a composition A+B: its calibration, a folder or a Hugging Face "
              "repo id.")
@store_option
def task_add(name, adapter, instruction, kind, modifier, model, calibration, store):
    """Add task NAME with its LoRA, or composition A+B with a calibration made elsewhere.

    \b
    mlx-lc task add action-items -a lora/action-items -i "List the action items in the chat."
    mlx-lc task add japanese -a lora/ja -i "Translate the text into Japanese." --kind secondary --modifier " in Japanese"
    mlx-lc task add action-items+japanese -c someone/action-items-japanese-lc
    """
    s = open_store(store)
    if "+" in name:
        if adapter or kind or modifier or model:
            raise MlxLcError("a composition takes --calibration (and --instruction), not --adapter, --kind, "
                             "--modifier or --model: those belong to its tasks")
        if not calibration:
            raise MlxLcError(f"give --calibration for {name} (or run mlx-lc calibrate --task {name})")
        found = s.resolve(name)  # every task known, with adapters on one base
        local = calib_io.resolve(calibration)
        cfg = calib_io.read_config(local)
        recorded = cfg.get("sources", [])
        if recorded and len(recorded) != len(found.adapters):
            raise MlxLcError(f"{calibration} is a calibration of {len(recorded)} adapters; {name} has "
                             f"{len(found.adapters)}")
        calib_io.check_sources(local, [adapters_io.read(a) for a in found.adapters])
        ref = str(Path(os.path.abspath(calibration))) if Path(calibration).expanduser().is_dir() else calibration
        path = s.update_composition(name, calibration=ref, instruction=instruction, base_model=found.model)
        click.echo(f"added {name} ({path})")
        return
    check_name(name)
    if calibration:
        raise MlxLcError("--calibration is for a composition (A+B); a single task takes --adapter")
    if adapter is None:
        raise MlxLcError(f"give --adapter: the LoRA folder of task {name}")
    builtin = tasks_lib.SINGLE.get(name)
    if builtin is not None:
        # a built-in name keeps its prompt, so the demo and the paper's data mean the same task
        given = {"--instruction": (instruction, builtin.instruction), "--kind": (kind, builtin.kind),
                 "--modifier": (modifier, builtin.modifier)}
        for flag, (value, own) in given.items():
            if value is not None and value.strip() != own.strip():
                raise MlxLcError(f"{name} is a built-in task ({flag} {own!r}); add your own under another name")
    if instruction is None:
        if builtin is None:
            raise MlxLcError(f"give --instruction: the instruction the {name} LoRA was trained with")
        instruction = builtin.instruction
    lora = adapters_io.read(adapter)  # a broken folder fails here, not at generation time
    if model is None and not lora.base_model:
        raise MlxLcError(f"{adapter} does not record its base model; give --model")
    try:  # a folder that is not here (an adapter made elsewhere records its maker's path) fails now, not later
        check_model_name(model or lora.base_model)
    except MlxLcError as e:
        hint = "" if model else f" ({adapter} records it as its base); give --model"
        raise MlxLcError(f"{e}{hint}") from None
    base = model_id(model or lora.base_model)
    t = tasks_lib.Task(name, kind or (builtin.kind if builtin else "primary"), instruction.strip(),
                       modifier if modifier is not None else (builtin.modifier if builtin else ""),
                       adapter=str(Path(os.path.abspath(adapter))), base_model=base)
    path = s.add_task(t, extra={"adapter_sha256": lora.meta.get("sha256"), "rank": lora.rank,
                                "params": lora.num_params()})
    click.echo(f"added {name} ({t.kind}, rank {lora.rank}, {lora.num_params():,} params): {path}")


@task.command("rm")
@click.argument("name")
@store_option
def task_rm(name, store):
    """Remove task or composition NAME from the store (a calibration the store holds for it too;
    adapters and calibrations elsewhere stay where they are)."""
    for path in open_store(store).remove(name):
        click.echo(f"removed {path}")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


def _scores(record: dict) -> str:
    parts = []
    for method, s in (record.get("scores") or {}).items():
        if isinstance(s, dict):
            got = ", ".join(f"{k} {100 * v:.0f}%" for k, v in s.items() if k in ("judge_pass", "score")
                            and isinstance(v, (int, float)))
            parts.append(f"{method}: {got}" if got else method)
    return "; ".join(parts)


@main.command("tasks")
@store_option
def list_tasks(store):
    """List the store's tasks and compositions: adapters, calibrations, sizes and recorded scores."""
    s = open_store(store)
    mine, comps = s.tasks(), s.compositions()  # a broken record fails here, before any output
    lines = [f"store: {s.root}"]
    echo = lines.append
    rows = []
    for t in mine:
        try:
            lora = adapters_io.read(t.adapter)
            size = f"{lora.num_params():,} params, {_size(adapters_io.weights_file(t.adapter).stat().st_size)}"
        except MlxLcError:
            size = "adapter missing or unreadable"
        rows.append((t.name, t.kind, size, t.adapter, t.instruction))
    echo("\ntasks:" if rows else "\ntasks: none yet (mlx-lc task add NAME --adapter DIR --instruction TEXT)")
    for name, kind, size, adapter, instruction in rows:
        echo(f"  {name:<20} {kind:<9} {size}\n  {'':<20} {adapter}\n  {'':<20} \"{instruction}\"")
    if comps:
        echo("\ncompositions:")
    for c in comps:
        calib = c.get("calibration")
        if calib and not Path(calib).is_dir() and not calib.startswith("/"):
            echo(f"  {c['name']:<20} calibration on the Hugging Face Hub (downloaded when first used)\n"
                 f"  {'':<20} {calib}")
        elif calib:
            try:
                cfg = calib_io.read_config(calib)
                n = cfg.get("num_params") if isinstance(cfg.get("num_params"), int) else 0
                what = f"{cfg.get('variant', '?')}, {n:,} params, {_size(2 * n)} fp16"
            except MlxLcError:
                what = "calibration missing or unreadable"
            echo(f"  {c['name']:<20} {what}\n  {'':<20} {calib}")
        else:
            echo(f"  {c['name']:<20} not calibrated (mlx-lc calibrate --task {c['name']} ...)")
        trained = c.get("trained") or {}
        if isinstance(trained.get("dev_loss"), (int, float)):
            echo(f"  {'':<20} dev loss {trained['dev_loss']:.4f}"
                 + (" (label-free: targets from the multi-step chain)" if trained.get("label_free") else ""))
        if _scores(c):
            echo(f"  {'':<20} scores: {_scores(c)}")
    builtin = [n for n in tasks_lib.SINGLE if n not in {t.name for t in mine}]
    echo(f"\nbuilt-in tasks (no adapters until added): {', '.join(builtin)}")
    click.echo("\n".join(lines))
