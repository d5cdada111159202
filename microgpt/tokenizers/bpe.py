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

`learn_merges_textbook` is the algorithm as stated: count every pair of every chunk, merge the
top one, repeat. `learn_merges` gives the same merges much faster by updating the counts of only
the chunks a merge touches (its docstring explains the bookkeeping).

Saved form (`to_dict`), enough to rebuild the tokenizer in tiktoken or minbpe:
    {"type": "bpe", "pattern": PATTERN, "merges": [[left, right], ...], "special_tokens": {...}}
where merges[k] = [left, right] created id 256 + k, and vocab_size = 256 + len(merges) + the
number of special tokens.
"""

import heapq
from collections import Counter, defaultdict

from microgpt.tokenizers.base import BOS, Tokenizer, check_special_tokens
from microgpt.tokenizers.pattern import PATTERN, stdlib_regex

MAX_MERGES = 1_000_000            # a saved tokenizer with more is refused before anything is built
MAX_SPECIAL_TOKENS = 10_000
MAX_VOCAB_BYTES = 64 * 1024 ** 2  # total bytes of all tokens: nested merges double in length
CACHE_CHUNKS = 100_000            # encoding remembers this many chunks, then starts afresh
CACHE_CHUNK_CHARS = 100           # longer chunks (long whitespace runs) are rare: not remembered
INF = float("inf")


def utf8(chunk):
    """The UTF-8 bytes of a chunk. A str can hold lone surrogates (half of a UTF-16 pair, e.g. from
    a broken JSON string), which are not text and have no UTF-8: they become U+FFFD, as in tiktoken
    (and a well-formed pair of surrogates becomes its character)."""
    try:
        return chunk.encode("utf-8")
    except UnicodeEncodeError:
        return chunk.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def merge(ids, pair, new_id):
    """`ids` with every occurrence of `pair`, left to right, replaced by `new_id`."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def count_chunks(text, pattern=PATTERN):
    """(words, counts): the distinct chunks of `text` (a str, or an iterable of str documents,
    split separately) as lists of byte ids, and how many times each occurs, in first-seen order."""
    split = stdlib_regex(pattern).findall
    chunk_counts = Counter()
    for doc in [text] if isinstance(text, str) else text:
        chunk_counts.update(split(doc))
    by_bytes = Counter()  # two chunks can have the same bytes only through lone surrogates
    for chunk, n in chunk_counts.items():
        by_bytes[utf8(chunk)] += n
    return [list(b) for b in by_bytes], list(by_bytes.values())


def learn_merges_textbook(words, counts, n_merges):
    """The algorithm as stated (minbpe's loop): count every adjacent pair of every chunk, weighted
    by how often the chunk occurs; merge the most frequent everywhere; repeat. Each merge looks at
    the whole text again. Returns the merges [(left, right), ...], fewer if pairs run out."""
    words = [list(w) for w in words]
    merges = []
    while len(merges) < n_merges:
        pair_count = Counter()
        for ids, c in zip(words, counts):
            for pair in zip(ids, ids[1:]):
                pair_count[pair] += c
        if not pair_count:
            break  # every chunk is a single token: nothing left to merge
        # most frequent; on a tie, the smallest (left, right)
        pair = min(pair_count, key=lambda p: (-pair_count[p], p))
        new_id = 256 + len(merges)
        words = [merge(ids, pair, new_id) for ids in words]
        merges.append(pair)
    return merges


def learn_merges(words, counts, n_merges, history=None):
    """The same merges as `learn_merges_textbook`, with a merge costing only the chunks it touches.
    If `history` is a list, it gets (count, tied) for each merge: how often the merged pair
    occurred, and whether another pair occurred as often (where the tie-break decided).

    The bookkeeping, kept up to date after every merge:
      words[w]          the current ids of distinct chunk w (at first its bytes)
      counts[w]         how many times chunk w occurs in the text (never changes)
      pair_count[p]     how often pair p = (left, right) stands side by side in the whole text:
                        the sum over chunks of (occurrences in words[w]) * counts[w]
      where[p]          the set of chunks w whose words[w] contain p
      heap              entries (-count, left, right): heapq's smallest = the most frequent pair,
                        the smallest (left, right) on a tie. heapq cannot change an entry, so a
                        pair whose count changes gets a new entry, and entries whose count no
                        longer equals pair_count are skipped when they come up ("lazy deletion")

    Merging pair p visits only the chunks in where[p]: each one's pairs are taken out of the
    counts, the chunk is merged, and its new pairs are put back. Early merges (" t", "he") touch
    thousands of chunks, later ones a handful, so the whole run costs about as much as a few
    passes over the text instead of one pass per merge.
    """
    words = [list(w) for w in words]
    pair_count = defaultdict(int)
    where = defaultdict(set)
    for w, (ids, c) in enumerate(zip(words, counts)):
        for pair in zip(ids, ids[1:]):
            pair_count[pair] += c
            where[pair].add(w)
    heap = [(-c, a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)

    def pop_top():
        """The most frequent pair and its count, (None, 0) if there is none."""
        while heap:
            neg_count, a, b = heapq.heappop(heap)
            if pair_count.get((a, b), 0) == -neg_count:  # else: a stale entry
                return (a, b), -neg_count
        return None, 0

    merges = []
    while len(merges) < n_merges:
        pair, count = pop_top()
        if pair is None:
            break  # every chunk is a single token: nothing left to merge
        if history is not None:
            runner_up, runner_up_count = pop_top()
            if runner_up is not None:
                heapq.heappush(heap, (-runner_up_count,) + runner_up)
            history.append((count, runner_up_count == count))
        new_id = 256 + len(merges)
        merges.append(pair)

        change = defaultdict(int)  # pair -> change of its count through this merge
        for w in where.pop(pair):
            ids, c = words[w], counts[w]
            new = merge(ids, pair, new_id)
            old_pairs, new_pairs = list(zip(ids, ids[1:])), list(zip(new, new[1:]))
            for p in old_pairs:
                change[p] -= c
            for p in new_pairs:
                change[p] += c
            for p in set(old_pairs).difference(new_pairs):
                if p != pair:  # the merged pair's set is gone already
                    where[p].discard(w)
            for p in new_pairs:
                where[p].add(w)
            words[w] = new
        for p, d in change.items():
            if d:
                pair_count[p] += d
                if pair_count[p]:
                    heapq.heappush(heap, (-pair_count[p], p[0], p[1]))
                else:
                    del pair_count[p]
                    where.pop(p, None)
    return merges


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
        self._split = stdlib_regex(pattern).findall  # ValueError for a pattern it cannot run
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
        for chunk in self._split(text):
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
