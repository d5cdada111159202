"""`serve --model-process`: the stepping loop in a process of its own (serve/worker.py) answers
exactly what it answers in the server's process, gives its rows and cache back, and survives the
loss of its process."""

import os
import shutil
import signal

from helpers import run_cli
from serving import LiveServer
from test_serve_api import start_cli
from test_serve_load import open_stream, wait_for

COMP, CHAT = "/v1/completions", "/v1/chat/completions"


def answers(s):
    """Responses (without their ids and times) to requests that cover greedy, seeded, n > 1, logprobs,
    stop strings and a chat model."""
    asks = [(COMP, {"model": "base", "prompt": "a", "temperature": 0, "n": 2, "logprobs": 3}),  # (greedy: no
            # random stream travels to the model process and back)
            (COMP, {"model": "base", "prompt": "em", "temperature": 0.9, "seed": 7, "n": 3, "logprobs": 2}),
            (COMP, {"model": "stream", "prompt": "the", "max_tokens": 40, "temperature": 0.8, "seed": 1,
                    "top_k": 5, "stop": ["dog"]}),
            (CHAT, {"model": "chat", "messages": [{"role": "user", "content": "12+34"}], "temperature": 0.7,
                    "seed": 3, "n": 2, "logprobs": True, "top_logprobs": 2})]
    out = []
    for path, body in asks:
        status, got = s.post(path, body)
        assert status == 200, got
        out.append((got["choices"], got["usage"]))
        stream = s.client(timeout=60).completions if path == COMP else s.client(timeout=60).chat.completions
        extra = {k: body[k] for k in ("top_k",) if k in body}  # (not OpenAI's: the client sends it as extra_body)
        chunks = stream.create(**{k: v for k, v in body.items() if k not in extra}, extra_body=extra, stream=True)
        out.append([c.choices[0].model_dump() for c in chunks if c.choices])
    return out


def test_the_model_process_answers_as_the_server_process_does(serve_runs):
    from microgpt.serve.app import Settings
    here, there = LiveServer(list(serve_runs.values())), \
        LiveServer(list(serve_runs.values()), Settings(model_process=True))
    try:
        assert answers(there) == answers(here)
        procs = [there.runs.get(name).scheduler.proc for name in serve_runs]
        assert len({p.pid for p in procs}) == 3 and os.getpid() not in {p.pid for p in procs}
    finally:
        here.close()
        there.close()
    assert [p.wait(30) for p in procs] == [0, 0, 0]  # (the server stopped: so did its model processes)


def test_cancelled_streams_leave_no_row_and_the_lost_process_is_replaced(serve_runs):
    from microgpt.serve.app import Settings
    s = LiveServer([serve_runs["stream"]], Settings(max_active=32, model_process=True))
    try:
        body = {"model": "stream", "prompt": "the", "max_tokens": 2000, "temperature": 0.9}
        conns = [open_stream(s, body) for _ in range(12)]
        for conn in conns:
            r = conn.getresponse()
            assert r.status == 200 and b"data: {" in r.read1(4096)
        sched = s.runs.get("stream").scheduler
        assert sched.active > 0 and sched.cache_bytes > 0  # (as the model process says)
        for conn in conns:
            conn.sock.shutdown(2)
            conn.close()
        wait_for(lambda: (sched.active, sched.cache_bytes, s.slots.active, len(sched.tickets)) == (0, 0, 0, 0),
                 "every row gone")

        conn = open_stream(s, body)  # the model process dies mid-stream: the request hears it, in its stream
        r = conn.getresponse()
        assert r.status == 200 and r.read1(4096)
        os.kill(sched.proc.pid, signal.SIGKILL)
        rest = r.read()
        assert b"the model process stopped" in rest and rest.endswith(b"data: [DONE]\n\n")
        wait_for(lambda: s.slots.active == 0, "the slot back")
        status, got = s.post(COMP, {"model": "stream", "prompt": "a", "max_tokens": 3, "temperature": 0})
        assert status == 200 and got["usage"]["completion_tokens"] == 3  # (a new model process)
    finally:
        s.close()


def test_a_retired_model_process_stops(serve_runs):
    from microgpt.serve.app import Settings
    s = LiveServer([serve_runs["base"]], Settings(model_process=True))
    try:
        assert s.post(COMP, {"model": "base", "prompt": "a", "max_tokens": 3})[0] == 200
        sched = s.runs.get("base").scheduler
        proc = sched.proc
        sched.retire()  # (what a reload does to the model it replaces)
        assert proc.wait(30) == 0
        # a request that began before the reload asks the retired model for its next choice: a process
        # serves it, then stops in turn
        assert s.post(COMP, {"model": "base", "prompt": "a", "max_tokens": 3})[0] == 200
        assert sched.proc is None or sched.proc is not proc
        wait_for(lambda: sched.proc is None, "the second model process gone")
    finally:
        s.close()


def test_a_new_model_process_steps_the_servers_weights_not_a_newer_checkpoint(serve_runs, tmp_path):
    """The server hands its model process the weights it holds: a checkpoint written since (train
    --resume, no --reload) does not reach the answers, even from a model process started after it."""
    from microgpt.serve.app import Settings
    run = tmp_path / "stream"
    shutil.copytree(serve_runs["stream"], run)
    s = LiveServer([str(run)], Settings(model_process=True))
    try:
        ask = {"model": "stream", "prompt": "the", "max_tokens": 8, "temperature": 0, "logprobs": 2}
        before = s.post(COMP, ask)[1]["choices"]
        run_cli("train", "--out", run, "--resume", "--steps", "60", "--quiet", "--num-samples", "0", check=True)
        fresh = LiveServer([str(run)])  # (the newer checkpoint answers otherwise: its logprobs at least)
        try:
            assert fresh.post(COMP, ask)[1]["choices"] != before
        finally:
            fresh.close()
        sched = s.runs.get("stream").scheduler
        os.kill(sched.proc.pid, signal.SIGKILL)
        wait_for(lambda: sched.proc is None, "the model process gone")
        assert s.post(COMP, ask)[1]["choices"] == before  # (from a new model process)
    finally:
        s.close()


def test_a_model_process_does_not_read_the_optimizers_moments_again(serve_runs, tmp_path):
    """The model process opens the run with the server's weights: the server checked the whole checkpoint
    when it opened it, so the moments (twice the weights' bytes with Adam) are not read a second time."""
    import pytest

    from microgpt import checkpoint
    from microgpt.errors import MicroGPTError
    from microgpt.stages.open import open_run
    run = tmp_path / "base"
    shutil.copytree(serve_runs["base"], run)
    served = open_run(str(run))
    weights = str(tmp_path / "weights.safetensors")
    checkpoint.save_weights(weights, served.model.get_weights(), served.config)
    (run / "checkpoint" / "optimizer.safetensors").write_bytes(os.urandom(200))
    with pytest.raises(MicroGPTError, match="optimizer.safetensors"):
        open_run(str(run))  # (opened on its own, a run is checked whole)
    again, theirs = open_run(str(run), weights=weights).model.get_weights(), served.model.get_weights()
    assert theirs.keys() == again.keys() and all((again[k] == theirs[k]).all() for k in theirs)


def test_the_command_with_model_process_answers_and_ctrl_c_stops_both(serve_runs):
    import re
    p = start_cli("--out", serve_runs["base"], "--port", "0", "--model-process")
    try:
        url = re.search(r"page: (http://\S+)/ ", p.stdout.readline() + p.stdout.readline()).group(1)
        from openai import OpenAI
        client = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
        got = client.completions.create(model="base", prompt="em", temperature=0.8, seed=1, n=2)
        printed = run_cli("sample", "--out", serve_runs["base"], "--temperature", "0.8", "--seed", "1", "--num", "2",
                          "--prompt", "em", check=True).stdout
        assert [f"em{c.text}" for c in got.choices] == re.findall(r"sample +\d+: (\S*)", printed)
        children = f"/proc/{p.pid}/task/{p.pid}/children"
        models = [int(c) for c in open(children).read().split()] if os.path.exists(children) else []
        assert len(models) == 1 or not os.path.exists(children)  # (one model process beside the server)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert "Traceback" not in err, err  # (the command says "interrupted", exit 130, as for one process)
    for pid in models:  # (its model process went with it)
        wait_for(lambda pid=pid: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2]
                 == "Z", "the model process gone")
