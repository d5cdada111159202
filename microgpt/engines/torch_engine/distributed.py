"""Training across processes: torchrun starts one process per GPU (or CPU slot), DDP keeps them in step.

We write no distributed runtime: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK and the rendezvous
address, torch.distributed connects the processes (NCCL between GPUs, gloo on CPUs), and
DistributedDataParallel averages the gradients during backward. What is ours: each rank trains on
its own slice of the global batch (Run.batch), and the loss is scaled so that DDP's
average is the mean over the global batch's real target tokens (see Model.train_step).
"""

import atexit
import os

import torch
import torch.distributed as dist

from microgpt.engines.torch_engine.device import resolve_device, resolve_dtype
from microgpt.errors import MicroGPTError


def setup_distributed(options):
    """Join the process group torchrun set up; returns (rank, world_size). options: EngineConfig."""
    if "RANK" not in os.environ or "MASTER_ADDR" not in os.environ:
        raise MicroGPTError("WORLD_SIZE is set but RANK / MASTER_ADDR are not: launch with "
                            "torchrun --nproc_per_node N -m microgpt train --engine torch ...")
    device = resolve_device(options.device, distributed=True)
    resolve_dtype(options.dtype, device)  # refuse a bad --dtype before connecting to the other ranks
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", device_id=device)
    else:
        dist.init_process_group(backend="gloo")
    atexit.register(_shutdown)
    return dist.get_rank(), dist.get_world_size()


def finish_distributed():
    """After a run that ended normally: wait for every rank (rank 0 may still be writing the
    checkpoint), then leave the group together. A rank that tears its connections down while
    another still uses them can abort in gloo ("terminate called without an active exception")."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _shutdown():  # the exit path of a failed run: no barrier, the other ranks may never reach one
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def world_size():
    return dist.get_world_size() if is_distributed() else 1


def any_rank(flag):
    """True on every rank where any rank passes True (one tiny all-reduce)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    return all_reduce_sum(t).item() > 0


def all_reduce_sum(tensor):
    """Sum `tensor` over all ranks, in place (a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
