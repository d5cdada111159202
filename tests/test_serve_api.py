"""`microgpt serve`'s OpenAI API, with the official `openai` client against a live server:
plain and streaming, chat and completions, the same text as `microgpt sample` (temperature 0,
and a seed at temperature > 0), logprobs = the model's own token losses, stop strings, top_p and
top_k, the API key, and the command itself. Generation stepping = sample.generate, draw for draw."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, assert_one_line_error, run_cli
from serving import LiveServer

openai = pytest.importorskip("openai")


def sampled(run, *args):
    """What `microgpt sample --out run ARGS` prints: the samples (docs, chat: without their marks) or the text."""
    out = run_cli("sample", "--out", run, *args, check=True).stdout
    found = re.findall(r"^sample +\d+: (.*?)(?:  \((?:in train|in val|new|right|wrong)\))?$", out, re.M)
    return found or out[:-1]


def test_models_lists_every_run(server):
    models = {m.id: m for m in server.client().models.list().data}
    assert set(models) == {"base", "stream", "chat"}
    assert server.client().models.retrieve("chat").id == "chat"
    assert server.get("/api/info")[1]["models"][2]["kind"] == "chat"


@pytest.mark.parametrize("prompt", ["", "em", "a"])
def test_completions_at_temperature_0_are_microgpt_samples(server, serve_runs, prompt):
    c = server.client()
    r = c.completions.create(model="base", prompt=prompt, temperature=0, seed=1)
    assert r.choices[0].finish_reason == "stop"  # a name ends at BOS
    assert [prompt + r.choices[0].text] == sampled(serve_runs["base"], "--temperature", "0", "--num", "1",
                                                   "--prompt", prompt)


def test_seeded_completions_are_microgpt_samples_with_that_seed(server, serve_runs):
    r = server.client().completions.create(model="base", prompt="a", temperature=0.9, seed=3, n=3)
    assert ["a" + ch.text for ch in r.choices] == sampled(serve_runs["base"], "--temperature", "0.9", "--seed", "3",
                                                          "--num", "3", "--prompt", "a")
    again = server.client().completions.create(model="base", prompt="a", temperature=0.9, seed=3, n=3)
    assert [ch.text for ch in again.choices] == [ch.text for ch in r.choices]


def test_a_stream_model_slides_past_its_context_as_sample_does(server, serve_runs):
    r = server.client().completions.create(model="stream", prompt="the ", temperature=0, max_tokens=40)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 40  # > block_size 16
    assert "the " + r.choices[0].text == sampled(serve_runs["stream"], "--temperature", "0", "--num", "1", "--prompt",
                                                 "the ", "--max-new-tokens", "40")


def test_chat_replies_are_microgpt_samples(server, serve_runs):
    c = server.client()
    r = c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "12+34"}], temperature=0)
    assert r.choices[0].message.role == "assistant"
    assert [f"12+34 -> {r.choices[0].message.content}"] == sampled(serve_runs["chat"], "--temperature", "0",
                                                                   "--num", "1", "--prompt", "12+34")
    r = c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "5+7"}], temperature=1.0,
                                  seed=11, n=4)
    assert [f"5+7 -> {ch.message.content}" for ch in r.choices] == sampled(
        serve_runs["chat"], "--temperature", "1.0", "--seed", "11", "--num", "4", "--prompt", "5+7")


@pytest.mark.parametrize("engine", ["python", pytest.param("torch", marks=pytest.mark.slow)])  # (torch: ~13 s)
def test_any_engine_serves_what_it_samples(serve_runs, engine):
    if engine == "torch":
        pytest.importorskip("torch")
    s = LiveServer([serve_runs["base"]], engine=engine)
    try:
        assert s.get("/api/info")[1]["models"][0]["engine"] == engine
        r = s.client().completions.create(model="base", prompt="em", temperature=0.7, seed=5, n=2)
        assert ["em" + ch.text for ch in r.choices] == sampled(serve_runs["base"], "--engine", engine,
                                                              "--temperature", "0.7", "--seed", "5", "--num", "2",
                                                              "--prompt", "em")
    finally:
        s.close()


def test_attention_is_the_pictures_attention(server, serve_runs):
    import numpy as np

    from microgpt import checkpoint
    from microgpt.pictures.attention import attention_maps
    status, a = server.post("/api/attention", {"model": "base", "text": "emma"})
    assert status == 200 and a["tokens"] == ["<bos>", "e", "m", "m", "a"] and a["first"] == 0
    ckpt = checkpoint.load(serve_runs["base"], with_optimizer=False)
    want = attention_maps(ckpt, [ckpt.tokenizer.BOS] + ckpt.tokenizer.encode("emma"))
    assert np.abs(np.array(a["maps"]) - want).max() <= 5e-5 and want.shape == (1, 2, 5, 5)
    assert np.allclose(np.array(a["maps"]).sum(-1), 1, atol=1e-3)
    conversation = [{"role": "user", "content": "12+34"}, {"role": "assistant", "content": "4"}]
    status, a = server.post("/api/attention", {"model": "chat", "messages": conversation})
    assert status == 200 and a["tokens"] == ["<bos>", "<user>", "1", "2", "+", "3", "4", "</user>", "<asst>", "4"]


def test_streams_give_the_same_text_as_whole_responses(server):
    c = server.client()
    kw = dict(model="chat", messages=[{"role": "user", "content": "3+4"}], temperature=0.8, seed=5, n=2)
    whole = c.chat.completions.create(**kw)
    chunks = list(c.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert {ch.object for ch in chunks} == {"chat.completion.chunk"} and len({ch.id for ch in chunks}) == 1
    for i, choice in enumerate(whole.choices):
        mine = [ch.choices[0] for ch in chunks if ch.choices and ch.choices[0].index == i]
        assert mine[0].delta.role == "assistant"
        assert "".join(m.delta.content or "" for m in mine) == choice.message.content
        assert [m.finish_reason for m in mine][-1] == choice.finish_reason and mine[-2].finish_reason is None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens and chunks[-1].choices == []

    kw = dict(model="stream", prompt="a cat", temperature=1, seed=2, max_tokens=30, top_k=5)
    whole = c.completions.create(**{k: v for k, v in kw.items() if k != "top_k"}, extra_body={"top_k": 5})
    parts = c.completions.create(**{k: v for k, v in kw.items() if k != "top_k"}, extra_body={"top_k": 5},
                                 stream=True)
    assert "".join(p.choices[0].text for p in parts) == whole.choices[0].text


def test_logprobs_are_the_models_own(server):
    from microgpt.data.chat_template import render_prompt
    served = server.runs.get("chat")
    tok = served.tokenizer
    r = server.client().chat.completions.create(model="chat", messages=[{"role": "user", "content": "21+9"}],
                                                temperature=0.7, seed=4, logprobs=True, top_logprobs=5)
    content = r.choices[0].logprobs.content
    reply = [tok.encode(e.token)[0] for e in content]
    assert tok.decode(reply) == r.choices[0].message.content
    ids = render_prompt(tok, [{"role": "user", "content": "21+9"}]) + reply
    losses = served.model.token_losses([ids])[0][-len(reply):]  # -log p of each reply token
    for e, loss in zip(content, losses):
        assert e.logprob == pytest.approx(-loss, abs=1e-9)
        tops = [t.logprob for t in e.top_logprobs]
        assert len(tops) == 5 and tops == sorted(tops, reverse=True) and tops[0] >= e.logprob
        assert sum(map(__import__("math").exp, tops)) <= 1 + 1e-9
    # completions: greedy tokens are each the likeliest one
    r = server.client().completions.create(model="base", prompt="e", temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text
    assert all(max(top.values()) == chosen for top, chosen in zip(lp.top_logprobs, lp.token_logprobs))


def test_stop_strings_cut_the_text_before_them(server):
    c = server.client()
    full = c.completions.create(model="stream", prompt="the", temperature=0, max_tokens=30).choices[0].text
    stop = full[5:7]
    cut = full[:full.find(stop)]
    r = c.completions.create(model="stream", prompt="the", temperature=0, max_tokens=30, stop=[stop, "zzz"])
    assert (r.choices[0].text, r.choices[0].finish_reason) == (cut, "stop")
    streamed = c.completions.create(model="stream", prompt="the", temperature=0, max_tokens=30, stop=stop, stream=True)
    assert "".join(p.choices[0].text for p in streamed) == cut


def test_top_p_and_top_k_of_one_token_are_greedy(server):
    c = server.client()
    greedy = c.completions.create(model="stream", prompt="a", temperature=0, max_tokens=20).choices[0].text
    for extra in ({"top_p": 1e-9}, {"extra_body": {"top_k": 1}}):
        r = c.completions.create(model="stream", prompt="a", temperature=1.5, max_tokens=20, seed=9, **extra)
        assert r.choices[0].text == greedy


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_a_row_draws_the_same_alone_or_among_31_others(server, temperature):
    """Greedy and seeded: each row's tokens equal what generate gives its prompt alone, though it joins a
    batch that 31 other rows (other prompts, settings and random streams) join and leave at other steps."""
    from microgpt.generate import Rows, generate
    served = server.runs.get("stream")
    model, vocab = served.model, served.tokenizer.vocab_size
    gen = random.Random(0)
    settings = [dict(slide=gen.random() < 0.5, stop=tuple(gen.sample(range(vocab), gen.randint(0, 2))),
                     top_k=gen.choice([0, 3]), top_p=gen.choice([1.0, 0.9]), max_new_tokens=gen.randint(1, 30))
                for _ in range(32)]
    prompts = [[gen.randrange(vocab) for _ in range(gen.randint(1, 12))] for _ in range(32)]
    alone = [generate(model, [p], random.Random(i), 16, temperature=temperature, **kw)[0]
             for i, (p, kw) in enumerate(zip(prompts, settings))]
    rows, made, joins = Rows(model, 16), [], sorted(gen.randrange(20) for _ in range(32))
    for step in range(200):
        while len(made) < 32 and joins[len(made)] <= step:
            i = len(made)
            made.append(rows.add(prompts[i], random.Random(i), temperature=temperature, **settings[i]))
        rows.step()
    assert not rows.active and [r.new for r in made] == alone and rows.cache.nbytes == 0


def test_text_holds_back_what_may_become_a_stop_string():
    from microgpt.serve.generation import Text
    from microgpt.tokenizers import CharTokenizer
    tok = CharTokenizer(sorted(set("abcxyz")))
    t = Text(tok, ("xyz", "cc"))  # "xy" and "c" wait until the next letter shows they are no stop string
    pieces = [t.add(i) for i in tok.encode("abxyabccz")] + [t.close()]
    assert pieces == ["a", "b", "", "", "xya", "b", "", "", "", ""] and t.stopped and t.text == "abxyab"
    t = Text(tok, ("xyz",))
    assert [t.add(i) for i in tok.encode("axyb")] == ["a", "", "", "xyb"] and t.close() == ""
    t = Text(tok, ("xyz",))
    assert [t.add(i) for i in tok.encode("axyz")] + [t.close()] == ["a", "", "", "", ""]


def test_the_docs_example_runs_as_written(serve_runs, tmp_path, capsys):
    doc = open(os.path.join(ROOT, "docs", "serve.md")).read()
    example = next(b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "OpenAI(base_url" in b)
    for name, run in (("names", serve_runs["base"]), ("add", serve_runs["chat"])):  # the example's run names
        shutil.copytree(run, tmp_path / name)
    s = LiveServer([str(tmp_path / "names"), str(tmp_path / "add")])
    try:
        exec(re.sub(r"http://127\.0\.0\.1:\d+", s.url, example), {})
    finally:
        s.close()
    name, reply = capsys.readouterr().out.splitlines()
    assert name and re.fullmatch(r"[0-9]*", reply)


def test_the_api_key_is_required_when_set(serve_runs):
    from microgpt.serve.app import Settings
    s = LiveServer([serve_runs["base"]], Settings(api_key="s3cret"))
    try:
        for key in ("none", "s3cret-not"):
            with pytest.raises(openai.AuthenticationError):
                s.client(api_key=key).completions.create(model="base", prompt="a")
        assert s.client(api_key="s3cret").completions.create(model="base", prompt="a", max_tokens=2).choices
        assert s.get("/v1/models")[0] == 401 and s.get("/v1/models", {"Authorization": "Bearer s3cret"})[0] == 200
        import urllib.request
        with urllib.request.urlopen(s.url + "/") as page:  # the page (no secret in it) loads, then asks for the key
            assert page.status == 200
    finally:
        s.close()


def start_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "microgpt", "serve", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def test_the_command_serves_until_ctrl_c_and_warns_when_exposed(serve_runs):
    p = start_cli("--out", serve_runs["base"], "--out", serve_runs["chat"], "--port", "0", "--host", "0.0.0.0")
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        url = re.search(r"page: (http://\S+)/ ", lines[2]).group(1)
        assert lines[0].startswith("serving base (base model, step 30")
        port = url.rsplit(":", 1)[1]
        from openai import OpenAI
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["base", "chat"]
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--api-key" in warnings[0], err
    assert "Traceback" not in err


def test_the_command_refuses_a_missing_run_or_a_taken_port(serve_runs, tmp_path):
    assert_one_line_error(run_cli("serve", "--out", tmp_path / "nothing"), "no such run folder")
    p = start_cli("--out", serve_runs["base"], "--port", "0")
    try:
        port = re.search(r":(\d+)/ ", [p.stdout.readline() for _ in range(2)][1]).group(1)
        started = time.monotonic()
        assert_one_line_error(run_cli("serve", "--out", serve_runs["base"], "--port", port), "cannot listen", "--port")
        assert time.monotonic() - started < 60
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)


def test_without_the_extra_one_line_says_what_to_install(serve_runs):
    hide = "import sys; sys.modules['uvicorn'] = None; from microgpt.cli import main; main()"
    p = subprocess.run([sys.executable, "-c", hide, "serve", "--out", serve_runs["base"]], capture_output=True,
                       text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    assert_one_line_error(p, "pip install 'microgpt[serve]'")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_connections_to_the_listening_socket_write_without_nagles_delay(host):
    """asyncio's own loop (the server's without uvloop: PyPy) turns Nagle's algorithm off only on sockets
    that say they are TCP: a socket made with protocol 0 kept it on, and every small write of a stream
    on a kept-alive connection waited for the client's delayed ACK (~40 ms a token)."""
    import asyncio
    import socket

    from microgpt.serve import bind
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 here")

    async def nodelay_of_an_accepted_connection():
        accepted = asyncio.get_running_loop().create_future()

        class Seen(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        try:
            listening = bind(host, 0)
        except Exception as e:  # (a machine without IPv6 on loopback)
            pytest.skip(f"cannot listen on {host}: {e}")
        server = await asyncio.get_running_loop().create_server(Seen, sock=listening)
        _, writer = await asyncio.open_connection(host, listening.getsockname()[1])
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(nodelay_of_an_accepted_connection()) != 0


def test_stream_chunks_are_the_same_json_with_orjson_or_without(server, monkeypatch):
    """serve/jsonbytes.py encodes with orjson where it is installed, else with json (PyPy): the same stream."""
    import urllib.request

    from microgpt.serve import completions, events, jsonbytes

    def stream():
        body = dict(model="stream", prompt="a cat", temperature=1, seed=2, max_tokens=12, logprobs=3, stream=True,
                    stream_options={"include_usage": True})
        req = urllib.request.Request(server.url + "/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            lines = [line[6:] for line in r.read().decode().split("\n\n") if line.startswith("data: ")]
        assert lines[-1] == "[DONE]"
        return [{k: v for k, v in json.loads(line).items() if k not in ("id", "created")} for line in lines[:-1]]

    first = stream()
    for module in (completions, events):
        monkeypatch.setattr(module, "dumps", jsonbytes.json_dumps)
    assert stream() == first and len(first) > 12 and first[0]["choices"][0]["logprobs"]["top_logprobs"]
