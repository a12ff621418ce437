"""Servers for the server-judge tests: a real ``transformers serve``, and a scripted one.

``TransformersServer`` runs the real ``transformers serve`` CLI (its ``main()``,
in a launcher process that first builds the tiny models, so the test process
never imports torch) on 127.0.0.1, offline, serving two local models:

- ``random-chat``: the tiny random GPT-2 of ``tests/tiny_models.py`` with a chat
  template. It answers gibberish, which must become parse failures.
- ``answer-a``: the same architecture with weights set so that it always answers
  ``A`` and then ``<eos>`` (see ``build_answering_lm``). It gives real verdicts.

A standby launcher imports everything up front and only binds the port when told
to, so a test can stop the server mid-run and bring one back on the same address
in about a second instead of the ~20 s an import of torch and transformers takes.

``ScriptedServer`` is a stdlib ``http.server`` in a thread that answers each
request with whatever a test's function returns: recorded chat-completion bodies
(``tests/fixtures/openai/``), errors, ``Retry-After`` headers, delays.

Run ``python -m tests.judge_server --models DIR --port N [--build] [--standby]``.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openai"
RANDOM_MODEL = "random-chat"
ANSWERING_MODEL = "answer-a"
READY_TIMEOUT_S = 240
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def fixture(name: str) -> dict:
    """Return a recorded response body from ``tests/fixtures/openai/``."""
    return json.loads((FIXTURES / name).read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the models


def build_answering_lm(path) -> Path:
    """Save a tiny GPT-2 that answers ``A`` then ``<eos>`` after any chat prompt.

    Every block's output projections are zero and the position embeddings too, so
    the last hidden state is the final layer norm of the current token's embedding
    ``x_t``: the model is a bigram model. With an untied LM head whose only non-zero
    rows are ``W[A] = x_last`` and ``W[eos] = x_A`` (``x_last`` is the token the
    chat template's generation prompt ends with), the greedy answer after the prompt
    is ``A`` (``x_last . x_last > x_A . x_last``: both have the same norm) and after
    ``A`` it is ``<eos>``. The other rows are 0, below both.
    """
    import torch
    from transformers import GPT2LMHeadModel

    from tests.tiny_models import SEED, SIMPLE_CHAT_TEMPLATE, _gpt2_config, build_tiny_tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = SIMPLE_CHAT_TEMPLATE
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(_gpt2_config(tokenizer, tie_word_embeddings=False)).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Which is better? Answer with A or B."}],
        add_generation_prompt=True, tokenize=False,
    )
    last = tokenizer(prompt, add_special_tokens=False)["input_ids"][-1]
    (answer,) = tokenizer("A", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()
        for block in model.transformer.h:
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.zero_()
                proj.bias.zero_()
        ln = model.transformer.ln_f
        normed = ln(model.transformer.wte.weight)
        model.lm_head.weight.zero_()
        model.lm_head.weight[answer] = normed[last]
        model.lm_head.weight[tokenizer.eos_token_id] = normed[answer]
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        out = model.generate(ids, max_new_tokens=4, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    reply = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert reply == "A", f"the answering model replies {reply!r}"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_models(models_dir) -> dict[str, Path]:
    """Build both served models under ``models_dir`` (once; later calls reuse them)."""
    from tests.tiny_models import SIMPLE_CHAT_TEMPLATE, build_tiny_causal_lm

    models_dir = Path(models_dir)
    paths = {RANDOM_MODEL: models_dir / RANDOM_MODEL, ANSWERING_MODEL: models_dir / ANSWERING_MODEL}
    if not (paths[RANDOM_MODEL] / "config.json").exists():
        build_tiny_causal_lm(paths[RANDOM_MODEL], chat_template=SIMPLE_CHAT_TEMPLATE)
    if not (paths[ANSWERING_MODEL] / "config.json").exists():
        build_answering_lm(paths[ANSWERING_MODEL])
    return paths


# ---------------------------------------------------------------- transformers serve


def serve_argv(port: int) -> list[str]:
    """The ``transformers serve`` command line the launcher runs."""
    # No model argument: the server then loads any local path a request names and lists
    # it at /v1/models once loaded; one server serves both models.
    return ["transformers", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--device", "cpu", "--dtype", "float32", "--model-timeout", "-1",
            "--log-level", "warning"]


def exit_with_parent() -> None:
    """End this server when the process that started it dies (a test run killed by a
    timeout, say): its cleanup never runs then, and the server must not outlive it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv=None) -> None:
    exit_with_parent()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--build", action="store_true", help="build the models first")
    parser.add_argument("--standby", action="store_true",
                        help="import everything, then wait for a line on stdin before serving")
    args = parser.parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    # Everything the server will import, imported now so a standby starts at once.
    import importlib

    from transformers.cli.transformers import main as transformers_main

    for module in ("torch", "fastapi", "uvicorn", "openai.types.chat",
                   "transformers.cli.serving.chat_completion", "transformers.cli.serving.completion",
                   "transformers.cli.serving.model_manager", "transformers.cli.serving.response",
                   "transformers.cli.serving.server", "transformers.cli.serving.systemone",
                   "transformers.cli.serving.transcription",
                   "transformers.models.gpt2.modeling_gpt2"):
        importlib.import_module(module)
    import transformers

    for name in ("AutoConfig", "AutoProcessor", "AutoTokenizer", "AutoModelForDecision",
                 "GPT2LMHeadModel", "ContinuousBatchingConfig", "GenerationConfig"):
        getattr(transformers, name, None)

    if args.build:
        build_models(args.models)
    if args.standby:
        print("standby", flush=True)
        if not sys.stdin.readline():
            return
    sys.argv = serve_argv(args.port)
    transformers_main()


class TransformersServer:
    """A ``transformers serve`` process group on 127.0.0.1 serving the tiny models.

    ``start()`` returns at once; ``wait_ready()`` polls ``/v1/models`` (no sleeps
    on a guess), loads both models with one short request each, and waits until
    ``/v1/models`` lists them. ``stop()`` ends the whole process group.
    """

    def __init__(self, models_dir, port: int, log_path, build: bool = False,
                 standby: bool = False):
        self.models_dir = Path(models_dir)
        self.port = port
        self.log_path = Path(log_path)
        self.build = build
        self.standby = standby
        self.proc = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def model_path(self, name: str) -> str:
        return str(self.models_dir / name)

    def start(self) -> "TransformersServer":
        cmd = [sys.executable, "-m", "tests.judge_server", "--models", str(self.models_dir),
               "--port", str(self.port)]
        cmd += ["--build"] if self.build else []
        cmd += ["--standby"] if self.standby else []
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **OFFLINE_ENV}, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.PIPE, start_new_session=True,
        )
        return self

    def go(self) -> None:
        """Let a standby server bind its port and serve."""
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        wanted = [self.model_path(RANDOM_MODEL), self.model_path(ANSWERING_MODEL)]
        while self._get_models(deadline) is None:
            pass
        for model in wanted:
            self._post_json("/chat/completions", {
                "model": model, "max_tokens": 1,
                "messages": [{"role": "user", "content": "hello"}]})
        listed = self._get_models(deadline)
        missing = [m for m in wanted if m not in listed]
        if missing:
            raise RuntimeError(f"transformers serve does not list {missing}: {listed}")

    def _get_models(self, deadline):
        if not self.alive():
            raise RuntimeError(f"transformers serve exited ({self.proc.returncode}):\n"
                               + self.log_tail())
        if time.monotonic() > deadline:
            raise RuntimeError("transformers serve did not become ready:\n" + self.log_tail())
        try:
            with urllib.request.urlopen(self.base_url + "/models", timeout=2) as r:
                return [m["id"] for m in json.load(r)["data"]]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            # Connection refused until uvicorn binds; the next try waits on the socket.
            self.proc_wait(0.2)
            return None

    def proc_wait(self, seconds):
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            pass

    def _post_json(self, path, body):
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as r:
            return json.load(r)

    def stop(self, sig=signal.SIGTERM) -> None:
        """End the server's whole process group (SIGKILL if it lingers)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        try:
            # Children of the group (none expected) must not outlive it either.
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.stdin:
            self.proc.stdin.close()
        self._log.close()

    def log_tail(self, lines=40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def serving_available() -> bool:
    """Whether ``transformers serve`` can run here (torch, transformers, fastapi, uvicorn)."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("torch", "transformers", "fastapi",
                                                     "uvicorn"))


class Served:
    """The running ``transformers serve``, plus a standby to restart it on the same port.

    The session fixtures ``served_processes`` and ``served`` (tests/conftest.py)
    hand one out to every test module.
    """

    def __init__(self, primary, standby):
        self.current, self.standby = primary, standby

    @property
    def base_url(self):
        return self.current.base_url

    def model(self, name):
        return self.current.model_path(name)

    def kill(self):
        self.current.stop(signal.SIGKILL)

    def restart(self):
        self.current, self.standby = self.standby, None
        self.current.go()
        self.current.wait_ready()


# ---------------------------------------------------------------- scripted server


class Reply:
    """What the scripted server sends back: status, body, headers, a delay first.

    ``body`` is sent as JSON, or as is when it is bytes (with ``content_type``).
    """

    def __init__(self, body, status=200, headers=None, delay=0.0,
                 content_type="application/json"):
        self.body, self.status, self.headers, self.delay = body, status, headers or {}, delay
        self.content_type = content_type


class ScriptedServer:
    """An OpenAI-compatible stand-in on 127.0.0.1 that answers as a test scripts it.

    ``respond(body, n)`` gets each chat-completions request body and its 0-based
    number and returns a Reply. ``/v1/models`` lists ``models``. Every request is
    logged in ``requests`` as ``(start time, body, headers)`` (lower-case names), and ``max_in_flight``
    records the most chat requests handled at once. With ``api_key`` every request
    without ``Authorization: Bearer <api_key>`` gets a 401.
    """

    def __init__(self, respond, models=("scripted-judge",), latency=0.0, api_key=None):
        self.respond = respond
        self.api_key = api_key
        self.models = list(models)
        self.latency = latency
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the
            # client's delayed ACK hold the body back ~40 ms on every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def refused(self):
                if server.api_key is None:
                    return False
                if self.headers.get("Authorization") == f"Bearer {server.api_key}":
                    return False
                self._send(Reply({"error": {"message": "Incorrect API key provided",
                                            "type": "invalid_request_error",
                                            "code": "invalid_api_key"}}, status=401))
                return True

            def do_GET(self):
                if self.refused():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"}
                            for m in server.models]
                    self._send(Reply({"object": "list", "data": data}))
                else:
                    self._send(Reply({"error": {"message": "Not Found"}}, status=404))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.refused():
                    return
                with server._lock:
                    n = len(server.requests)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    server.requests.append((time.monotonic(), body, headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.respond(body, n)
                    time.sleep(server.latency + reply.delay)
                    self._send(reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, reply):
                data = reply.body
                if not isinstance(data, bytes):
                    data = json.dumps(data).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def bodies(self) -> list[dict]:
        return [body for _, body, _ in self.requests]

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


if __name__ == "__main__":
    main()
