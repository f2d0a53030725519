"""`mlx-lc serve` on loopback: the store's tasks and compositions behind the OpenAI API, each answer
the very text `mlx-lc generate --task NAME TEXT` gives, under concurrent clients and bad requests."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from clirun import assert_one_line_error, invoke
from mlx_lc.serve import make_server
from mlx_lc.store import Store
from test_store import _add, trained  # noqa: F401  (the fixture: two tiny LoRAs trained on the tiny model)

TEXTS = ["the cat sat on a mat", "rain fell near the old red door", "a red door while the cat sat"]
N = 8  # tokens per answer


@pytest.fixture(scope="module")
def store(trained, tmp_path_factory, tiny_path):  # noqa: F811
    """Two tasks, one calibrated composition (its factors are the merge with the calibration folded in)
    and one plain merge, plus a task trained on another base."""
    root, loras, inputs, specs = trained
    store = tmp_path_factory.mktemp("serve") / "store"
    _add(store, "first-two", loras["first-two"], specs["first-two"][0])
    _add(store, "shout", loras["shout"], specs["shout"][0], "--kind", "secondary", "--modifier", ", in capitals")
    r = invoke("calibrate", "--task", "first-two+shout", "--inputs", inputs, "--store", store, "--iters", 2,
               "--batch-size", 4, "--targets-max-tokens", 4, "-q")
    assert r.exit_code == 0, r.output
    other = tmp_path_factory.mktemp("other") / "base"
    shutil.copytree(tiny_path, other)
    _add(store, "elsewhere", loras["shout"], "Say it.", "--model", other)
    return store


MODELS = ["first-two+shout", "shout+first-two", "first-two", "shout"]


@pytest.fixture(scope="module")
def expected(store):
    """What `mlx-lc generate --task NAME TEXT --max-tokens N` prints, per (model, text)."""
    out = {}
    for name in MODELS:
        for text in TEXTS:
            r = invoke("generate", "--task", name, text, "--max-tokens", N, "--store", store)
            assert r.exit_code == 0, r.output
            assert r.stdout.endswith("\n")
            out[name, text] = r.stdout[:-1]
    return out


class Running:
    def __init__(self, server, lines):
        self.server, self.lines = server, lines
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def client(self, key="x"):
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key=key, max_retries=0, timeout=30)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.server.engine.close(10)


@pytest.fixture(scope="module")
def running(store, tiny_path):
    lines = []
    r = Running(make_server(str(tiny_path), port=0, store=Store(store), cache_size=3, log=lines.append), lines)
    yield r
    r.close()


def raw(port, method, path, body=None, headers=None):
    """-> (status, parsed JSON body) over a plain connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, json.loads(payload)


def ask(client, name, text, mode):
    """One request of each kind the API has; -> the answer's text."""
    if mode == "chat":
        r = client.chat.completions.create(model=name, messages=[{"role": "system", "content": "ignored"},
                                                                 {"role": "user", "content": text}],
                                           max_tokens=N, temperature=0)
        return r.choices[0].message.content
    if mode == "text":
        return client.completions.create(model=name, prompt=text, max_tokens=N, temperature=0).choices[0].text
    chunks = client.chat.completions.create(model=name, messages=[{"role": "user", "content": text}],
                                            max_tokens=N, temperature=0, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_models_lists_base_tasks_and_compositions(running, tiny_path):
    ids = [m.id for m in running.client().models.list().data]
    assert ids[0] == str(tiny_path) and {"first-two", "shout", "first-two+shout"} <= set(ids)
    assert "elsewhere" not in ids  # another base


def test_concurrent_interleaved_requests_each_get_their_composition(running, expected):
    """4 clients x 10 requests at once, compositions and request kinds interleaved: every greedy answer is
    what `mlx-lc generate` gives for that composition; the factors of each were prepared once."""
    client = running.client()
    jobs = [(MODELS[(c + i) % len(MODELS)], TEXTS[(c * 2 + i) % len(TEXTS)], ("chat", "text", "stream")[i % 3])
            for c in range(4) for i in range(10)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda j: ask(client, *j), jobs))
    wrong = [(j, g, expected[j[0], j[1]]) for j, g in zip(jobs, got) if g != expected[j[0], j[1]]]
    assert not wrong, wrong[:3]
    engine = running.server.engine
    assert len(engine.cache) <= 3  # the LRU bound (4 compositions asked for)
    assert engine.stats["swaps"] >= len(MODELS)


def test_base_and_stop_and_usage(running):
    client = running.client()
    r = client.completions.create(model=running.server.engine.model_name, prompt="the cat", max_tokens=5)
    assert r.usage.completion_tokens <= 5 and r.usage.prompt_tokens > 0
    chunks = list(client.chat.completions.create(model="shout", messages=[{"role": "user", "content": TEXTS[0]}],
                                                 max_tokens=N, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and 1 <= chunks[-1].usage.completion_tokens <= N
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    full = ask(client, "first-two+shout", TEXTS[0], "text")
    at = next((i for i in range(1, len(full) - 1) if full.find(full[i:i + 2]) == i), None)
    if at is not None:  # a stop sequence cuts the text where it first appears, streamed or not
        for stream in (False, True):
            got = client.completions.create(model="first-two+shout", prompt=TEXTS[0], max_tokens=N,
                                            stop=[full[at:at + 2]], stream=stream)
            parts = list(got) if stream else [got]
            assert "".join(p.choices[0].text for p in parts) == full[:at], (full, at)
            assert parts[-1].choices[0].finish_reason == "stop"


BAD = [
    ("POST", "/v1/chat/completions", b"{not json", 400, "invalid_json"),
    ("POST", "/v1/chat/completions", b"[1, 2]", 400, "invalid_json"),
    ("POST", "/v1/chat/completions", b"\xff\xfe", 400, "invalid_json"),
    ("POST", "/v1/chat/completions", {"model": "nope+shout", "messages": [{"role": "user", "content": "x"}]},
     404, "model_not_found"),
    ("POST", "/v1/chat/completions", {"model": "../../etc", "messages": [{"role": "user", "content": "x"}]},
     404, "model_not_found"),
    ("POST", "/v1/completions", {"model": "/etc/passwd", "prompt": "x"}, 404, "model_not_found"),
    ("POST", "/v1/completions", {"model": "first-two+../x", "prompt": "x"}, 404, "model_not_found"),
    ("POST", "/v1/completions", {"model": "summarize", "prompt": "x"}, 404, "model_not_found"),  # no adapter
    ("POST", "/v1/completions", {"model": "elsewhere", "prompt": "x"}, 400, "model_base_mismatch"),
    ("POST", "/v1/completions", {"model": ["shout"], "prompt": "x"}, 400, "invalid_type"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "max_tokens": -5}, 400, "invalid_value"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "max_tokens": 10**12}, 400, "invalid_value"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "max_tokens": 2040}, 400, "context_length_exceeded"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "max_tokens": True}, 400, "invalid_type"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "temperature": -1}, 400, "invalid_value"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "n": 3}, 400, "invalid_value"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "top_k": 10**9}, 400, "invalid_value"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "seed": -1}, 400, "invalid_value"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "x", "seed": 2**70}, 400, "invalid_value"),
    ("POST", "/v1/completions", b'{"model": "shout", "prompt": "x", "temperature": NaN}', 400, "invalid_value"),
    ("POST", "/v1/completions", {"model": "shout", "prompt": "  "}, 400, "invalid_value"),
    ("POST", "/v1/chat/completions", {"model": "shout", "messages": [{"role": "system", "content": "x"}]},
     400, "invalid_value"),
    ("POST", "/v1/chat/completions", {"model": "shout", "messages": "hi"}, 400, "invalid_value"),
    ("POST", "/v1/completions", b"x" * (10 * 2**20), 413, "request_too_large"),
    ("POST", "/v1/nothing", {}, 404, "not_found"),
    ("GET", "/etc/passwd", None, 404, "not_found"),
    ("DELETE", "/v1/models", None, 405, "method_not_allowed"),
]


def test_bad_requests_get_a_json_4xx_and_the_server_keeps_serving(running, expected):
    """Every bad request once, from 4 clients at once, good requests in between: each bad one gets its
    4xx, each good one its right answer."""
    client = running.client()
    work = [("bad", b) for b in BAD] + [("good", (MODELS[i % 4], TEXTS[i % 3])) for i in range(8)]
    work = work[::2] + work[1::2]

    def one(item):
        kind, what = item
        if kind == "good":
            return ask(client, *what, "chat") == expected[what]
        method, path, body, status, code = what
        got, payload = raw(running.port, method, path, body)
        assert isinstance(payload["error"]["message"], str) and payload["error"]["type"]
        return got == status and payload["error"]["code"] == code or (path, str(body)[:100], payload)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, work))
    assert all(r is True for r in results), [r for r in results if r is not True]
    assert ask(client, "first-two+shout", TEXTS[0], "chat") == expected["first-two+shout", TEXTS[0]]


def test_seeded_sampling_matches_generate(running, store):
    r = invoke("generate", "--task", "first-two+shout", TEXTS[2], "--max-tokens", N, "--temp", 0.9, "--seed", 5,
               "--store", store)
    got = running.client().completions.create(model="first-two+shout", prompt=TEXTS[2], max_tokens=N,
                                              temperature=0.9, seed=5)
    assert r.exit_code == 0 and got.choices[0].text == r.stdout[:-1]


def test_a_client_leaving_mid_stream_frees_the_model(running, expected):
    engine = running.server.engine
    body = json.dumps({"model": engine.model_name, "prompt": "the cat", "max_tokens": 1500, "stream": True})
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as s:
            s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
            assert s.recv(4096).startswith(b"HTTP/1.0 200")  # the headers, maybe a first event: then gone
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as s:  # not streamed: gone while waiting
        quiet = body.replace('"stream": true', '"stream": false')
        s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(quiet)}\r\n\r\n{quiet}".encode())
    t0 = time.perf_counter()
    assert ask(running.client(), "shout", TEXTS[1], "stream") == expected["shout", TEXTS[1]]
    assert time.perf_counter() - t0 < 20
    deadline = time.time() + 10
    while not any("client left" in ln for ln in running.lines) and time.time() < deadline:
        time.sleep(0.1)
    assert any("client left" in ln for ln in running.lines), running.lines[-5:]
    while not any("client left before" in ln for ln in running.lines) and time.time() < deadline:
        time.sleep(0.1)
    assert any("client left before" in ln for ln in running.lines), running.lines


def test_api_key_on_every_route(store, tiny_path):
    r = Running(make_server(str(tiny_path), port=0, store=Store(store), api_key="sekret", log=lambda m: None), [])
    try:
        for method, path, body in (("GET", "/v1/models", None), ("GET", "/health", None), ("GET", "/nope", None),
                                   ("POST", "/v1/completions", {"model": "shout", "prompt": "x"})):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekret"}):
                status, payload = raw(r.port, method, path, body, headers)
                assert status == 401 and payload["error"]["code"] == "invalid_api_key", (path, headers)
        with pytest.raises(openai.AuthenticationError):
            r.client("wrong").models.list()
        assert ask(r.client("sekret"), "shout", TEXTS[0], "text")
    finally:
        r.close()


def test_startup_errors_are_one_line(store, tiny_path):
    assert_one_line_error(invoke("serve", "--model", store / "nowhere", "--store", store), "model not found")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert_one_line_error(invoke("serve", "--model", tiny_path, "--port", s.getsockname()[1], "--store", store),
                              "cannot listen on 127.0.0.1")


def _serve_process(store, tiny_path, stderr):
    """`mlx-lc serve` in a process of its own on a free port -> (process, port)."""
    cmd = [sys.executable, "-c", "from mlx_lc.cli import main; main()", "serve", "--model", str(tiny_path),
           "--port", "0", "--store", str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env={**os.environ, "MLX_LC_HOME": str(store)})
    line = proc.stdout.readline()
    if "http://127.0.0.1:" not in line:
        proc.kill()
        raise AssertionError((line, proc.stderr.read() if proc.stderr else proc.poll()))
    return proc, int(line.split("http://127.0.0.1:")[1].split("/")[0])


def test_sigterm_lets_requests_in_flight_finish_then_exits_0(store, tiny_path):
    proc, port = _serve_process(store, tiny_path, subprocess.PIPE)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v1/completions", body=json.dumps(
            {"model": str(tiny_path), "prompt": "the cat", "max_tokens": 300, "stream": True}))
        resp = conn.getresponse()
        assert resp.fp.readline().startswith(b"data: ")  # generating now
        proc.send_signal(signal.SIGTERM)
        rest = resp.read().decode()
        assert rest.rstrip().endswith("data: [DONE]"), rest[-200:]
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_compositions_answer_differently(expected):
    """Else the concurrency test above could not tell one composition's factors from another's."""
    for text in TEXTS:
        assert len({expected[m, text] for m in MODELS}) >= 3, {m: expected[m, text] for m in MODELS}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")) / 1024


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the server's RSS from /proc")
def test_8_clients_x_50_mixed_requests_twice_keep_memory_flat(store, tiny_path):
    """8 clients x 50 requests at once, good ones (every composition, the tasks, the base; chat, text and
    streamed) mixed with bad ones (malformed JSON, unknown models, '../../etc', max_tokens negative or
    huge, ...), all of it twice, against `mlx-lc serve` in a process of its own. Each bad request gets its
    4xx with a JSON error body, each good greedy answer is the one the same request got in the warm-up,
    the server keeps serving, and its RSS after the second load is where the first left it."""
    proc, port = _serve_process(store, tiny_path, subprocess.DEVNULL)
    try:
        models = [str(tiny_path), *MODELS]  # the base, 2 compositions, 2 tasks: within the default cache of 8
        good = [(m, t, mode) for m in models for t in TEXTS for mode in ("chat", "text", "stream")]
        bad = [b for b in BAD if b[3] != 413]  # the 10 MB body is tested above; here it would only be slow

        def client():
            return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=60)

        warm = client()
        first = {g: ask(warm, *g) for g in good}  # every composition used once: its factors are prepared

        def settled_rss():
            time.sleep(1.0)  # the last handler threads end after their answers are sent
            return _rss_mb(proc.pid)

        baseline = settled_rss()

        def one_client(c):
            """50 requests, one after another, a third of them bad: -> the problems seen."""
            api, problems = client(), []
            for i in range(50):
                k = c * 50 + i
                if k % 3 == 0:
                    method, path, body, status, code = bad[(k // 3) % len(bad)]
                    got, payload = raw(port, method, path, body)
                    err = payload.get("error") if isinstance(payload, dict) else None
                    if not (got == status and isinstance(err, dict) and err.get("code") == code
                            and isinstance(err.get("message"), str) and err.get("type")):
                        problems.append((path, str(body)[:60], got, payload))
                else:
                    g = good[(k * 7) % len(good)]
                    answer = ask(api, *g)
                    if answer != first[g]:
                        problems.append((g, answer, first[g]))
            return problems

        def load():
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                problems = [p for ps in pool.map(one_client, range(8)) for p in ps]
            rate = 8 * 50 / (time.perf_counter() - t0)
            assert not problems, problems[:5]
            assert proc.poll() is None and raw(port, "GET", "/health") == (200, {"status": "ok"})
            return rate, settled_rss()

        rate1, after1 = load()
        rate2, after2 = load()
        print(f"\nserve 8x50 mixed: RSS baseline {baseline:.1f} MB, after load 1 {after1:.1f} MB, "
              f"after load 2 {after2:.1f} MB; {rate1:.1f} and {rate2:.1f} requests/s")
        # Load 2 repeats load 1 exactly, after load 1 has grown whatever pools (allocator arenas, the MLX
        # buffer cache, thread stacks) a load of this shape needs, so what load 2 adds is what its 400
        # requests kept. 8 MB over 400 requests is 20 KB a request: less than one request's KV cache here
        # (2 layers x K and V x 64 x 4 bytes = 1 KB a token, 20-40 tokens a request), so keeping any
        # request's cache, or its thread's stack, would fail this; a few KB of Python objects a request
        # would not, which is the price of a bound the noise of one run leaves room for.
        assert after2 - after1 < 8, (baseline, after1, after2)
        assert ask(warm, "first-two+shout", TEXTS[0], "chat") == first["first-two+shout", TEXTS[0], "chat"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
