"""The engine contract: what the shared code (training loop, sampling, evaluation, checkpoints)
asks of every rung of the ladder. An engine subclasses `Model` and holds only its math.

Conventions. A matrix is [out][in] under the seed's parameter names (`wte`, `wpe`, `lm_head`,
`layer{i}.attn_wq`, ...). One handed in is rows of floats (or array.array rows, as a checkpoint
loads them); one handed out is rows of floats or a 2-D numpy array. `seqs` is a list of token
lists, each at most block_size + 1 long: inputs seq[:-1], targets seq[1:]. `weights`, where
given, has one float per target token (weights[b][i] for target i of sequence b).

Distributed training (several processes under torchrun) is part of the contract, so the loop
never asks which engine it runs: an engine that cannot do it refuses in `setup_distributed`.
"""

import os

from microgpt.errors import MicroGPTError


class Model:
    description = ""          # how it runs, for the log: "fused graph", "float32", "cuda, bf16", ...
    safetensors_dtype = "F64"  # how its checkpoints store numbers: "F64" or "F32"
    rank, world_size = 0, 1    # this process among those training together

    def __init__(self, config, weights, options):
        """config: GPTConfig; weights: {name: matrix}; options: EngineConfig."""
        raise NotImplementedError

    # -- weights and optimizer state, for checkpoints
    def get_weights(self):
        """{name: matrix}, float64 values."""
        raise NotImplementedError

    def get_optimizer_state(self):
        """{"m": {name: matrix}, "v": {name: matrix}}: Adam's moments (with --optimizer muon, a layer
        matrix keeps Muon's momentum in m and zeros in v: microgpt/engines/muon.py)."""
        raise NotImplementedError

    def set_optimizer_state(self, state):
        raise NotImplementedError

    # -- training
    def check_training(self, tc):
        """Refuse, before anything is written, a TrainConfig this engine cannot honour."""

    def train_step(self, seqs, lr, t, tc, weights=None):
        """Forward, backward and one Adam(W) update at 1-based step t; returns the loss.

        weights None: the loss is the mean over every real target token of the batch (over the
        global batch when distributed) -- with one sequence, the seed's loss. Otherwise the loss
        is sum_b sum_i weights[b][i] * loss[b][i]: the caller normalises (1/N everywhere = the
        mean; a 0/1 mask / its count = the SFT loss; advantages = the policy gradient)."""
        raise NotImplementedError

    def loss_and_grads(self, seqs, weights=None):
        """(loss, {name: gradient matrix}) as train_step would compute them; weights unchanged."""
        raise NotImplementedError

    def token_losses(self, seqs):
        """-log p(target) for every target token, no gradients: one list of floats per sequence."""
        raise NotImplementedError

    def step_info(self):
        """Extra figures about the last training step for the log (e.g. the python engine's graph
        size); {} when there are none."""
        return {}

    # -- generation
    def generator(self, batch_size=1):
        """An object whose next_logits(tokens, pos) feeds one token per row (len(tokens) =
        batch_size), every row at position `pos`, and returns one list of logits per row. Each
        layer keeps the keys and values of earlier positions (the KV cache)."""
        raise NotImplementedError

    def kv_cache(self):
        """A cache of rows, each at its own length (microgpt/engines/kv_cache.py's contract): this
        default feeds one token per model call through generator(), row by row."""
        from microgpt.engines.kv_cache import TokenByToken
        return TokenByToken(self)

    # -- several processes
    @classmethod
    def setup_distributed(cls, options):
        """Join the processes that torchrun started; returns (rank, world_size)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            raise MicroGPTError(f"launched as {world} processes, but only --engine torch trains distributed")
        return 0, 1

    def finish_distributed(self):
        """Leave the process group after a run that ended normally."""

    def any_rank(self, flag):
        """True where any process says True (so every process stops at the same step)."""
        return flag
