"""Where and in what precision the torch engine runs: --device and --dtype, checked up front.

A request the machine cannot honour (cuda without a GPU, bf16 on the CPU, float64 on mps) is a
one-line MicroGPTError naming the fix, never a traceback from deep inside torch.
"""

import os

import torch

from microgpt.engines import dtype_name
from microgpt.errors import MicroGPTError

# --dtype (as microgpt.engines names it) -> (dtype of the weights, dtype of autocast or None)
DTYPES = {
    "float32": (torch.float32, None),
    "float64": (torch.float64, None),
    # bf16: weights, gradients and Adam stay float32; matmuls run in bfloat16 (autocast)
    "bf16": (torch.float32, torch.bfloat16),
}


def resolve_device(name, distributed=False):
    """'cpu' | 'cuda' | 'cuda:N' | 'mps' | None (cuda when there is a GPU, else cpu) -> torch.device."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    kind = name.split(":")[0]
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise MicroGPTError(f"--device cuda, but {why}: use --device cpu (or install a CUDA build of torch)")
        if distributed:  # torchrun gives each process on a node its own GPU
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        try:
            device = torch.device(name)
        except RuntimeError:
            raise MicroGPTError(f"--device {name!r} is not a device name: use cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MicroGPTError(f"--device {name}: there are only {torch.cuda.device_count()} GPUs "
                                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return device
    if kind == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise MicroGPTError("--device mps, but Apple's Metal backend is not available here: use --device cpu")
        if distributed:
            raise MicroGPTError("distributed training on mps is not supported: use --device cpu or cuda")
        return torch.device("mps")
    raise MicroGPTError(f"unknown --device {name!r}: use cpu, cuda or mps")


def resolve_dtype(name, device):
    """--dtype (default float32) -> (weight dtype, autocast dtype or None), checked against the device."""
    name = dtype_name("torch", name)
    weight_dtype, autocast = DTYPES[name]
    if autocast is not None and device.type != "cuda":
        raise MicroGPTError(f"--dtype {name} (bf16 autocast) needs --device cuda: use float32 on {device.type}")
    if weight_dtype == torch.float64 and device.type == "mps":
        raise MicroGPTError("--dtype float64 is not supported on mps: use float32, or --device cpu")
    return weight_dtype, autocast
