"""The model card (README.md) of an export: YAML front matter with the run's measured figures, then
how it was trained, what it is and how to load it.

`measure` is the one place the export evaluates the run, the way `microgpt eval` does: loss and bits
per byte of the validation split (up to 1000 documents), and with a task (rl --task, --eval-task)
its pass@1 on the run's eval_num held-out problems, greedy, seed 0. It computes in float64 with the
numpy engine where numpy is installed (the same figures as the python engine's, much sooner).
"""

import json
import math
import os
import shlex

from microgpt.errors import MicroGPTError

MAX_DOCS = 1000


def measure(ck):
    """({figure: value}, notes): what the card reports, measured now on the run's data. ck: the
    run's checkpoint, as read (once) for the export."""
    import random

    from microgpt.evaluate import evaluate_task
    from microgpt.stages.open import OpenRun
    from microgpt.tasks import get_task
    figures, notes = {}, []
    try:
        import numpy  # noqa: F401
        run = OpenRun(ck, engine="numpy", engine_options={"dtype": "float64"})
    except ImportError:
        run = OpenRun(ck)
    if not run.reads_data:
        notes.append("no loss figures: the run trained on a task's problems, not on a data file")
    else:
        try:
            r = run.evaluate_split("val", MAX_DOCS)
            if r["sequences"] and math.isfinite(r["loss"]):
                figures["val_loss"], figures["val_bpb"], figures["val_sequences"] = r["loss"], r["bpb"], r["sequences"]
            else:
                notes.append("no loss figures: the run has no validation data")
        except MicroGPTError as e:  # the data file moved: the card says so and the export goes on
            notes.append(f"no loss figures ({e})")
    name = run.cfg.rl.task or run.cfg.eval_task
    if name:
        task = get_task(name)
        if not task.chat or "<|assistant_start|>" in run.tokenizer.special_tokens:
            r = evaluate_task(run.model, run.tokenizer, run.config.block_size, task, run.cfg.eval_num,
                              random.Random(0))
            figures["task"], figures["task_num"], figures["pass@1"] = name, run.cfg.eval_num, r["pass@1"]
    return figures, notes


def _y(value):
    """A YAML scalar: JSON's spelling of it is valid YAML."""
    return json.dumps(value, ensure_ascii=False)


def front_matter(name, kind, figures, fingerprint, ck, data_name):
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation", "tags:", "- microgpt",
             "- custom_code" if kind == "microgpt" else "- nanochat"]
    metrics = [("val loss (nats/token)", "loss", figures.get("val_loss")),
               ("val bits per byte", "bits_per_byte", figures.get("val_bpb"))]
    metrics = [m for m in metrics if m[2] is not None]
    if metrics or "pass@1" in figures:
        lines += ["model-index:", f"- name: {_y(name)}", "  results:"]
    if metrics:
        lines += ["  - task:", "      type: text-generation", "    dataset:", f"      name: {_y(data_name)}",
                  "      type: text", "    metrics:"]
        for label, typ, value in metrics:
            lines += [f"    - type: {typ}", f"      name: {_y(label)}", f"      value: {value:.6g}"]
    if "pass@1" in figures:
        label = f"pass@1 (greedy, {figures['task_num']} held-out problems)"
        lines += ["  - task:", "      type: text-generation", "    dataset:", f"      name: {_y(figures['task'])}",
                  "      type: microgpt-task", "    metrics:", "    - type: pass@1", f"      name: {_y(label)}",
                  f"      value: {figures['pass@1']:.6g}"]
    lines += ["microgpt:", f"  fingerprint: {_y(fingerprint)}", f"  step: {ck.state['step']}",
              f"  tokenizer: {_y(ck.tokenizer.to_dict()['type'])}", f"  vocab_size: {ck.config.vocab_size}"]
    for key in ("val_loss", "val_bpb", "pass@1"):
        if key in figures:
            lines.append(f"  {_y(key)}: {figures[key]:.6g}")
    return "\n".join(lines + ["---", ""])


def card(name, kind, ck, figures, notes, fingerprint):
    """The README.md text."""
    raw = ck.raw_config
    data = raw.get("data") or {}
    run_cfg = raw.get("run") or {}
    if isinstance(data.get("path"), str):
        data_name = os.path.basename(data["path"])
    elif (raw.get("train") or {}).get("data_mode") == "chat":  # rl on a chat task: its problems, no file
        data_name = f"problems of the task {(run_cfg.get('rl') or {}).get('task')}"
    else:
        data_name = "names.txt (the default)"
    c = ck.config
    remote = kind == "microgpt"
    commands = [raw.get("command")] + list(raw.get("resumed") or [])
    shown = "\n".join(shlex.join(map(str, cmd)) for cmd in commands if isinstance(cmd, list)) or "(not recorded)"
    if kind == "nanochat":
        what = ("nanochat's architecture: rotary positions, q and k RMS-normalised after the rotation, ReLU², "
                "a final norm, a tanh soft cap on the logits, untied lm_head, no biases, gainless RMSNorm. "
                "transformers runs it natively (NanoChatForCausalLM): no remote code.")
    else:
        what = ("microgpt's own architecture (the seed's: learned positions, gainless RMSNorm after the embedding "
                "and before attention and MLP, ReLU, no final norm, untied lm_head, no biases). No transformers "
                "class has exactly this, so the folder ships its code (modeling_microgpt.py, "
                "configuration_microgpt.py): load it with trust_remote_code=True.")
    chat = "<|assistant_start|>" in ck.tokenizer.special_tokens
    load = [f"tok = AutoTokenizer.from_pretrained(PATH{', trust_remote_code=True' if remote else ''})",
            f"model = AutoModelForCausalLM.from_pretrained(PATH{', trust_remote_code=True' if remote else ''})"]
    if chat:
        load.append('ids = tok.apply_chat_template([{"role": "user", "content": "123+456"}], '
                    'add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]')
    elif (raw.get("train") or {}).get("data_mode") == "stream":
        load.append('ids = tok("\\n", return_tensors="pt")["input_ids"]  # continuous text: continue a line break')
    else:
        load.append('ids = tok("<|bos|>", return_tensors="pt")["input_ids"]  # a new document starts at <|bos|>')
    load.append("print(tok.decode(model.generate(ids, do_sample=False)[0, ids.shape[1]:], skip_special_tokens=True))")
    rows = [("val loss (nats/token)", "val_loss"), ("val bits per byte", "val_bpb")]
    table = [f"| {label} | {figures[key]:.4f} |" for label, key in rows if key in figures]
    if "pass@1" in figures:
        table.append(f"| {figures['task']} pass@1 (greedy, {figures['task_num']} held-out problems) | "
                     f"{figures['pass@1']:.4f} |")
    body = [
        f"# {name}", "",
        f"A {'chat ' if chat else ''}GPT trained with microgpt "
        f"(step {ck.state['step']:,}): {c.n_layer} layer{'s' if c.n_layer > 1 else ''}, n_embd {c.n_embd}, "
        f"{c.n_head} heads, context {c.block_size} tokens, a {ck.tokenizer.to_dict()['type']} tokenizer of "
        f"{c.vocab_size} tokens, trained on {data_name}.", "",
        "## Architecture", "", what, "",
        "## How it was trained", "", "```", shown, "```", "",
        "## Measured", "",
        *(["| figure | value |", "|---|---|", *table] if table else ["(no figures were measured)"]),
        *([""] + [f"Note: {n}" for n in notes] if notes else []), "",
        f"Loss and bits per byte are what `microgpt eval --out RUN` prints for the validation split "
        f"({figures.get('val_sequences', 0)} sequences), computed in float64 at export.", "",
        "## Use it", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
        *load, "```", "",
        "## Fingerprint", "",
        f"`{fingerprint}`: the SHA-256 of this tokenizer and these weights together. config.json, "
        "tokenizer_config.json and model.safetensors carry it; `microgpt import` recomputes it and refuses a "
        "folder whose tokenizer does not belong to its weights.", ""]
    return front_matter(name, kind, figures, fingerprint, ck, data_name) + "\n".join(body)
