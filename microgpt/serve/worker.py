"""The model in a process of its own (`microgpt serve --model-process`): vLLM's split of an API
server from its engine core, in miniature.

In one process the HTTP side (parsing, JSON, socket writes) and the stepping loop share one GIL,
so under load each waits for the other: bench/bench_serve.py measures it. Here the loop of
serve/scheduler.py runs unchanged in a child process (`python -m microgpt.serve.worker`) that
opens the same run with the server's weights (from a file the server writes for it: by then a newer
checkpoint may be on disk, and a reload promises each request the weights it started with);
`ProcessScheduler` stands in for it on the server's side with the same
interface (submit, ask_end, active, cache_bytes). They speak JSON lines over the child's stdin and
stdout, plain data both ways (nothing read back can run code):

    server -> model   the run to open, with a file of the server's weights; {"add": id, "prompts", "rng": its
                      state, "options"}; {"end": id, "b", "reason"}
    model -> server   {"ready": step} or {"error": message}; then per hand-over {"tokens": [[id, b, token,
                      logprob, top]], "closed": [[id, finishes, error, rng state]], "active", "cache"}

A request's random stream goes to the model with its rows and comes back when they end, so a
request draws exactly what it draws in one process (a test). Greedy rows (temperature 0) never
draw: their stream stays behind (the state is null both ways; its 625 numbers, ~7 KB of JSON each
way, were the biggest part of a short greedy request's messages). The model process stops when the
server closes its stdin (the server exits, or a reload retired the model and its last request
ended); if it dies, the requests it held get an error and the next request starts a new one.
"""

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import types

from microgpt import checkpoint
from microgpt.errors import MicroGPTError
from microgpt.serve.jsonbytes import dumps, loads
from microgpt.serve.scheduler import Scheduler, Ticket, hand_over


def _state(rng):
    """A random stream's state, JSON-able: [version, 625 ints, gauss_next]; None for no stream (greedy rows)."""
    return None if rng is None else list(rng.getstate())


def _unstate(state):
    return state[0], tuple(state[1]), state[2]


def _rng(state):
    if state is None:  # (greedy rows: they never draw)
        return None
    rng = random.Random()
    rng.setstate(_unstate(state))
    return rng


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


class ProcessScheduler:
    """A Scheduler whose loop runs in a model process (the server's side of the pipe)."""

    def __init__(self, served, max_batch, max_cache_bytes, engine=None):
        self.served, self.engine = served, engine
        self.max_batch, self.max_cache_bytes = max_batch, max_cache_bytes
        self.lock = threading.Lock()  # guards tickets, proc and the writes to the model process
        self.tickets, self.next_id, self.proc, self.retired = {}, 0, None, False
        self.active = self.cache_bytes = 0  # as the model process last said
        self.loop = None
        self._start()

    def _start(self):
        import microgpt
        root = os.path.dirname(os.path.dirname(os.path.abspath(microgpt.__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        s = self.served
        # (the model process steps the weights this server holds, not whatever checkpoint is on disk by then)
        try:
            fd, weights = tempfile.mkstemp(prefix="microgpt-weights-", suffix=".safetensors")
            os.close(fd)
        except OSError as e:
            raise MicroGPTError(f"cannot write the weights for the model process in {tempfile.gettempdir()} "
                                f"({e.strerror}): free some space there or set TMPDIR") from None
        try:
            checkpoint.save_weights(weights, s.model.get_weights(), s.config)
        except MicroGPTError:
            os.remove(weights)
            raise
        proc = subprocess.Popen([sys.executable, "-m", "microgpt.serve.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env)
        self.proc = proc
        self._send(proc, {"path": s.path, "name": s.name, "engine": self.engine, "weights": weights,
                          "max_batch": self.max_batch, "max_cache_bytes": self.max_cache_bytes})
        threading.Thread(target=self._read, args=(proc, weights), name=f"model process {s.name}",
                         daemon=True).start()

    @staticmethod
    def _send(proc, msg):
        try:
            proc.stdin.write(dumps(msg) + b"\n")
            proc.stdin.flush()
        except (OSError, ValueError):  # (the process is gone: _read fails its requests)
            pass

    def submit(self, prompts, rng, **options):
        ticket = Ticket(self, prompts, rng, options)
        self.loop = asyncio.get_running_loop()
        state = _state(rng if options["temperature"] > 0 else None)  # (greedy rows never draw: no stream travels)
        with self.lock:
            if self.proc is None or self.proc.stdin.closed:  # (the last one died, or was retired: a request that
                self._start()                                # began before a reload asks for its next choice)
            ticket.id, ticket.proc, self.next_id = self.next_id, self.proc, self.next_id + 1
            self.tickets[ticket.id] = ticket
            self._send(self.proc, {"add": ticket.id, "prompts": prompts, "rng": state, "options": options})
        return ticket

    def ask_end(self, ticket, b, reason):
        with self.lock:
            if ticket.id in self.tickets:
                self._send(ticket.proc, {"end": ticket.id, "b": b, "reason": reason})

    def retire(self):
        """A reload replaced this model: its process stops once its requests are done."""
        with self.lock:
            self.retired = True
            if not self.tickets and self.proc is not None:
                self.proc.stdin.close()

    def _read(self, proc, weights):
        """The model process's messages, handed to their requests on the event loop (as Scheduler does)."""
        problem = None
        try:
            for line in proc.stdout:
                msg = loads(line)
                if "ready" in msg or "error" in msg:  # (it has read the weights, or could not open the run)
                    _remove(weights)
                    problem = MicroGPTError(msg["error"]) if "error" in msg else None
                elif "tokens" in msg:
                    hand_over(self.loop, *self._take(msg, proc))
        except Exception as e:  # (a fault of ours: no request is left waiting for ever)
            problem = MicroGPTError(f"generation failed ({type(e).__name__}: {e})")
            proc.kill()
        code = proc.wait()
        _remove(weights)
        with self.lock:
            left = [t for t in self.tickets.values() if t.proc is proc]
            for t in left:
                del self.tickets[t.id]
            if self.proc is proc:
                self.proc, self.active, self.cache_bytes = None, 0, 0
        for t in left:
            t.error = problem or MicroGPTError(f"the model process stopped (exit code {code}): send the request again")
        if left:
            hand_over(self.loop, [], left)

    def _take(self, msg, proc):
        """One hand-over's message -> (events, closed) for hand_over: the tickets that ended are given their
        rows' finish reasons, an error if any, and their random stream's state."""
        with self.lock:
            events = [((self.tickets[i], b), token, lp, top) for i, b, token, lp, top in msg["tokens"]
                      if i in self.tickets]
            closed = []
            for i, finishes, error, state in msg["closed"]:
                t = self.tickets.pop(i)
                t.rows = [types.SimpleNamespace(finish=f) for f in finishes]
                t.error = MicroGPTError(error) if error else None
                if state is not None:
                    t.rng.setstate(_unstate(state))  # (a request's next group draws on from here)
                closed.append(t)
            if proc is self.proc:
                self.active, self.cache_bytes = msg["active"], msg["cache"]
            if self.retired and not self.tickets:
                proc.stdin.close()
        return events, closed


# -- the model process

class Group:
    """One Ticket's rows as the model process holds them."""

    def __init__(self, i, prompts, rng, options):
        self.id, self.prompts, self.rng, self.options = i, prompts, rng, options
        self.rows, self.error = [], None


class ChildScheduler(Scheduler):
    """The stepping loop of serve/scheduler.py, handing its tokens over to a pipe (no event loop here)."""

    def __init__(self, served, max_batch, max_cache_bytes, out):
        super().__init__(served, max_batch, max_cache_bytes)
        self.out, self.groups = out, {}

    def _hand_over(self, events, closed):
        if not (events or closed):
            return
        msg = {"tokens": [[g.id, b, token, lp, top] for (g, b), token, lp, top in events],
               "closed": [[g.id, [r.finish for r in g.rows], str(g.error) if g.error else None, _state(g.rng)]
                          for g in closed],
               "active": self.active, "cache": self.cache_bytes}
        for g in closed:
            self.groups.pop(g.id, None)
        self.out.write(dumps(msg) + b"\n")
        self.out.flush()


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (Ctrl-C reaches the server, which closes our stdin)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # (anything printed goes to stderr: stdout carries the messages only)
    line = sys.stdin.buffer.readline()
    if not line:  # (the server is gone already)
        return
    first = loads(line)
    try:
        from microgpt.serve.runs import open_served
        served = open_served(first["path"], first["name"], first["engine"], weights=first["weights"])
    except (MicroGPTError, OSError) as e:
        out.write(dumps({"error": str(e)}) + b"\n")
        out.flush()
        return
    sched = ChildScheduler(served, first["max_batch"], first["max_cache_bytes"], out)
    out.write(dumps({"ready": served.step}) + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        msg = loads(line)
        if "add" in msg:
            g = sched.groups[msg["add"]] = Group(msg["add"], msg["prompts"], _rng(msg["rng"]), msg["options"])
            sched.queue(g)
        elif "end" in msg:
            g = sched.groups.get(msg["end"])  # (None: it ended meanwhile)
            if g is not None:
                sched.ask_end(g, msg["b"], msg["reason"])


if __name__ == "__main__":
    main()
