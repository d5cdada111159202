"""Engines: the same GPT at different rungs of the efficiency ladder.

Every engine module exposes `Model(config, weights, options)`, a subclass of base.Model, whose
methods are the engine contract (see base.py). Data, tokenizer, checkpoints, sampling policy,
the training loop and the CLI live once, outside the engines.
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
        raise
