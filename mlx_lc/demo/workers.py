"""Training the demo's independent artifacts in worker processes, with each worker's progress
(step/steps, loss, ETA) shown in the parent."""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import mlx.core as mx
from tqdm.auto import tqdm

from ..calibrate import calibrate
from ..training.train import train_lora

def default_workers() -> int:
    """One training process per core, up to 2 (the demo's jobs are small); 1 where MLX has a GPU."""
    return 1 if mx.metal.is_available() else max(1, min(2, os.cpu_count() or 1))


def _train(kind: str, args: tuple, progress: bool = False) -> None:
    (train_lora if kind == "lora" else calibrate)(*args, progress=progress)


def _job_out(kind: str, args: tuple) -> Path:
    return Path(args[3 if kind == "calibration" else 2])


def run_jobs(jobs: list[tuple[str, tuple]], workers: int, progress: bool, desc: str) -> None:
    """Train independent artifacts (kind, args), `workers` at a time, each in its own process.

    On a CPU this model is too small for threads to pay off, so separate single-threaded
    processes are what uses the cores; every job is seeded, so the result is the same either way
    up to float rounding (a worker's BLAS runs one thread). So with workers > 1 even a lone job
    runs in a worker: a run that reuses the other artifacts trains it exactly as the full run did.
    Each worker's progress bar (step/steps, loss, ETA) shows as a line under the artifacts' bar.
    """
    if workers <= 1:
        for kind, args in jobs:
            _train(kind, args, progress)
        return
    if not jobs:
        return
    # the longest jobs first, so no worker is left with a big one at the end
    jobs = sorted(jobs, key=lambda j: -(Path(j[1][2 if j[0] == "calibration" else 1]) / "train.jsonl").stat().st_size)
    workers = min(workers, len(jobs))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue() if progress else None
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # read by each worker's BLAS at start-up
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(queue,)) as pool, \
                tqdm(total=len(jobs), desc=f"{desc} ({workers} process{'es' if workers != 1 else ''})", unit="artifact",
                     disable=not progress, dynamic_ncols=True) as bar, \
                WorkerLines(progress, first=bar.pos + 1 if progress else 1) as lines:
            pending = {pool.submit(_train, kind, args, progress): _job_out(kind, args) for kind, args in jobs}
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                lines.drain(queue)
                for f in done:
                    out = pending.pop(f)
                    f.result()
                    bar.set_postfix_str(f"{out.parent.name}/{out.name}", refresh=False)
                    bar.update()
            lines.drain(queue)
    finally:
        if threads is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = threads


def _worker_init(queue) -> None:
    """In a worker: its stderr (its training bar, any notes) goes to the parent through `queue`."""
    if queue is not None:
        sys.stderr = ToQueue(queue)


class ToQueue:
    """A worker's stderr as messages to the parent: (pid, "bar", text) for a progress bar's latest
    state (tqdm redraws it after a carriage return) and (pid, "line", text) for any other line."""

    def __init__(self, queue, pid: int | None = None):
        self.queue, self.pid, self.buf = queue, pid or os.getpid(), ""

    def write(self, s: str) -> int:
        self.buf += s
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self._send(line)
        if "\r" in self.buf:  # a bar's redraw, whole: tqdm writes "\r" + its line in one call
            self._send(self.buf)
            self.buf = ""
        return len(s)

    def _send(self, text: str) -> None:
        kind = "bar" if "\r" in text else "line"
        text = text.rsplit("\r", 1)[-1].rstrip()
        if text:
            self.queue.put((self.pid, kind, text))

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class WorkerLines:
    """One status line per worker process, under the artifacts' bar: the latest state of that
    worker's training bar. Other lines a worker writes are printed above the bars."""

    def __init__(self, show: bool, first: int = 1):
        self.show, self.first, self.slots, self.bars = show, first, {}, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for b in self.bars:
            b.close()

    def drain(self, queue) -> None:
        if queue is None:
            return
        while True:
            try:
                pid, kind, text = queue.get_nowait()
            except queue_mod.Empty:
                return
            self.put(pid, kind, text)

    def put(self, pid: int, kind: str, text: str) -> None:
        if not self.show:
            return
        if kind == "line":
            tqdm.write(text)
            return
        if pid not in self.slots:
            self.slots[pid] = len(self.bars)
            self.bars.append(tqdm(bar_format="{desc}", position=self.first + len(self.bars), leave=False))
        bar = self.bars[self.slots[pid]]
        bar.set_description_str(f"  {text}")

