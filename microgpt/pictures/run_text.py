"""What the report says about a run in words: the command that trains it again, its tokenizer, its
files, and which validation figure is which. A report is a file to share: no path on it names
a folder of the machine it was made on (a path inside the current folder is shown relative to
it, any other by its name alone)."""

import os
import shlex

from microgpt.config import GPTConfig, TrainConfig
from microgpt.errors import MicroGPTError

FLAGS = {  # TrainConfig / GPTConfig field -> `microgpt train` option
    "steps": "--steps", "batch_size": "--batch-size", "lr": "--lr", "lr_schedule": "--lr-schedule",
    "warmup_steps": "--warmup-steps", "weight_decay": "--weight-decay", "dropout": "--dropout",
    "seed": "--seed", "val_frac": "--val-frac", "data_mode": "--data-mode",
    "n_layer": "--n-layer", "n_embd": "--n-embd", "n_head": "--n-head", "block_size": "--block-size",
}

UNITS = {"docs": "documents", "chat": "conversations", "stream": "windows"}  # what a split's sequences are


def _inside(full, base):
    return os.path.dirname(base) != base and os.path.commonpath([full, base]) == base  # (never "/" itself)


def shown_path(path, base=None):
    """`path` as a shared page shows it: relative to `base` (default: the current folder) when it
    is inside it, else its name alone. A relative path stays as it is."""
    path = os.fspath(path)
    if not os.path.isabs(path):
        return path
    full, base = os.path.normpath(path), os.path.abspath(base or os.getcwd())
    return os.path.relpath(full, base) if _inside(full, base) else os.path.basename(full.rstrip(os.sep)) or full


def shown_args(args):
    """A command's arguments with every absolute path (also in --flag=/path) shown by shown_path;
    -> (args, whether some path was cut to its name)."""
    out, cut = [], False
    for a in map(str, args):
        flag, eq, value = a.partition("=") if a.startswith("--") else ("", "", a)
        if os.path.isabs(value):
            cut = cut or not _inside(os.path.normpath(value), os.getcwd())
            a = flag + eq + shown_path(value)
        out.append(a)
    return out, cut


def shown_command(commands):
    """Commands (argument lists, or lines of shell text) as lines of text, their paths shown by
    shown_path -> (text, whether some path was cut to its name)."""
    lines, cut = [], False
    for c in commands:
        try:
            args, c_cut = shown_args(shlex.split(c) if isinstance(c, str) else c)
        except ValueError:  # not shell syntax (an unclosed quote): each word on its own
            args, c_cut = shown_args(c.split())
        lines.append(" ".join(shlex.quote(a) for a in args))
        cut = cut or c_cut
    return "\n".join(lines), cut


def reproduce_command(run_dir, ckpt):
    """The `microgpt train` command that trains this run again, from what the checkpoint saved
    (the run's own recorded command, where the training loop stored one), its paths shown as
    shown_path shows them -> (the command's lines, whether some path was cut to its name)."""
    saved = ckpt.raw_config.get("command")
    if saved:  # the command that started the run, then each that continued it
        return shown_command([saved] + list(ckpt.raw_config.get("resumed") or []))
    args = ["microgpt", "train", "--out", run_dir]
    data = (ckpt.raw_config.get("data") or {}).get("path")
    if data:
        args += ["--data", data]
    engine = ckpt.engine
    args += ["--engine", engine.name]
    if engine.dtype:
        args += ["--dtype", engine.dtype]
    for cfg, default in ((ckpt.config, GPTConfig()), (ckpt.train, TrainConfig())):
        for field, flag in FLAGS.items():
            if hasattr(cfg, field) and getattr(cfg, field) != getattr(default, field):
                args += [flag, str(getattr(cfg, field))]
    args, cut = shown_args(args)
    return " ".join(shlex.quote(a) for a in args), cut


def describe_tokenizer(tok):
    d = tok.to_dict()
    kind = d.get("type", type(tok).__name__)
    specials = ", ".join(tok.special_tokens)
    if kind == "char":
        return f"char: {len(d.get('chars', ''))} characters + {len(tok.special_tokens)} special ({specials})"
    if kind == "bpe":
        return f"bpe: 256 bytes + {len(d.get('merges', []))} merges + {len(tok.special_tokens)} special"
    return f"{kind}: {tok.vocab_size} tokens"


def sequences(n, mode, block_size):
    """'30 documents', '100 windows of 64 tokens', '1 conversation', 'up to 100 documents'...
    (n: a count, or words)."""
    unit = UNITS.get(mode, "sequences")
    unit = unit[:-1] if n == 1 else unit
    count = f"{n:,}" if isinstance(n, int) else n
    return f"{count} {unit}" + (f" of {block_size} tokens" if mode == "stream" else "")


def estimate_size(run):
    """How many validation sequences the training loop's estimate covered (--eval-docs; None when
    the data cannot be read): the first eval_docs of the split, or all of them."""
    try:
        return len(run.ds.eval_pairs("val", run.cfg.eval_docs))
    except (MicroGPTError, OSError):  # the data is gone or changed: the page says "up to"
        return None
