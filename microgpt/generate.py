"""The one generation path: rows of a batch continued together, each with its own KV-cache row,
position, settings and random stream (microgpt/sampling.py picks the tokens).

`Rows` is a batch that rows join and leave at any step -- what a server's scheduler steps,
and what `generate` (sample, eval, RL, chat) loops over. A row's prompt enters its cache in one
forward pass (the engine's prefill), then every step feeds each row its last token at its own
position, in one batched call (the engine's decode), and draws one token per row. So a row's
tokens do not depend on which other rows share its steps: rows drawing from one random stream
draw in the order they were added, and a seeded row alone draws what it draws among others.

A row ends at a token in `stop` (kept in row.new only with keep_stop: RL trains on it, as the
policy's choice to end), after max_new_tokens, or when its context is full (block_size
positions); with `slide`, a full context is instead rebuilt from the row's last block_size // 2
tokens, so text can run past the model's window.
"""

from microgpt.errors import MicroGPTError
from microgpt.sampling import choose, choose_rows, pick  # noqa: F401 (pick: callers import the policy from here)


class Row:
    """One sequence being continued: seq (prompt + drawn), new (drawn), finish (None, "stop", "length")."""

    def __init__(self, prompt, rng, max_new_tokens, temperature, top_k, top_p, stop, slide, logprobs, top_logprobs,
                 keep_stop, tag):
        self.seq, self.new, self.rng, self.tag = list(prompt), [], rng, tag
        self.max_new, self.temperature, self.top_k, self.top_p = max_new_tokens, temperature, top_k, top_p
        self.stop, self.slide, self.keep_stop = frozenset(stop), slide, keep_stop
        self.logprobs, self.top_logprobs = logprobs or top_logprobs > 0, top_logprobs
        self.finish = None if max_new_tokens is None or max_new_tokens > 0 else "length"
        self.slot = None  # its row in the KV cache, once its prompt is in


class Rows:
    """A batch of rows over one model's KV cache; add() rows at any time, step() advances them all."""

    def __init__(self, model, block_size):
        self.model, self.block_size = model, block_size
        self.cache = model.kv_cache()
        self.active = []  # the unfinished rows, in the order they were added

    def add(self, prompt, rng, max_new_tokens=None, temperature=1.0, top_k=0, top_p=1.0, stop=(), slide=False,
            logprobs=False, top_logprobs=0, keep_stop=False, tag=None):
        """A new row continuing `prompt` (1 to block_size token ids), drawing from `rng`."""
        if not prompt or len(prompt) > self.block_size:
            raise MicroGPTError(f"a prompt of {len(prompt)} tokens does not fit: the model reads 1 to "
                                f"{self.block_size} tokens (its block_size); use a shorter prompt")
        row = Row(prompt, rng, max_new_tokens, temperature, top_k, top_p, stop, slide, logprobs, top_logprobs,
                  keep_stop, tag)
        if row.finish is None:
            self.active.append(row)
        return row

    def end(self, row, reason):
        """End a row now (a stop string, a client gone); its cache row is given back at once."""
        if row.finish is None:
            row.finish = reason
        if row in self.active:
            self.active.remove(row)
            if row.slot is not None:
                self.cache.free(row.slot)
                row.slot = None

    def step(self):
        """One batched forward pass and one draw per row -> [(row, token, logprob, top)] for the
        tokens drawn (a stop token is not among them; logprob None unless the row asked)."""
        fill, feed = [], []
        for row in list(self.active):
            if row.slot is not None and self.cache.length[row.slot] == self.block_size:
                if not row.slide:
                    self.end(row, "length")
                    continue
                self.cache.free(row.slot)  # the window restarts from the last tokens, the pending one last
                row.slot = None
            (feed if row.slot is not None else fill).append(row)
        logits, prompts = {}, {}
        for row in fill:  # new prompts of one length are prefilled together
            row.slot = self.cache.add()
            ids = row.seq if not row.new else row.seq[-(self.block_size // 2):]
            prompts.setdefault(len(ids), []).append((row, ids))
        for group in prompts.values():
            for (row, _), l in zip(group, self.cache.prefill_rows([r.slot for r, _ in group], [i for _, i in group])):
                logits[id(row)] = l
        if feed:
            for row, l in zip(feed, self.cache.decode([r.slot for r in feed], [r.seq[-1] for r in feed])):
                logits[id(row)] = l
        rows = [r for r in self.active if id(r) in logits]
        if not rows:
            return []
        batch = [logits[id(r)] for r in rows]
        if isinstance(batch[0], list):  # the python engine: plain floats, the seed's arithmetic
            drawn = [choose(l, r) for l, r in zip(batch, rows)]
        else:
            import numpy as np
            drawn = choose_rows(np.stack(batch), rows)
        out = []
        for row, (token, logprob, top) in zip(rows, drawn):
            if token in row.stop:
                if row.keep_stop:
                    row.new.append(token)
                self.end(row, "stop")
                continue
            row.seq.append(token)
            row.new.append(token)
            out.append((row, token, logprob, top))
            if row.max_new is not None and len(row.new) >= row.max_new:
                self.end(row, "length")
        return out


def generate(model, prompts, rng, block_size, max_new_tokens=None, temperature=0.5, top_k=0, stop=(),
             slide=False, on_token=None, keep_stop=False, top_p=1.0):
    """Continue each prompt (a non-empty list of token ids) as rows of one batch, drawing from
    `rng` in row order; returns the new tokens of each. on_token(row index, token), if given,
    hears every token as it is drawn (to print it at once)."""
    rows = Rows(model, block_size)
    made = [rows.add(p, rng, max_new_tokens, temperature, top_k, top_p, stop, slide, keep_stop=keep_stop, tag=b)
            for b, p in enumerate(prompts)]
    while rows.active:
        for row, token, _, _ in rows.step():
            if on_token:
                on_token(row.tag, token)
    return [r.new for r in made]


def sample_texts(model, tokenizer, config, data_mode, rng, num, temperature=0.5, top_k=0, prompt="",
                 max_new_tokens=None):
    """`num` samples, one after another (so the random stream is drawn as the seed draws it)."""
    docs = data_mode == "docs"
    prompt_ids = tokenizer.encode(prompt)
    if docs:
        context = [tokenizer.BOS] + prompt_ids
    else:
        context = prompt_ids or tokenizer.encode(default_stream_prompt(tokenizer))
    out = []
    for _ in range(num):
        new = generate(model, [context], rng, config.block_size, None if docs else (max_new_tokens or 500),
                       temperature, top_k, stop=(tokenizer.BOS,) if docs else (), slide=not docs)[0]
        out.append(tokenizer.decode(prompt_ids + new) if docs else tokenizer.decode(context + new))
    return out


def default_stream_prompt(tokenizer):
    """Continuous text has no BOS in training: start a sample from a newline (or the first token)."""
    try:
        tokenizer.encode("\n")
        return "\n"
    except MicroGPTError:
        return tokenizer.piece(0)
