"""Data: find and read a text file, split it, and hand out the token sequences of each step.

Two modes. `docs`: one document per line (names); step s trains on documents
s*B .. s*B+B-1 of the shuffled training list, each as [BOS] + doc + [BOS] (the seed).
`stream`: one continuous text; each step draws B random windows of block_size + 1 tokens.
Validation data always comes from the END (of the shuffled list / of the text), so the
training order, and with it the seed's reference run, does not change.
"""

import contextlib
import hashlib
import os
import random
import urllib.request

from microgpt import MicroGPTError
from microgpt.tokenizers import CharTokenizer
from microgpt.tokenizers.bpe import BPETokenizer

NAMES_URL = ("https://raw.githubusercontent.com/karpathy/makemore/"
             "988aa59e4d8fefa526d06f3b453ad116258398d4/names.txt")
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "microgpt")


def default_names_path():
    """$MICROGPT_DATA_DIR/names.txt, else the user cache, else a verified download into the cache."""
    data_dir = os.environ.get("MICROGPT_DATA_DIR")
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


def atomic_write_bytes(path, raw):
    """Write to a temp file in the same folder, then rename: readers never see half a file. The
    file is made as any new file of the user is (0666 less the umask), not private as mkstemp's."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class DataFile:
    """A text file as read: its path, its text and the SHA-256 of its bytes (a run records it,
    so resuming on data that changed underneath is noticed)."""

    def __init__(self, path, text, sha256):
        self.path, self.text, self.sha256 = path, text, sha256


def read_data(path=None):
    """The --data file, or the names data set when path is None."""
    path = path or default_names_path()
    raw = read_bytes(path)
    return DataFile(path, decode_text(raw, path), hashlib.sha256(raw).hexdigest())


def read_bytes(path, what="data file", flag="--data"):
    """A file's bytes, or a one-line error for a missing file, a folder, an unreadable file."""
    if not os.path.exists(path):
        raise MicroGPTError(f"{what} {path} does not exist: check the path given to {flag}")
    if os.path.isdir(path):
        raise MicroGPTError(f"{what} {path} is a folder: pass a file to {flag}")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise MicroGPTError(f"cannot read {what} {path} ({e.strerror}): check its permissions") from None


def read_text(path):
    """The file's text, or a one-line error for a missing, empty, binary or non-UTF-8 file."""
    return decode_text(read_bytes(path), path)


def decode_text(raw, path):
    if b"\x00" in raw:
        raise MicroGPTError(f"data file {path} looks binary (it holds NUL bytes): pass a UTF-8 text file")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not a character of the text
    except UnicodeDecodeError as e:
        raise MicroGPTError(f"data file {path} is not UTF-8 text (bad byte at offset {e.start}): "
                            f"convert it to UTF-8") from None
    if not text.strip():
        raise MicroGPTError(f"data file {path} is empty: give a file with at least one line of text")
    return text


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
        else:
            # split the TEXT (not the tokens), so every tokenizer is validated on the same characters
            cut = len(text) - int(len(text) * val_frac)
            self.tokenizer = tokenizer or _new_tokenizer(bpe_vocab_size, text[:cut], text)
            self.train, self.val = self.tokenizer.encode(text[:cut]), self.tokenizer.encode(text[cut:])
            if len(self.train) < block_size + 1:
                raise MicroGPTError(f"the text has {len(self.train)} training tokens, fewer than block_size + 1 "
                                    f"= {block_size + 1}: use more text or a smaller --block-size")
            self.train_text = self.val_text = set()
            self.n_truncated = 0

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


def _new_tokenizer(bpe_vocab_size, train_text, all_text):
    """BPE learnt from the training text only (never the validation text), or the seed's
    characters (all of them: the vocabulary is just the alphabet)."""
    if bpe_vocab_size is None:
        return CharTokenizer.from_text(all_text)
    try:
        return BPETokenizer.train(train_text, bpe_vocab_size)
    except ValueError as e:
        raise MicroGPTError(f"{e}: pass a larger --vocab-size") from None


def target_bytes(tokenizer, token_id):
    """How many UTF-8 bytes of text a target token stands for: its bytes, and a BOS target the
    one newline that ends its document (other special tokens: none). Loss summed / ln 2 / bytes
    = bits per byte, the figure that compares models with different tokenizers on one text."""
    return 1 if token_id == tokenizer.BOS else len(tokenizer.token_bytes(token_id))
