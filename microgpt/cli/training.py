"""`microgpt train | sft | rl`: flags -> a RunConfig -> the stage's run, trained -> samples printed."""

from dataclasses import replace

from microgpt import checkpoint
from microgpt.cli.parser import given
from microgpt.config import RunConfig, changed, require
from microgpt.errors import MicroGPTError
from microgpt.stages import run_class
from microgpt.stages.pretrain import corpus_defaults

# Fine-tuning runs thousands of quick steps: a line each would bury the evaluations (--log-every N overrides).
# Training keeps the seed's line a step.
LOG_EVERY = {"sft": 100}


def start(stage, args):
    """The run the flags describe, trained; returns (run, finished). A new run starts from the
    defaults (the seed's run) or, with --from, from another run's checkpoint; a resumed one from
    its own saved config (and stage). Either way only the flags given change it, and every
    checkpoint involved is read once."""
    flags = given(args)
    ckpt = base = None
    if args.resume:
        if "out" not in flags:
            raise MicroGPTError("--resume needs --out DIR: the run directory to continue")
        ckpt = checkpoint.load(flags["out"])
        cfg = changed(ckpt.run_config, flags)
        if cfg.engine.name != ckpt.engine.name and "engine.dtype" not in flags:
            cfg = replace(cfg, engine=replace(cfg.engine, dtype=None))  # another engine: its own default dtype
    else:
        if stage == "pretrain":  # a prepared corpus: its split (and its mode) unless the flags say
            flags = {**corpus_defaults(flags), **flags}
        cfg = changed(RunConfig(stage=stage, log_every=LOG_EVERY.get(stage, 1)), flags)
        if cfg.init_from:
            base = checkpoint.load(cfg.init_from, with_optimizer=False)
            if flags.get("engine.name", base.engine.name) == base.engine.name:
                # a run started --from another keeps its engine and dtype (--engine naming the same one too)
                cfg = replace(cfg, engine=changed(base.engine, {k[7:]: v for k, v in flags.items()
                                                                if k.startswith("engine.")}))
    require("eval_num", cfg.eval_num, "positive")
    run = run_class(cfg.stage)(cfg, resume=args.resume, overwrite=args.overwrite, ckpt=ckpt, base=base,
                               allow_data_change=args.allow_data_change, command=["microgpt", *args.argv])
    finished = run.train()
    if run.world_size > 1:
        run.model.finish_distributed()
    return run, finished


def cmd_train(args):
    require("temperature", args.temperature, "nonneg")
    if args.num_samples < 0:
        raise MicroGPTError(f"--num-samples must be >= 0, got {args.num_samples}")
    run, finished = start("pretrain", args)
    if finished and args.num_samples and run.is_main:
        docs = run.cfg.train.data_mode == "docs"
        print("\n--- samples ---" if docs else "\n--- sample ---")
        for k, text in enumerate(run.sample(args.num_samples, args.temperature, max_new_tokens=args.max_new_tokens)):
            print(f"sample {k + 1:2d}: {text}" if docs else text)


def _refuse_model_flags(args):
    """--n-layer and the like, where the model's shape comes from the run started --from."""
    model_flags = ["arch"] if vars(args).get("cfg.arch") else [k[6:] for k in given(args) if k.startswith("model.")]
    if model_flags:
        raise MicroGPTError(f"--{model_flags[0].replace('_', '-')}: the model comes from --from RUN; drop it")


def cmd_sft(args):
    if vars(args).get("cfg.init_from"):
        _refuse_model_flags(args)
    start("sft", args)


def cmd_rl(args):
    _refuse_model_flags(args)  # (rl always starts from a run)
    start("rl", args)
