"""What the serve tests share: tiny runs made in a second, and a live uvicorn server on 127.0.0.1
(a free port) in a thread of the test process, so a test can also reach the app's state."""

import json
import socket
import threading
import time

import pytest
from helpers import run_cli

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

SMALL = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--eval-every", "10",
         "--quiet", "--num-samples", "0"]
TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat.\n" * 6


def make_runs(tmp, words):
    """{"base": a names-like run, "stream": a run on continuous text, "chat": an SFT chat model}, all numpy."""
    (tmp / "text.txt").write_text(TEXT)
    run_cli("train", "--out", tmp / "base", "--data", words, "--engine", "numpy", "--steps", "30", *SMALL,
            check=True)
    run_cli("train", "--out", tmp / "stream", "--data", tmp / "text.txt", "--data-mode", "stream", "--engine",
            "numpy", "--steps", "30", *SMALL, check=True)
    run_cli("tasks", "make", "--task", "add:2", "--num", "200", "--split", "train", "--to", tmp / "add.jsonl",
            check=True)
    run_cli("sft", "--out", tmp / "chat", "--data", tmp / "add.jsonl", "--engine", "numpy", "--steps", "30",
            "--batch-size", "8", *SMALL[:-2], check=True)
    return {name: str(tmp / name) for name in ("base", "stream", "chat")}


class LiveServer:
    """build_app(runs, settings) served by uvicorn on 127.0.0.1:<a free port> until close()."""

    def __init__(self, paths, settings=None, reload=False, engine=None):
        from microgpt.serve import bind
        from microgpt.serve.app import build_app
        from microgpt.serve.runs import Runs
        self.runs = Runs(paths, engine=engine, reload=reload, log=lambda m: None)
        self.app = build_app(self.runs, settings)
        sock = bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)

    @property
    def slots(self):
        return self.app.state.slots

    def client(self, **kw):
        from openai import OpenAI
        return OpenAI(base_url=self.url + "/v1", api_key=kw.pop("api_key", "none"), max_retries=0, **kw)

    def post(self, path, body, headers=None, raw=None):
        """(status, parsed JSON) of a POST with the standard library (any body, even broken)."""
        import urllib.error
        import urllib.request
        data = raw if raw is not None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json",
                                                                          **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def get(self, path, headers=None):
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=headers or {}),
                                        timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
