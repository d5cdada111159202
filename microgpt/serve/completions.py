"""One API request's generation, and its answer in OpenAI's shapes (a whole response or stream chunks).

What a request means for each kind of run, chosen to give what the CLI gives:
* a base model (`/v1/completions`): each choice continues the prompt on its own, one after
  another from one random stream, as `microgpt sample --num n` draws them. A names-like run
  (docs) reads [BOS] + prompt and ends at BOS (finish "stop") or when its context is full
  ("length"); a run on continuous text (stream) slides its window as `sample` does and writes
  max_tokens tokens (default 16, OpenAI's).
* a chat model (`/v1/chat/completions`): the conversation through the chat template; the n
  replies are drawn together, row by row, as `microgpt sample --num n --prompt` draws them; a
  reply ends at <|assistant_end|> ("stop") or when the context is full ("length").
The text returned is the continuation only (the prompt is not echoed); logprobs list every
drawn token, the one that completed a stop string included, while the text ends before it.
"""

import random
import time
import uuid

from microgpt.errors import MicroGPTError
from microgpt.serve.generation import Text
from microgpt.serve.jsonbytes import dumps
from microgpt.serve.runs import default_stream_prompt
from microgpt.serve.schema import bad

DEFAULT_STREAM_TOKENS = 16  # OpenAI's default max_tokens for /v1/completions


class Job:
    """The choices of one request: groups of rows generated one group after another."""

    def __init__(self, served, req, limits):
        self.served, self.req, s = served, req, req.sampling
        self.s, tok, bs = s, served.tokenizer, served.block_size
        self.chat = req.messages is not None
        if self.chat != served.chat:
            use = "/v1/chat/completions" if served.chat else "/v1/completions"
            what = "a chat model" if served.chat else "a base model (it continues text)"
            raise bad(f"{served.name} is {what}: use {use}", "model", "wrong_endpoint")
        if self.chat:
            contexts = [chat_prompt(tok, req.messages)]
            self.stop_ids, slide, max_new = (tok.special_tokens["<|assistant_end|>"],), False, s.max_tokens
        else:
            contexts = [base_prompt(served, p) for p in req.prompts]
            docs = served.mode == "docs"
            self.stop_ids, slide = ((tok.BOS,) if docs else ()), not docs
            max_new = s.max_tokens if docs else (s.max_tokens or DEFAULT_STREAM_TOKENS)
        for c in contexts:
            if len(c) > bs:
                raise bad(f"the prompt is {len(c)} tokens{' with the chat template' if self.chat else ''} and the "
                          f"model reads at most {bs} (its block_size): send a shorter one",
                          "messages" if self.chat else "prompt", "context_length_exceeded")
        budget = len(contexts) * s.n * (max_new or bs)
        if len(contexts) * s.n > limits.max_n or budget > limits.max_request_tokens:
            raise bad(f"{len(contexts) * s.n} choices of up to {max_new or bs} tokens is more than this server "
                      f"makes for one request ({limits.max_n} choices, {limits.max_request_tokens} tokens): ask for "
                      f"fewer", "n", "out_of_range")
        self.prompt_tokens = sum(map(len, contexts))
        self.prompt_chars = [len(tok.decode(c)) for c in contexts for _ in range(s.n)]
        self.rng = random.Random(s.seed) if s.seed is not None else random.Random()
        self.options = dict(max_new_tokens=max_new, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                            stop=self.stop_ids, slide=slide, logprobs=s.logprobs, top_logprobs=s.top_logprobs)
        # (choice indices, their prompts): chat draws its n rows together, completions one by one
        if self.chat:
            self.groups = [(list(range(s.n)), contexts * s.n)]
        else:
            self.groups = [([i * s.n + j], [c]) for i, c in enumerate(contexts) for j in range(s.n)]
        self.texts = [Text(tok, s.stop) for _ in range(len(contexts) * s.n)]
        self.completion_tokens, self.ticket, self.last = 0, None, None
        self.id = ("chatcmpl-" if self.chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def ready(self):
        """Whether more events are there to take without waiting -- tokens that came and were not taken, or the
        last group's end -- so a stream writes them together: a short request's last tokens, its finish and
        the stream's end go out in one socket write (writes held the GIL 14-18% of the time under 32 names-sized
        streams, py-spy --gil; merged, those streams gained ~4%, bench/sse_client.py alternating servers)."""
        t = self.ticket
        return t is not None and (len(t.events) > 0 or (t.closed and t is self.last))

    async def events(self, scheduler):
        """Lists of ("token", choice, text piece, token, logprob, top) and ("finish", choice, reason), in
        order, as they come; the rows are stepped by `scheduler` (serve/scheduler.py) among every other
        request's."""
        for g, (indices, prompts) in enumerate(self.groups):
            self.ticket = ticket = scheduler.submit(prompts, self.rng, **self.options)
            if g == len(self.groups) - 1:
                self.last = ticket
            try:
                async for got in ticket:
                    out = []
                    for b, token, logprob, top in got:
                        if b in ticket.dropped:  # (the row ended: its stop string, maybe earlier in this list)
                            continue
                        text = self.texts[indices[b]]
                        self.completion_tokens += 1
                        piece = text.add(token)
                        if text.stopped:
                            ticket.end(b, "stop")
                        out.append(("token", indices[b], piece, token, logprob, top))
                    yield out
            finally:
                if None in ticket.finish:  # the client gone: its rows end before the next step
                    ticket.cancel()
            out = []
            for b, i in enumerate(indices):
                rest = self.texts[i].close()
                if rest:
                    out.append(("token", i, rest, None, None, None))
                out.append(("finish", i, "stop" if self.texts[i].stopped else ticket.finish[b] or "length"))
            yield out


def chat_prompt(tok, messages):
    from microgpt.data.chat_template import chat_token_ids, render_prompt
    from microgpt.data.conversations import messages_problem
    problem = messages_problem(messages, last="user")
    if problem:
        raise bad(f"messages: {problem}", "messages", "invalid_messages")
    try:
        chat_token_ids(tok)
        return render_prompt(tok, messages)
    except MicroGPTError as e:
        raise bad(f"messages: {e}", "messages", "invalid_characters") from None


def base_prompt(served, p):
    tok = served.tokenizer
    if isinstance(p, str):
        try:
            ids = tok.encode(p)
        except MicroGPTError as e:
            raise bad(f"prompt: {e}", "prompt", "invalid_characters") from None
    else:
        wrong = [t for t in p if not 0 <= t < tok.vocab_size]
        if wrong:
            raise bad(f"prompt: token id {wrong[0]} is not in the vocabulary (0 to {tok.vocab_size - 1})", "prompt",
                      "invalid_token")
        ids = list(p)
    if served.mode == "docs":
        return [tok.BOS] + ids
    return ids or tok.encode(default_stream_prompt(tok))


# -- OpenAI's shapes

def token_entry(served, token, logprob, top):
    """A chat logprobs.content entry."""
    def one(t, lp):
        return {"token": served.piece(t), "logprob": lp, "bytes": list(served.tokenizer.token_bytes(t))}
    return {**one(token, logprob), "top_logprobs": [one(t, lp) for t, lp in top]}


class Answer:
    """Collects a job's events into one response, or turns each into stream chunks."""

    def __init__(self, job):
        self.job = job
        n = len(job.texts)
        self.text, self.finish = [""] * n, [None] * n
        self.entries = [[] for _ in range(n)]
        self.offset = list(job.prompt_chars)  # text_offset counts from the prompt's start, as OpenAI's
        self.started = set()
        self.frame = None  # (the bytes before and after a stream chunk's choice: stream())

    def head(self):
        j = self.job
        return {"id": j.id, "object": "chat.completion.chunk" if j.chat else "text_completion",
                "created": j.created, "model": j.served.name,
                "system_fingerprint": f"microgpt-step-{j.served.step}"}

    def usage(self):
        j = self.job
        return {"prompt_tokens": j.prompt_tokens, "completion_tokens": j.completion_tokens,
                "total_tokens": j.prompt_tokens + j.completion_tokens}

    def _logprobs_piece(self, i, piece, token, logprob, top):
        """The logprobs of one token in this kind of response (None without logprobs)."""
        if not self.job.s.logprobs or token is None:
            return None
        if self.job.chat:
            return {"content": [token_entry(self.job.served, token, logprob, top)]}
        piece = self.job.served.piece
        return {"tokens": [piece(token)], "token_logprobs": [logprob],
                "top_logprobs": [{piece(t): lp for t, lp in top}], "text_offset": [self.offset[i]]}

    def add(self, event):
        """Record one event; -> the choices of the stream chunks it makes (a list of dicts)."""
        kind, i = event[0], event[1]
        choices = []
        if self.job.chat and i not in self.started:
            self.started.add(i)
            choices.append(self._choice(i, {"role": "assistant", "content": ""}, None, None))
        if kind == "finish":
            self.finish[i] = event[2]
            choices.append(self._choice(i, {} if self.job.chat else "", None, event[2]))
            return choices
        _, _, piece, token, logprob, top = event
        lp = self._logprobs_piece(i, piece, token, logprob, top)
        if lp is not None:
            self.entries[i].append(lp)
        self.text[i] += piece
        self.offset[i] += len(piece)
        if piece or lp is not None:
            choices.append(self._choice(i, {"content": piece} if self.job.chat else piece, lp, None))
        return choices

    def _choice(self, i, delta, logprobs, finish):
        body = {"index": i, "delta": delta} if self.job.chat else {"index": i, "text": delta}
        return {**body, "logprobs": logprobs, "finish_reason": finish}

    def stream(self, events):
        """Record a list of events; -> their server-sent events (bytes): each chunk is head() with one
        choice (and "usage": null when asked), its constant part encoded once."""
        if self.frame is None:
            head = dumps({**self.head(), "choices": None})
            tail = b',"usage":null}' if self.job.s.include_usage else b"}"
            self.frame = (b"data: " + head[:-len(b"null}")] + b"[", b"]" + tail + b"\n\n")
        start, end = self.frame
        return b"".join(start + dumps(choice) + end for event in events for choice in self.add(event))

    def usage_chunk(self):
        return {**self.head(), "choices": [], "usage": self.usage()}

    def response(self):
        j = self.job
        choices = []
        for i, text in enumerate(self.text):
            lp = None
            if j.s.logprobs:  # the per-token pieces joined: each key's lists concatenated
                keys = ("content",) if j.chat else ("tokens", "token_logprobs", "top_logprobs", "text_offset")
                lp = {k: [v for piece in self.entries[i] for v in piece[k]] for k in keys}
            if j.chat:
                choices.append({"index": i, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                                "finish_reason": self.finish[i]})
            else:
                choices.append({"index": i, "text": text, "logprobs": lp, "finish_reason": self.finish[i]})
        return {**self.head(), "object": "chat.completion" if j.chat else "text_completion",
                "choices": choices, "usage": self.usage()}
