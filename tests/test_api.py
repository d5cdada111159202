"""The Python API, as docs/usage.md shows it: its example runs here, line for line."""

import os
import re

from helpers import ROOT


def usage_python_example():
    with open(os.path.join(ROOT, "docs", "usage.md")) as f:
        text = f.read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/usage.md has no Python example"
    return blocks[0]


def test_the_usage_example_runs(tmp_path, monkeypatch, names_path, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(usage_python_example(), "docs/usage.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert len(eval(out[0])) == 5                       # five samples
    val = eval(out[1])
    assert 1.5 < val["loss"] < 3.3 and val["bpb"] > 0 and val["sequences"] == 200
    marks = eval(out[2])
    assert len(marks) == 3 and all(m in ("in train", "in val", "new") for _, m in marks)
    assert (tmp_path / "runs" / "api" / "checkpoint" / "model.safetensors").exists()


def test_resume_through_the_api(tmp_path, names_path):
    from microgpt import GPTConfig, Run, RunConfig, TrainConfig, load_config
    out = str(tmp_path / "r")
    small = dict(model=GPTConfig(n_embd=8, n_head=2), eval_every=0, quiet=True)
    straight = Run(RunConfig(out=str(tmp_path / "s"), train=TrainConfig(steps=20), **small))
    straight.train()
    first = Run(RunConfig(out=out, train=TrainConfig(steps=20), stop_after=8, **small))
    assert first.train() is False
    cfg = load_config(out)
    assert cfg.train.steps == 20 and cfg.model.n_embd == 8 and cfg.stop_after is None
    resumed = Run(cfg, resume=True)
    assert resumed.train() is True
    assert resumed.model.get_weights() == straight.model.get_weights()
    assert resumed.sample(3) == straight.sample(3)
