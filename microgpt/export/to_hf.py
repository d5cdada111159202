"""`microgpt export`: a run -> a Hugging Face model folder that transformers loads.

    DIR/config.json               the architecture (names.py): nanochat, or microgpt + auto_map
    DIR/model.safetensors         the weights under transformers' names, in the run's dtype (F64/F32)
    DIR/tokenizer.json            the tokenizer for the `tokenizers` library (tokenizer_json.py)
    DIR/tokenizer_config.json     AutoTokenizer's settings; a chat model's chat_template
    DIR/generation_config.json    bos/eos and max_length = block_size + 1 (what `microgpt sample` writes)
    DIR/README.md                 the model card (card.py)
    DIR/configuration_microgpt.py, modeling_microgpt.py   the code, for the microgpt architecture only

The weights keep the run's dtype, so a float64 run's export computes in transformers exactly what
microgpt computes. The folder is written whole or not at all (folder.write_folder).
"""

import os
from importlib import resources

from microgpt import checkpoint
from microgpt.data.chat_template import ASSISTANT_END
from microgpt.errors import MicroGPTError
from microgpt.export import card, folder, names
from microgpt.export.tokenizer_json import is_chat, tokenizer_config, tokenizer_json
from microgpt.params import param_shapes
from microgpt.safetensors import dumps

CODE_FILES = ("configuration_microgpt.py", "modeling_microgpt.py")


def code_file(name):
    """The text of one of the modeling files shipped as package data (microgpt/export/hf_code)."""
    return resources.files("microgpt.export.hf_code").joinpath(name).read_bytes()


def weights_dtype(weights):
    """"F32" when the checkpoint holds 4-byte floats, else "F64" (checkpoint.load keeps the file's)."""
    row = weights["wte"][0]
    return "F32" if getattr(row, "typecode", "d") == "f" else "F64"


def export_run(run_dir, to, overwrite=False, measure=True, log=None):
    """Write the export of the run in `run_dir` to the folder `to`; returns the model type written
    ("nanochat" or "microgpt"). measure=False leaves the card without measured figures."""
    if not os.path.isdir(run_dir):
        raise MicroGPTError(f"no run folder {run_dir}: give the --out of a trained run")
    folder.check_target(to, overwrite, "--to", keep_runs=True)
    ck = checkpoint.load(run_dir, with_optimizer=False)
    if os.path.abspath(to) == os.path.abspath(run_dir):
        raise MicroGPTError("--to is the run folder itself: choose another folder")
    kind = names.model_type(ck.config)
    dtype = weights_dtype(ck.weights)
    tok = ck.tokenizer
    tensors = {names.hf_name(n): (shape, [x for row in ck.weights[n] for x in row])
               for n, shape in param_shapes(ck.config)}
    fp = folder.fingerprint(tok, tensors, dtype)
    chat = is_chat(tok)
    eos = tok.special_tokens[ASSISTANT_END] if chat else tok.BOS
    figures, notes = measure_figures(ck) if measure else ({}, ["the export was made without measuring"])
    for n in notes:
        if log:
            log(f"note: {n}")
    config = names.hf_config(ck.config, dtype, tok.BOS, eos, fp)
    config["microgpt"] = _provenance(ck)
    # pad = eos: generate() then never guesses an attention mask from the prompt's own tokens (a pad equal
    # to BOS would mask the BOS every prompt starts with)
    generation = {"bos_token_id": tok.BOS, "eos_token_id": eos, "pad_token_id": eos,
                  "max_length": ck.config.block_size + 1, "do_sample": False}
    name = os.path.basename(os.path.abspath(to))
    files = {
        "config.json": folder.json_bytes(config),
        "generation_config.json": folder.json_bytes(generation),
        "model.safetensors": dumps(tensors, metadata={"format": "pt", "microgpt_fingerprint": fp}, dtype=dtype),
        "tokenizer.json": folder.json_bytes(tokenizer_json(tok)),
        "tokenizer_config.json": folder.json_bytes(tokenizer_config(tok, ck.config.block_size, fp)),
        "README.md": card.card(name, kind, ck, figures, notes, fp).encode("utf-8"),
    }
    if kind == "microgpt":
        files.update({n: code_file(n) for n in CODE_FILES})
    folder.write_folder(to, files, overwrite)
    return kind


def measure_figures(ck):
    """The card's figures (card.measure): the one call that evaluates the run."""
    return card.measure(ck)


def _provenance(ck):
    """What microgpt needs to make the run again from the folder (microgpt import): its training,
    engine and run config, its data and commands, and where it stood."""
    raw = ck.raw_config
    keep = {k: raw[k] for k in ("train", "engine", "run", "data", "command", "resumed") if k in raw}
    keep["stage"] = ck.stage
    keep["state"] = {k: ck.state[k] for k in ("step", "tokens", "elapsed") if k in ck.state}
    return keep
