"""What config.json and state.json say about a run beyond its model: the sections written from
a RunConfig (the stage, train, engine, run, data, commands) and the random stream's state."""

import os

from microgpt.errors import MicroGPTError

# RunConfig fields that belong to one call, not to the run: a resume does not keep them
NOT_KEPT = ("model", "train", "engine", "data", "out", "stop_after", "time_limit", "quiet", "stage")


def sections(cfg, data=None, command=None, resumed=()):
    """config.json's sections beyond the model and tokenizer, from the RunConfig `cfg`, the data
    file it reads (a files.DataFile, or None), the command that started it and those that resumed it."""
    return {"stage": cfg.stage, "train": cfg.train.to_dict(), "engine": cfg.engine.to_dict(),
            "run": {k: v for k, v in cfg.to_dict().items() if k not in NOT_KEPT},
            "data": {"path": os.path.abspath(data.path), "sha256": data.sha256,
                     "default": cfg.data is None} if data else None,
            "command": command, "resumed": list(resumed)}


def rng_state_to_json(rng):
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def rng_state_from_json(rng, state):
    try:
        version, internal, gauss_next = state
        rng.setstate((version, tuple(internal), gauss_next))
    except (TypeError, ValueError, OverflowError):
        raise MicroGPTError("the checkpoint's random-stream state (state.json rng_state) is corrupt: "
                            "train again or restore the checkpoint") from None
