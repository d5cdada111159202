"""Stage 0, data (`microgpt data prepare`): corpora of any size, tokenized once into shards.

    microgpt data prepare books/ web/*.jsonl.zst fineweb/*.parquet --out data/mix --tokenizer bpe --vocab-size 4096
    microgpt train --data data/mix --data-mode stream ...       # memory-mapped: the same memory at any size

The steps, each resumable (`--resume` after Ctrl-C, SIGTERM or a full disk keeps every finished item):
1. plan: the sources (files, folders, globs) cut into work items of about 32 MB (byte ranges at line
   starts, Parquet row groups, a compressed file whole), written to DATA_DIR/.prepare/plan.json;
2. split: each document goes to validation when a 64-bit hash of its text is below val_frac of 2^64:
   the same documents whatever their order or the number of workers, and a repeated document never
   sits on both sides;
3. tokenizer: a file given, or the characters of every document (a pass in the workers), or BPE learnt
   on the first --tokenizer-sample-bytes of the TRAINING documents in source order (never validation);
4. encode: the items in worker processes, each writing its own shards (shards.py) and then its record;
5. manifest.json, written last: the tokenizer, every source (path, size, SHA-256), every shard
   (tokens, documents, SHA-256), the split, the sample the tokenizer learnt from, the command.
What it omits: deduplication, filtering and shuffling across documents (a run draws its own order).
"""

import glob
import json
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

from microgpt import __version__, tokenizers
from microgpt.data import encode, shards, sources
from microgpt.data.pool import run_tasks
from microgpt.data.text import learn_bpe
from microgpt.errors import MicroGPTError
from microgpt.files import atomic_write_bytes
from microgpt.lock import RunLock

ITEM_BYTES = (256 * 2 ** 10, 32 * 2 ** 20)  # work items: 1/64 of the sources, within these bounds


@dataclass(frozen=True)
class PrepareOptions:
    sources: Tuple[str, ...]
    out: str
    tokenizer: str = "char"                   # char | bpe | a tokenizer file
    vocab_size: Optional[int] = None          # bpe: tokens in all
    text_mode: str = "lines"                  # plain text: lines | file | stream
    text_field: str = "text"                  # the JSONL field / Parquet column
    val_frac: float = 0.1
    shard_tokens: int = 2 ** 27               # at most this many tokens a shard (256 MB of uint16)
    tokenizer_sample_bytes: int = 20_000_000  # bpe: learnt from this much training text
    encoder: str = "auto"                     # auto (tiktoken if installed) | python | tiktoken
    item_bytes: Optional[int] = None          # None: 1/64 of the sources' size, within ITEM_BYTES

    def validate(self):
        if self.text_mode not in sources.TEXT_MODES:
            raise MicroGPTError(f"unknown --text-mode {self.text_mode!r}: use {', '.join(sources.TEXT_MODES)}")
        if not 0 <= self.val_frac < 1:
            raise MicroGPTError(f"--val-frac must be in [0, 1), got {self.val_frac}")
        if self.encoder not in encode.ENCODERS:
            raise MicroGPTError(f"unknown --encoder {self.encoder!r}: use {', '.join(encode.ENCODERS)}")
        for name in ("shard_tokens", "tokenizer_sample_bytes", "item_bytes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise MicroGPTError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.tokenizer == "bpe" and not self.vocab_size:
            raise MicroGPTError("--tokenizer bpe needs --vocab-size N (e.g. 4096)")
        return self

    def kept(self):
        """What decides the shards (a --resume must give the same)."""
        return {k: v for k, v in asdict(self).items() if k not in ("out",)}


def prepare(opts, workers=1, resume=False, command=None, log=print):
    """Prepare opts.sources into opts.out; returns the manifest. See the module docstring."""
    opts.validate()
    out, state = opts.out, os.path.join(opts.out, ".prepare")
    if os.path.exists(out) and not os.path.isdir(out):
        raise MicroGPTError(f"--out {out} is a file: give a folder for the corpus")
    os.makedirs(out, exist_ok=True)
    lock = RunLock(out)
    lock.acquire()  # (a second prepare into the same folder is refused, naming the first)
    try:
        if os.path.exists(os.path.join(out, shards.MANIFEST)):
            raise MicroGPTError(f"{out} already holds a prepared corpus: give another --out, or delete it first")
        plan_path = os.path.join(state, "plan.json")
        if resume:
            plan = _resumed_plan(plan_path, opts)
        else:
            if os.path.exists(plan_path) or [f for f in os.listdir(out) if f != ".lock"]:
                raise MicroGPTError(f"{out} is not empty" + (" (an unfinished prepare is there: pass --resume to "
                                                            "continue it)" if os.path.exists(plan_path) else "")
                                    + ": give a new folder as --out")
            plan = make_plan(opts, workers, log)
            atomic_write_bytes(plan_path, json.dumps(plan).encode())
        for tmp in glob.glob(os.path.join(out, ".tmp-*")):  # (a shard cut short by a stop)
            os.unlink(tmp)
        records = _encode_all(plan, workers, log)
        manifest = build_manifest(plan, records, command)
        shards.write_manifest(out, manifest)
        shutil.rmtree(state, ignore_errors=True)
        return manifest
    except OSError as e:
        raise MicroGPTError(f"cannot write the corpus in {out} ({e.strerror or e}): free some space or fix the "
                            f"permissions, then continue with the same command and --resume") from None
    finally:
        lock.release()


def make_plan(opts, workers, log):
    paths = sources.expand_sources(opts.sources)
    srcs, kinds = [], [sources.source_format(path)[0] for path in paths]
    for path in paths:
        st = os.stat(path)
        if st.st_size == 0:  # (at once: a source with nothing but blank lines is found after encoding)
            raise MicroGPTError(f"{path} is empty: remove it from the sources")
        srcs.append({"path": os.path.abspath(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
    # items of a size set by the sources alone (never by the workers: the shards must not depend on them),
    # small enough that a small corpus still keeps every worker busy
    item_bytes = opts.item_bytes or min(max(_total({"sources": srcs}) // 64, ITEM_BYTES[0]), ITEM_BYTES[1])
    items, current, size = [], [], 0
    for i, path in enumerate(paths):
        kind, st_size = kinds[i], srcs[i]["bytes"]
        parts = sources.plan_parts(path, opts.text_mode, item_bytes)
        for p in parts:
            current.append([i, *p[1:]])
            size += (p.end - p.start) if (kind != "parquet" and p.end is not None) else st_size / len(parts)
            if size >= item_bytes:
                items.append(current)
                current, size = [], 0
    if current:
        items.append(current)
    docs = opts.text_mode != "stream" or "text" not in kinds
    plan = {"options": opts.kept(), "out": os.path.abspath(opts.out), "sources": srcs, "items": items,
            "text_mode": opts.text_mode, "text_field": opts.text_field, "val_frac": opts.val_frac,
            "shard_tokens": opts.shard_tokens, "encoder": opts.encoder, "docs": docs, "sample": None}
    log(f"prepare: {len(srcs)} source(s), {sum(s['bytes'] for s in srcs) / 1e6:,.1f} MB, {len(items)} work item(s), "
        f"{workers} worker(s)")
    tok = learn_tokenizer(opts, plan, workers, log)
    if opts.encoder == "tiktoken":  # (refused here, before any work: not in every worker)
        encode.make_encoder(tok, opts.encoder)
    plan.update(tokenizer=tok.to_dict(), dtype=shards.token_dtype(tok.vocab_size))
    return plan


def learn_tokenizer(opts, plan, workers, log):
    if opts.tokenizer not in ("char", "bpe"):
        return tokenizers.load_file(opts.tokenizer)
    if opts.tokenizer == "char":  # every document's characters (train and val: the vocabulary is the alphabet)
        results = run_tasks(plan, [("alphabet", k) for k in range(len(plan["items"]))], workers, "characters",
                            _total(plan))
        _check_documents(plan, [r[1] for r in results])
        return tokenizers.CharTokenizer.from_text("".join(r[0] for r in results))
    texts, n, threshold = [], 0, int(opts.val_frac * 2 ** 64)
    for piece in encode.pieces(plan, [p for item in plan["items"] for p in item]):  # training text, in order
        if shards.doc_hash(piece.text) >= threshold:
            texts.append(piece.text)
            n += len(piece.text.encode("utf-8", "surrogatepass"))
            if n >= opts.tokenizer_sample_bytes:
                break
    sep = "" if not plan["docs"] else "\n"  # as `train --data FILE` learns: a continuous text, or lines
    tok = learn_bpe(sep.join(texts), opts.vocab_size)
    plan["sample"] = {"bytes": n, "pieces": len(texts),
                      "which": "the first training documents in source order, up to --tokenizer-sample-bytes"}
    log(f"prepare: BPE learnt on {n / 1e6:,.1f} MB of training text: {tok.vocab_size:,} tokens")
    return tok


def _total(plan):
    return sum(s["bytes"] for s in plan["sources"])


def _encode_all(plan, workers, log):
    done = {}
    for k in range(len(plan["items"])):
        path = encode.item_record(plan["out"], k)
        if os.path.exists(path):
            with open(path) as f:
                done[k] = json.load(f)
    jobs = [("hash", i) for i in range(len(plan["sources"]))
            if not os.path.exists(encode.item_record(plan["out"], i, "source"))]
    jobs += [("encode", k) for k in range(len(plan["items"])) if k not in done]
    if done:
        log(f"prepare: resuming, {len(done)} of {len(plan['items'])} work items already done")
    for (task, k), r in zip(jobs, run_tasks(plan, jobs, workers, "encoding", _total(plan))):
        if task == "encode":
            done[k] = r
    return [done[k] for k in range(len(plan["items"]))]


def _check_documents(plan, per_item):
    counts = {}
    for d in per_item:
        for i, n in d.items():
            counts[int(i)] = counts.get(int(i), 0) + n
    for i, s in enumerate(plan["sources"]):
        if not counts.get(i):
            raise MicroGPTError(f"{s['path']} holds no documents (only blank lines or empty texts): remove it from "
                                f"the sources")
    return counts


def build_manifest(plan, records, command):
    counts = _check_documents(plan, [r["documents"] for r in records])
    srcs = []
    for i in range(len(plan["sources"])):
        with open(encode.item_record(plan["out"], i, "source")) as f:
            info = json.load(f)
        srcs.append({**info, "documents": counts[i]})
    all_shards = [s for r in records for s in r["shards"]]
    totals = {split: {"tokens": sum(s["tokens"] for s in all_shards if s["split"] == split),
                      "documents": sum(s["documents"] for s in all_shards if s["split"] == split)}
              for split in ("train", "val")}
    if not totals["train"]["tokens"]:
        raise MicroGPTError("every document went to validation: lower --val-frac")
    return {"format": shards.FORMAT, "version": shards.VERSION, "microgpt": __version__,
            "tokenizer": plan["tokenizer"], "dtype": plan["dtype"], "docs": plan["docs"],
            "text_mode": plan["text_mode"], "text_field": plan["text_field"],
            "split": {"val_frac": plan["val_frac"], "by": "blake2b-64 of each document's UTF-8 text < val_frac * 2^64"},
            "tokenizer_sample": plan["sample"], "totals": totals, "sources": srcs, "shards": all_shards,
            "command": command}


def _resumed_plan(plan_path, opts):
    try:
        with open(plan_path) as f:
            plan = json.load(f)
    except FileNotFoundError:
        raise MicroGPTError(f"nothing to resume in {opts.out}: drop --resume to start a new prepare") from None
    except (OSError, ValueError):
        raise MicroGPTError(f"{plan_path} is damaged: delete {opts.out} and prepare again") from None
    for k, v in opts.kept().items():
        if json.loads(json.dumps(v)) != plan["options"].get(k):
            raise MicroGPTError(f"--{k.replace('_', '-')} differs from the prepare being resumed "
                                f"({plan['options'].get(k)!r}): resume with the same options")
    for s in plan["sources"]:
        try:
            st = os.stat(s["path"])
        except OSError:
            raise MicroGPTError(f"source {s['path']} is gone since the prepare began: restore it, or start "
                                f"again in a new folder") from None
        if (st.st_size, st.st_mtime_ns) != (s["bytes"], s["mtime_ns"]):
            raise MicroGPTError(f"source {s['path']} changed since the prepare began: restore it, or start "
                                f"again in a new folder")
    return plan
