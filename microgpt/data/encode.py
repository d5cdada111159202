"""What one worker process of `microgpt data prepare` does with one work item (a range of the
sources): read its documents, send each to train or validation by a hash of its text, encode it,
and append it (with its closing BOS) to that split's shard, written as it grows.

The encoder is tiktoken built from our merges when it is installed and can say the same thing
(every token's bytes distinct), else our pure-Python BPE: the ids, and so the shards, are the
same either way (a test). Either way a document's ids come as an array("I"): tiktoken's
encode_to_numpy hands over its buffer of ids, never a list of Python ints (a little faster than
encode_ordinary itself, and no list to convert: bench/bench_prepare_costs.py). One call per document:
measured here on 3 KB documents, as fast per byte as one call on all of them joined
(encode_ordinary_batch's threads only add work when the workers already keep every core busy).
"""

import json
import os
from array import array

from microgpt import tokenizers
from microgpt.data.shards import INDEX_TYPE, TYPECODES, ShardWriter, doc_hash, write_array
from microgpt.data.sources import Part, read_part, source_info
from microgpt.errors import MicroGPTError
from microgpt.files import atomic_write_bytes
from microgpt.tokenizers.bpe import BPETokenizer

ENCODERS = ("auto", "python", "tiktoken")
FLUSH_TOKENS = 1 << 20  # tokens held in memory before they go to the shard file


def tiktoken_encoding(tok):
    """A tiktoken Encoding with our merges, split pattern and special tokens (rank = our id), or None
    when tiktoken is missing or two of our tokens have the same bytes (tiktoken could not tell them
    apart). (With no special token at all, tiktoken's encode_to_numpy searches an empty pattern at
    every character: 2x slower. Ours always has BOS.)"""
    try:
        import tiktoken
    except ImportError:
        return None
    ranks = {tok.vocab[i]: i for i in range(256 + len(tok.merges))}
    if len(ranks) != 256 + len(tok.merges):
        return None
    return tiktoken.Encoding(name="microgpt", pat_str=tok.pattern, mergeable_ranks=ranks,
                             special_tokens=dict(tok.special_tokens))


def make_encoder(tok, which="auto"):
    """text -> its ids in an array("I"), as encode_ordinary gives them: tiktoken where it can, else ours."""
    if which != "python":
        enc = tiktoken_encoding(tok) if isinstance(tok, BPETokenizer) else None
        if enc is not None:
            return _tiktoken_encoder(enc)
        if which == "tiktoken":
            raise MicroGPTError("--encoder tiktoken: tiktoken is not installed (pip install '.[data]') or cannot "
                                "represent this tokenizer; leave --encoder at auto")
    return lambda text: array("I", tok.encode_ordinary(text))


def _tiktoken_encoder(enc):
    try:
        import numpy  # noqa: F401 (encode_to_numpy's array)
        to_numpy = enc.encode_to_numpy  # (tiktoken >= 0.9)
    except (ImportError, AttributeError):
        return lambda text: array("I", enc.encode_ordinary(text))

    def encode(text):
        ids = array("I")  # (disallowed_special=(): a special token's text is text, as in encode_ordinary)
        ids.frombytes(memoryview(to_numpy(text, disallowed_special=())).cast("B"))  # (frombytes takes bytes)
        return ids
    return encode


class SplitWriter:
    """The shards of one split of one work item: <split>-<item>-<n>.bin/.idx/.hash, each at most
    shard_tokens tokens (a longer document continues in the next shard)."""

    def __init__(self, folder, split, item, typecode, shard_tokens, docs):
        self.folder, self.split, self.item, self.typecode = folder, split, item, typecode
        self.shard_tokens, self.docs = shard_tokens, docs
        self.shards, self.writer, self.buf = [], None, array("I")  # (ShardWriter narrows it to typecode)
        self.ends, self.hashes = [], []

    def add(self, ids, h, ends_doc):
        """A piece's ids (an array("I")), its document's hash, and whether its document ends here."""
        if not ids:
            return
        while True:
            if self.writer is None:
                name = f"{self.split}-{self.item:05d}-{len(self.shards):03d}"
                self.writer = ShardWriter(os.path.join(self.folder, name + ".bin"), self.typecode)
            room = self.shard_tokens - self.writer.tokens - len(self.buf)
            if len(ids) <= room:
                self.buf.extend(ids)
                break
            self.buf.extend(ids[:room])
            ids = ids[room:]
            self._close_shard()  # full: the document goes on in the next shard
        if len(self.buf) >= FLUSH_TOKENS:
            self.writer.write(self.buf)
            self.buf = array("I")
        if ends_doc:
            self.ends.append(self.writer.tokens + len(self.buf))
            if self.docs:
                self.hashes.append(h)
        if self.writer.tokens + len(self.buf) >= self.shard_tokens:
            self._close_shard()

    def _close_shard(self):
        self.writer.write(self.buf)
        self.buf = array("I")
        base = self.writer.path[:-len(".bin")]
        name, hashes = os.path.basename(base), sorted(self.hashes)
        self.shards.append({
            "file": name + ".bin", "split": self.split, "tokens": self.writer.tokens, "sha256": self.writer.close(),
            "documents": len(self.ends), "hashed": len(hashes),
            "index": name + ".idx", "index_sha256": write_array(base + ".idx", INDEX_TYPE, self.ends),
            "hashes": name + ".hash", "hashes_sha256": write_array(base + ".hash", INDEX_TYPE, hashes)})
        self.writer, self.ends, self.hashes = None, [], []

    def finish(self):
        if self.writer is not None:
            self._close_shard()
        return self.shards

    def abort(self):
        if self.writer is not None:
            self.writer.abort()


_cache = {}  # per worker process: the tokenizer and encoder, built once for its plan


def _encoder(plan):
    if _cache.get("plan") is not plan:  # (held here, so a new plan is never mistaken for it)
        tok = tokenizers.from_dict(plan["tokenizer"])
        _cache.update(plan=plan, encoder=(tok, make_encoder(tok, plan["encoder"])))
    return _cache["encoder"]


def encode_item(plan, k, progress=None):
    """Work item k of the plan: its shards written into plan["out"], and a record of them in
    .prepare/item-<k>.json (written last: an item with a record is done, for --resume)."""
    tok, encode = _encoder(plan)
    bos, threshold = tok.BOS, int(plan["val_frac"] * 2 ** 64)
    typecode = TYPECODES[plan["dtype"]]
    out = plan["out"]
    writers = {s: SplitWriter(out, s, k, typecode, plan["shard_tokens"], plan["docs"]) for s in ("train", "val")}
    per_source = {}
    try:
        for part in plan["items"][k]:
            src = part[0]
            per_source.setdefault(src, 0)
            for piece in pieces(plan, [part]):
                h = doc_hash(piece.text)
                ids = encode(piece.text)
                if piece.ends_doc:
                    ids.append(bos)
                writers["val" if h < threshold else "train"].add(ids, h, piece.ends_doc)
                per_source[src] += piece.ends_doc
                if progress is not None:
                    progress(len(piece.text), len(ids))
        shards = writers["train"].finish() + writers["val"].finish()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    record = {"item": k, "shards": shards, "documents": per_source}
    atomic_write_bytes(item_record(out, k), json.dumps(record).encode())
    return record


def item_record(out, k, kind="item"):
    return os.path.join(out, ".prepare", f"{kind}-{k:05d}.json")


def hash_source(plan, i, progress=None):
    """Source i's size and SHA-256 (the manifest records them), kept in .prepare/source-<i>.json."""
    info = source_info(plan["sources"][i]["path"])
    atomic_write_bytes(item_record(plan["out"], i, "source"), json.dumps(info).encode())
    return info


def pieces(plan, parts):
    """The pieces (documents, or segments of a continuous text) of some of the plan's parts, in order;
    a part is [source index, kind, compression, start, end] in the plan's JSON."""
    for p in parts:
        yield from read_part(Part(plan["sources"][p[0]]["path"], *p[1:]), plan["text_mode"], plan["text_field"])


def item_alphabet(plan, k, progress=None):
    """The characters of work item k's documents (the char tokenizer's pass), and documents per source."""
    chars, per_source = set(), {}
    for part in plan["items"][k]:
        per_source.setdefault(part[0], 0)
        for piece in pieces(plan, [part]):
            chars.update(piece.text)
            per_source[part[0]] += piece.ends_doc
            if progress is not None:
                progress(len(piece.text))
    return "".join(sorted(chars)), per_source
