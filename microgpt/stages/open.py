"""A saved run opened to sample from, evaluate, chat with or draw: `open_run(out)`.

    run = open_run("runs/names")             # the engine that trained it; open_run(out, engine="numpy")
    run.sample(5); run.evaluate(); run.answers(3)   # (a chat model answers)

The checkpoint is read once (every file checked) without taking the run's lock: readers
never see a half-written checkpoint, even while `train` writes one. The run's data is read only
when something needs it (sampling needs only the tokenizer), through its stage's open_dataset.
"""

import random
from dataclasses import replace

from microgpt import checkpoint
from microgpt.config import EngineConfig
from microgpt.engines import get_engine, normalized
from microgpt.stages import stage
from microgpt.stages.model_run import ModelRun


def open_run(out, engine=None, weights=None, **engine_options):
    """An existing run (any engine's): it keeps the engine and dtype that trained it unless told
    (`engine`, and EngineConfig fields as keywords: dtype, device, graph). `weights`: a weights file
    (checkpoint.save_weights) to use instead of the checkpoint's -- a served model's process takes the
    server's, which a newer checkpoint may have replaced on disk since (the server checked the run whole
    when it opened it: the optimizer's moments, twice the weights' bytes with Adam, are not read again)."""
    ckpt = checkpoint.load(out, with_optimizer=weights is None)  # (every file checked; the moments then dropped)
    if weights is not None:
        ckpt.weights = checkpoint.load_weights(weights, ckpt.config)
    return OpenRun(ckpt, engine, engine_options)


class OpenRun(ModelRun):
    def __init__(self, ckpt, engine=None, engine_options=None):
        ckpt.optimizer = None  # (checked when it was read; a run opened to be used needs no moments)
        saved = ckpt.run_config.engine
        if engine is not None and engine != saved.name:  # another engine: its own defaults, but the graph
            saved = EngineConfig(name=engine, graph=saved.graph)
        given = {k: v for k, v in (engine_options or {}).items() if v is not None}
        options = normalized(replace(saved, compile=False, stats=False, **given))
        self.cfg, self.checkpoint = replace(ckpt.run_config, engine=options), ckpt
        self.out, self.config, self.state, self.stage = self.cfg.out, ckpt.config, ckpt.state, ckpt.stage
        self._tokenizer, self._ds = ckpt.tokenizer, None
        self.model = get_engine(options.name).Model(ckpt.config, ckpt.weights, options)
        self.rng = random.Random()
        checkpoint.rng_state_from_json(self.rng, ckpt.state.get("rng_state"))

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def ds(self):
        """The run's data, read when first needed (sampling needs only the tokenizer)."""
        if self._ds is None:
            self._ds = stage(self.stage).open_dataset(self.cfg, self.tokenizer)
        return self._ds

    def use_data(self, path):
        """Evaluate on (or mark samples against) another file than the run's own."""
        self.cfg, self._ds = replace(self.cfg, data=path), None

    @property
    def reads_data(self):
        """Whether the run trained on a data file (an rl run on a chat task draws problems instead)."""
        return not (self.stage == "rl" and self.cfg.data is None and self.cfg.train.data_mode == "chat")
