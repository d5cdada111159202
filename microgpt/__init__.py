"""microgpt: the complete GPT algorithm in dependency-free Python, and the efficiency ladder above it.

    from microgpt import Run, RunConfig, GPTConfig, TrainConfig, open_run
    run = Run(RunConfig(out="runs/demo", model=GPTConfig(n_embd=32), train=TrainConfig(steps=500)))
    run.train(); print(run.sample(5)); print(run.evaluate())
    again = open_run("runs/demo")    # a saved run, to sample from or evaluate
"""

from microgpt.errors import MicroGPTError

__version__ = "0.3.0"

__all__ = ["EngineConfig", "GPTConfig", "MicroGPTError", "RLConfig", "RLRun", "Run", "RunConfig", "SFTRun",
           "TrainConfig", "__version__", "load_config", "open_run"]

_LAZY = {"Run": "microgpt.stages.pretrain", "SFTRun": "microgpt.stages.sft", "RLRun": "microgpt.stages.rl",
         "open_run": "microgpt.stages.open", "load_config": "microgpt.checkpoint",
         **{name: "microgpt.config" for name in ("RunConfig", "GPTConfig", "TrainConfig", "EngineConfig", "RLConfig")}}


def __getattr__(name):  # the API, imported when first used: `import microgpt` stays instant
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'microgpt' has no attribute {name!r}")
