"""Checkpoints: a folder any engine can load, written atomically, never pickled.

run_dir/checkpoint/
  model.safetensors      weights by the seed's names, shapes [out, in] (F64 or F32)
  optimizer.safetensors  Adam moments, "m.<name>" and "v.<name>"
  config.json            the stage that made the run (pretrain, sft, rl), model config, tokenizer,
                         training/engine/run config, data source, the command that started the
                         run and those that resumed it
  state.json             step reached, tokens and time trained, the random stream's state
A new checkpoint is written in full to a temporary folder and then swapped in by renames, so
a crash, a kill or a full disk at any moment leaves a whole checkpoint (the new one or the
previous one) that load() finds. A reader opens all the files first, through one handle on the
folder, so a save swapping meanwhile never mixes two checkpoints.

load() trusts no byte of them: each file's size is checked before it is read (the weight files
against the parameter count config.json gives, so an absurd config allocates nothing), its JSON
strictly parsed, every config section type- and value-checked, the tokenizer matched to the
model, the random stream's state and the step checked, the tensors' shapes and values (finite,
of sane size, Adam's v >= 0). Anything wrong is one MicroGPTError naming the file and what to do.

The modules: layout.py (names and limits), write.py (save), snapshot.py (the files of one
checkpoint, opened together), checks.py (what every file must hold), read.py (load), run.py
(the RunConfig, stage and random stream a folder holds).
"""

from microgpt.checkpoint.layout import CKPT, FIX, FORMAT, MAX_MAGNITUDE, exists
from microgpt.checkpoint.read import Checkpoint, load, load_config, load_weights, stamp
from microgpt.checkpoint.run import rng_state_from_json, rng_state_to_json, sections
from microgpt.checkpoint.write import save, save_weights

__all__ = ["CKPT", "FIX", "FORMAT", "MAX_MAGNITUDE", "Checkpoint", "exists", "load", "load_config", "load_weights",
           "rng_state_from_json", "rng_state_to_json", "save", "save_weights", "sections", "stamp"]
