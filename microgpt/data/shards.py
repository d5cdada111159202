"""The on-disk format of a prepared corpus (`microgpt data prepare`): token shards and their manifest.

    DATA_DIR/manifest.json         what is here: tokenizer, sources, shards, split, command (written LAST:
                                   a folder without it is not a corpus, so a killed prepare is never read)
    DATA_DIR/train-00003-000.bin   token ids back to back, little-endian uint16 (uint32 past 65,536 ids);
                                   each document ends with the tokenizer's BOS (nanochat's convention)
    DATA_DIR/train-00003-000.idx   uint64: where each document ending in this shard ends (in tokens)
    DATA_DIR/train-00003-000.hash  uint64, sorted: a 64-bit hash of each document's text ("in train"?)

`00003` is the work item (a range of the sources), `000` the shard within it, so the files do not
depend on how many workers wrote them. nanoGPT's `train.bin` is one such `.bin`; Megatron's
`.bin`/`.idx` pairs are the same idea. A split's tokens are its shards concatenated in order: a
window may cross from one shard into the next.

Reading uses the standard library's `mmap` in every engine (the core installs nothing): the
kernel pages in the windows a step touches, so memory and start-up do not grow with the corpus.
Windows become Python lists at this edge, as every engine takes them. Pages a map has touched
stay in the process's RSS (file-backed: the kernel's cache, not the program's memory) until let
go, and random windows touch ~140 KB each (the kernel maps pages around a fault): so every
RELEASE_EVERY reads the token maps are told MADV_DONTNEED (nanoGPT re-creates its np.memmap each
batch for the same reason). Measured over 2,200 steps of 24 windows on a 2.2 GB split: RSS +1.9 GB
without it, flat with it.
"""

import bisect
import hashlib
import json
import mmap
import os
import sys
from array import array

from microgpt.errors import MicroGPTError
from microgpt.files import atomic_write_bytes, file_sha256

MANIFEST = "manifest.json"
FORMAT = "microgpt-token-shards"
VERSION = 1
TYPECODES = {"uint16": "H", "uint32": "I"}
INDEX_TYPE = "Q"  # uint64: document ends, and document hashes
RELEASE_EVERY = 256  # token reads between letting go of the pages they mapped


def token_dtype(vocab_size):
    return "uint16" if vocab_size <= 2 ** 16 else "uint32"


def doc_hash(text):
    """A document's 64-bit hash: its split (< val_frac of 2^64: validation) and its "seen" mark."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def to_le(arr):
    """The bytes of an array, little-endian whatever the machine."""
    if sys.byteorder != "little":
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def ids_bytes(ids, typecode):
    """The little-endian bytes of token ids held in an array("I"), as the shard's typecode. For "H"
    (uint16) each id's two low bytes: numpy's astype where numpy is installed (5x faster than the
    standard library's strided copy: 5% of a tiktoken prepare's time, bench/bench_prepare_costs.py).
    (ids < 2^16: the dtype is chosen by the vocabulary's size.)"""
    if typecode == "I":
        return to_le(ids)
    try:
        import numpy
    except ImportError:
        return memoryview(to_le(ids)).cast("H")[0::2].tobytes()  # (the 2 low bytes of each 4 little-endian)
    return numpy.frombuffer(ids, numpy.uint32).astype("<u2").tobytes()


class ShardWriter:
    """One shard file written as it grows (constant memory): a temp file, hashed as written, renamed
    into place when closed, so a shard on disk is always whole. `write` takes ids in an array("I")."""

    def __init__(self, path, typecode):
        self.path, self.typecode, self.tokens, self.sha = path, typecode, 0, hashlib.sha256()
        self.tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{os.urandom(4).hex()}-"
                                                       f"{os.path.basename(path)}")
        self.f = open(self.tmp, "wb")  # noqa: SIM115 (closed in close() / abort())

    def write(self, ids):
        raw = ids_bytes(ids, self.typecode)
        self.f.write(raw)
        self.sha.update(raw)
        self.tokens += len(ids)

    def close(self):
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)
        return self.sha.hexdigest()

    def abort(self):
        self.f.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def write_array(path, typecode, values):
    """A small array file (an index or hashes), written atomically; returns its SHA-256."""
    raw = to_le(array(typecode, values))
    atomic_write_bytes(path, raw)
    return hashlib.sha256(raw).hexdigest()


class ArrayFile:
    """A little-endian array file, memory-mapped: len(), [i], slices -> lists. Opened on first use."""

    def __init__(self, path, typecode, length):
        self.path, self.typecode, self.length = path, typecode, length
        self._view = self._mm = None

    def check_size(self, size=None):
        """A one-line error naming the file unless its size is the manifest's (a stat: cheap at any size)."""
        try:
            size = os.stat(self.path).st_size if size is None else size
        except OSError as e:
            raise MicroGPTError(f"cannot read {self.path} ({e.strerror}): the corpus is incomplete; prepare it "
                                f"again") from None
        want = self.length * array(self.typecode).itemsize
        if size != want:
            raise MicroGPTError(f"{self.path} has {size:,} bytes, the manifest says {want:,}: the shard was changed "
                                f"or truncated; prepare the corpus again (microgpt data check names each damaged file)")

    def _open(self):
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.check_size(size)
            if size == 0:
                self._view = array(self.typecode)
                return
            mm = self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if hasattr(mm, "madvise"):  # windows are drawn at random: no read-ahead around each one
            mm.madvise(mmap.MADV_RANDOM)
        view = memoryview(mm).cast(self.typecode)
        self._view = view if sys.byteorder == "little" else _Swapped(view)

    def release(self):
        """Let go of the pages read so far (they stay in the kernel's cache; a later read maps them again)."""
        if self._mm is not None and hasattr(self._mm, "madvise"):
            self._mm.madvise(mmap.MADV_DONTNEED)

    def __len__(self):
        return self.length

    def __getitem__(self, key):
        if self._view is None:
            self._open()
        got = self._view[key]
        return got.tolist() if isinstance(key, slice) else got


class _Swapped:
    """A big-endian machine reading the little-endian files: each slice byte-swapped."""

    def __init__(self, view):
        self.view = view

    def __getitem__(self, key):
        if not isinstance(key, slice):
            return self[key:key + 1 if key != -1 else None].tolist()[0]
        a = array(self.view.format, self.view[key].tobytes())
        a.byteswap()
        return memoryview(a)


class Split:
    """One split (train or val) of a corpus: its shards read as one sequence of tokens, and its
    documents (start, end) in that sequence."""

    def __init__(self, folder, shards, typecode):
        self.shards = shards
        self.tokens = [ArrayFile(os.path.join(folder, s["file"]), typecode, s["tokens"]) for s in shards]
        self.ends = [ArrayFile(os.path.join(folder, s["index"]), INDEX_TYPE, s["documents"]) for s in shards]
        self.hashes = [ArrayFile(os.path.join(folder, s["hashes"]), INDEX_TYPE, s["hashed"]) for s in shards]
        self.token_starts, self.doc_starts = [0], [0]  # cumulative, one entry per shard (+ the total)
        for s in shards:
            self.token_starts.append(self.token_starts[-1] + s["tokens"])
            self.doc_starts.append(self.doc_starts[-1] + s["documents"])
        self.n_tokens, self.n_docs = self.token_starts[-1], self.doc_starts[-1]
        self.touched, self.reads = set(), 0

    def __bool__(self):
        return self.n_tokens > 0

    def check_sizes(self):
        for files in (self.tokens, self.ends, self.hashes):
            for f in files:
                f.check_size()

    def read(self, start, stop):
        """Tokens [start, stop) of the split as a list (across shard boundaries where needed)."""
        out = []
        k = bisect.bisect_right(self.token_starts, start) - 1
        while start < stop:
            base = self.token_starts[k]
            end = min(stop, self.token_starts[k + 1])
            out += self.tokens[k][start - base:end - base]
            self.touched.add(k)
            start, k = end, k + 1
        self.reads += 1
        if self.reads % RELEASE_EVERY == 0:
            for k in self.touched:
                self.tokens[k].release()
            self.touched.clear()
        return out

    def doc_end(self, i):
        k = bisect.bisect_right(self.doc_starts, i) - 1
        return self.token_starts[k] + self.ends[k][i - self.doc_starts[k]]

    def doc_span(self, i):
        """(start, end) of document i's tokens, its closing BOS the last of them."""
        return (self.doc_end(i - 1) if i else 0), self.doc_end(i)

    def document(self, i):
        """Document i's tokens, its closing BOS included."""
        return self.read(*self.doc_span(i))

    def has_hash(self, h):
        for hashes in self.hashes:
            j = bisect.bisect_left(hashes, h)
            if j < len(hashes) and hashes[j] == h:
                return True
        return False


def read_manifest(folder):
    """The manifest of a prepared corpus, checked for the fields a run reads; (dict, its SHA-256)."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        m = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise MicroGPTError(f"{folder} holds no {MANIFEST}: it is not a prepared corpus (or its prepare did not "
                            f"finish: run microgpt data prepare ... --out {folder} --resume)") from None
    except OSError as e:
        raise MicroGPTError(f"cannot read {path} ({e.strerror}): check its permissions") from None
    except (UnicodeDecodeError, ValueError):
        raise MicroGPTError(f"{path} is not valid JSON: prepare the corpus again") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("version") != VERSION:
        raise MicroGPTError(f"{path} is not a microgpt corpus manifest (format {FORMAT} version {VERSION}): "
                            f"prepare the corpus again")
    try:
        for s in m["shards"]:
            for k in ("file", "index", "hashes"):
                _check_name(s[k])
            if s["split"] not in ("train", "val") or not isinstance(s["sha256"], str) or not all(
                    isinstance(s[k], int) and s[k] >= 0 for k in ("tokens", "documents", "hashed")):
                raise ValueError
        if m["dtype"] not in TYPECODES or not isinstance(m["docs"], bool) or not all(
                isinstance(m["totals"][split][k], int) for split in ("train", "val") for k in ("tokens", "documents")):
            raise ValueError
        if not 0 <= m["split"]["val_frac"] < 1:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise MicroGPTError(f"{path} is damaged (malformed fields): prepare the corpus again") from None
    return m, hashlib.sha256(raw).hexdigest()


def _check_name(name):
    if not isinstance(name, str) or os.path.basename(name) != name or name.startswith("."):
        raise ValueError(name)  # a manifest names files inside its own folder, nothing else


def write_manifest(folder, manifest):
    atomic_write_bytes(os.path.join(folder, MANIFEST), (json.dumps(manifest, indent=1) + "\n").encode())


def check_files(folder, manifest, progress=None):
    """Every shard file's SHA-256 against the manifest (microgpt data check): [(file, problem)]."""
    problems = []
    for s in manifest["shards"]:
        for key, digest in ((s["file"], s["sha256"]), (s["index"], s["index_sha256"]),
                            (s["hashes"], s["hashes_sha256"])):
            try:
                got, _ = file_sha256(os.path.join(folder, key), progress)
            except OSError as e:
                problems.append((key, f"cannot be read ({e.strerror})"))
                continue
            if got != digest:
                problems.append((key, "its SHA-256 differs from the manifest's (changed or damaged)"))
    return problems
