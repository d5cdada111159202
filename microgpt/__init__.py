"""microgpt: the complete GPT algorithm in dependency-free Python, and the efficiency ladder above it.

    from microgpt import Run, RunConfig, GPTConfig, TrainConfig
    run = Run(RunConfig(out="runs/demo", model=GPTConfig(n_embd=32), train=TrainConfig(steps=500)))
    run.train(); print(run.sample(5)); print(run.evaluate())
"""

__version__ = "0.2.0"

__all__ = ["EngineConfig", "GPTConfig", "MicroGPTError", "Run", "RunConfig", "TrainConfig", "__version__"]


class MicroGPTError(Exception):
    """A problem with the user's input: the CLI prints it as one line and exits non-zero."""


def __getattr__(name):  # the API, imported when first used: `import microgpt` stays instant
    if name == "Run":
        from microgpt.run import Run
        return Run
    if name in ("RunConfig", "GPTConfig", "TrainConfig", "EngineConfig"):
        from microgpt import config
        return getattr(config, name)
    raise AttributeError(f"module 'microgpt' has no attribute {name!r}")
