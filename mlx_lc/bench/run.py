"""`mlx-lc bench`: is one calibrated pass really cheaper than two, is a fused calibration free,
is our generate path as fast as mlx-lm's, and how close does decoding get to memory bandwidth?

Every row is a ratio of two variants measured side by side in one run, on the same model and
prompts, interleaved round by round (measure.interleave; decode speeds token by token,
measure.decode_lockstep); the ratio is the median of the per-round ratios. Outputs have a fixed length: the tokenizer's EOS set is emptied, so every
pass emits exactly `max_tokens` tokens whatever the (random) weights say.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx_lm
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.tuner.utils import linear_to_lora_layers, load_adapters
from tqdm import tqdm

from .. import _blas
from .. import calibration as calib_io
from .. import tasks
from ..errors import MlxLcError
from ..fuse import fuse_into
from .. import model_folder
from ..generate import compose, generate, multi_step
from . import measure as bm
from . import setup as bs
from .serve import bench_serve

DEFAULT_GROUPS = ("e2e", "decode", "generate", "train", "exp", "blas")
# serve starts two server processes (mlx-lc serve, mlx_lm.server): only when asked for, with --only serve
GROUPS = (*DEFAULT_GROUPS, "serve")
COMPOSITION = "summarize+es"
DIALOGUES = [
    "Anna: Are we still on for lunch tomorrow?\nBen: Yes! The new café on Main Street at noon?\n"
    "Anna: Perfect, I'll book a table for two.\nBen: Great, see you there.",
    "Maria: Did you send the report to Tom?\nLuis: Not yet, I'm fixing the charts.\n"
    "Maria: He needs it before Friday's meeting.\nLuis: I'll send it tonight, promise.",
    "Sam: The train to Berlin leaves at 7:40.\nKim: Should we meet at the station at seven?\n"
    "Sam: Better 7:15, the queue for coffee is long.\nKim: Deal, platform 4.",
]


@dataclass
class BenchConfig:
    model: str | None = None  # mlx-lm model id or folder; None: a random model of `shape`
    shape: str = "tiny"  # tiny (mlx_lc.tiny) or a published architecture from setup.SHAPES
    dtype: str = "float32"  # weights of a random `shape` model
    quick: bool = False  # a smoke run: tiny sizes everywhere
    groups: tuple[str, ...] = DEFAULT_GROUPS
    rank: int = 32  # of the two task LoRAs (the paper: 32, scale 0.5)
    max_tokens: int | None = None  # tokens per generation pass (default 64; quick 8)
    rounds: int | None = None  # timed rounds per comparison (default 7; quick 2)
    prompts: int | None = None  # compositional inputs per round (default 3; quick 1)
    train_batch: int | None = None  # sequences per training step (default 4; quick 2)
    train_seq: int | None = None  # tokens per sequence (default 128; quick 16)
    copy_mb: int | None = None  # array size for the bandwidth test (default 256; quick 8)
    blas_n: int | None = None  # matmul size for the BLAS test (default 1024; quick 128)
    seed: int = 0

    def resolved(self) -> "BenchConfig":
        full = dict(max_tokens=64, rounds=7, prompts=3, train_batch=4, train_seq=128, copy_mb=256, blas_n=1024)
        quick = dict(max_tokens=8, rounds=2, prompts=1, train_batch=2, train_seq=16, copy_mb=8, blas_n=128)
        fill = {k: v if getattr(self, k) is None else getattr(self, k)
                for k, v in (quick if self.quick else full).items()}
        cfg = replace(self, **fill)
        if not cfg.groups:  # e.g. --only "," : nothing to measure, and an empty report is no result
            raise MlxLcError(f"no bench groups given; choose from {', '.join(GROUPS)}")
        unknown = [g for g in cfg.groups if g not in GROUPS]
        if unknown:
            raise MlxLcError(f"unknown bench group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
        if cfg.shape not in ("tiny", *bs.SHAPES):
            raise MlxLcError(f"unknown shape {cfg.shape!r}; choose tiny or {', '.join(bs.SHAPES)}")
        for k in ("max_tokens", "rounds", "prompts", "train_batch", "train_seq", "copy_mb", "blas_n", "rank"):
            if getattr(cfg, k) < (2 if k in ("max_tokens", "train_seq") else 1):
                raise MlxLcError(f"{k.replace('_', '-')} is too small: {getattr(cfg, k)}")
        cfg.prompts = min(cfg.prompts, len(DIALOGUES))
        return cfg


def row(id: str, what: str, sub: tuple[str, list], ref: tuple[str, list], unit: str, ratio_is: str,
        invert: bool = False, target: float | None = None, note: str = "") -> dict:
    """One table row. ratio = median over rounds of sub/ref (ref/sub with invert, for times)."""
    (sn, s), (rn, r) = sub, ref
    ratio = bm.paired_ratio(r, s) if invert else bm.paired_ratio(s, r)
    return {"id": id, "what": what, "unit": unit, "ratio_is": ratio_is,
            "subject": {"name": sn, **bm.summary(s)}, "reference": {"name": rn, **bm.summary(r)},
            "ratio": ratio["median"], "ratio_min": ratio["min"], "ratio_max": ratio["max"],
            "target": target, "met": None if target is None else bool(ratio["median"] >= target), "note": note}


class Bench:
    """The base model, its adapter files, and lazily built variants sharing the base weights."""

    def __init__(self, cfg: BenchConfig, work: Path):
        self.cfg, self.work = cfg, work
        name = cfg.model or str(bs.write_model(work / "model", cfg.shape, cfg.dtype, cfg.quick, cfg.seed))
        self.base, self.tok = model_folder.load(name)
        self.base.eval()
        self.tok.eos_token_ids = set()  # fixed-length outputs: no pass may stop early
        self.fx = bs.make_fixture(work / "adapters", name, self.base, cfg.rank, seed=cfg.seed)
        self.texts = DIALOGUES[:cfg.prompts]
        self.prompt = mx.array(self.tok.encode(tasks.format_prompt(self.tok, tasks.get(COMPOSITION), self.texts[0])))
        self._models: dict[str, nn.Module] = {"base": self.base}

    def copy(self) -> nn.Module:
        return bs.shared_copy(self.base, self.fx.path)

    def model(self, kind: str) -> nn.Module:
        if kind not in self._models:
            m = self.copy()
            if kind in ("lc", "lc++"):  # exactly what `mlx-lc generate -a A -a B -c C` builds
                compose(m, self.fx.adapters, calibration=self.fx.calibrations[kind], model_name=self.fx.model)
            elif kind == "fused":
                self._fuse(m)
            elif kind == "calib_module":  # the training-time layers (CalibratedLoRALinear), unfolded
                calib_io.apply(m, self.fx.merged, calib_io.load(self.fx.calibrations["lc++"], self.fx.merged))
            elif kind == "mlx_lm":  # what `mlx_lm.generate --adapter-path folded` builds
                load_adapters(m, str(self.fx.folded["lc++"]))
            m.eval()
            self._models[kind] = m
        return self._models[kind]

    def folded(self):
        return calib_io.fold(self.fx.merged, calib_io.load(self.fx.calibrations["lc++"], self.fx.merged))

    def _fuse(self, m: nn.Module):
        """Fuse in float (mlx_lc.fuse), then re-quantize what was quantized, as a device would ship it."""
        before = dict(m.named_modules())
        fuse_into(m, self.folded())
        requant = [(p, nn.QuantizedLinear.from_linear(mod, before[p].group_size, before[p].bits))
                   for p, mod in m.named_modules() if isinstance(before.get(p), nn.QuantizedLinear)
                   and isinstance(mod, nn.Linear)]
        if requant:
            m.update_modules(tree_unflatten(requant))
        mx.eval(m.parameters())


# ---------------------------------------------------------------- the row groups

def bench_e2e(b: Bench, progress) -> tuple[list, dict]:
    cfg, n = b.cfg, b.cfg.max_tokens
    primary, secondary = b.fx.loras

    def single(kind):
        m = b.model(kind)

        def one_pass():
            for t in b.texts:
                generate(m, b.tok, t, COMPOSITION, max_tokens=n)
        return one_pass

    def multi():
        m = b.model("multi")
        for t in b.texts:
            multi_step(m, b.tok, [primary, secondary], t, COMPOSITION, max_tokens=n)

    got = bm.interleave({"lc": single("lc"), "lc++": single("lc++"), "multi": multi}, cfg.rounds, progress=progress)
    per_input = {k: [s["s"] / len(b.texts) for s in v] for k, v in got.items()}
    note = (f"{len(b.texts)} input(s) x {cfg.rounds} rounds; every pass emits exactly {n} tokens (EOS ignored); "
            "multi-step swaps adapters per request (mlx_lc.generate.multi_step), single pass keeps its adapter loaded")
    rows = [row(f"e2e_{k}", f"latency per input: single pass ({k}) vs multi-step", (f"single pass {k}", per_input[k]),
                ("multi-step (2 passes)", per_input["multi"]), "s", "multi-step latency / single-pass latency",
                invert=True, target=1.8, note=note) for k in ("lc", "lc++")]
    return rows, {"samples": got}


def bench_decode(b: Bench, progress) -> tuple[list, dict]:
    cfg = b.cfg
    kinds = {"base": "base model", "fused": "fused lc++", "lc": "runtime lc (unfused)",
             "lc++": "runtime lc++ (unfused)", "mlx_lm": "lc++ in mlx-lm's LoRALinear",
             "calib_module": "lc++ in CalibratedLoRALinear"}
    # Two lockstep groups: the fused model owns a second copy of the weights, which would be the
    # one evicted from the CPU caches among five variants sharing the base's; in a pair with the
    # base, each evicts the other alike. The runtime adapters all run on the shared base weights.
    pair = bm.decode_lockstep({k: b.model(k) for k in ("base", "fused")}, b.prompt, cfg.max_tokens,
                              cfg.rounds, progress)
    runtime = ("base", "lc", "lc++", "mlx_lm", "calib_module")
    group = bm.decode_lockstep({k: b.model(k) for k in runtime}, b.prompt, cfg.max_tokens, cfg.rounds, progress)
    tps = {k: bm.values(v, "tokens_per_s") for k, v in group.items()}
    pair_tps = {k: bm.values(v, "tokens_per_s") for k, v in pair.items()}
    lockstep = f"{cfg.max_tokens} greedy tokens per round, variants in lockstep (one token each in turn)"
    rows = [row("decode_fused", "decode tokens/s: fused calibrated vs base", (kinds["fused"], pair_tps["fused"]),
                (kinds["base"], pair_tps["base"]), "tok/s", "fused / base", target=0.98,
                note=f"{lockstep}; the fused model has the base's layers and sizes, only other weights")]
    for k in runtime[1:]:
        r = row(f"decode_runtime_{k}", f"decode tokens/s: {kinds[k]} vs base", (kinds[k], tps[k]),
                (kinds["base"], tps["base"]), "tok/s", f"{k} / base")
        r["note"] = f"runtime adapter overhead {100 * (1 / r['ratio'] - 1):.1f}% time per token; {lockstep}"
        rows.append(r)
    details = {"samples": {**group, "fused_pair": pair}}
    rows.append(bandwidth_row(b, progress, details))
    return rows, details


def bandwidth_row(b: Bench, progress, details: dict) -> dict:
    """Base decode (mlx-lm's pipelined generate_step) against bytes-per-token over the copy
    bandwidth, the two measured in turns so each round's bound comes from that round."""
    cfg = b.cfg
    cache = make_prompt_cache(b.base)
    bm.decode_run(b.base, b.prompt, cfg.max_tokens, cache)
    context = b.prompt.size + cfg.max_tokens / 2  # mean KV length over the decode
    need = bm.decode_bytes(b.base, cache, context)
    probes = bm.bandwidth_probes(cfg.copy_mb)
    got = bm.interleave({"decode": lambda: bm.decode_run(b.base, b.prompt, cfg.max_tokens), **probes},
                        cfg.rounds, progress=progress)
    gbs = {k: bm.values(got[k], "gb_per_s") for k in probes}
    copy = [max(x, y) for x, y in zip(gbs["numpy_copy"], gbs["mlx_copy"])]
    tps = bm.values(got["decode"], "tokens_per_s")
    r = row("decode_bandwidth", "decode tokens/s: base (mlx_lm generate_step) vs memory-bandwidth bound",
            ("base model", tps), ("bound: copy GB/s / bytes per token", [g * 1e9 / need["total"] for g in copy]),
            "tok/s", "fraction of the bound")
    med = {k: bm.summary(v)["median"] for k, v in gbs.items()}
    matvec_frac = bm.paired_ratio(tps, [g * 1e9 / need["total"] for g in gbs["mlx_matvec"]])["median"]
    r["note"] = (f"{need['total'] / 1e6:.2f} MB read per token (weights {need['weights'] / 1e6:.2f} MB + KV "
                 f"{need['kv'] / 1e6:.3f} MB at {context:.0f} positions), i.e. decode streams "
                 f"{bm.summary(tps)['median'] * need['total'] / 1e9:.1f} GB/s; median GB/s: numpy copy "
                 f"{med['numpy_copy']:.1f}, mlx elementwise copy {med['mlx_copy']:.1f}, one big mlx matvec "
                 f"{med['mlx_matvec']:.1f} (decode reaches {matvec_frac:.2f}x of that matvec-rate bound)")
    if need["weights"] < 64 * 2**20:
        r["note"] += "; the weights fit in CPU caches, so per-token overheads dominate, not bandwidth"
    details.update({"bytes_per_token": need, "bandwidth_samples": got})
    return r


def bench_generate(b: Bench, progress) -> tuple[list, dict]:
    n, comp = b.cfg.max_tokens, tasks.get(COMPOSITION)
    ours, theirs = b.model("lc++"), b.model("mlx_lm")
    prompts = [tasks.format_prompt(b.tok, comp, t) for t in b.texts]  # what an mlx_lm user passes

    def run_ours():
        return [generate(ours, b.tok, t, COMPOSITION, max_tokens=n) for t in b.texts]

    def run_theirs():
        return [mlx_lm.generate(theirs, b.tok, p, max_tokens=n) for p in prompts]

    same = run_ours() == run_theirs()
    got = bm.interleave({"mlx_lc": lambda: run_ours() and None, "mlx_lm": lambda: run_theirs() and None},
                        b.cfg.rounds, progress=progress)
    r = row("generate_vs_mlx_lm", "generate latency: mlx_lc.generate (adapters + lc++) vs mlx_lm.generate (folded)",
            ("mlx_lc.generate.stream", bm.values(got["mlx_lc"], "s")), ("mlx_lm.generate", bm.values(got["mlx_lm"], "s")),
            "s", "mlx_lm time / mlx-lc time", invert=True, target=1.0,
            note=f"same greedy text from both: {'yes' if same else 'no'}; {len(b.texts)} input(s), {n} tokens each")
    return [r], {"samples": got, "same_text": same}


def bench_train(b: Bench, progress) -> tuple[list, dict]:
    cfg = b.cfg
    batch = mx.random.randint(0, b.base.args.vocab_size, (cfg.train_batch, cfg.train_seq), key=mx.random.key(cfg.seed))
    steps, params = {}, {}
    lora = b.copy()
    lora.freeze()
    keys = sorted({bs.adapters_io.split_path(p)[2] for p in bs.target_linears(lora)})
    linear_to_lora_layers(lora, len(lora.layers), {"rank": cfg.rank, "scale": 0.5, "dropout": 0.05, "keys": keys})
    steps["lora"] = bm.train_step_fn(lora, batch, 5e-5)
    params["lora"] = bs.adapters_io.trainable_count(lora)
    for variant in ("lc", "lc++"):
        m = b.copy()
        calib = calib_io.Calibration(calib_io.CalibrationConfig(variant, "scale", 4, cfg.seed),
                                     calib_io.module_shapes(b.fx.merged))
        calib_io.apply(m, b.fx.merged, calib)
        m.freeze()  # base and merged LoRA frozen; only the shared calibration trains
        m.calibration.unfreeze()
        steps[variant], params[variant] = bm.train_step_fn(m, batch, 5e-4), bs.adapters_io.trainable_count(m)
    got = bm.interleave(steps, cfg.rounds, progress=progress)
    note = f"batch {cfg.train_batch} x {cfg.train_seq} tokens; trainable params: " + \
        ", ".join(f"{k} {v:,}" for k, v in params.items())
    rows = []
    for k in ("lc", "lc++"):
        rows.append(row(f"train_tps_{k}", f"training tokens/s: {k} calibration step vs LoRA step",
                        (f"{k} step", bm.values(got[k], "tokens_per_s")), ("LoRA step", bm.values(got["lora"], "tokens_per_s")),
                        "tok/s", f"{k} / LoRA", note=note))
        rows.append(row(f"train_mem_{k}", f"training peak memory above weights: {k} step vs LoRA step",
                        (f"{k} step", bm.values(got[k], "step_mb")), ("LoRA step", bm.values(got["lora"], "step_mb")),
                        "MB", f"{k} / LoRA (lower is leaner)",
                        note="total peak incl. weights: " + ", ".join(
                            f"{k2} {bm.summary(bm.values(v, 'peak_mb'))['median']:.1f} MB" for k2, v in got.items())))
    return rows, {"samples": got, "trainable_params": params}


def bench_exp(b: Bench, progress) -> tuple[list, dict]:
    """How much of a training step is exponentials: exp itself, mlx vs numpy, and a LoRA step
    as it is vs with its users of exp swapped for stand-ins that compute none (a bound)."""
    cfg = b.cfg
    n = (cfg.copy_mb * 2**20) // 4
    got = bm.interleave(bm.exp_probes(n), cfg.rounds, progress=progress)
    rows = [row("exp_elementwise", f"exp over {n:,} float32 values: mlx vs numpy",
                ("mlx", bm.values(got["mlx"], "gvalues_per_s")), ("numpy", bm.values(got["numpy"], "gvalues_per_s")),
                "G/s", "mlx / numpy", note="one thread each; numpy's exp is vectorised (SIMD) where the CPU has it")]
    batch = mx.random.randint(0, b.base.args.vocab_size, (cfg.train_batch, cfg.train_seq), key=mx.random.key(cfg.seed))
    lora = b.copy()
    lora.freeze()
    keys = sorted({bs.adapters_io.split_path(p)[2] for p in bs.target_linears(lora)})
    linear_to_lora_layers(lora, len(lora.layers), {"rank": cfg.rank, "scale": 0.5, "dropout": 0.0, "keys": keys})
    real = bm.train_step_fn(lora, batch, 5e-5)

    def free() -> bm.Sample:
        with bm.exp_free(lora):
            return real()

    steps = bm.interleave({"real": real, "exp_free": free}, cfg.rounds, progress=progress)
    rows.append(row("exp_step", "LoRA training tokens/s: exp-free stand-ins vs the real step",
                    ("stand-ins", bm.values(steps["exp_free"], "tokens_per_s")),
                    ("real step", bm.values(steps["real"], "tokens_per_s")), "tok/s",
                    "stand-ins / real: the most a free exp could speed up a step",
                    note=f"batch {cfg.train_batch} x {cfg.train_seq} tokens; softmax in attention -> relu, "
                         "SiLU -> relu, the loss's log-sum-exp -> a mean of squares (same shapes, not a model)"))
    return rows, {"samples": got, "steps": steps}


def bench_blas(b: "Bench | BenchConfig", progress) -> tuple[list, dict]:
    cfg = b.cfg if isinstance(b, Bench) else b
    if not sys.platform.startswith("linux"):
        return [], {"skipped": "not Linux: mlx uses Accelerate/Metal, no BLAS is preloaded"}
    k = 2 if cfg.quick else 3
    workers = {}
    try:
        workers["preloaded"] = bm.BlasWorker(cfg.blas_n, k, bundled=False)
        workers["bundled"] = bm.BlasWorker(cfg.blas_n, k, bundled=True)
        got = bm.interleave(workers, cfg.rounds, progress=progress)
    finally:
        for w in workers.values():
            w.close()
    info = {k: w.info for k, w in workers.items()}
    r = row("blas", f"fp32 matmul {cfg.blas_n}x{cfg.blas_n}: preloaded BLAS vs mlx's bundled BLAS",
            (f"preloaded ({info['preloaded']['blas'] or 'none found'})", bm.values(got["preloaded"], "gflops")),
            ("bundled (MLX_LC_BLAS=none)", bm.values(got["bundled"], "gflops")), "GFLOP/s", "preloaded / bundled",
            note="two worker processes, interleaved")
    return [r], {"samples": got, "workers": info}


RUNNERS = {"e2e": bench_e2e, "decode": bench_decode, "generate": bench_generate, "train": bench_train,
           "exp": bench_exp, "blas": bench_blas, "serve": bench_serve}


# ---------------------------------------------------------------- the run

def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "nproc": os.cpu_count(),
            "loadavg_start": _load()}
    with contextlib.suppress(OSError):
        cpu = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        info["cpu"] = cpu[0] if cpu else None
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        info["ram_gb"] = round(kb / 2**20, 1)
    info.update({"mlx": version("mlx"), "mlx_lm": version("mlx-lm"), "device": str(mx.default_device()),
                 "blas": _blas.LOADED or f"bundled ({_blas.REASON})"})
    return info


def _load() -> list[float] | None:
    """1, 5 and 15 minute load averages: how busy the machine was (other users count too)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def progress_total(cfg: BenchConfig) -> int:
    per = {"e2e": 3, "decode": 11, "generate": 2, "train": 3, "exp": 4, "blas": 2, "serve": 10}
    return sum(per[g] * cfg.rounds for g in cfg.groups)


def run(cfg: BenchConfig, progress: bool = True) -> dict:
    """Run the chosen groups; return a JSON-ready result with rows, details and the set-up."""
    cfg = cfg.resolved()
    started, t0 = datetime.datetime.now().astimezone(), time.perf_counter()
    result = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "date": started.isoformat(timespec="seconds"),
              "config": asdict(cfg), "machine": machine(), "rows": [], "details": {}}
    bar = tqdm(total=progress_total(cfg), desc="bench", unit="call", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="mlx_lc_bench_") as tmp, bar:
        b = Bench(cfg, Path(tmp)) if set(cfg.groups) - {"blas"} else None
        if b is not None:
            result["model"] = {"name": cfg.model or f"random {cfg.shape} ({cfg.dtype})",
                               "params": sum(v.size for _, v in _flat(b.base)),
                               "bytes": sum(v.nbytes for _, v in _flat(b.base)),
                               "prompt_tokens": b.prompt.size, "adapter_rank": cfg.rank}
        for group in cfg.groups:
            bar.set_description(f"bench {group}")
            rows, details = RUNNERS[group](b if b is not None else cfg, bar)
            result["rows"] += rows
            result["details"][group] = details
    result["machine"]["loadavg_end"] = _load()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def _flat(model):
    return tree_flatten(model.parameters())
