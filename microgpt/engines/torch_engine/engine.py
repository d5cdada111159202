"""The torch engine: the engine contract (microgpt/engines/__init__.py) over the nn.Module GPT.

The model is model.GPT; this file moves data and weights in and out, runs the training step
(optionally compiled, in bf16 autocast, across processes with DDP) and torch's Adam with the
seed's betas, and keeps a KV cache for sampling.
"""

import contextlib
import gc
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from microgpt.batching import pad_batch
from microgpt.engines import base, dtype_name
from microgpt.engines.muon import is_muon_param, muon_lr
from microgpt.engines.torch_engine import distributed
from microgpt.engines.torch_engine.device import resolve_device, resolve_dtype
from microgpt.engines.torch_engine.distributed import all_reduce_sum, is_distributed, world_size
from microgpt.engines.torch_engine.kv_cache import KVCache
from microgpt.engines.torch_engine.model import GPT, IGNORE, token_losses
from microgpt.engines.torch_engine.muon import muon_step


class Model(base.Model):
    def __init__(self, config, weights, options):
        self.config = config
        self.device = resolve_device(options.device, distributed=is_distributed())
        self.dtype, self.autocast_dtype = resolve_dtype(options.dtype, self.device)
        self.safetensors_dtype = "F64" if self.dtype == torch.float64 else "F32"
        self.description = f"{self.device}, {dtype_name('torch', options.dtype)}"
        self.world_size = world_size()
        self.rank = torch.distributed.get_rank() if is_distributed() else 0

        self.module = GPT(config).to(device=self.device, dtype=self.dtype)
        self.params = dict(self.module.named_parameters())  # the seed's names, in the seed's order
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(_tensor(weights[name]))
        # forward for training and evaluation: compiled if asked; training also through DDP
        self.compiled = options.compile
        if self.compiled:
            self.description += ", compiled"
        if self.world_size > 1:
            self.description += f", DDP over {self.world_size} processes"
        self.eval_net = torch.compile(self.module) if self.compiled else self.module
        self.train_net = self.eval_net
        if self.world_size > 1:
            self.train_net = DDP(self.eval_net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                 gradient_as_bucket_view=True)

        # torch's Adam is the seed's (bias-corrected, eps outside the sqrt); with weight decay it is
        # AdamW (w *= 1 - lr * weight_decay before the update). One fused kernel on CUDA,
        # multi-tensor (foreach) kernels elsewhere. lr, betas, eps and decay are set every step
        # from the TrainConfig.
        impl = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=0.0, decoupled_weight_decay=True, **impl)
        zeros = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self._set_moments(zeros, zeros)  # explicit state from the start, so its step count can be set

    # ------------------------------------------------------------------ weights and optimizer state

    def get_weights(self):
        return {name: _numpy(p) for name, p in self.params.items()}

    def get_optimizer_state(self):
        state = self.optimizer.state
        return {"m": {name: _numpy(state[p]["exp_avg"]) for name, p in self.params.items()},
                "v": {name: _numpy(state[p]["exp_avg_sq"]) for name, p in self.params.items()}}

    def set_optimizer_state(self, state):
        self._set_moments({n: _tensor(state["m"][n]) for n in self.params},
                          {n: _tensor(state["v"][n]) for n in self.params})

    def _set_moments(self, m, v):
        # load_state_dict puts each moment on its parameter's device and dtype, and the step
        # counter where torch's Adam implementation wants it; train_step sets the step itself.
        sd = self.optimizer.state_dict()
        ids = sd["param_groups"][0]["params"]  # in the order of self.module.parameters()
        # (clones: load_state_dict keeps a tensor that is already on the right device and dtype)
        sd["state"] = {i: {"step": torch.tensor(0.0), "exp_avg": m[name].clone(), "exp_avg_sq": v[name].clone()}
                       for i, name in zip(ids, self.params)}
        self.optimizer.load_state_dict(sd)

    # ------------------------------------------------------------------ training and evaluation

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _batch(self, seqs, weights=None):
        """(inputs, targets, weights or None) on the device, padding targets = IGNORE; and the
        number of real targets."""
        w = None
        if weights is None and len({len(s) for s in seqs}) == 1:  # equal lengths (stream windows): no padding
            tokens = torch.tensor(seqs, dtype=torch.long)
            idx, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
        else:
            inputs, targets, w = pad_batch(seqs, weights)
            idx = torch.tensor(inputs, dtype=torch.long)
            real = torch.arange(idx.size(1))[None, :] < torch.tensor([len(s) - 1 for s in seqs])[:, None]
            targets = torch.tensor(targets, dtype=torch.long).masked_fill(~real, IGNORE)
            w = torch.tensor(w, dtype=self.dtype) if weights is not None else None
        if self.compiled:  # one shape, so the compiled graph is not rebuilt for every batch length
            extra = self.config.block_size - idx.size(1)
            idx, targets = F.pad(idx, (0, extra), value=0), F.pad(targets, (0, extra), value=IGNORE)
            w = None if w is None else F.pad(w, (0, extra), value=0.0)
        n = sum(len(s) - 1 for s in seqs)
        return idx.to(self.device), targets.to(self.device), None if w is None else w.to(self.device), n

    def train_step(self, seqs, lr, t, tc, weights=None):
        idx, targets, w, n = self._batch(seqs, weights)
        if tc.dropout:  # masks drawn from (seed, step, rank): a resumed run drops exactly the same units
            torch.manual_seed((tc.seed * 1_000_003 + t) * 1009 + self.rank)
        with self._autocast():
            # this rank's sum of token losses (times their weights, where given)
            loss_sum = self.train_net(idx, targets, w, dropout=tc.dropout)
        if weights is not None:
            # the caller's weights already normalise over the global batch; DDP averages the ranks'
            # gradients, so each rank's share is scaled back up by world_size
            (loss_sum * self.world_size).backward()
            loss = all_reduce_sum(loss_sum.detach().to(torch.float64))
        elif self.world_size > 1:
            # DDP averages gradients over ranks; scaled by world / (tokens of the GLOBAL batch), that
            # average is the gradient of the mean over every real target token of the global batch,
            # whatever each rank's share of them: 2 ranks == 1 process with the same batch.
            n_global = all_reduce_sum(torch.tensor(float(n), device=self.device, dtype=torch.float64))
            (loss_sum * (self.world_size / n_global)).backward()
            loss = all_reduce_sum(loss_sum.detach().to(torch.float64)) / n_global
        else:
            loss = loss_sum * (1 / n)  # (1/n) * sum, as the seed
            loss.backward()
        if tc.optimizer == "muon":  # Muon steps the layers' matrices; Adam skips them (no .grad)
            state = self.optimizer.state
            hidden = [p for name, p in self.params.items() if is_muon_param(name)]
            muon_step(hidden, [state[p]["exp_avg"] for p in hidden], muon_lr(tc, lr), tc.muon_momentum,
                      tc.weight_decay)
            for p in hidden:
                state[p]["exp_avg_sq"].zero_()  # (Muon keeps no second moment: zeros in the checkpoint)
                p.grad = None
        for group in self.optimizer.param_groups:
            group.update(lr=lr, betas=(tc.beta1, tc.beta2), eps=tc.eps, weight_decay=tc.weight_decay)
        for state in self.optimizer.state.values():
            state["step"].fill_(t - 1)  # Adam adds 1 first: bias correction uses the run's step t
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def loss_and_grads(self, seqs, weights=None):
        idx, targets, w, n = self._batch(seqs, weights)
        with self._autocast():
            loss = self.module(idx, targets, w)
            if weights is None:
                loss = loss * (1 / n)
        loss.backward()
        grads = {name: _numpy(p.grad) for name, p in self.params.items()}
        self.module.zero_grad(set_to_none=True)
        return loss.item(), grads

    @torch.no_grad()
    def token_losses(self, seqs):
        idx, targets, _, _ = self._batch(seqs)
        with self._autocast():
            losses = token_losses(self.eval_net(idx), targets).to(torch.float64).cpu()
        return [row[:len(s) - 1].tolist() for row, s in zip(losses, seqs)]

    def generator(self, batch_size=1):
        return Generator(self)

    def kv_cache(self):
        return KVCache(self)

    @classmethod
    def setup_distributed(cls, options):
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            return 0, 1
        return distributed.setup_distributed(options)

    def finish_distributed(self):
        # DDP holds the process group: dropped first, the group is freed (its gloo threads joined) here,
        # not at interpreter exit, where a rank aborted ~1 run in 25 ("terminate called without an active
        # exception"; 0 in 100 after)
        self.train_net = self.eval_net
        gc.collect()
        distributed.finish_distributed()

    def any_rank(self, flag):
        return distributed.any_rank(flag)


class Generator:
    """Feeds one token per row at a time; each layer keeps the keys and values of earlier positions."""

    def __init__(self, model):
        self.model = model
        self.caches = [[] for _ in range(model.config.n_layer)]

    @torch.inference_mode()
    def next_logits(self, tokens, pos):
        m = self.model
        idx = torch.tensor(tokens, dtype=torch.long, device=m.device)[:, None]  # (B, 1)
        with m._autocast():
            logits = m.module(idx, pos0=pos, caches=self.caches)
        return logits[:, -1].to(torch.float64).tolist()


def _tensor(rows):
    """Rows of floats or of array.array (as a checkpoint loads them) -> a float64 tensor."""
    return torch.from_numpy(np.asarray(rows, dtype=np.float64))


def _numpy(t):
    """A float64 numpy copy on the CPU (a copy: later steps must not change what was handed out)."""
    return t.detach().to("cpu", torch.float64, copy=True).numpy()
