"""`microgpt import`: a Hugging Face model folder -> a microgpt run that samples, evaluates, draws
attention and fine-tunes (sft --from RUN).

Two kinds of folder are taken: transformers' NanoChatForCausalLM (model_type nanochat) with its
tokenizer, and microgpt's own exports (model_type microgpt). Anything else is refused in one line
that names the architecture and what microgpt would need to run it. The tokenizer must be one
microgpt runs (tokenizer_json.from_tokenizer_json), the weights exactly the parameters of the
config, and a declared fingerprint must match the one recomputed from the tokenizer and weights.

The run gets no optimizer state (training from it starts Adam afresh) and, for a folder that
microgpt exported, back the training config, data and commands the export recorded.
"""

import os
import random
import shutil
import types

from microgpt import checkpoint
from microgpt.config import EngineConfig, TrainConfig
from microgpt.errors import MicroGPTError
from microgpt.export import folder, names
from microgpt.export.tokenizer_json import from_tokenizer_json, is_chat
from microgpt.params import param_shapes


class Imported:
    """What a folder holds, in microgpt's terms (read_folder)."""

    def __init__(self, kind, fields, tokenizer, weights, dtype, provenance, notes):
        self.kind, self.fields, self.tokenizer = kind, fields, tokenizer
        self.weights, self.dtype, self.provenance, self.notes = weights, dtype, provenance, notes


def read_folder(src):
    """An Imported from the folder `src`: config fields, tokenizer, {our name: (shape, flat)} weights,
    every part checked; MicroGPTError for anything microgpt cannot run."""
    if not os.path.isdir(src):
        raise MicroGPTError(f"no folder {src}: give a Hugging Face model folder (config.json, model.safetensors, "
                            f"tokenizer.json)")
    cfg = folder.read_json(src, "config.json")
    fields, notes = names.config_fields(cfg, src)
    tokenizer = from_tokenizer_json(folder.read_json(src, "tokenizer.json"), f"{src}/tokenizer.json")
    if tokenizer.vocab_size != fields["vocab_size"]:
        raise MicroGPTError(f"{src}: tokenizer.json has {tokenizer.vocab_size} tokens but config.json a "
                            f"vocab_size of {fields['vocab_size']}: the tokenizer belongs to another model")
    tensors, dtype, metadata = folder.read_tensors(src)
    # (param_shapes drops wpe for rotary positions once GPTConfig has them; until then, here)
    shapes = [(n, s) for n, s in param_shapes(_shapes_config(fields)) if not (n == "wpe" and fields["pos"] == "rope")]
    wanted = {names.hf_name(n): (n, shape) for n, shape in shapes}
    extra = sorted(set(tensors) - set(wanted))
    missing = sorted(set(wanted) - set(tensors))
    if missing or extra:
        raise MicroGPTError(f"{src}: the weights do not fit the config: "
                            + (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}")
                            + f" ({len(missing)} missing, {len(extra)} unexpected)")
    weights = {}
    for hf, (ours, shape) in wanted.items():
        got_shape, flat = tensors[hf]
        if list(got_shape) != list(shape):
            raise MicroGPTError(f"{src}: tensor {hf} has shape {got_shape}, the config says {shape}")
        weights[ours] = (shape, flat)
    computed = folder.fingerprint(tokenizer, {names.hf_name(n): w for n, w in weights.items()}, dtype)
    tok_cfg = folder.read_json(src, "tokenizer_config.json", required=False) or {}
    declared = {where: fp for where, fp in (("config.json", cfg.get("microgpt_fingerprint")),
                                            ("tokenizer_config.json", tok_cfg.get("microgpt_fingerprint")),
                                            ("model.safetensors", metadata.get("microgpt_fingerprint")))
                if fp is not None}
    for where, fp in declared.items():
        if fp != computed:
            raise MicroGPTError(f"{src}: the tokenizer and weights do not belong together ({where} declares "
                                f"fingerprint {str(fp)[:12]}..., they are {computed[:12]}...): export the run again")
    provenance = cfg.get("microgpt")  # what a microgpt export recorded about its run
    return Imported(cfg["model_type"], fields, tokenizer, weights, dtype,
                    provenance if isinstance(provenance, dict) else None, notes)


def _shapes_config(fields):
    """An object with GPTConfig's attributes for param_shapes, whichever fields GPTConfig has."""
    return types.SimpleNamespace(**fields, head_dim=fields["n_embd"] // fields["n_head"])


def import_folder(src, out, overwrite=False):
    """Make the run `out` from the folder `src`; returns (model type, notes)."""
    im = read_folder(src)
    config = names.gpt_config(im.fields)
    folder.check_target(out, overwrite, "--out")
    if os.path.isdir(out) and os.listdir(out) and not checkpoint.exists(out):
        raise MicroGPTError(f"{out} is a folder but not a microgpt run: --overwrite replaces only a run; "
                            f"choose another --out")
    prov = im.provenance or {}
    state = dict(prov.get("state") or {"step": 0})
    rng = random.Random(0).getstate()
    state["rng_state"] = [rng[0], list(rng[1]), rng[2]]
    train = prov.get("train") or TrainConfig(data_mode="chat" if is_chat(im.tokenizer) else "stream").to_dict()
    # the seed's architecture runs on the default (python) engine; the modern parts need an array engine
    modern = any(im.fields[k] != v for k, v in names.ARCH_DEFAULTS.items() if k != "rope_theta")
    engine = prov.get("engine") or (EngineConfig(name="numpy", dtype="float64") if modern else EngineConfig()).to_dict()
    kind = im.tokenizer.to_dict()["type"]
    run = prov.get("run") or ({"tokenizer": "bpe", "vocab_size": im.tokenizer.vocab_size} if kind == "bpe" else {})
    meta = {"stage": prov.get("stage") or "pretrain", "train": train, "engine": engine, "run": run,
            "data": prov.get("data") or {},
            "command": prov.get("command") or ["microgpt", "import", "--from", src, "--out", out],
            "resumed": prov.get("resumed") or [], "imported_from": {"folder": os.path.abspath(src),
                                                                   "model_type": im.kind}}
    weights = {n: [flat[r * shape[1]:(r + 1) * shape[1]] for r in range(shape[0])]
               for n, (shape, flat) in im.weights.items()}
    parent = os.path.dirname(os.path.abspath(out))
    tmp = os.path.join(parent, f".{os.path.basename(os.path.abspath(out))}.import-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        checkpoint.save(tmp, weights=weights, optimizer=None, config=config, tokenizer=im.tokenizer, state=state,
                        meta=meta, dtype=im.dtype)
        checkpoint.load(tmp, with_optimizer=False)  # what was written is a run every command opens
        if os.path.lexists(out):  # (overwrite: check_target allowed it)
            shutil.rmtree(out)
        os.rename(tmp, out)
    except MicroGPTError as e:
        raise MicroGPTError(f"{src} cannot become a microgpt run: {e}") from None
    except OSError as e:
        raise MicroGPTError(f"could not write {out} ({e.strerror or e}): nothing was written") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return im.kind, im.notes
