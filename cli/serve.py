"""`mlx-lc serve`: the task store's tasks and compositions behind an OpenAI-compatible API."""

from __future__ import annotations

import signal
import threading

import click

from . import main
from .tasks import open_store, store_option


@main.command()
@click.option("--model", "-m", help="Base model: Hugging Face repo id or local folder (default: the one the "
              "store's tasks were trained on).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (127.0.0.1: this "
              "machine only).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option("--api-key", envvar="MLX_LC_API_KEY", help="Require Authorization: Bearer KEY on every route "
              "(or set MLX_LC_API_KEY).")
@click.option("--cache", "cache_size", default=8, show_default=True, type=click.IntRange(1),
              help="Compositions whose factors stay prepared (least recently used dropped first).")
@store_option
def serve(model, host, port, api_key, cache_size, store):
    """Serve the store's tasks and compositions (and the base) over an OpenAI-compatible API.

    A request's `model` names a task or a composition, e.g. summarize+es; the last user message
    is the input. The base loads once; each composition swaps in only its low-rank factors.

    \b
    mlx-lc serve --model Qwen/Qwen2.5-1.5B-Instruct
    curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
        -d '{"model": "summarize+es", "messages": [{"role": "user", "content": "..."}]}'
    """
    from mlx_lc import serve as lib  # here: it brings in mlx_lm, which `mlx-lc --help` does not need

    s = open_store(store)
    server = lib.make_server(model or lib.default_model(s), host, port, api_key, s, cache_size)

    def stop(signum, frame):  # shutdown() waits for serve_forever, which runs on this thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        click.echo(f"mlx-lc serve: listening on {host} without --api-key: anyone who can reach it can use it",
                   err=True)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"mlx-lc serve: {server.engine.model_name} at {server.url} "
               f"({len(server.engine.models()) - 1} tasks and compositions)")
    try:
        server.serve_forever()
    finally:
        server.server_close()  # joins the handler threads: requests in flight finish first
        server.engine.close()
    click.echo("mlx-lc serve: stopped", err=True)
