"""A prepared corpus (`microgpt data prepare`) as a run's dataset: the same interface as text.py's
Dataset (describe, train_batch, eval_pairs, train_text / val_text), read from memory-mapped shards,
so memory and start-up stay the same whatever the size of the corpus.

* `stream`: step s draws B windows of block_size + 1 tokens uniformly over ALL training tokens
  (shards read as one sequence), from random.Random(seed * 1_000_003 + s) as text.py does: the
  same (seed, step) gives the same windows, so a resumed run is exact; torchrun ranks take
  disjoint slices of the step's windows (the training loop's my_share).
* `docs`: the training documents in a seeded order, each as [BOS] + document + [BOS] cut to
  block_size + 1 tokens, as text.py does. While the order fits in memory (SHUFFLE_MAX documents)
  it is text.py's: the run's random stream shuffles the document indices, so a corpus prepared
  from the lines of a file (all in train) trains exactly as `--data FILE` does. Beyond that a
  keyed permutation computed per position (a Feistel network): constant memory, a new order each
  epoch.
* validation: a fixed, strided sample spread over the whole split (`eval_docs` windows or
  documents), or all of it (0).
* "in train" / "in val": a 64-bit hash of the text looked up in the shards' sorted hashes.
"""

import os
import random
from array import array

from microgpt import tokenizers
from microgpt.data.shards import TYPECODES, Split, doc_hash, read_manifest
from microgpt.errors import MicroGPTError

SHUFFLE_MAX = 1 << 20


def is_prepared(path):
    """Whether `--data PATH` names a prepared corpus (a folder) rather than a text file."""
    return path is not None and os.path.isdir(path)


class PreparedCorpus:
    """A prepared corpus as a run records it: its folder, its manifest and the manifest's SHA-256 (the
    fingerprint: every shard's hash is in the manifest). Opening checks the manifest, not the shards'
    contents: their sizes are checked when first read, their hashes by `microgpt data check`."""

    def __init__(self, folder):
        self.path = folder
        self.manifest, self.sha256 = read_manifest(folder)
        try:
            self.tokenizer = tokenizers.from_dict(self.manifest["tokenizer"])
        except (KeyError, ValueError) as e:
            raise MicroGPTError(f"{folder}/manifest.json has a bad tokenizer ({e}): prepare the corpus again") from None

    def split(self, name):
        return Split(self.path, [s for s in self.manifest["shards"] if s["split"] == name],
                     TYPECODES[self.manifest["dtype"]])


class _Seen:
    """`text in ds.train_text`, backed by the split's document hashes."""

    def __init__(self, split):
        self.split = split

    def __contains__(self, text):
        return isinstance(text, str) and self.split.has_hash(doc_hash(text))


class ShardedDataset:
    def __init__(self, corpus, mode, block_size, rng, tokenizer=None):
        if mode not in ("docs", "stream"):
            raise MicroGPTError(f"unknown data mode {mode!r}: use docs or stream")
        if mode == "docs" and not corpus.manifest["docs"]:
            raise MicroGPTError(f"{corpus.path} was prepared from continuous text (--text-mode stream): it has no "
                                f"documents to train on one by one; pass --data-mode stream")
        if tokenizer is not None and tokenizer.to_dict() != corpus.tokenizer.to_dict():
            raise MicroGPTError(f"the run's tokenizer differs from {corpus.path}'s: train on a corpus prepared with "
                                f"the run's tokenizer (microgpt data prepare --tokenizer FILE)")
        self.corpus, self.mode, self.block_size = corpus, mode, block_size
        self.tokenizer = corpus.tokenizer
        self.train, self.val = corpus.split("train"), corpus.split("val")
        for split in (self.train, self.val):
            split.check_sizes()  # (sizes at open; contents by `microgpt data check`, which reads every byte)
        self.train_text, self.val_text = _Seen(self.train), _Seen(self.val)
        self.n_truncated, self.cut_fraction = 0, 0.0
        if mode == "docs":
            self.order = DocOrder(self.train.n_docs, rng)
        elif self.train.n_tokens < block_size + 1:
            raise MicroGPTError(f"{corpus.path} has {self.train.n_tokens} training tokens, fewer than block_size + 1 "
                                f"= {block_size + 1}: use more text or a smaller --block-size")

    def describe(self):
        t, v = self.train, self.val
        docs = f"{t.n_docs:,} train / {v.n_docs:,} val documents, " if self.corpus.manifest["docs"] else ""
        return (f"{docs}{t.n_tokens:,} train / {v.n_tokens:,} val tokens in {len(t.shards) + len(v.shards)} shards "
                f"({self.corpus.path}), vocab size {self.tokenizer.vocab_size}")

    def _doc_tokens(self, split, i):
        # [BOS] + doc + [BOS], cut to block_size + 1 tokens (the document's own BOS closes it)
        start, end = split.doc_span(i)
        return [self.tokenizer.BOS] + split.read(start, min(end, start + self.block_size))

    def train_batch(self, step, batch_size, seed):
        """The token sequences of training step `step` (0-based), deterministic in (seed, step)."""
        if self.mode == "docs":
            start = step * batch_size
            return [self._doc_tokens(self.train, self.order[start + b]) for b in range(batch_size)]
        rng = random.Random(seed * 1_000_003 + step)
        hi = self.train.n_tokens - self.block_size - 1
        starts = [rng.randint(0, hi) for _ in range(batch_size)]
        return [self.train.read(s, s + self.block_size + 1) for s in starts]

    def eval_pairs(self, split, max_seqs=0):
        return [(s, None) for s in self.eval_sequences(split, max_seqs)]

    def eval_sequences(self, split, max_seqs=0):
        """A fixed sample of a split spread evenly over all of it (max_seqs documents or windows), or
        all of it (max_seqs 0). Windows lie on the grid of consecutive windows, so all = every target."""
        data = self.train if split == "train" else self.val
        if self.mode == "docs":
            return [self._doc_tokens(data, i) for i in _strided(data.n_docs, max_seqs)]
        grid = range(0, max(0, data.n_tokens - 1), self.block_size)
        return [data.read(grid[g], min(data.n_tokens, grid[g] + self.block_size + 1))
                for g in _strided(len(grid), max_seqs)]

    def val_examples(self, n, width):
        """A few validation sequences to draw: the first n documents (without the BOS that closes each, as
        text.Dataset's; at most block_size tokens of one), or n windows of `width` tokens."""
        if self.mode == "docs":
            spans = (self.val.doc_span(i) for i in range(min(n, self.val.n_docs)))
            return [self.val.read(start, min(end - 1, start + self.block_size)) for start, end in spans]
        return [self.val.read(i * width, (i + 1) * width) for i in range(n) if (i + 1) * width <= self.val.n_tokens]


def _strided(n, k):
    """k indices spread evenly over range(n) (all of them when k is 0 or >= n)."""
    if not k or k >= n:
        return range(n)
    return [i * n // k for i in range(k)]


class DocOrder:
    """Position k of the training order -> a document index (see the module docstring)."""

    def __init__(self, n, rng):
        self.n = n
        if n <= SHUFFLE_MAX:
            self.perm = array("q", range(n))
            rng.shuffle(self.perm)  # the same draws as text.py's rng.shuffle(docs): the same order
        else:
            self.perm, self.key = None, rng.getrandbits(64)

    def __getitem__(self, k):
        if self.perm is not None:
            return self.perm[k % self.n]
        epoch, i = divmod(k, self.n)
        return feistel(i, self.n, self.key ^ _mix(epoch))


def _mix(x):
    """splitmix64's finaliser: 64 well-mixed bits from an integer."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def feistel(i, n, key):
    """A keyed permutation of range(n) at i, in constant memory: a 4-round Feistel network on the
    smallest even number of bits that holds n, walked again while the result falls outside n."""
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    while True:
        left, right = i >> half, i & mask
        for r in range(4):
            left, right = right, left ^ (_mix(right ^ key ^ (r << 60)) & mask)
        i = (left << half) | right
        if i < n:
            return i
