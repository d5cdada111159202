"""Engines: the same GPT at different rungs of the efficiency ladder.

Every engine module exposes `Model(config, weights, options)`, a subclass of base.Model, whose
methods are the engine contract (see base.py). Data, tokenizer, checkpoints, sampling policy,
the training loop and the CLI live once, outside the engines.

This table is the one place that says what each engine accepts (its dtypes, their aliases, its
graphs and devices): the command line, the configs stored in run folders and the checks of a
checkpoint all ask it, and importing it loads neither numpy nor torch.
"""

import dataclasses
import importlib
import re

from microgpt.errors import MicroGPTError


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    module: str
    extra: str = None                 # the pip extra that installs what it needs
    dtypes: tuple = ("float64",)      # the first is the default
    aliases: tuple = ()               # (alias, dtype) pairs: what a user may also type
    graphs: tuple = ()                # python engine: textbook | fused
    devices: str = "cpu"              # a regular expression of the devices it runs on


ENGINES = {
    "python": EngineInfo("microgpt.engines.python.engine", None, ("float64",), (("fp64", "float64"),),
                         graphs=("fused", "textbook")),
    "numpy": EngineInfo("microgpt.engines.numpy_engine.engine", "numpy", ("float64", "float32"),
                        (("fp64", "float64"), ("fp32", "float32"))),
    "torch": EngineInfo("microgpt.engines.torch_engine.engine", "torch", ("float32", "float64", "bf16"),
                        (("fp32", "float32"), ("fp64", "float64"), ("bfloat16", "bf16")),
                        devices=r"cpu|mps|cuda(:\d{1,4})?"),
}
GRAPHS = ENGINES["python"].graphs


def engine_info(name):
    if name not in ENGINES:
        raise MicroGPTError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}")
    return ENGINES[name]


def dtype_name(engine, dtype):
    """The engine's own name for `dtype` (None: its default; an alias: what it stands for)."""
    info = engine_info(engine)
    if dtype is None:
        return info.dtypes[0]
    dtype = dict(info.aliases).get(dtype, dtype)
    if dtype not in info.dtypes:
        raise MicroGPTError(f"unknown --dtype {dtype!r} for the {engine} engine: pass "
                            + " or ".join(f"--dtype {d}" for d in info.dtypes)
                            + ("" if len(info.dtypes) > 1 else ", or use --engine numpy or torch"))
    return dtype


def normalized(options):
    """An EngineConfig with its dtype named as the engine names it, its graph and device checked."""
    info = engine_info(options.name)
    if options.graph not in GRAPHS:
        raise MicroGPTError(f"unknown graph {options.graph!r}: use textbook or fused")
    if options.device is not None and not re.fullmatch(ENGINES["torch"].devices, options.device):
        raise MicroGPTError(f"unknown --device {options.device!r}: use cpu, cuda, cuda:N or mps")
    if options.threads is not None and not 1 <= options.threads <= 4096:
        raise MicroGPTError(f"--threads {options.threads} is not a whole number from 1 to 4096: pass --threads N")
    if options.device not in (None, "cpu") and not re.fullmatch(info.devices, options.device):
        raise MicroGPTError(f"the {options.name} engine runs on the CPU: drop --device, or use --engine torch")
    return dataclasses.replace(options, dtype=dtype_name(options.name, options.dtype))


def get_engine(name):
    info = engine_info(name)
    try:
        return importlib.import_module(info.module)
    except ModuleNotFoundError as e:
        if info.extra and e.name and e.name.split(".")[0] == info.extra:
            raise MicroGPTError(f"the {name} engine needs {info.extra}: pip install 'microgpt[{info.extra}]', "
                                f"or pick another with --engine (any engine loads any run)") from None
        raise
