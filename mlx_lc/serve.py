"""`mlx-lc serve`: an OpenAI-compatible server whose `model` names a task or a composition.

The base model loads once. A request names a task or a composition of the task store ("summarize+es")
or the base; the server runs it on the resident base with that composition's low-rank factors
swapped in (the merge with its calibration folded in, exactly as `mlx-lc generate --task` builds
them), prepared on first use and kept in a bounded LRU cache. The prompt is the task's, built with
tasks.format_prompt from the input, so a greedy answer is the text `mlx-lc generate` gives.

Swapping factors mutates the one shared model, so one worker thread owns the model and runs the
requests one at a time, in arrival order (a FIFO queue); HTTP threads only parse, build prompts,
and stream what the worker hands them. A slow or vanished client therefore never holds the model:
its tokens queue up (at most max_tokens of them) or its request is cancelled at the next token.

The HTTP layer is the standard library's threaded server, as mlx_lm.server's; generation is
mlx_lm's stream_generate and make_sampler, as `mlx-lc generate`'s. Nothing in a request reaches the
file system but a name the store resolves (store.check_name first): a request's model string is
never a path or a hub id.
"""

from __future__ import annotations

import hmac
import json
import queue
import select
import socket
import sys
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlx.core as mx
from mlx.utils import tree_unflatten

from . import adapters as adapters_io
from . import calibration as calib_io
from . import model_folder, tasks
from .errors import MlxLcError
from .generate import LoRALayer, check_sampling
from .merge import MergeConfig, merge
from .store import Resolved, Store, check_name
from .training.rows import encode_prompt

MAX_BODY = 4 * 2**20  # a request body past this is refused (413): prompts are text, not files
DRAIN_LIMIT = 64 * 2**20  # a refused body up to this is read and dropped, so the client sees the answer
DEFAULT_MAX_TOKENS = 256  # as `mlx-lc generate`
MAX_STOP = 4  # OpenAI's limit on stop sequences
SOCKET_TIMEOUT = 30.0  # a client silent this long is dropped (its thread must not hold shutdown)
MAX_PENDING = 256  # requests waiting for the model past this are refused (503), not queued without end


class ApiError(Exception):
    """A refusal with an HTTP status, sent as OpenAI's error body."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.type, self.code, self.param = status, type, code, param

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.type, "code": self.code, "param": self.param}}


@dataclass
class Job:
    """One generation, handed from an HTTP thread to the worker; the worker answers on `out`:
    READY (or an exception) first, then ("text", piece)..., then ("end", finish_reason, tokens)."""

    key: tuple | None  # the composition's cache key; None: the base
    resolved: Resolved | None
    prompt: list[int]
    max_tokens: int
    sampling: dict
    seed: int | None
    out: queue.Queue = field(default_factory=queue.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)


READY = "ready"


class Engine:
    """The resident base, the prepared factors of the compositions used lately, and the worker
    thread that alone touches the model."""

    def __init__(self, model: str, store: Store | None = None, cache_size: int = 8, log=None):
        if cache_size < 1:
            raise MlxLcError(f"cache_size must be at least 1, got {cache_size}", param="cache_size")
        self.store = store or Store.default()
        self.model_name, self.base_id = model, model_folder.model_id(model)
        self.model, self.tokenizer = model_folder.load(model)
        self.model.eval()
        self.context = model_folder.model_context(self.model)
        self.vocab = getattr(getattr(self.model, "args", None), "vocab_size", None)
        # every adaptable linear as loaded: what a swap puts back where a composition has no factors
        shapes = adapters_io.linear_shapes(self.model)
        self._base = {p: m for p, m in self.model.named_modules() if p in shapes}
        self._adapted: set[str] = set()
        self.current: tuple | None = None
        self.cache: OrderedDict[tuple, list] = OrderedDict()
        self.cache_size = cache_size
        self.log = log or (lambda msg: print(f"mlx-lc serve: {msg}", file=sys.stderr, flush=True))
        self.stats = {"swaps": 0, "prepared": 0, "swap_s": 0.0}
        self._jobs: queue.Queue = queue.Queue()
        self._closed = False
        self._drained = threading.Event()
        self._worker = threading.Thread(target=self._work, name="mlx-lc-serve-worker", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------ names (HTTP threads)

    def is_base(self, name) -> bool:
        return name is None or name in (self.model_name, self.base_id)

    def same_base(self, recorded: str) -> bool:
        return bool(recorded) and model_folder.model_id(recorded) == self.base_id

    def resolve(self, name) -> Resolved | None:
        """A request's model -> what runs it (None: the base). Only a name of store tasks joined
        by + gets this far; the store reads its own files by that name."""
        if self.is_base(name):
            return None
        if not isinstance(name, str):
            raise ApiError(400, "model must be a string", code="invalid_value", param="model")
        try:
            for part in name.split("+"):
                check_name(part)
        except MlxLcError:
            raise ApiError(404, f"model {name[:80]!r} does not exist: name the base, a task or a composition "
                           "(tasks joined by +) of GET /v1/models", code="model_not_found", param="model") from None
        try:
            found = self.store.resolve(name)
        except MlxLcError as e:
            raise ApiError(404, f"model {name!r} is not usable here: {e}", code="model_not_found",
                           param="model") from None
        if not self.same_base(found.model):
            raise ApiError(400, f"model {name!r} runs on base model {found.model}, not on this server's "
                           f"{self.model_name}: start a server on that base for it", code="model_base_mismatch",
                           param="model")
        return found

    def models(self) -> list[str]:
        """The base, then the store's tasks and compositions that run on it."""
        mine = [t for t in self.store.tasks() if t.adapter and self.same_base(t.base_model)]
        names = {t.name for t in mine}
        comps = [c["name"] for c in self.store.compositions() if all(p in names for p in c["name"].split("+"))]
        return [self.model_name, *(t.name for t in mine), *comps]

    def prompt(self, found: Resolved | None, text: str, chat: bool) -> list[int]:
        """The tokens `mlx-lc generate --task NAME TEXT` feeds the model; for the base, a chat
        message in the model's chat template, a completion's prompt as is."""
        if found is not None:
            formatted = tasks.format_prompt(self.tokenizer, found.task, text)
        elif chat:
            formatted = tasks.wrap_message(self.tokenizer, text)
        else:
            formatted = tasks.format_prompt(self.tokenizer, None, text)
        return encode_prompt(self.tokenizer, formatted)

    def submit(self, job: Job) -> Job:
        if self._closed:
            raise ApiError(503, "the server is shutting down", type="server_error", code="shutting_down")
        if self._jobs.qsize() >= MAX_PENDING:
            raise ApiError(503, f"{MAX_PENDING} requests are already waiting: try again later", type="server_error",
                           code="busy")
        self._jobs.put(job)
        return job

    def close(self, timeout: float | None = None) -> None:
        """Refuse new jobs and wait until the queued ones are done. The worker thread itself stays
        (a daemon, idle): MLX aborts the process at exit when a thread that generated has ended
        ("terminate called without an active exception", mlx 0.32), and a live daemon is harmless."""
        self._closed = True
        self._jobs.put(None)
        self._drained.wait(timeout)

    # ------------------------------------------------------------ the model (worker thread only)

    def _prepare(self, found: Resolved) -> list:
        """The composition's factors as generate.compose builds them, wrapped around the base linears."""
        self._swap(None)  # adapters validate against the plain base's linears
        loras = adapters_io.load_for(self.model, found.adapters, self.model_name)
        if found.calibration:
            _, merged, calib = calib_io.merge_for(calib_io.resolve(found.calibration), loras)
            lora = calib_io.fold(merged, calib)
        else:
            lora = merge(loras, MergeConfig()) if len(loras) > 1 else loras[0]
        layers = [(p, LoRALayer(self._base[p], a.astype(mx.float32), b.astype(mx.float32), lora.scale))
                  for p, (a, b) in lora.factors.items()]
        mx.eval([layer.lora_b for _, layer in layers])
        self.stats["prepared"] += 1
        return layers

    def _swap(self, key: tuple | None) -> None:
        """Put the composition's layers in, and the base linear back wherever it has none."""
        if key == self.current:
            return
        t0 = time.perf_counter()
        layers = self.cache[key] if key is not None else []
        paths = {p for p, _ in layers}
        restore = [(p, self._base[p]) for p in self._adapted - paths]
        if restore or layers:
            self.model.update_modules(tree_unflatten(restore + layers))
        self._adapted, self.current = paths, key
        self.stats["swaps"] += 1
        self.stats["swap_s"] += time.perf_counter() - t0

    def _activate(self, job: Job) -> None:
        if job.key is not None and job.key not in self.cache:
            t0 = time.perf_counter()
            self.cache[job.key] = self._prepare(job.resolved)
            self.log(f"loaded {job.key[0]} ({time.perf_counter() - t0:.2f} s)")
            while len(self.cache) > self.cache_size:
                old, _ = self.cache.popitem(last=False)
                if old == self.current:
                    self._swap(None)
        if job.key is not None:
            self.cache.move_to_end(job.key)
        self._swap(job.key)

    def _work(self) -> None:
        from mlx_lm import stream_generate  # here: mlx_lm costs ~1.1 s, which `mlx-lc --help` does not need
        from mlx_lm.sample_utils import make_sampler

        while True:
            job = self._jobs.get()
            if job is None:  # close(): everything before it is done; the thread idles on (see close)
                self._drained.set()
                continue
            if job.cancel.is_set():
                continue
            try:
                self._activate(job)
            except Exception as e:  # a broken store record or adapter: that request's answer, not the server's end
                job.out.put(e)
                continue
            job.out.put(READY)
            try:
                if job.seed is not None:
                    mx.random.seed(job.seed)
                finish, n = "length", 0
                for r in stream_generate(self.model, self.tokenizer, job.prompt, max_tokens=job.max_tokens,
                                         sampler=make_sampler(**job.sampling)):
                    n, finish = r.generation_tokens, r.finish_reason or finish
                    job.out.put(("text", r.text))
                    if job.cancel.is_set():  # the client left, or a stop sequence came
                        finish = "cancelled"
                        break
                job.out.put(("end", finish, n))
            except Exception as e:
                job.out.put(e)


# ---------------------------------------------------------------- requests


@dataclass
class Request:
    chat: bool
    model: str | None
    text: str
    max_tokens: int
    sampling: dict
    seed: int | None
    stream: bool
    include_usage: bool
    stop: list[str]


def _number(body: dict, name: str, default, kind=(int, float)):
    value = body.get(name, default)
    if value is None:
        return default
    # bool is an int to Python, not a number to a client
    if isinstance(value, bool) or not isinstance(value, kind):
        want = "an integer" if kind is int else "a number"
        raise ApiError(400, f"{name} must be {want}, got {json.dumps(value)[:40]}", code="invalid_type", param=name)
    return value


def _text(content, where: str) -> str:
    """A message's content: a string, or OpenAI's list of parts (the text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        parts = [p.get("text") for p in content if p.get("type") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    raise ApiError(400, f"{where} must be a string or a list of text parts", code="invalid_type", param=where)


def parse_request(body, chat: bool, max_tokens_limit: int, vocab: int | None = None) -> Request:
    """Check a request body; one ApiError (400) for the first thing wrong. What mlx-lm would fail
    on deep in generation (top_k past the vocabulary, a seed past 64 bits) is refused here."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ApiError(400, "messages must be a non-empty list of messages", code="invalid_value", param="messages")
        users = [m for m in messages if m.get("role") == "user"]
        if not users:
            raise ApiError(400, "messages holds no user message: its text is the input", code="invalid_value",
                           param="messages")
        text = _text(users[-1].get("content"), "messages.content")
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string", code="invalid_value", param="prompt")
        text = prompt
    if not text.strip():
        raise ApiError(400, "the input is empty", code="invalid_value", param="messages" if chat else "prompt")
    n = _number(body, "n", 1, int)
    if n != 1:
        raise ApiError(400, f"n must be 1 (one choice per request), got {n}", code="invalid_value", param="n")
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number(body, name, DEFAULT_MAX_TOKENS, int)
    if not 1 <= max_tokens <= max_tokens_limit:
        raise ApiError(400, f"{name} must be in [1, {max_tokens_limit}], got {max_tokens}", code="invalid_value",
                       param=name)
    sampling = dict(temp=_number(body, "temperature", 0.0), top_p=_number(body, "top_p", 0.0),
                    min_p=_number(body, "min_p", 0.0), top_k=_number(body, "top_k", 0, int))
    try:
        check_sampling(**sampling, max_tokens=max_tokens)
    except MlxLcError as e:
        param = {"temp": "temperature"}.get(e.param, e.param)
        raise ApiError(400, str(e).replace("temp ", "temperature ", 1) if e.param == "temp" else str(e),
                       code="invalid_value", param=param) from None
    if vocab and sampling["top_k"] > vocab:
        raise ApiError(400, f"top_k must be at most the vocabulary's {vocab}, got {sampling['top_k']}",
                       code="invalid_value", param="top_k")
    if sampling["top_p"] == 1.0:
        sampling["top_p"] = 0.0  # OpenAI's "no nucleus cut"; mlx-lm's off is 0
    seed = _number(body, "seed", None, int)
    if seed is not None and not 0 <= seed < 2**64:
        raise ApiError(400, f"seed must be in [0, 2**64), got {seed}", code="invalid_value", param="seed")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", code="invalid_type", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", code="invalid_type", param="stream_options")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, f"stop must be a string or a list of at most {MAX_STOP} non-empty strings",
                       code="invalid_value", param="stop")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "model must be a string", code="invalid_type", param="model")
    return Request(chat, model, text, max_tokens, sampling, seed, stream, bool(options.get("include_usage")), stop)


def _cut(text: str, stop: list[str]) -> tuple[str, bool]:
    """Text up to the first stop sequence, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


# ---------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    server_version = "mlx-lc"
    timeout = SOCKET_TIMEOUT
    _body_read = True
    _checked = 0.0  # when _next last looked whether the client is still there

    @property
    def engine(self) -> Engine:
        return self.server.engine

    # ------------------------------------------------------------ replies

    def log_message(self, format, *args):  # one line per request on stderr, through the engine's log
        self.engine.log(f"{self.address_string()} {format % args}")

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, e: ApiError) -> None:
        self.close_connection = True
        self._json(e.status, e.body())
        self._drain()

    def _drain(self) -> None:
        """Read and drop a body not read yet (up to DRAIN_LIMIT): a client still sending when the
        socket closes sees a reset instead of the answer."""
        if self._body_read:
            return
        self._body_read = True
        try:
            left = min(int(self.headers.get("Content-Length") or 0), DRAIN_LIMIT)
            while left > 0:
                chunk = self.rfile.read(min(left, 2**16))
                if not chunk:
                    break
                left -= len(chunk)
        except (OSError, ValueError):
            pass

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a bad request line, a method it has no do_ for) in the JSON shape."""
        self.close_connection = True
        if code == 501:  # a method with no do_ here
            code, message = 405, f"method {self.command} is not allowed: use GET or POST"
        try:
            self._json(code, ApiError(code, message or self.responses.get(code, ("error",))[0],
                                      code="method_not_allowed" if code == 405 else "bad_request").body())
        except OSError:
            pass

    # ------------------------------------------------------------ routes

    def _authorized(self) -> bool:
        key = self.server.api_key
        if key is None:
            return True
        given = self.headers.get("Authorization", "")
        ok = given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), key.encode())
        if not ok:
            self._refuse(ApiError(401, "missing or wrong API key: send Authorization: Bearer KEY",
                                  type="authentication_error", code="invalid_api_key"))
        return ok

    def do_GET(self):
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            return self._json(200, {"status": "ok"})
        if path == "/v1/models":
            created = int(self.server.started)
            return self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "mlx-lc"} for m in self.engine.models()]})
        self._refuse(ApiError(404, f"no route {path or '/'}", code="not_found"))

    def do_POST(self):
        self._body_read = False
        try:
            if not self._authorized():
                return
            path = self.path.split("?", 1)[0].rstrip("/")
            if path not in ("/v1/chat/completions", "/v1/completions"):
                raise ApiError(404, f"no route {path or '/'}", code="not_found")
            body = self._read_json()
            req = parse_request(body, path.endswith("chat/completions"), self.server.max_tokens_limit,
                                self.engine.vocab)
            found = self.engine.resolve(req.model)
            try:
                prompt = self.engine.prompt(found, req.text, req.chat)
                model_folder.check_fits(self.engine.context, len(prompt), req.max_tokens)
            except MlxLcError as e:
                raise ApiError(400, str(e), code="context_length_exceeded" if "context" in str(e) else "invalid_value")
            key = None if found is None else (req.model, tuple(found.adapters), found.calibration)
            job = self.engine.submit(Job(key, found, prompt, req.max_tokens, req.sampling, req.seed))
            first = self._next(job)
            if isinstance(first, MlxLcError):
                raise ApiError(400, f"model {req.model!r} cannot be loaded: {first}", code="model_unusable",
                               param="model")
            if isinstance(first, Exception):
                raise first
            self._answer(req, job, len(prompt))
        except ApiError as e:
            self._refuse(e)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # a bug: say so in the JSON shape, keep serving
            self.engine.log(f"internal error: {type(e).__name__}: {e}")
            try:
                self._refuse(ApiError(500, f"internal error: {type(e).__name__}", type="server_error",
                                      code="internal_error"))
            except OSError:
                pass

    def _read_json(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "send the body with a Content-Length (no chunked transfer encoding)",
                           code="length_required")
        if length is None:
            raise ApiError(411, "Content-Length is required", code="length_required")
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number", code="bad_request") from None
        if n < 0:
            raise ApiError(400, "Content-Length is negative", code="bad_request")
        if n > MAX_BODY:
            raise ApiError(413, f"the request body is {n} bytes, more than {MAX_BODY}", code="request_too_large")
        raw = self.rfile.read(n)
        self._body_read = True
        if len(raw) < n:
            raise ApiError(400, "the request body ended early", code="bad_request")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ApiError(400, f"the request body is not JSON: {e}", code="invalid_json") from None

    # ------------------------------------------------------------ the answer

    def _next(self, job: Job):
        """The worker's next message for this job; while waiting (queued behind others, or
        generating a long answer not streamed), notice a client that has gone and cancel its job."""
        while True:
            try:
                msg = job.out.get(timeout=0.25)
            except queue.Empty:
                msg = None
            if msg is not None and time.monotonic() - self._checked < 0.25:
                return msg
            self._checked = time.monotonic()  # tokens keep coming: look at the socket 4 times a second
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                gone = bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                gone = True
            if gone:
                job.cancel.set()
                self.engine.log("client left before its answer: its request is dropped")
                raise ConnectionResetError("client left")
            if msg is not None:
                return msg

    def _answer(self, req: Request, job: Job, prompt_tokens: int) -> None:
        rid = f"{'chatcmpl' if req.chat else 'cmpl'}-{uuid.uuid4().hex}"
        kind = "chat.completion" if req.chat else "text_completion"
        head = {"id": rid, "object": kind + (".chunk" if req.chat and req.stream else ""),
                "created": int(time.time()), "model": req.model or self.engine.model_name}
        hold = max((len(s) for s in req.stop), default=1) - 1  # a stop sequence may still be arriving
        text, sent, finish, tokens = "", 0, "length", 0

        def choice(piece: str, reason):
            if req.chat:
                delta = {"content": piece} if piece else {}
                return {"index": 0, "delta" if req.stream else "message": delta, "finish_reason": reason, "logprobs": None}
            return {"index": 0, "text": piece, "finish_reason": reason, "logprobs": None}

        def event(obj):
            self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
            self.wfile.flush()

        try:
            if req.stream:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.close_connection = True
                if req.chat:
                    event({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                "finish_reason": None, "logprobs": None}]})
            while True:
                msg = self._next(job)
                if isinstance(msg, Exception):
                    raise msg
                if msg[0] == "end":
                    finish, tokens = msg[1], msg[2]
                    break
                text += msg[1]
                if req.stop:
                    text, hit = _cut(text, req.stop)
                    if hit:  # stop the worker, and take its count of the tokens it made
                        job.cancel.set()
                        finish, last = "stop", job.out.get()
                        while not isinstance(last, Exception) and last[0] != "end":
                            last = job.out.get()
                        tokens = 0 if isinstance(last, Exception) else last[2]
                        break
                if req.stream and len(text) - hold > sent:
                    event({**head, "choices": [choice(text[sent:len(text) - hold], None)]})
                    sent = len(text) - hold
            finish = "stop" if finish == "cancelled" else finish
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                     "total_tokens": prompt_tokens + tokens}
            if req.stream:
                event({**head, "choices": [choice(text[sent:], finish)]})
                if req.include_usage:
                    event({**head, "choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            else:
                c = choice(text, finish)
                if req.chat:
                    c["message"] = {"role": "assistant", "content": text}
                self._json(200, {**head, "choices": [c], "usage": usage})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.engine.log(f"client left during {head['model']}: generation stopped")
            raise
        except Exception as e:
            if req.stream:  # the headers are out: the error goes in the stream
                event(ApiError(500, f"generation failed: {type(e).__name__}: {e}", type="server_error",
                               code="generation_failed").body())
            else:
                raise
        finally:
            job.cancel.set()  # the worker stops at its next token if it is still on this job


class Server(ThreadingHTTPServer):
    # Handler threads are joined at server_close: after a SIGTERM, answers in flight finish.
    daemon_threads = False
    block_on_close = True

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 8080, api_key: str | None = None,
                 max_tokens_limit: int | None = None):
        self.engine, self.api_key, self.started = engine, api_key, time.time()
        self.max_tokens_limit = max_tokens_limit or engine.context or 32768
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def make_server(model: str, host: str = "127.0.0.1", port: int = 8080, api_key: str | None = None,
                store: Store | None = None, cache_size: int = 8, log=None) -> Server:
    """Load the base and bind; -> the server (call serve_forever, then shutdown, server_close and
    server.engine.close()). A port in use is one line."""
    engine = Engine(model, store, cache_size, log)
    try:
        return Server(engine, host, port, api_key)
    except OSError as e:
        engine.close(1.0)
        raise MlxLcError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def default_model(store: Store) -> str:
    """The base of the store's tasks, when they share one."""
    bases = sorted({model_folder.model_id(t.base_model) for t in store.tasks() if t.base_model})
    if len(bases) != 1:
        why = "the store has no tasks" if not bases else f"the store's tasks use {len(bases)} base models"
        raise MlxLcError(f"give --model: {why}")
    return bases[0]
