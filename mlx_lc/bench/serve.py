"""The `serve` bench group: `mlx-lc serve` against `mlx_lm.server` on the same base, both running as
they ship (a process each, on loopback), driven by the same HTTP client in turns.

Two compositions (summarize+es and summarize+fr, LC++ calibrations of random adapters) sit in a task
store for mlx-lc; mlx_lm.server gets their folded adapters, one per request (its `adapters` field),
and the same prompt text mlx-lc builds, so both run the same weights on the same tokens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import itertools
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from .. import adapters as adapters_io
from .. import calibration as calib_io
from .. import tasks
from ..errors import MlxLcError
from ..merge import MergeConfig, merge
from ..model_folder import model_id
from ..store import Store
from . import measure as bm
from . import setup as bs

COMPOSITIONS = ("summarize+es", "summarize+fr")
CLIENTS = 8  # concurrent clients in the mixed-load rows
PER_CLIENT = 3  # requests each, compositions alternating
START_TIMEOUT = 120.0


def _fixture(b) -> tuple[Path, dict[str, Path]]:
    """A task store with both compositions; -> (store folder, composition -> its folded adapter)."""
    fx, work = b.fx, b.work / "serve"
    fr = adapters_io.write_mlx(bs.random_lora(b.base, b.cfg.rank, 0.5, b.cfg.seed + 2, fx.model), work / "adapter_fr")
    loras = adapters_io.load_for(b.base, [fx.adapters[0], fr], fx.model)
    merged = merge(loras, MergeConfig("linear"))
    calib = bs.randomize_calibration(calib_io.Calibration(calib_io.CalibrationConfig("lc++", "scale", 4, b.cfg.seed),
                                                          calib_io.module_shapes(merged)), b.cfg.seed + 1)
    cal_fr = calib_io.save(calib, merged, work / "calib_fr", extra={"note": "random, for speed benchmarks only"})
    folded = {"summarize+es": fx.folded["lc++"],
              "summarize+fr": adapters_io.write_mlx(calib_io.fold(merged, calib), work / "folded_fr")}
    store = Store(work / "store")
    for name, adapter in (("summarize", fx.adapters[0]), ("es", fx.adapters[1]), ("fr", fr)):
        store.add_task(dataclasses.replace(tasks.SINGLE[name], adapter=str(Path(adapter).absolute()),
                                           base_model=model_id(fx.model)))
    store.update_composition("summarize+es", calibration=str(Path(fx.calibrations["lc++"]).absolute()))
    store.update_composition("summarize+fr", calibration=str(Path(cal_fr).absolute()))
    return store.root, folded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Proc:
    """A server process on loopback, its output in a log file, stopped on exit."""

    def __init__(self, cmd: list[str], port: int, log: Path):
        self.port, self.log = port, log
        self.file = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.file, stderr=subprocess.STDOUT)
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.close()
                raise MlxLcError(f"bench: server exited at start ({' '.join(cmd[:4])}...): see {log}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.2)
        self.close()
        raise MlxLcError(f"bench: server did not start in {START_TIMEOUT:.0f} s: see {log}")

    def post(self, path: str, body: dict) -> tuple[float, dict]:
        """-> (wall seconds, parsed answer); fails loudly on an error status."""
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        s = time.perf_counter() - t0
        conn.close()
        if resp.status != 200:
            raise MlxLcError(f"bench: {path} answered {resp.status}: {data[:200]!r}")
        return s, json.loads(data)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.file.close()


def _switches(b, store: Path, folded: dict[str, Path], progress) -> dict:
    """The switch itself, in this process, as each server does it: mlx-lc's engine swapping in the
    prepared factors of the other composition, mlx_lm.server's ModelProvider.load of the other adapter
    (what its generation thread calls when a request names another adapter)."""
    import argparse

    from mlx_lm.server import ModelProvider

    from ..serve import Engine, Job

    engine = Engine(b.fx.model, Store(store), log=lambda msg: None)
    try:
        jobs = []
        for c in COMPOSITIONS:
            found = engine.resolve(c)
            jobs.append(Job((c, tuple(found.adapters), found.calibration), found, [], 1, {}, None))
        provider = ModelProvider(argparse.Namespace(
            model=b.fx.model, adapter_path=None, draft_model=None, trust_remote_code=False, chat_template="",
            use_default_chat_template=False, pipeline=False))

        def alternate(switch):
            def go():
                times = []
                for i in range(4):
                    t0 = time.perf_counter()
                    switch(i % 2)
                    times.append(time.perf_counter() - t0)
                return {"switch_s": statistics.median(times)}
            return go

        def ours(i):
            engine._activate(jobs[i])  # the worker's step; the worker is idle here

        def theirs(i):
            provider.load(b.fx.model, str(folded[COMPOSITIONS[i]]), None)
        return bm.interleave({"mlx_lc": alternate(ours), "mlx_lm": alternate(theirs)}, b.cfg.rounds,
                             progress=progress)
    finally:
        engine.close(10)


def bench_serve(b, progress) -> tuple[list, dict]:
    from .run import row  # here: run imports this module

    cfg, fx = b.cfg, b.fx
    store, folded = _fixture(b)
    text, count = b.texts[0], itertools.count(1)
    ours_port, theirs_port = _free_port(), _free_port()
    servers, got = {}, {}
    try:
        servers["mlx_lc"] = _Proc([sys.executable, "-c", "from mlx_lc.cli import main; main()", "serve", "--model",
                                   fx.model, "--port", str(ours_port), "--store", str(store)], ours_port,
                                  b.work / "serve" / "mlx_lc_serve.log")
        servers["mlx_lm"] = _Proc([sys.executable, "-m", "mlx_lm", "server", "--model", fx.model, "--port",
                                   str(theirs_port)], theirs_port, b.work / "serve" / "mlx_lm_server.log")

        def ask(who: str, comp: str, n: int, i: int | None = None) -> tuple[float, dict]:
            # every request its own input (a number in front): a server's inputs differ, and mlx_lm.server's
            # prompt cache then reuses the instruction's tokens, not the whole prompt
            given = f"[{next(count) if i is None else i}] {text}"
            if who == "mlx_lc":
                return servers[who].post("/v1/completions", {"model": comp, "prompt": given, "max_tokens": n,
                                                             "temperature": 0})
            prompt = tasks.format_prompt(b.tok, tasks.get(comp, Store(store)), given)  # what mlx-lc builds
            return servers[who].post("/v1/completions", {"model": fx.model, "adapters": str(folded[comp]),
                                                         "prompt": prompt, "max_tokens": n, "temperature": 0})

        same = {c: ask("mlx_lc", c, cfg.max_tokens, 0)[1]["choices"][0]["text"] ==
                ask("mlx_lm", c, cfg.max_tokens, 0)[1]["choices"][0]["text"] for c in COMPOSITIONS}

        def switching(who):  # every request names the other composition than the one before
            def go():
                times = [ask(who, COMPOSITIONS[i % 2], 1)[0] for i in range(4)]
                stay = [ask(who, COMPOSITIONS[1], 1)[0] for _ in range(2)]
                return {"switch_s": statistics.median(times), "stay_s": statistics.median(stay)}
            return go

        def one(who, repeat=False):  # one composition, full-length answers
            def go():
                s, got = ask(who, COMPOSITIONS[0], cfg.max_tokens, 0 if repeat else None)
                return {"tokens_per_s": got["usage"]["completion_tokens"] / s, "tokens": got["usage"]["completion_tokens"]}
            return go

        def mixed(who):  # CLIENTS at once, each alternating compositions
            def go():
                lat, lock = [], threading.Lock()

                def client(i):
                    for j in range(PER_CLIENT):
                        s, _ = ask(who, COMPOSITIONS[(i + j) % 2], max(2, cfg.max_tokens // 4))
                        with lock:
                            lat.append(s)
                t0 = time.perf_counter()
                threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
                lat.sort()
                return {"req_per_s": len(lat) / wall, "p50_s": statistics.median(lat),
                        "p99_s": lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]}
            return go

        got["switch_only"] = _switches(b, store, folded, progress)
        got.update({k: bm.interleave({w: f(w) for w in servers}, cfg.rounds, progress=progress)
               for k, f in (("switch", switching), ("one", one), ("mixed", mixed))})
        got["repeat"] = bm.interleave({w: one(w, repeat=True) for w in servers}, cfg.rounds, progress=progress)
    finally:
        for s in servers.values():
            s.close()

    def v(group, who, key):
        return bm.values(got[group][who], key)

    ours, theirs = ("mlx-lc serve", "mlx_lm.server")
    over = {w: statistics.median([a - c for a, c in zip(v("switch", w, "switch_s"), v("switch", w, "stay_s"))])
            for w in servers}
    rows = [
        row("serve_switch", "time to switch composition: mlx-lc serve's factor swap vs mlx_lm.server's adapter load",
            ("mlx-lc Engine swap", v("switch_only", "mlx_lc", "switch_s")),
            ("mlx_lm ModelProvider.load", v("switch_only", "mlx_lm", "switch_s")), "s",
            "mlx_lm.server time / mlx-lc time", invert=True, target=20.0,
            note=f"alternating {' and '.join(COMPOSITIONS)}, timed in the bench process: what each server's "
                 "generation thread does when a request names the other composition (mlx-lc: swap in its "
                 "prepared factors; mlx_lm.server: load the base with the other folded adapter)"),
        row("serve_switch_request", "request latency when the composition changes (1 token): mlx-lc serve vs "
            "mlx_lm.server", (ours, v("switch", "mlx_lc", "switch_s")), (theirs, v("switch", "mlx_lm", "switch_s")),
            "s", "mlx_lm.server time / mlx-lc time", invert=True,
            note=f"over HTTP, alternating {' and '.join(COMPOSITIONS)}; mlx_lm.server gets each one's folded adapter "
                 f"in the request; switching minus same-composition latency (median): mlx-lc "
                 f"{1e3 * over['mlx_lc']:.1f} ms, mlx_lm.server {1e3 * over['mlx_lm']:.1f} ms; same-composition "
                 f"latency: mlx-lc {1e3 * statistics.median(v('switch', 'mlx_lc', 'stay_s')):.1f} ms, mlx_lm.server "
                 f"{1e3 * statistics.median(v('switch', 'mlx_lm', 'stay_s')):.1f} ms"),
        row("serve_tokens", "tokens/s serving one composition: mlx-lc serve vs mlx_lm.server (folded adapter)",
            (ours, v("one", "mlx_lc", "tokens_per_s")), (theirs, v("one", "mlx_lm", "tokens_per_s")), "tok/s",
            "mlx-lc / mlx_lm.server", target=1.0,
            note=f"{COMPOSITIONS[0]}, one client, each request another input, max {cfg.max_tokens} tokens; "
                 "completion tokens / request wall "
                 f"time (prompt pass included); tokens per answer: mlx-lc {v('one', 'mlx_lc', 'tokens')[0]}, "
                 f"mlx_lm.server {v('one', 'mlx_lm', 'tokens')[0]}; same greedy text from both: "
                 + ", ".join(f"{c} {'yes' if s else 'no'}" for c, s in same.items())),
        row("serve_tokens_repeat", "tokens/s serving one composition, one input asked again and again",
            (ours, v("repeat", "mlx_lc", "tokens_per_s")), (theirs, v("repeat", "mlx_lm", "tokens_per_s")), "tok/s",
            "mlx-lc / mlx_lm.server",
            note="as serve_tokens, but every request the same text: mlx_lm.server's prompt cache then holds the "
                 "whole prompt and skips its pass; mlx-lc serve keeps no prompt cache"),
    ]
    mixed_note = (f"{CLIENTS} clients at once, {PER_CLIENT} requests each, alternating {' and '.join(COMPOSITIONS)}, "
                  f"max {max(2, cfg.max_tokens // 4)} tokens; mlx-lc runs one request at a time (FIFO), "
                  "mlx_lm.server batches same-adapter requests and reloads on a change of adapter")
    rows.append(row("serve_mixed_rps", f"requests/s, {CLIENTS} concurrent clients, mixed compositions",
                    (ours, v("mixed", "mlx_lc", "req_per_s")), (theirs, v("mixed", "mlx_lm", "req_per_s")), "req/s",
                    "mlx-lc / mlx_lm.server", note=mixed_note))
    for q in ("p50", "p99"):
        rows.append(row(f"serve_mixed_{q}", f"{q} latency, {CLIENTS} concurrent clients, mixed compositions",
                        (ours, v("mixed", "mlx_lc", f"{q}_s")), (theirs, v("mixed", "mlx_lm", f"{q}_s")), "s",
                        "mlx_lm.server time / mlx-lc time", invert=True, note=mixed_note))
    return rows, {"samples": got, "same_text": same}
