"""A model folder as a whole: written all at once or not at all, read with every file checked, and
the one fingerprint that ties its tokenizer to its weights.

The fingerprint is the SHA-256 of the tokenizer (microgpt's own description of it, canonical
JSON) and of every tensor (name, dtype, shape, little-endian bytes, in name order). Export writes
it into config.json, tokenizer_config.json, model.safetensors' metadata and the model card; import
recomputes it from what it read, so a tokenizer.json swapped for another model's (the recurring
"gibberish" failure) is caught instead of silently run.
"""

import hashlib
import json
import os
import shutil
import struct
import sys
from array import array

from microgpt import jsonfile, safetensors
from microgpt.errors import MicroGPTError
from microgpt.files import atomic_write_bytes

MAX_JSON = {"config.json": 1 << 20, "tokenizer.json": 128 << 20, "tokenizer_config.json": 8 << 20,
            "generation_config.json": 1 << 20, "model.safetensors.index.json": 8 << 20}
CODES = {"F64": "d", "F32": "f"}


def tensor_bytes(flat, dtype):
    """The little-endian bytes of a flat array of values, as safetensors stores them."""
    a = flat if isinstance(flat, array) and flat.typecode == CODES[dtype] else array(CODES[dtype], flat)
    if sys.byteorder == "big":
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def fingerprint(tokenizer, tensors, dtype):
    """tensors: {hf name: (shape, flat values)} -> the hex SHA-256 that names this tokenizer and weights."""
    h = hashlib.sha256(b"microgpt-fingerprint-1\0")
    h.update(json.dumps(tokenizer.to_dict(), sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        shape, flat = tensors[name]
        h.update(f"\0{name}\0{dtype}\0{list(shape)}\0".encode())
        h.update(tensor_bytes(flat, dtype))
    return h.hexdigest()


# ---------------------------------------------------------------- writing


def check_target(path, overwrite, what, keep_runs=False):
    """Refuse a target that exists (unless overwrite); with keep_runs, never replace a microgpt run."""
    from microgpt import checkpoint
    if os.path.lexists(path):
        if keep_runs and checkpoint.exists(path):
            raise MicroGPTError(f"{path} holds a microgpt run: an export never replaces one; choose another {what}")
        if not overwrite:
            raise MicroGPTError(f"{path} already exists: pass --overwrite to replace it, or choose another {what}")
        if not os.path.isdir(path) or os.path.islink(path):
            raise MicroGPTError(f"{path} exists and is not a folder: remove it or choose another {what}")


def write_folder(path, files, overwrite=False):
    """Write {name: bytes} as the folder `path`: built beside it under a temporary name, then renamed
    into place (with overwrite, replacing what was there), so a failure leaves nothing half-written."""
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".{os.path.basename(os.path.abspath(path))}.tmp-{os.getpid()}")
    old = tmp + "-old"
    try:
        os.makedirs(parent, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for name, raw in files.items():
            atomic_write_bytes(os.path.join(tmp, name), raw)
        if os.path.lexists(path) and overwrite:
            os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.isdir(old) and not os.path.lexists(path):
            os.rename(old, path)
        raise MicroGPTError(f"could not write {path} ({e.strerror or e}): check the folder's permissions "
                            f"and free space; nothing was written") from None


def json_bytes(obj):
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------- reading


def read_json(folder, name, required=True):
    path = os.path.join(folder, name)
    try:
        size = os.path.getsize(path)
        if size > MAX_JSON[name]:
            raise MicroGPTError(f"{path} is {size:,} bytes, more than such a file can need")
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise MicroGPTError(f"{folder} has no {name}: it is not a Hugging Face model folder "
                                f"(export one with microgpt export)") from None
        return None
    except OSError as e:
        raise MicroGPTError(f"cannot read {path} ({e.strerror}): check the file") from None
    return jsonfile.loads(raw, lambda why: MicroGPTError(f"{path} is not valid JSON ({why})"))


def read_tensors(folder):
    """({name: (shape, flat array)}, dtype "F64"/"F32", metadata) of model.safetensors (or its shards).
    F64 and F32 are read without dependencies; BF16/F16 weights go through torch."""
    index = read_json(folder, "model.safetensors.index.json", required=False)
    if index is not None:
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(f, str) and "/" not in f and "\\" not in f
                                                      for f in weight_map.values()):
            raise MicroGPTError(f"{folder}/model.safetensors.index.json has no valid weight_map: re-download it")
        files = sorted(set(weight_map.values()))
    else:
        files = ["model.safetensors"]
    tensors, dtypes, metadata = {}, set(), {}
    for name in files:
        got, dtype, meta = _read_one(os.path.join(folder, name))
        tensors.update(got)
        dtypes.add(dtype)
        metadata.update(meta)
    if len(dtypes) != 1:
        raise MicroGPTError(f"the weights in {folder} mix dtypes {sorted(dtypes)}: save them in one dtype")
    return tensors, dtypes.pop(), metadata


def _read_one(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MicroGPTError(f"{path} is missing: the folder has no weights") from None
    except OSError as e:
        raise MicroGPTError(f"cannot read {path} ({e.strerror}): check the file") from None
    dtypes = _header_dtypes(raw, path)
    if dtypes <= set(CODES):
        tensors, meta = safetensors.loads(raw, what=f"weights file {path}", fix="download or export it again")
        if len(dtypes) > 1:
            raise MicroGPTError(f"{path} mixes dtypes {sorted(dtypes)}: save it in one dtype")
        return tensors, (dtypes.pop() if dtypes else "F32"), meta
    try:
        import torch
        from safetensors.torch import load as load_torch
    except ImportError:
        raise MicroGPTError(f"{path} holds {'/'.join(sorted(dtypes - set(CODES)))} weights, which need torch and "
                            f"safetensors to convert: pip install 'microgpt[hf]'") from None
    out = {}
    for name, t in load_torch(raw).items():
        if not t.is_floating_point():
            raise MicroGPTError(f"{path}: tensor {name!r} is not floating point")
        out[name] = (list(t.shape), array("f", t.to(torch.float32).flatten().tolist()))
    return out, "F32", {}


def _header_dtypes(raw, path):
    if len(raw) < 8:
        raise MicroGPTError(f"{path} is not a safetensors file (too short): download or export it again")
    (n,) = struct.unpack("<Q", raw[:8])
    header = jsonfile.loads(bytes(raw[8:8 + min(n, safetensors.MAX_HEADER)]),
                            lambda why: MicroGPTError(f"{path} is not a safetensors file ({why})"))
    if not isinstance(header, dict):
        raise MicroGPTError(f"{path} is not a safetensors file (its header is not an object)")
    return {v.get("dtype") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
