"""What every file of a checkpoint must hold: config.json's sections (types and values), the
tokenizer fitting the model, state.json's step and random stream, the weight files' sizes and
every tensor's shape and values. Each check raises one MicroGPTError naming the file."""

import math
import random
from dataclasses import replace

from microgpt import jsonfile, tokenizers
from microgpt.checkpoint.layout import (
    BPE_BYTES_PER_FILE_BYTE,
    FIX,
    FORMAT,
    MAX_MAGNITUDE,
    MAX_SIZE,
    corrupt,
    header_allowance,
)
from microgpt.config import STAGES, EngineConfig, GPTConfig, RunConfig, TrainConfig
from microgpt.engines import normalized
from microgpt.errors import MicroGPTError
from microgpt.params import num_params, param_shapes


def check_config(cfg, path, size, run_dir):
    """(RunConfig, tokenizer) from config.json, every section checked: its types
    (JSONConfig.from_dict), its values (each config's validate()), the engine's names (as
    microgpt.engines names them), the stage, and that the tokenizer fits the model."""
    def bad(why):
        return corrupt(path, why)
    if not isinstance(cfg, dict):
        raise bad("not a JSON object")
    if cfg.get("format") != FORMAT:
        raise bad(f"its format is {jsonfile.short(cfg.get('format'))}, not {FORMAT!r}: not a microgpt "
                  f"checkpoint, or one from a newer version")
    config = _section(GPTConfig, cfg.get("model"), "model", bad, required=True)
    for k, v in config.to_dict().items():
        if type(v) is int and v > MAX_SIZE:  # (the sizes; the modern parts are strings, bools, floats)
            raise bad(f"model.{k} is {v:,}, more than any model can have")
    _validated(config, "model", bad)
    _check_bpe_bytes(cfg.get("tokenizer"), size, bad)
    try:
        tokenizer = tokenizers.from_dict(cfg.get("tokenizer"))
    except (TypeError, ValueError, KeyError, MicroGPTError) as e:
        raise bad(f"tokenizer: {_why(e)}") from None
    except RecursionError:
        raise bad("tokenizer: nested too deeply") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise bad(f"its tokenizer has {tokenizer.vocab_size:,} tokens but the model's vocab_size is "
                  f"{config.vocab_size:,}: they do not belong together")
    train = _validated(_section(TrainConfig, cfg.get("train"), "train", bad), "train", bad)
    engine = cfg.get("engine")
    if not isinstance(engine, dict):  # an older checkpoint saved only a name and a dtype
        engine = {"name": engine or "python", "dtype": cfg.get("dtype")}
    engine = check_engine(_section(EngineConfig, engine, "engine", bad), bad)
    if engine.name == "python" and not config.is_seed:  # (no run of the python engine can have this model)
        raise bad("engine: python, but the model has modern parts (rope, qk-norm, relu2, final norm or softcap) "
                  "that only the numpy and torch engines compute")
    run = cfg.get("run")
    if run is not None and not isinstance(run, dict):
        raise bad("its run section is not a JSON object")
    run = {k: v for k, v in (run or {}).items() if k not in ("out", "stage")}
    data = cfg.get("data")
    if data is not None and not (isinstance(data, dict) and isinstance(data.get("default", False), bool) and
                                 all(isinstance(data.get(k), (str, type(None))) for k in ("path", "sha256"))):
        raise bad("its data section is not {\"path\": str, \"sha256\": str, \"default\": bool}")
    data = data or {}
    run = _section(RunConfig, run, "run", bad)
    stage = cfg.get("stage", _legacy_stage(run, train))
    if stage not in STAGES:
        raise bad(f"its stage is {jsonfile.short(stage)}, not one of {', '.join(STAGES)}")
    run = replace(run, out=run_dir, model=config, train=train, engine=engine, stage=stage,
                  data=None if data.get("default", data.get("path") is None) else data.get("path"))
    _validated(run, "run", bad)
    is_command = lambda c: isinstance(c, str) or (isinstance(c, list) and all(isinstance(a, str) for a in c))
    if not (cfg.get("command") is None or is_command(cfg["command"])):
        raise bad("its command is not a list of strings")
    resumed = cfg.get("resumed")
    if not (resumed is None or (isinstance(resumed, list) and all(map(is_command, resumed)))):
        raise bad("its resumed section is not a list of commands (lists of strings)")
    return run, tokenizer


def _legacy_stage(run, train):
    """The stage of a run folder written before config.json recorded it (0.2.0): rl runs named a
    task, sft runs trained on conversations, the rest pretrained."""
    return "rl" if run.rl.task else "sft" if train.data_mode == "chat" else "pretrain"


def _check_bpe_bytes(tok, size, bad):
    """A BPE tokenizer builds the bytes of every token, and merges nested in each other double
    them: 25 merges in a few hundred bytes of JSON would take 64 MB. Refuse tokens that add up to
    far more than the file that describes them (a trained tokenizer's come to about its JSON's
    size) before they are built. (Malformed merges are left to the tokenizer to name.)"""
    merges = tok.get("merges") if isinstance(tok, dict) and tok.get("type") == "bpe" else None
    if not isinstance(merges, list):
        return
    lengths, total = [1] * 256, 256
    for k, m in enumerate(merges):
        if not (isinstance(m, list) and len(m) == 2 and all(_is_int(i) and 0 <= i < 256 + k for i in m)):
            return
        lengths.append(lengths[m[0]] + lengths[m[1]])
        total += lengths[-1]
        if total > BPE_BYTES_PER_FILE_BYTE * size + (1 << 20):
            raise bad(f"tokenizer: its merges make tokens of more than {total:,} bytes in all, from a file of "
                      f"{size:,} bytes")


def _section(cls, d, name, bad, required=False):
    if d is None and not required:
        return cls()
    try:
        return cls.from_dict(d)
    except (TypeError, ValueError) as e:
        raise bad(f"{name}: {_why(e)}") from None


def _validated(cfg, name, bad):
    try:
        return cfg.validate()
    except MicroGPTError as e:
        raise bad(f"{name}: {_why(e)}") from None


def _why(e):
    """An exception's message, cut to its first part (a validate() message ends with its own
    advice, for the command line: the file's advice replaces it)."""
    return str(e).split(": pass ")[0].split(": use ")[0].split(": choose ")[0][:200]


def check_engine(engine, bad):
    try:
        return normalized(engine)
    except MicroGPTError as e:
        raise bad(f"engine: {_why(e)}") from None


def check_state(state, train, path):
    """state.json: the step reached (0..train.steps), tokens and time trained, and the random
    stream's state exactly as random.Random.getstate() gives it."""
    def bad(why):
        return corrupt(path, why)
    if not isinstance(state, dict):
        raise bad("not a JSON object")
    step = state.get("step")
    if not _is_int(step) or not 0 <= step <= train.steps:
        raise bad(f"its step is {jsonfile.short(step)}, not a whole number from 0 to the run's {train.steps:,} steps")
    if "tokens" in state and not (_is_int(state["tokens"]) and state["tokens"] >= 0):
        raise bad(f"its tokens is {jsonfile.short(state['tokens'])}, not a whole number >= 0")
    if "elapsed" in state and not (_is_number(state["elapsed"]) and state["elapsed"] >= 0):
        raise bad(f"its elapsed is {jsonfile.short(state['elapsed'])}, not a number of seconds >= 0")
    if state.get("last_loss") is not None and not _is_number(state["last_loss"]):
        raise bad(f"its last_loss is {jsonfile.short(state['last_loss'])}, not a finite number")
    if not _is_rng_state(state.get("rng_state")):
        raise bad("its rng_state is not the state of Python's random stream (version 3, 625 whole numbers, "
                  "gauss_next)")
    return state


def _is_rng_state(s):
    if not (isinstance(s, list) and len(s) == 3 and s[0] == 3 and _is_int(s[0])):
        return False
    internal, gauss_next = s[1], s[2]
    if not (isinstance(internal, list) and len(internal) == 625 and all(_is_int(x) for x in internal)):
        return False
    if not (all(0 <= x < 2 ** 32 for x in internal[:624]) and 0 <= internal[624] <= 624):
        return False
    if gauss_next is not None and not _is_number(gauss_next):
        return False
    try:
        random.Random().setstate((3, tuple(internal), gauss_next))
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x):
    return (isinstance(x, float) and math.isfinite(x)) or _is_int(x)


def check_sizes(snap, config):
    """The parameter shapes, once the weight file is known to be large enough to hold that many
    parameters (and not absurdly larger): a config.json that describes a model of 10^12
    parameters is refused before anything is allocated for it."""
    n, n_tensors = num_params(config), 3 + 6 * config.n_layer
    for name, per_param in (("model.safetensors", 1), ("optimizer.safetensors", 2)):
        if name == "optimizer.safetensors" and not snap.present(name):
            continue
        size = snap.size(name)
        least = 8 + 4 * per_param * n  # (F32 is the smallest dtype)
        most = 8 + header_allowance(per_param * n_tensors) + 8 * per_param * n
        if not least <= size <= most:
            raise corrupt(snap.file(name), f"{snap.file('config.json')} describes a different model shape: "
                                           f"{per_param * n:,} numbers, which its {size:,} bytes cannot hold")
    return param_shapes(config)


def take(tensors, shapes, prefix, path):
    """{name: rows} for every parameter, checking each tensor's presence, shape and values."""
    out = {}
    for name, shape in shapes:
        if prefix + name not in tensors:
            raise MicroGPTError(f"checkpoint file {path} has no tensor {prefix + name!r}: "
                                f"it is not a microgpt checkpoint of this model; {FIX}")
        got_shape, flat = tensors[prefix + name]
        if list(got_shape) != list(shape):
            raise MicroGPTError(f"checkpoint tensor {prefix + name!r} in {path} has shape {got_shape} but the "
                                f"model config says {shape}: the checkpoint is of a different model shape; {FIX}")
        if not _all_finite(flat):
            raise corrupt(path, f"tensor {prefix + name!r} holds NaN or infinite values")
        if len(flat) and max(max(flat), -min(flat)) > MAX_MAGNITUDE:
            raise corrupt(path, f"tensor {prefix + name!r} holds a value of absurd size, "
                                f"{max(max(flat), -min(flat)):.3g}: damaged, or from a run that diverged")
        if prefix == "v." and len(flat) and min(flat) < 0:
            raise corrupt(path, f"tensor {prefix + name!r}, Adam's mean of squared gradients, holds negative values")
        out[name] = _rows(shape, flat)
    return out


def _all_finite(flat):
    # a sum of finite floats is finite unless it overflows, and NaN or an infinity make it non-finite:
    # one C-speed pass, and a second one only for the rare sum that overflowed
    return math.isfinite(sum(flat)) or all(map(math.isfinite, flat))


def _rows(shape, flat):
    """Rows of a flat array.array: slices, which numpy turns into a matrix without a Python loop."""
    n_out, n_in = shape
    return [flat[r * n_in:(r + 1) * n_in] for r in range(n_out)]
