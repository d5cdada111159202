"""Configuration: the model, the optimisation, the engine and the run. The defaults are the
seed's reference run. Each is a frozen dataclass that saves to and loads from JSON with its
types checked, so a hand-edited or hostile config.json is a clear error, not a crash later.
A config never changes once made: derive another with `dataclasses.replace` (or `changed`).
Nothing here reads or writes a file."""

import math
import typing
from dataclasses import dataclass, field, replace

from microgpt.errors import MicroGPTError
from microgpt.jsonconfig import JSONConfig, require
from microgpt.jsonfile import short

STAGES = ("pretrain", "sft", "rl")  # what made a run: microgpt train, sft, rl
SCHEDULES = ("linear", "cosine", "constant", "wsd")  # learning-rate schedules: see learning_rate()

RMSNORM_EPS = 1e-5  # rmsnorm(x) = x * (mean(x^2) + RMSNORM_EPS) ** -0.5 in every engine
INIT_STD = 0.08     # every weight starts as gauss(0, INIT_STD)


@dataclass(frozen=True)
class GPTConfig(JSONConfig):
    vocab_size: int = 27
    n_layer: int = 1
    n_embd: int = 16
    n_head: int = 4
    block_size: int = 16
    # the modern parts (nanochat's), each a switch; the defaults are the seed's model
    pos: str = "learned"          # learned (a wpe matrix) | rope (rotary q and k, no wpe)
    qk_norm: bool = False         # rmsnorm each head's q and k (after the rotation)
    mlp: str = "relu"             # relu | relu2 (relu(x)^2)
    final_norm: bool = False      # rmsnorm before lm_head
    softcap: float = 0.0          # logits = softcap * tanh(logits / softcap); 0 = off
    rope_theta: float = 10000.0   # rope: frequency j of a head is rope_theta^(-2j / head_dim)

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    @property
    def is_seed(self):
        """True when no modern part is switched on: the seed's architecture."""
        return all(getattr(self, k) == v for k, v in ARCH_PRESETS["seed"].items() if k != "rope_theta")

    def validate(self):
        for name in ("vocab_size", "n_layer", "n_embd", "n_head", "block_size"):
            if getattr(self, name) <= 0:
                raise MicroGPTError(f"{name} must be positive, got {getattr(self, name)}: pass a value >= 1")
        if self.n_embd % self.n_head:
            raise MicroGPTError(
                f"n_embd ({self.n_embd}) is not divisible by n_head ({self.n_head}): "
                f"choose n_embd a multiple of n_head")
        if self.pos not in ("learned", "rope"):
            raise MicroGPTError(f"unknown --pos {short(self.pos)}: use learned or rope")
        if self.mlp not in ("relu", "relu2"):
            raise MicroGPTError(f"unknown --mlp {short(self.mlp)}: use relu or relu2")
        for name in ("qk_norm", "final_norm"):
            if not isinstance(getattr(self, name), bool):
                raise MicroGPTError(f"{name} must be true or false, got {short(getattr(self, name))}")
        require("softcap", self.softcap, "nonneg")
        require("rope_theta", self.rope_theta, "positive")
        if self.pos == "rope" and self.head_dim % 2:
            raise MicroGPTError(f"--pos rope rotates pairs of a head's dimensions, but head_dim "
                                f"(n_embd / n_head) is {self.head_dim}: choose n_embd / n_head even")
        return self


# --arch NAME: the values of the modern parts' fields (explicit flags win over these)
ARCH_PRESETS = {
    "seed": dict(pos="learned", qk_norm=False, mlp="relu", final_norm=False, softcap=0.0, rope_theta=10000.0),
    # Hugging Face transformers' NanoChatForCausalLM (model_type "nanochat"), exactly
    "nanochat": dict(pos="rope", qk_norm=True, mlp="relu2", final_norm=True, softcap=15.0, rope_theta=10000.0),
}


def arch_preset(name):
    """{GPTConfig field: value} of the architecture `name` (seed | nanochat)."""
    if name not in ARCH_PRESETS:
        raise MicroGPTError(f"unknown --arch {short(name)}: use {' or '.join(ARCH_PRESETS)}")
    return dict(ARCH_PRESETS[name])


def expand_arch(given):
    """{config path: value} of the flags given, with "arch" replaced by its preset's model.* fields;
    a model field given explicitly wins over the preset."""
    if "arch" not in given:
        return given
    given = dict(given)
    preset = {f"model.{k}": v for k, v in arch_preset(given.pop("arch")).items()}
    return {**preset, **given}


@dataclass(frozen=True)
class TrainConfig(JSONConfig):
    steps: int = 1000
    batch_size: int = 1           # documents (or windows) per step; 1 = the seed
    lr: float = 0.01
    lr_schedule: str = "linear"   # linear | cosine | constant | wsd
    warmup_steps: int = 0
    decay_frac: float = 0.2       # wsd: the last fraction of the steps, where the learning rate decays to 0
    beta1: float = 0.85
    beta2: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0     # AdamW's decoupled decay: each step w *= 1 - lr * weight_decay
    dropout: float = 0.0          # array engines: drop this fraction of each block's output in training
    seed: int = 42
    val_frac: float = 0.1         # fraction of documents held out, taken from the END of the shuffled list
    data_mode: str = "docs"       # docs (one document per line) | stream (continuous text) | chat (sft)
    optimizer: str = "adam"       # adam | muon (Muon on the layers' matrices, AdamW on the embeddings and lm_head)
    muon_lr: float = 0.02         # muon: peak learning rate of the layers' matrices (the schedule scales it as lr)
    muon_momentum: float = 0.95   # muon: momentum of Muon's running mean of gradients (Nesterov-style)

    def validate(self):
        for name in ("steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise MicroGPTError(f"{name.replace('_', ' ')} must be positive, got {getattr(self, name)}: "
                                    f"pass --{name.replace('_', '-')} N with N >= 1")
        require("lr", self.lr, "positive")
        require("eps", self.eps, "positive")
        for name in ("weight_decay", "warmup_steps"):
            require(name, getattr(self, name), "nonneg")
        for name in ("dropout", "val_frac", "beta1", "beta2"):
            require(name, getattr(self, name), "fraction")
        if self.lr_schedule not in SCHEDULES:
            raise MicroGPTError(f"unknown --lr-schedule {self.lr_schedule!r}: use {', '.join(SCHEDULES)}")
        if not (isinstance(self.decay_frac, float) and 0 < self.decay_frac <= 1):
            raise MicroGPTError(f"--decay-frac must be in (0, 1], got {short(self.decay_frac)}")
        if self.optimizer not in ("adam", "muon"):
            raise MicroGPTError(f"unknown --optimizer {short(self.optimizer)}: use adam or muon")
        require("muon_lr", self.muon_lr, "positive")
        require("muon_momentum", self.muon_momentum, "fraction")
        if self.data_mode not in ("docs", "stream", "chat"):
            raise MicroGPTError(f"unknown --data-mode {self.data_mode!r}: use docs or stream")
        return self


@dataclass(frozen=True)
class EngineConfig(JSONConfig):
    name: str = "python"            # python | numpy | torch
    graph: str = "fused"            # python engine: textbook (the seed's graph) | fused
    dtype: typing.Optional[str] = None   # None: the engine's default; what each accepts: microgpt.engines.ENGINES
    device: typing.Optional[str] = None  # torch: cpu | cuda | cuda:N | mps
    compile: bool = False           # torch: torch.compile the model
    stats: bool = False             # python engine: measure each step's graph (nodes, edges)
    threads: typing.Optional[int] = None  # numpy: BLAS threads (None: 1, see engines/numpy_engine/threads.py)


@dataclass(frozen=True)
class RLConfig(JSONConfig):
    """Reinforcement learning on a task's reward (microgpt rl)."""
    task: typing.Optional[str] = None   # add, reverse, count, names-ending:a, names-length:6-8, ...
    prompts: int = 8                    # P: problems per step
    group_size: int = 8                 # G: answers sampled per problem; advantage = reward - the group's mean
    temperature: float = 1.0            # of the sampled answers
    top_k: int = 0
    kl: float = 0.0                     # beta: per-token KL penalty against the starting model (0: none)
    std_normalize: bool = False         # also divide each advantage by its group's standard deviation

    def validate(self):
        if not self.task:
            raise MicroGPTError("rl needs a task to reward: --task add (see microgpt tasks list)")
        for name in ("prompts", "group_size"):
            if getattr(self, name) < 1:
                raise MicroGPTError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise MicroGPTError("--group-size must be >= 2: the advantage compares answers to the same problem")
        require("temperature", self.temperature, "positive")
        require("top_k", self.top_k, "nonneg")
        require("kl", self.kl, "nonneg")
        return self


@dataclass(frozen=True)
class RunConfig(JSONConfig):
    """Everything a training run needs. `Run(RunConfig(...)).train()` is what `microgpt train` does."""
    out: typing.Optional[str] = None     # run directory (None: runs/<date-time>)
    data: typing.Optional[str] = None    # text file, one document per line (None: the names data set)
    tokenizer: str = "char"              # char (the seed's) | bpe (trained on the training split) | a tokenizer file
    vocab_size: typing.Optional[int] = None  # bpe: tokens in all (256 bytes + merges + special tokens)
    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    eval_every: int = 200                # estimate the validation loss every N steps (0: never)
    eval_docs: int = 100                 # documents (windows) per estimate (0: all)
    checkpoint_every: int = 0            # also save every N steps (always at the end)
    log_every: int = 1                   # print and record every N steps (the mean over those steps)
    stop_after: typing.Optional[int] = None  # stop (and save) after this step; the schedule spans train.steps
    time_limit: typing.Optional[float] = None  # stop (and save) after this many seconds of this call
    quiet: bool = False                  # print nothing but errors
    tensorboard: bool = False            # also write TensorBoard event files into the run directory
    init_from: typing.Optional[str] = None   # sft: the trained run whose weights (and tokenizer) start this one
    eval_task: typing.Optional[str] = None   # held-out accuracy on this task at every evaluation (e.g. add)
    eval_num: int = 200                  # problems (or samples) per task evaluation
    rl: RLConfig = field(default_factory=RLConfig)  # rl only
    stage: str = "pretrain"              # pretrain (microgpt train) | sft | rl: recorded in config.json

    def validate(self):
        for name in ("eval_every", "eval_docs", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise MicroGPTError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.log_every <= 0:
            raise MicroGPTError(f"--log-every must be >= 1, got {self.log_every}")
        if self.stop_after is not None and self.stop_after <= 0:
            raise MicroGPTError(f"--stop-after must be >= 1, got {self.stop_after}")
        if self.time_limit is not None:
            require("time_limit", self.time_limit, "positive")
        if (self.tokenizer == "bpe") != (self.vocab_size is not None):
            raise MicroGPTError("--tokenizer bpe needs --vocab-size N (and --vocab-size goes with --tokenizer bpe): "
                                "e.g. --tokenizer bpe --vocab-size 512")
        if self.stage not in STAGES:
            raise MicroGPTError(f"unknown stage {self.stage!r}: use one of {', '.join(STAGES)}")
        self.model.validate()
        self.train.validate()
        return self


def changed(config, changes):
    """A copy of a config with fields changed by dotted path: {"train.lr": 0.1, "out": "runs/a"}."""
    nested = {}
    for path, value in changes.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            config = replace(config, **{head: value})
    for head, sub in nested.items():
        config = replace(config, **{head: changed(getattr(config, head), sub)})
    return config


def learning_rate(tc, step):
    """The learning rate for 0-based `step`:
    linear    the seed's, lr * (1 - step / steps)
    cosine    linear warm-up, then a cosine down to 10% of lr (as nanoGPT)
    constant  lr
    wsd       warm-up, stable at lr, then a linear decay to 0 over the last decay_frac of the steps.
              Until the decay starts, the rate does not depend on steps: a run can be made longer
              without a jump (train/loop.py keeps RUN/stable, the run as the decay began)."""
    if tc.lr_schedule == "constant":
        return tc.lr
    if tc.lr_schedule == "linear":
        return tc.lr * (1 - step / tc.steps)
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    if tc.lr_schedule == "wsd":
        start = decay_start(tc)
        return tc.lr if step < start else tc.lr * (tc.steps - step) / (tc.steps - start)
    progress = (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps)
    min_lr = tc.lr * 0.1
    return min_lr + 0.5 * (tc.lr - min_lr) * (1 + math.cos(math.pi * progress))


def decay_start(tc):
    """wsd: the first step of the decay (the steps before it train at the full rate)."""
    return max(tc.warmup_steps, tc.steps - max(1, round(tc.steps * tc.decay_frac)))
