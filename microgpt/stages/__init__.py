"""The stages of the road from MicroGPT to ChatGPT, each one module, handing off through
checkpoints (the run folder of one is the --from of the next):

    pretrain.py   microgpt train   a model learns to continue text, from scratch
    sft.py        microgpt sft     it learns to answer, on conversations (loss on the replies)
    rl.py         microgpt rl      it learns from a checkable reward (policy gradient)
    chat.py       microgpt chat    talking to the result

A stage module has its run class (RUN_CLASS: what its steps train on), a pure
`prepare(config, base) -> config` (the config of a run of that stage, from another run's
checkpoint `base`) and `open_dataset(config, tokenizer)` (a saved run's data).
config.json records the stage that made a run;
`stage(name)` finds its module, and open.py opens any run by it.
"""


def stage(name):
    """The module of a stage recorded in config.json ("pretrain", "sft", "rl")."""
    if name == "sft":
        from microgpt.stages import sft
        return sft
    if name == "rl":
        from microgpt.stages import rl
        return rl
    from microgpt.stages import pretrain  # (a checkpoint's stage is checked when it is read)
    return pretrain


def run_class(name):
    """The run class of a stage: Run (pretrain), SFTRun or RLRun."""
    return stage(name).RUN_CLASS
