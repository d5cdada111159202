"""Engines: the same GPT at different rungs of the efficiency ladder.

Every engine module exposes `Model(config, weights, options)` with the same methods:
  get_weights() / get_optimizer_state() / set_optimizer_state(state)
      -> {name: matrix} (and {"m": {...}, "v": {...}}), shapes [out, in]
  train_step(seqs, lr, t, tc) -> mean loss over the target tokens (forward, backward, Adam)
  loss_and_grads(seqs) -> (mean loss, {name: gradient matrix}), weights unchanged (for checks)
  eval_loss(seqs) -> (sum of token losses, number of target tokens), no gradients
  generator() -> object whose next_logits(token, pos) returns a list of floats (KV cache)
and the attributes `description` (how it runs, for the log: "fused graph", "float32", ...) and
`safetensors_dtype` ("F64" or "F32"): how its checkpoints store numbers.
A matrix handed in is rows of floats (or array.array rows, as a checkpoint loads them); one
handed out is rows of floats or a 2-D numpy array. `seqs` is a list of token lists, each at
most block_size + 1 long: inputs seq[:-1], targets seq[1:].
Data, tokenizer, checkpoints, sampling policy and the CLI live once, outside the engines.
"""

import importlib

from microgpt import MicroGPTError

ENGINES = {
    "python": ("microgpt.engines.python.engine", None),
    "numpy": ("microgpt.engines.numpy_engine.engine", "numpy"),
    "torch": ("microgpt.engines.torch_engine.engine", "torch"),
}


def get_engine(name):
    if name not in ENGINES:
        raise MicroGPTError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}")
    module, extra = ENGINES[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if extra and e.name and e.name.split(".")[0] == extra:
            raise MicroGPTError(f"the {name} engine needs {extra}: pip install 'microgpt[{extra}]', "
                                f"or pick another with --engine (any engine loads any run)") from None
        if e.name and e.name.startswith("microgpt.engines"):
            raise MicroGPTError(f"the {name} engine is not available in this version") from None
        raise
