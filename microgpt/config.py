"""Model and training configuration. The defaults are the seed's reference run."""

from dataclasses import asdict, dataclass, fields

from microgpt import MicroGPTError


@dataclass
class GPTConfig:
    vocab_size: int = 27
    n_layer: int = 1
    n_embd: int = 16
    n_head: int = 4
    block_size: int = 16

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    def validate(self):
        for name in ("vocab_size", "n_layer", "n_embd", "n_head", "block_size"):
            if getattr(self, name) <= 0:
                raise MicroGPTError(f"{name} must be positive, got {getattr(self, name)}: pass a value >= 1")
        if self.n_embd % self.n_head:
            raise MicroGPTError(
                f"n_embd ({self.n_embd}) is not divisible by n_head ({self.n_head}): "
                f"choose n_embd a multiple of n_head")
        return self

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in names}).validate()


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 1           # documents (or windows) per step; 1 = the seed
    lr: float = 0.01
    lr_schedule: str = "linear"   # linear | cosine | constant
    warmup_steps: int = 0
    beta1: float = 0.85
    beta2: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0     # AdamW's decoupled decay: each step w *= 1 - lr * weight_decay
    dropout: float = 0.0          # array engines: drop this fraction of each block's output in training
    seed: int = 42
    val_frac: float = 0.1         # fraction of documents held out, taken from the END of the shuffled list
    data_mode: str = "docs"       # docs (one document per line) | stream (continuous text)

    def validate(self):
        if self.steps <= 0:
            raise MicroGPTError(f"steps must be positive, got {self.steps}: pass --steps N with N >= 1")
        if self.batch_size <= 0:
            raise MicroGPTError(f"batch size must be positive, got {self.batch_size}: pass --batch-size B with B >= 1")
        if not self.lr > 0:
            raise MicroGPTError(f"learning rate must be positive, got {self.lr}: pass e.g. --lr 0.01")
        if self.lr_schedule not in ("linear", "cosine", "constant"):
            raise MicroGPTError(f"unknown --lr-schedule {self.lr_schedule!r}: use linear, cosine or constant")
        if not 0 <= self.dropout < 1:
            raise MicroGPTError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.weight_decay < 0:
            raise MicroGPTError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise MicroGPTError(f"warm-up steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.val_frac < 1:
            raise MicroGPTError(f"validation fraction must be in [0, 1), got {self.val_frac}")
        return self

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def learning_rate(tc, step):
    """The learning rate for 0-based `step`. linear is the seed's: lr * (1 - step / steps)."""
    import math
    if tc.lr_schedule == "constant":
        return tc.lr
    if tc.lr_schedule == "linear":
        return tc.lr * (1 - step / tc.steps)
    # cosine with linear warm-up, decaying to 10% of lr (as nanoGPT)
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    progress = (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps)
    min_lr = tc.lr * 0.1
    return min_lr + 0.5 * (tc.lr - min_lr) * (1 + math.cos(math.pi * progress))
