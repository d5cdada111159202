"""Byte-level BPE (byte pair encoding), trained from scratch in pure Python.

The idea, on the text "aaabdaaabac" (Wikipedia's example):

    start from bytes           a a a b d a a a b a c     ids 0..255 are the 256 byte values
    most frequent pair: a a    Z a b d Z a b a c         Z = 256 = (97, 97) means "aa"
    most frequent pair: a b    Z Y d Z Y a c             Y = 257 = (97, 98) means "ab"
    most frequent pair: Z Y    X d X a c                 X = 258 = (256, 257) means "aaab"

(At the second step "Z a" is as frequent as "a b": see the tie-break below.)

Training repeats that step until the vocabulary is big enough; the k-th merge creates id 256 + k.
Encoding new text replays the merges in the order they were learnt; decoding concatenates each
token's bytes. Any text is bytes, so any text can be encoded: no unknown tokens.

Four choices on top of the textbook algorithm:

* Chunks. The text is first cut by a GPT-4-style pattern (`pattern.py`: words with their leading
  space, punctuation, whitespace) and pairs never cross a chunk boundary, so tokens are pieces of
  words, not "e. T". Each distinct chunk is counted once, with its number of occurrences:
  tinyshakespeare's 263,000 chunks are only 15,000 distinct ones.
* Digits. Numbers are split into single digits (GPT-4 keeps groups of up to 3): with the small
  vocabularies trained here (512-4096), digit groups would waste hundreds of tokens, and in the
  arithmetic tasks of post-training one token per digit lets the model line digits up (LLaMA
  splits digits too). So no token ever holds two digits.
* Tie-break. When several pairs are equally frequent, the one with the smallest (left id,
  right id) is merged: deterministic, and independent of the order of the text.
* Special tokens (`<|bos|>`, the chat template's) take the ids after the merges; merges never
  produce them and text never contains them unless `encode(..., allowed_special=...)` asks.

The merges are learnt in bpe_learn.py.

Saved form (`to_dict`), enough to rebuild the tokenizer in tiktoken or minbpe:
    {"type": "bpe", "pattern": PATTERN, "merges": [[left, right], ...], "special_tokens": {...}}
where merges[k] = [left, right] created id 256 + k, and vocab_size = 256 + len(merges) + the
number of special tokens.
"""

from microgpt.tokenizers.base import BOS, Tokenizer, check_special_tokens
from microgpt.tokenizers.bpe_learn import count_chunks, learn_merges, merge, utf8
from microgpt.tokenizers.pattern import PATTERN, check_pattern, stdlib_regex

INF = float("inf")
MAX_MERGES = 1_000_000            # a saved tokenizer with more is refused before anything is built
MAX_SPECIAL_TOKENS = 10_000
MAX_VOCAB_BYTES = 64 * 1024 ** 2  # total bytes of all tokens: nested merges double in length
CACHE_CHUNKS = 100_000            # encoding remembers this many chunks, then starts afresh
CACHE_CHUNK_CHARS = 100           # longer chunks (long whitespace runs) are rare: not remembered


def check_merges(merges):
    """[(left, right), ...] from a saved list, or a ValueError naming the first bad merge."""
    if not isinstance(merges, (list, tuple)):
        raise ValueError("bpe tokenizer: 'merges' must be a list of [left, right] id pairs")
    if len(merges) > MAX_MERGES:
        raise ValueError(f"bpe tokenizer: {len(merges)} merges is more than the {MAX_MERGES:,} allowed")
    out, seen = [], set()
    for k, m in enumerate(merges):
        ok = isinstance(m, (list, tuple)) and len(m) == 2 and \
            all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 256 + k for i in m)
        if not ok:
            # a merge may only use ids that exist when it is made: bytes and earlier merges
            raise ValueError(f"bpe tokenizer: merge {k} must be a pair of token ids below {256 + k} "
                             f"(the 256 bytes and the merges before it)")
        pair = (m[0], m[1])
        if pair in seen:
            raise ValueError(f"bpe tokenizer: merge {k} repeats an earlier merge")
        seen.add(pair)
        out.append(pair)
    return out


class BPETokenizer(Tokenizer):
    def __init__(self, merges, special_tokens=None, pattern=PATTERN):
        """A tokenizer from its merges (merges[k] = (left, right) makes id 256 + k), its special
        tokens ({name: id}, default: BOS right after the merges) and its split pattern."""
        self.merges = check_merges(merges)
        self.pattern = pattern
        check_pattern(pattern)  # (at once: the regex itself is compiled on first use)
        self._findall = None  # compiled on first use: ~1 s, and a tokenizer that only decodes never needs it
        n = 256 + len(self.merges)
        if special_tokens is None:
            special_tokens = {BOS: n}
        if not isinstance(special_tokens, dict) or len(special_tokens) > MAX_SPECIAL_TOKENS:
            raise ValueError(f"bpe tokenizer: special_tokens must be a {{name: id}} object of at most "
                             f"{MAX_SPECIAL_TOKENS} tokens")
        if not all(isinstance(name, str) and name for name in special_tokens):
            raise ValueError("bpe tokenizer: special token names must be non-empty strings")
        self._vocab_size = n + len(special_tokens)
        self.special_tokens = check_special_tokens(special_tokens, self._vocab_size, "bpe tokenizer")
        if min(self.special_tokens.values()) < n:
            raise ValueError(f"bpe tokenizer: special token ids must come after the merges: "
                             f"{n}..{self._vocab_size - 1}")
        self._special_ids = frozenset(self.special_tokens.values())
        self.ranks = {pair: 256 + k for k, pair in enumerate(self.merges)}  # pair -> the id it makes
        # the bytes of every ordinary token; the lengths are checked first so that absurd nested
        # merges ((a a), (aa aa), (aaaa aaaa), ...) are refused instead of allocated
        lengths, total = [1] * 256, 256
        for a, b in self.merges:
            lengths.append(lengths[a] + lengths[b])
            total += lengths[-1]
            if total > MAX_VOCAB_BYTES:
                raise ValueError(f"bpe tokenizer: its tokens would take more than {MAX_VOCAB_BYTES:,} bytes")
        self.vocab = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache = {}  # chunk text -> its ids
        self.stopped_early = False  # set by train() when the text ran out of pairs to merge

    @classmethod
    def train(cls, text, vocab_size, special_tokens=(BOS,), pattern=PATTERN):
        """A tokenizer learnt from `text` (a str, or an iterable of str documents) with
        `vocab_size` tokens in all: 256 bytes + merges + `special_tokens` (must include BOS).
        If the text runs out of pairs first, it has fewer merges and `stopped_early` is True."""
        names = list(special_tokens)
        if BOS not in names or len(set(names)) != len(names) or \
                not all(isinstance(s, str) and s for s in names):
            raise ValueError(f"bpe tokenizer: special_tokens must be distinct names including {BOS}")
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or \
                vocab_size < 256 + len(names):
            raise ValueError(f"bpe tokenizer: vocab_size must be at least 256 + {len(names)} "
                             f"(the bytes and the special tokens), not {vocab_size!r}")
        n_merges = vocab_size - 256 - len(names)
        if n_merges > MAX_MERGES:
            raise ValueError(f"bpe tokenizer: vocab_size allows at most {MAX_MERGES:,} merges")
        words, counts = count_chunks(text, pattern)
        merges = learn_merges(words, counts, n_merges)
        tok = cls(merges, {name: 256 + len(merges) + i for i, name in enumerate(names)}, pattern)
        tok.stopped_early = len(merges) < n_merges
        return tok

    @property
    def vocab_size(self):
        return self._vocab_size

    def encode_chunk(self, data):
        """The ids of one chunk's bytes: apply merges in the order they were learnt. At each step
        the adjacent pair with the earliest merge (smallest new id) is merged everywhere."""
        ids = list(data)
        rank = self.ranks.get
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: rank(p, INF))
            new_id = rank(pair)
            if new_id is None:
                break  # no pair left that training merged
            ids = merge(ids, pair, new_id)
        return ids

    def encode_ordinary(self, text):
        ids = []
        cache = self._cache
        if self._findall is None:
            self._findall = stdlib_regex(self.pattern).findall
        for chunk in self._findall(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = self.encode_chunk(utf8(chunk))
                if len(chunk) <= CACHE_CHUNK_CHARS:
                    if len(cache) >= CACHE_CHUNKS:
                        cache.clear()  # bounded memory; common chunks come back quickly
                    cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def token_bytes(self, token_id):
        if 0 <= token_id < len(self.vocab):
            return self.vocab[token_id]
        if token_id in self._special_ids:
            return b""
        raise ValueError(f"token id {token_id} is not in this tokenizer (0..{self.vocab_size - 1})")

    def with_special_tokens(self, names):
        specials = dict(self.special_tokens)
        for name in names:
            if name not in specials:
                specials[name] = 256 + len(self.merges) + len(specials)
        if specials == self.special_tokens:
            return self
        return BPETokenizer(self.merges, specials, self.pattern)

    def to_dict(self):
        return {"type": "bpe", "pattern": self.pattern, "merges": [list(m) for m in self.merges],
                "special_tokens": dict(self.special_tokens)}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("type") != "bpe":
            raise ValueError("bpe tokenizer: expected an object with \"type\": \"bpe\"")
        pattern = d.get("pattern")
        if pattern != PATTERN:
            raise ValueError("bpe tokenizer: unknown 'pattern': only this module's own "
                             "(microgpt.tokenizers.pattern.PATTERN) can run without dependencies")
        if "special_tokens" not in d:
            raise ValueError("bpe tokenizer: 'special_tokens' is missing")
        return cls(d.get("merges"), d["special_tokens"], pattern)
