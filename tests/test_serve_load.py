"""`microgpt serve` under bad input and load: every bad request gets its 4xx OpenAI error and the
server answers the next one; a full server refuses at once (429); a client that goes away frees
its slot within a token; 32 concurrent streams all finish with the right text, never more than
the allowed number generating at once; --reload serves a checkpoint `train` rewrites, whole."""

import http.client
import json
import os
import shutil
import socket
import threading
import time

import pytest
from helpers import ROOT, run_cli
from serving import LiveServer

openai = pytest.importorskip("openai")


def C(**kw):  # a completion request for the base model
    return {"model": "base", "prompt": "a", **kw}


def M(content="12+34", **kw):  # a chat request
    return {"model": "chat", "messages": [{"role": "user", "content": content}], **kw}


CHAT, COMP = "/v1/chat/completions", "/v1/completions"
BAD = [  # (path, body or raw bytes, status, code or param it names)
    (COMP, b"{not json", 400, "invalid_json"), (COMP, b"[1, 2]", 400, "invalid_json"),
    (COMP, b'{"model": "base", "prompt": "a", "temperature": NaN}', 400, "invalid_json"),
    (COMP, b"\xff\xfe", 400, "invalid_json"), (COMP, b"x" * (2 << 20), 413, "request_too_large"),
    (COMP, {"prompt": "a"}, 400, "missing_model"), (COMP, C(model="nope"), 404, "model_not_found"),
    (COMP, C(model=7), 400, "model"),
    (COMP, C(prompt="EMMA!"), 400, "invalid_characters"), (CHAT, M("12+34 please"), 400, "invalid_characters"),
    (COMP, C(prompt="a" * 40), 400, "context_length_exceeded"), (CHAT, M("1" * 40), 400, "context_length_exceeded"),
    (COMP, C(prompt=[3, 999]), 400, "invalid_token"), (COMP, C(prompt={"a": 1}), 400, "prompt"),
    (COMP, C(temperature=3), 400, "temperature"), (COMP, C(temperature=-0.1), 400, "temperature"),
    (COMP, C(temperature="hot"), 400, "temperature"), (COMP, C(temperature=True), 400, "temperature"),
    (COMP, C(top_p=0), 400, "top_p"), (COMP, C(top_p=1.5), 400, "top_p"),
    (COMP, C(top_k=-1), 400, "top_k"), (COMP, C(top_k=2.5), 400, "top_k"),
    (COMP, C(max_tokens=0), 400, "max_tokens"), (COMP, C(max_tokens=10 ** 9), 400, "max_tokens"),
    (COMP, C(n=0), 400, "n"), (COMP, C(n=1000), 400, "n"), (COMP, C(n=16, max_tokens=2048), 400, "max_tokens"),
    (COMP, C(seed=1.5), 400, "seed"), (COMP, C(logprobs=21), 400, "logprobs"), (COMP, C(stream="yes"), 400, "stream"),
    (COMP, C(stop=["a", "b", "c", "d", "e"]), 400, "stop"), (COMP, C(stop=3), 400, "stop"),
    (COMP, C(stop=""), 400, "stop"),
    (COMP, C(stream_options={"include_usage": True}), 400, "stream_options"),
    (COMP, C(foo=1), 400, "unknown_parameter"), (COMP, C(presence_penalty=1), 400, "unsupported_parameter"),
    (CHAT, M(top_logprobs=3), 400, "top_logprobs"), (CHAT, M(logprobs=True, top_logprobs=50), 400, "top_logprobs"),
    (CHAT, {"model": "chat", "messages": []}, 400, "messages"),
    (CHAT, {"model": "chat", "messages": [{"role": "robot", "content": "1+1"}]}, 400, "messages[0]"),
    (CHAT, {"model": "chat", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0]"),
    (CHAT, {"model": "chat", "messages": [{"role": "user", "content": "1+1"}, {"role": "assistant", "content": "2"}]},
     400, "invalid_messages"),
    (CHAT, M(model="base"), 400, "wrong_endpoint"), (COMP, C(model="chat"), 400, "wrong_endpoint"),
    ("/api/attention", {"model": "base", "text": "EMMA"}, 400, "invalid_characters"),
    ("/api/attention", {"model": "base", "text": 5}, 400, "text"),
    ("/api/attention", {"model": ["base"], "text": "a"}, 400, "missing_model"),
]


@pytest.mark.parametrize("path, body, status, names", BAD, ids=[f"{i}-{b[3]}" for i, b in enumerate(BAD)])
def test_each_bad_request_gets_its_4xx_and_the_server_answers_on(server, path, body, status, names):
    raw = body if isinstance(body, bytes) else None
    got, answer = server.post(path, body, raw=raw)
    assert got == status, answer
    err = answer["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"] and "\n" not in err["message"]
    assert names in (err["code"], err["param"]), err
    assert server.get("/v1/models")[0] == 200
    assert server.post(COMP, C(max_tokens=3))[0] == 200


def test_cross_site_requests_are_refused(server):
    got = server.post(COMP, C(), headers={"Content-Type": "text/plain"})  # what a form on any page can send
    assert (got[0], got[1]["error"]["code"]) == (415, "unsupported_media_type")
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example"):  # a DNS-rebinding page
        got = server.post(COMP, C(), headers={"Host": host})
        assert (got[0], got[1]["error"]["code"]) == (403, "forbidden_host")
    for host in ("localhost", f"127.0.0.1:{server.port}", "[::1]:80", "localhost:1"):
        assert server.post(COMP, C(max_tokens=1), headers={"Host": host})[0] == 200


def test_unknown_paths_and_methods_are_json_errors(server):
    assert server.get("/v1/nothing") == (404, {"error": {"message": "no such endpoint: /v1/nothing",
                                                         "type": "invalid_request_error", "param": None,
                                                         "code": "not_found"}})
    assert server.get("/v1/completions")[0] == 405
    assert server.get("/api/metrics?model=base&since=-1")[0] == 400
    assert server.get("/api/metrics?model=nope")[0] == 404
    with pytest.raises(openai.BadRequestError):  # the official client sees OpenAI's error too
        server.client().completions.create(model="base", prompt="!")


class Meter:
    """Permits for model calls (so a test sets the pace) and how many run at once."""

    def __init__(self):
        self.permits, self.lock, self.calls, self.busy, self.most = threading.Semaphore(0), threading.Lock(), 0, 0, 0


class Gated:
    """A model whose every KV-cache call (a prefill or a batched decode) waits for a permit of its meter,
    and is counted."""

    def __init__(self, model, meter):
        self.model, self.meter = model, meter

    def __getattr__(self, name):
        return getattr(self.model, name)

    def kv_cache(self):
        cache, m = self.model.kv_cache(), self.meter

        def gated(call):
            def run(*args):
                m.permits.acquire()
                with m.lock:
                    m.calls += 1
                    m.busy += 1
                    m.most = max(m.most, m.busy)
                try:
                    return call(*args)
                finally:
                    with m.lock:
                        m.busy -= 1
            return run

        class G:
            prefill_rows, decode = staticmethod(gated(cache.prefill_rows)), staticmethod(gated(cache.decode))

            def __getattr__(self, name):
                return getattr(cache, name)
        return G()


def wait_for(cond, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def gated(serve_runs):
    from microgpt.serve.app import Settings
    s = LiveServer([serve_runs["stream"]], Settings(max_active=1, max_waiting=1))
    g = Meter()
    s.runs.by_name["stream"].model = Gated(s.runs.get("stream").model, g)
    yield s, g
    g.permits.release(100000)
    s.close()


def open_stream(server, body):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", COMP, json.dumps({**body, "stream": True}), {"Content-Type": "application/json"})
    return conn


def test_a_full_server_refuses_at_once_and_the_queue_drains(gated):
    s, g = gated
    body = {"model": "stream", "prompt": "the", "max_tokens": 5, "temperature": 0}
    first, second = open_stream(s, body), open_stream(s, body)
    wait_for(lambda: s.slots.active == 1 and s.slots.waiting == 1, "one generating, one waiting")
    status, answer = s.post(COMP, body)
    assert (status, answer["error"]["code"]) == (429, "server_busy")
    g.permits.release(1000)
    texts = []
    for conn in (first, second):
        r = conn.getresponse()
        assert r.status == 200
        texts.append("".join(json.loads(line[6:])["choices"][0]["text"] for line in r.read().decode().split("\n\n")
                             if line.startswith("data: {")))
    assert texts[0] == texts[1] == s.client().completions.create(**body).choices[0].text
    wait_for(lambda: (s.slots.active, s.slots.waiting) == (0, 0), "every slot back")


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_goes_away_frees_its_slot_within_a_token(gated, stream):
    s, g = gated
    body = {"model": "stream", "prompt": "the", "max_tokens": 2000, "stream": stream}
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    conn.request("POST", COMP, json.dumps(body), {"Content-Type": "application/json"})
    g.permits.release(10)
    wait_for(lambda: g.calls == 10, "ten model calls")
    conn.sock.shutdown(2)
    conn.close()
    extra = 0
    while s.slots.active and extra < 50:  # one more call at a time, until the slot is free (2000 tokens: 2000)
        g.permits.release(1)
        extra += 1
        time.sleep(0.05)
    assert s.slots.active == 0 and extra <= 5, (g.calls, extra)
    g.permits.release(100)
    assert s.post(COMP, {"model": "stream", "prompt": "a", "max_tokens": 1})[0] == 200  # the server goes on


def test_a_streams_last_tokens_finish_and_end_go_out_in_one_write(server):
    """The tokens that came with a stream's end, its finish and `data: [DONE]` reach the client in one HTTP
    chunk (one socket write: on the server's one thread each write costs)."""
    body = json.dumps({"model": "stream", "prompt": "the", "max_tokens": 5, "temperature": 0, "stream": True})
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
        raw = b""
        while got := sock.recv(65536):
            raw += got
    head, rest = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    chunks = []
    while True:  # chunked transfer encoding: "<size hex>\r\n<data>\r\n", ending with size 0
        size, rest = rest.split(b"\r\n", 1)
        if int(size, 16) == 0:
            break
        chunks.append(rest[:int(size, 16)])
        rest = rest[int(size, 16) + 2:]
    events = [[e[6:] for e in c.split(b"\n\n") if e] for c in chunks]
    choices = [[json.loads(e)["choices"][0] for e in es if e != b"[DONE]"] for es in events]
    last = choices[-1]
    assert events[-1][-1] == b"[DONE]" and last[-1]["finish_reason"] == "length" and last[0]["text"]
    assert sum(1 for cs in choices for c in cs if c["text"]) == 5


def test_32_concurrent_streams_finish_with_the_right_text(serve_runs):
    from microgpt.serve.app import Settings
    s = LiveServer([serve_runs["base"], serve_runs["chat"]], Settings(max_active=4, max_waiting=64))
    client = s.client(timeout=120)
    asks = [("base", p) for p in ("", "a", "e", "em", "ol", "s", "mi", "l")] + \
           [("chat", q) for q in ("1+2", "12+34", "5+5", "30+9", "8+80", "77+1", "4+4", "60+6")]

    def ask(model, text, stream):
        if model == "base":
            r = client.completions.create(model="base", prompt=text, temperature=0.8, seed=len(text), stream=stream)
            return "".join(c.choices[0].text for c in r) if stream else r.choices[0].text
        r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": text}],
                                           temperature=0.8, seed=len(text), stream=stream)
        return "".join(c.choices[0].delta.content or "" for c in r if c.choices) if stream else \
            r.choices[0].message.content

    want = {a: ask(*a, stream=False) for a in asks}  # one at a time
    meter = Meter()
    for name in ("base", "chat"):  # from here on every model call waits for a permit
        s.runs.by_name[name].model = Gated(s.runs.get(name).model, meter)
    got, errors = {}, []

    def worker(i):
        try:
            got[i] = ask(*asks[i % 16], stream=True)
        except Exception as e:
            errors.append(repr(e))

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        wait_for(lambda: (s.slots.active, s.slots.waiting) == (4, 28), "4 requests generating and 28 waiting")
        meter.permits.release(10 ** 6)
        for t in threads:
            t.join(120)
        assert not errors and len(got) == 32, errors
        assert all(got[i] == want[asks[i % 16]] for i in range(32))
        assert meter.busy == 0 and 1 <= meter.most <= 4
        wait_for(lambda: (s.slots.active, s.slots.waiting) == (0, 0), "every slot back")  # (just after [DONE])
    finally:
        meter.permits.release(10 ** 6)
        s.close()


def test_reload_serves_each_new_checkpoint_whole(serve_runs, tmp_path):
    from microgpt.serve.app import Settings
    run = tmp_path / "base"
    shutil.copytree(serve_runs["base"], run)
    fixed = LiveServer([str(run)])
    live = LiveServer([str(run)], Settings(reload_every=0.05), reload=True)
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        import subprocess
        import sys
        train = subprocess.Popen([sys.executable, "-m", "microgpt", "train", "--out", str(run), "--resume",
                                  "--steps", "100", "--checkpoint-every", "1", "--quiet", "--num-samples", "0"],
                                 env=env, cwd=ROOT)
        steps = []
        while train.poll() is None:  # ask while train rewrites the checkpoint every step
            status, models = live.get("/v1/models")
            assert status == 200
            steps.append(models["data"][0]["microgpt"]["step"])
            assert live.post(COMP, {"model": "base", "prompt": "a", "max_tokens": 3})[0] == 200
        assert train.wait() == 0
        wait_for(lambda: live.runs.get("base").step == 100, "the last checkpoint", timeout=30)
        steps.append(live.get("/v1/models")[1]["data"][0]["microgpt"]["step"])
        assert steps[0] == 30 and steps[-1] == 100 and steps == sorted(steps), steps
        new = live.client().completions.create(model="base", prompt="em", temperature=0).choices[0].text
        printed = run_cli("sample", "--out", run, "--temperature", "0", "--num", "1", "--prompt", "em",
                          check=True).stdout
        assert printed.startswith(f"sample  1: em{new}  (")
        assert fixed.runs.get("base").step == 30 and fixed.get("/v1/models")[1]["data"][0]["microgpt"]["step"] == 30
    finally:
        fixed.close()
        live.close()


def test_a_burst_of_cancelled_streams_leaves_no_row_and_no_cache(serve_runs):
    """20 streams start, each reads its first token and goes away: the scheduler's rows, the KV-cache
    memory and the slots all return to idle, and the server goes on answering."""
    from microgpt.serve.app import Settings
    s = LiveServer([serve_runs["stream"]], Settings(max_active=32))
    try:
        body = {"model": "stream", "prompt": "the", "max_tokens": 2000, "temperature": 0.9}
        conns = [open_stream(s, body) for _ in range(20)]
        for conn in conns:
            r = conn.getresponse()
            assert r.status == 200 and b"data: {" in r.read1(4096)  # the role chunk or a first token
        sched = s.runs.get("stream").scheduler
        assert sched.active > 0 and sched.cache_bytes > 0
        for conn in conns:
            conn.sock.shutdown(2)
            conn.close()
        wait_for(lambda: (sched.active, sched.cache_bytes, s.slots.active) == (0, 0, 0), "every row gone")
        assert not sched.running and not sched.waiting and not sched.live
        assert s.post(COMP, {"model": "stream", "prompt": "a", "max_tokens": 1})[0] == 200
    finally:
        s.close()
