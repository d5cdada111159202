"""Generation one model call at a time, so a server can stream each token, stop at any point and
let other requests run in between.

`Rows.step()` is one turn of the loop in microgpt.generate.generate: it feeds every row its next
token at one position, and each row whose prompt is used up draws a token with sample.pick --
the same arithmetic and the same draws from the same random stream, so a request with a seed
gives what `microgpt sample --seed` prints (tests check both against generate). What it adds:
top_p (nucleus: the smallest set of the likeliest tokens whose probability reaches top_p, after
temperature and top-k, given to pick as the only candidates), each drawn token's log-probability
and its likeliest alternatives (of the model's own distribution, temperature 1, as OpenAI
reports them), and ending one row early (a stop string, a client gone).

`Text` turns a row's tokens into text as it grows, holding back what could still become a stop
string, so streamed pieces never have to be taken back.
"""

import codecs
import heapq
import math

from microgpt.generate import pick, probs_from_logits


def log_softmax(logits):
    m = max(logits)
    lse = m + math.log(sum(math.exp(l - m) for l in logits))
    return [l - lse for l in logits]


def nucleus(logits, temperature, top_k, top_p):
    """The logits with every token outside the top_p nucleus set to -inf."""
    probs = probs_from_logits(logits, temperature, top_k)
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    keep, total = set(), 0.0
    for i in order:
        keep.add(i)
        total += probs[i]
        if total >= top_p:
            break
    return [l if i in keep else -math.inf for i, l in enumerate(logits)]


class Rows:
    """Continue a batch of prompts (lists of token ids), one model call per step().

    finish[b] becomes "stop" (a stop token) or "length" (max_new_tokens, or the context full
    without slide) when row b ends; new[b] holds its drawn tokens.
    """

    def __init__(self, model, prompts, rng, block_size, max_new_tokens=None, temperature=1.0, top_k=0, top_p=1.0,
                 stop=(), slide=False, top_logprobs=0):
        self.model, self.rng, self.block_size = model, rng, block_size
        self.max_new, self.temperature, self.top_k, self.top_p = max_new_tokens, temperature, top_k, top_p
        self.stop, self.slide, self.top_logprobs = set(stop), slide, top_logprobs
        self.seqs = [list(p) for p in prompts]
        self.new = [[] for _ in prompts]
        self.finish = [None if max_new_tokens is None or max_new_tokens > 0 else "length" for _ in prompts]
        self.gen, self.pos, self.shift = model.generator(len(prompts)), 0, 0  # seqs[b][shift + pos] is fed at pos

    @property
    def done(self):
        return all(f is not None for f in self.finish)

    def end(self, b, reason):
        if self.finish[b] is None:
            self.finish[b] = reason

    def step(self):
        """One model call. -> [(row, token, logprob, [(token, logprob), ...])] for the tokens drawn."""
        if self.done:
            return []
        if self.pos == self.block_size:
            if not self.slide:
                for b in range(len(self.seqs)):
                    self.end(b, "length")
                return []
            keep = self.block_size // 2  # as generate: restart from the last `keep` tokens, the pending one last
            self.shift += self.block_size + 1 - keep
            self.gen, self.pos = self.model.generator(len(self.seqs)), 0
        shift, pos = self.shift, self.pos
        tokens = [s[shift + pos] if shift + pos < len(s) else 0 for s in self.seqs]
        logits = self.gen.next_logits(tokens, pos)
        self.pos += 1
        out = []
        for b, s in enumerate(self.seqs):
            if self.finish[b] is not None or shift + self.pos < len(s):  # ended, or its prompt goes on
                continue
            row = logits[b]
            candidates = row if self.top_p >= 1 or self.temperature == 0 else \
                nucleus(row, self.temperature, self.top_k, self.top_p)
            token = pick(candidates, self.rng, self.temperature, self.top_k)
            if token in self.stop:
                self.end(b, "stop")
                continue
            s.append(token)
            self.new[b].append(token)
            logp = log_softmax(row)
            top = heapq.nlargest(self.top_logprobs, range(len(logp)), key=logp.__getitem__) if self.top_logprobs else []
            out.append((b, token, logp[token], [(i, logp[i]) for i in top]))
            if self.max_new is not None and len(self.new[b]) >= self.max_new:
                self.end(b, "length")
        return out


class Text:
    """The text of one row's tokens as they come: add() returns the piece that is now certain."""

    def __init__(self, tokenizer, stops=()):
        self.tokenizer, self.stops = tokenizer, tuple(stops)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a token may end inside a character
        self.text, self.sent = "", 0
        self.stopped = False

    def add(self, token):
        """Take one token; -> the new text that can be sent (held back: what may begin a stop string)."""
        if self.stopped:
            return ""
        self.text += self.decoder.decode(self.tokenizer.token_bytes(token))
        return self._release(final=False)

    def close(self):
        """The rest of the text at the row's end."""
        if not self.stopped:
            self.text += self.decoder.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, final):
        if self.stopped:
            return ""
        hits = [i for i in (self.text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.text, self.stopped = self.text[:min(hits)], True
            end = len(self.text)
        elif final:
            end = len(self.text)
        else:
            end = len(self.text) - max((k for s in self.stops for k in range(1, len(s))
                                        if self.text.endswith(s[:k])), default=0)
        piece, self.sent = self.text[self.sent:end], max(self.sent, end)
        return piece
