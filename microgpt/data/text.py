"""Data: find and read a text file, split it, and hand out the token sequences of each step.

Two modes. `docs`: one document per line (names); step s trains on documents
s*B .. s*B+B-1 of the shuffled training list, each as [BOS] + doc + [BOS] (the seed).
`stream`: one continuous text; each step draws B random windows of block_size + 1 tokens.
Validation data always comes from the END (of the shuffled list / of the text), so the
training order, and with it the seed's reference run, does not change.
"""

import hashlib
import os
import random
import urllib.request

from microgpt.errors import MicroGPTError
from microgpt.files import atomic_write_bytes, decode_text, read_bytes
from microgpt.tokenizers import CharTokenizer
from microgpt.tokenizers.bpe import BPETokenizer

NAMES_URL = ("https://raw.githubusercontent.com/karpathy/makemore/"
             "988aa59e4d8fefa526d06f3b453ad116258398d4/names.txt")
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
START_DIR = os.getcwd()  # a relative $MICROGPT_DATA_DIR means relative to where the program started


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "microgpt")


def default_names_path():
    """$MICROGPT_DATA_DIR/names.txt, else the user cache, else a verified download into the cache."""
    data_dir = os.environ.get("MICROGPT_DATA_DIR")
    if data_dir:
        data_dir = os.path.join(START_DIR, data_dir)  # (an absolute one stays as it is)
    if data_dir and os.path.isfile(os.path.join(data_dir, "names.txt")):
        return os.path.join(data_dir, "names.txt")
    cached = os.path.join(cache_dir(), "names.txt")
    if os.path.isfile(cached):
        return cached
    return download_names(cached)


def download_names(dest):
    try:
        with urllib.request.urlopen(NAMES_URL, timeout=30) as r:
            raw = r.read()
    except OSError as e:
        raise MicroGPTError(
            f"names.txt not found locally and the download failed ({e}): pass --data FILE, "
            f"set MICROGPT_DATA_DIR to a folder holding names.txt, or copy it to {dest}") from None
    got = hashlib.sha256(raw).hexdigest()
    if got != NAMES_SHA256:
        raise MicroGPTError(f"downloaded names.txt has SHA-256 {got}, expected {NAMES_SHA256}: "
                            f"pass --data FILE with a good copy")
    atomic_write_bytes(dest, raw)
    return dest


class DataFile:
    """A file as read, once: its path, its bytes, their SHA-256 (a run records it, so resuming on
    data that changed underneath is noticed) and its text (decoded when first asked for)."""

    def __init__(self, path, raw):
        self.path, self.raw, self.sha256 = path, raw, hashlib.sha256(raw).hexdigest()
        self._text = None

    @property
    def text(self):
        if self._text is None:
            self._text = decode_text(self.raw, self.path)
        return self._text


def read_data(path=None, what="data file"):
    """The --data file, or the names data set when path is None."""
    path = path or default_names_path()
    return DataFile(path, read_bytes(path, what))


def split_docs(text):
    """One document per non-empty line, stripped (the seed's reading)."""
    return [line.strip() for line in text.strip().split("\n") if line.strip()]


class Dataset:
    """The documents (or text) of a run, its tokenizer and the token sequences of each step."""

    def __init__(self, text, mode, block_size, val_frac, rng, tokenizer=None, bpe_vocab_size=None):
        """tokenizer: the run's own (resuming, or a tokenizer file); else a BPE tokenizer of
        bpe_vocab_size tokens trained on the training split, or the seed's characters."""
        if mode not in ("docs", "stream"):
            raise MicroGPTError(f"unknown data mode {mode!r}: use docs or stream")
        self.mode, self.block_size = mode, block_size
        if mode == "docs":
            docs = split_docs(text)
            rng.shuffle(docs)  # the first draw of the run's random stream, as in the seed
            n_val = int(len(docs) * val_frac)
            if len(docs) - n_val < 1:
                raise MicroGPTError(f"only {len(docs)} documents: too few to hold out a validation split; "
                                    f"pass --val-frac 0 or more data")
            train_docs, val_docs = docs[:len(docs) - n_val], docs[len(docs) - n_val:]
            self.tokenizer = tokenizer or _new_tokenizer(bpe_vocab_size, "\n".join(train_docs), "".join(docs))
            self.train = [self.tokenizer.encode(d) for d in train_docs]
            self.val = [self.tokenizer.encode(d) for d in val_docs]
            self.train_text, self.val_text = set(train_docs), set(val_docs)
            self.n_truncated = sum(len(d) >= block_size for d in self.train + self.val)
            total = sum(len(d) for d in self.train + self.val)  # (and how much of the text the cuts lose)
            self.cut_fraction = sum(max(0, len(d) - block_size) for d in self.train + self.val) / max(1, total)
        else:
            # split the TEXT (not the tokens), so every tokenizer is validated on the same characters
            cut = len(text) - int(len(text) * val_frac)
            self.tokenizer = tokenizer or _new_tokenizer(bpe_vocab_size, text[:cut], text)
            self.train, self.val = self.tokenizer.encode(text[:cut]), self.tokenizer.encode(text[cut:])
            if len(self.train) < block_size + 1:
                raise MicroGPTError(f"the text has {len(self.train)} training tokens, fewer than block_size + 1 "
                                    f"= {block_size + 1}: use more text or a smaller --block-size")
            self.train_text = self.val_text = set()
            self.n_truncated, self.cut_fraction = 0, 0.0

    def describe(self):
        unit = "documents" if self.mode == "docs" else "tokens"
        return (f"{len(self.train)} train / {len(self.val)} val {unit}, "
                f"vocab size {self.tokenizer.vocab_size}")

    def _doc_tokens(self, doc):
        # [BOS] + doc + [BOS], cut to block_size + 1 tokens: n = min(block_size, len(tokens) - 1)
        BOS = self.tokenizer.BOS
        return ([BOS] + doc + [BOS])[:self.block_size + 1]

    def _window(self, ids, start):
        return ids[start:start + self.block_size + 1]

    def train_batch(self, step, batch_size, seed):
        """The token sequences of training step `step` (0-based).

        Deterministic in (seed, step): resuming at step s gives exactly the batches of an unbroken run.
        """
        if self.mode == "docs":
            start = step * batch_size
            idx = [(start + b) % len(self.train) for b in range(batch_size)]
            seqs = [self._doc_tokens(self.train[i]) for i in idx]
        else:
            rng = random.Random(seed * 1_000_003 + step)
            hi = len(self.train) - self.block_size - 1
            seqs = [self._window(self.train, rng.randint(0, hi)) for _ in range(batch_size)]
        return seqs

    def eval_pairs(self, split, max_seqs=0):
        """(tokens, None): every target of every sequence counts (conversations have masks)."""
        return [(s, None) for s in self.eval_sequences(split, max_seqs)]

    def eval_sequences(self, split, max_seqs=0):
        """All (or the first max_seqs) sequences of a split, in a fixed order. A stream is cut into
        consecutive windows (the last one shorter), so every token after the first is a target."""
        data = self.train if split == "train" else self.val
        if self.mode == "docs":
            docs = data if not max_seqs else data[:max_seqs]
            return [self._doc_tokens(d) for d in docs]
        starts = list(range(0, len(data) - 1, self.block_size))
        if max_seqs:
            starts = starts[:max_seqs]
        return [self._window(data, s) for s in starts]


    def val_examples(self, n, width):
        """A few validation sequences to draw: the first n documents, or n windows of `width` tokens."""
        if self.mode == "docs":
            return self.val[:n]
        return [self.val[i * width:(i + 1) * width] for i in range(n) if len(self.val) >= (i + 1) * width]


def _new_tokenizer(bpe_vocab_size, train_text, all_text):
    """BPE learnt from the training text only (never the validation text), or the seed's
    characters (all of them: the vocabulary is just the alphabet)."""
    if bpe_vocab_size is None:
        return CharTokenizer.from_text(all_text)
    return learn_bpe(train_text, bpe_vocab_size)


def learn_bpe(train_text, vocab_size):
    """A BPE tokenizer learnt on train_text (`microgpt data prepare` learns its own with this too)."""
    try:
        return BPETokenizer.train(train_text, vocab_size)
    except ValueError as e:
        raise MicroGPTError(f"{e}: pass a larger --vocab-size") from None


def target_bytes(tokenizer, token_id):
    """How many UTF-8 bytes of text a target token stands for: its bytes, and a BOS target the
    one newline that ends its document (other special tokens: none). Loss summed / ln 2 / bytes
    = bits per byte, the figure that compares models with different tokenizers on one text."""
    return 1 if token_id == tokenizer.BOS else len(tokenizer.token_bytes(token_id))
