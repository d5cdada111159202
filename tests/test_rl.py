"""Reinforcement learning: the surrogate loss's gradient is the REINFORCE estimator, engines agree
on an RL step, the KL penalty is 0 against the model itself, resume is exact, and the CLI."""

import json
import math
import random

import pytest
from helpers import FLOAT64, assert_one_line_error, max_abs_diff, run_cli

from microgpt import checkpoint
from microgpt.config import GPTConfig, TrainConfig
from microgpt.engines import get_engine
from microgpt.params import init_weights
from microgpt.stages.open import open_run
from microgpt.stages.rl import group_advantages, policy_weights
from microgpt.tasks import get_task

CONFIG = GPTConfig(vocab_size=6, n_layer=1, n_embd=8, n_head=2, block_size=8)
# two prompts (BOS=5, then a "question"), answers of different lengths ending in the stop token 5
SEQS = [[5, 1, 2, 3, 5], [5, 1, 4, 5], [5, 2, 0, 0, 1, 5], [5, 2, 3, 5]]
N_PROMPT = [2, 2, 2, 2]
REWARDS = [1.0, 0.0, 0.0, 1.0]


def models(engine="python", seed=3, std=0.5):
    weights = init_weights(CONFIG, random.Random(seed), std=std)
    return weights, get_engine(engine).Model(CONFIG, weights, FLOAT64[engine])


def test_group_advantages():
    assert group_advantages([1, 0, 0, 0], 2) == [0.5, -0.5, 0.0, 0.0]
    a = group_advantages([1, 0, 1, 1], 4, std_normalize=True)
    assert sum(a) == pytest.approx(0) and a[0] == pytest.approx(1 / math.sqrt(3), rel=1e-5)
    assert group_advantages([1, 1], 2, std_normalize=True) == [0.0, 0.0]  # all alike: nothing to learn


def test_the_loss_gradient_is_the_reinforce_estimator():
    """d/dtheta of our weighted loss = -(1/N) sum_i A_i d/dtheta log p(answer_i | prompt_i): checked
    against central differences of the log-likelihood of the answers, parameter by parameter."""
    weights, model = models()
    adv = group_advantages(REWARDS, 2)
    w, _ = policy_weights(SEQS, N_PROMPT, adv)
    n = sum(len(s) - p for s, p in zip(SEQS, N_PROMPT))
    assert n == 3 + 2 + 4 + 2
    _, grads = model.loss_and_grads(SEQS, w)

    def objective(wts):  # -(1/N) sum_i A_i log p(answer_i): log p from the model's token losses
        m = get_engine("python").Model(CONFIG, wts, FLOAT64["python"])
        losses = m.token_losses(SEQS)
        return sum(a / n * sum(l[t] for t in range(p - 1, len(s) - 1))
                   for a, l, s, p in zip(adv, losses, SEQS, N_PROMPT))

    h, rng = 1e-6, random.Random(1)
    for name in ("wte", "lm_head", "layer0.attn_wq", "layer0.mlp_fc2"):
        for _ in range(6):
            r, c = rng.randrange(len(weights[name])), rng.randrange(len(weights[name][0]))
            up = {k: [list(row) for row in v] for k, v in weights.items()}
            down = {k: [list(row) for row in v] for k, v in weights.items()}
            up[name][r][c] += h
            down[name][r][c] -= h
            numeric = (objective(up) - objective(down)) / (2 * h)
            assert grads[name][r][c] == pytest.approx(numeric, rel=1e-5, abs=1e-9)
    # and the prompt carries no weight
    assert all(x == 0 for wi, p in zip(w, N_PROMPT) for x in wi[:p - 1])


def test_kl_is_zero_against_the_model_itself():
    weights, policy = models()
    reference = get_engine("python").Model(CONFIG, weights, FLOAT64["python"])
    adv = group_advantages(REWARDS, 2)
    w_kl, kl = policy_weights(SEQS, N_PROMPT, adv, policy, reference, beta=0.5)
    w_plain, _ = policy_weights(SEQS, N_PROMPT, adv)
    assert kl == 0.0 and w_kl == w_plain
    # against another model: positive, and the weights change
    other = get_engine("python").Model(CONFIG, init_weights(CONFIG, random.Random(9), std=0.5), FLOAT64["python"])
    w_other, kl_other = policy_weights(SEQS, N_PROMPT, adv, policy, other, beta=0.5)
    assert kl_other > 0 and w_other != w_plain


def test_the_kl_weights_are_the_gradient_of_the_kl_penalty():
    """With zero advantages, the weights' gradient = d/dtheta beta * mean_t k3(t), k3 = r - log r - 1."""
    weights, policy = models()
    ref_weights = init_weights(CONFIG, random.Random(9), std=0.5)
    reference = get_engine("python").Model(CONFIG, ref_weights, FLOAT64["python"])
    beta = 0.7
    w, _ = policy_weights(SEQS, N_PROMPT, [0.0] * 4, policy, reference, beta)
    _, grads = policy.loss_and_grads(SEQS, w)

    def penalty(wts):
        m = get_engine("python").Model(CONFIG, wts, FLOAT64["python"])
        _, kl = policy_weights(SEQS, N_PROMPT, [0.0] * 4, m, reference, beta)
        return beta * kl

    h = 1e-6
    for name, r, c in (("lm_head", 2, 3), ("wte", 1, 0), ("layer0.attn_wv", 4, 4)):
        up = {k: [list(row) for row in v] for k, v in weights.items()}
        down = {k: [list(row) for row in v] for k, v in weights.items()}
        up[name][r][c] += h
        down[name][r][c] -= h
        assert grads[name][r][c] == pytest.approx((penalty(up) - penalty(down)) / (2 * h), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_engines_agree_on_one_rl_step(engine):
    pytest.importorskip(engine)
    weights, py = models()
    other = get_engine(engine).Model(CONFIG, weights, FLOAT64[engine])
    reference = get_engine("python").Model(CONFIG, init_weights(CONFIG, random.Random(9), std=0.5), FLOAT64["python"])
    w, _ = policy_weights(SEQS, N_PROMPT, group_advantages(REWARDS, 2), py, reference, 0.2)
    tc = TrainConfig(lr=0.01)
    assert abs(py.train_step(SEQS, 0.01, 1, tc, w) - other.train_step(SEQS, 0.01, 1, tc, w)) <= 1e-10
    assert max_abs_diff(py.get_weights(), other.get_weights()) <= 1e-10


@pytest.fixture(scope="module")
def names_run(tmp_path_factory, names_path):
    out = tmp_path_factory.mktemp("rl") / "names"
    run_cli("train", "--out", out, "--steps", "100", "--eval-every", "0", "--num-samples", "0", check=True)
    return out


RL = ["--task", "names-ending:a", "--group-size", "8", "--prompts", "1", "--lr", "0.01", "--lr-schedule", "constant",
      "--steps", "16", "--eval-every", "8", "--eval-num", "30"]


def test_rl_on_names_resumes_exactly(names_run, tmp_path):
    straight = run_cli("rl", "--from", names_run, *RL, "--kl", "0.1", "--out", tmp_path / "a", check=True)
    assert "step    0 /   16 | held-out reward" in straight.stdout and "kl " in straight.stdout
    run_cli("rl", "--from", names_run, *RL, "--kl", "0.1", "--out", tmp_path / "b", "--stop-after", "5", check=True)
    run_cli("rl", "--out", tmp_path / "b", "--resume", check=True)
    a, b = checkpoint.load(str(tmp_path / "a")), checkpoint.load(str(tmp_path / "b"))
    assert a.weights == b.weights and a.optimizer == b.optimizer  # the sampling stream resumes too
    rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and "test_reward" in rows[0] and "test_new" in rows[0]
    for r in rows[1:]:
        assert 0 <= r["reward_mean"] <= 1 and r["kl"] >= 0 and 0 < r["unique"] <= 1 and 0 <= r["new"] <= 1
    rows_b = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["reward_mean"] for r in rows_b if "reward_mean" in r] == [r["reward_mean"] for r in rows[1:]]


def test_rl_on_a_chat_task_in_every_engine(tmp_path, names_path):
    run_cli("tasks", "make", "--task", "add:1", "--num", "60", "--to", tmp_path / "add.jsonl", check=True)
    run_cli("sft", "--data", tmp_path / "add.jsonl", "--n-embd", "16", "--n-head", "2", "--block-size", "12",
            "--steps", "40", "--batch-size", "8", "--eval-every", "0", "--out", tmp_path / "sft", check=True)
    common = ["--from", tmp_path / "sft", "--task", "add:1", "--group-size", "4", "--prompts", "3", "--steps", "4",
              "--eval-every", "4", "--eval-num", "8", "--dtype", "float64"]
    outs = {}
    for engine in ("python", "numpy", "torch"):
        extra = ["--device", "cpu"] if engine == "torch" else []
        p = run_cli("rl", *common, "--engine", engine, *extra, "--out", tmp_path / engine, check=True)
        assert "held-out pass@1" in p.stdout
        outs[engine] = checkpoint.load(str(tmp_path / engine)).weights
    assert max_abs_diff(outs["python"], outs["numpy"]) <= 1e-9 and max_abs_diff(outs["python"], outs["torch"]) <= 1e-9

    # an rl run on a chat task has no data file: eval scores its task, sample answers held-out problems
    rl = tmp_path / "numpy"
    ev = run_cli("eval", "--out", rl, "--num", "8", check=True)
    assert "task add:1, 8 held-out problems" in ev.stdout and "pass@1 (greedy):" in ev.stdout
    assert "scoring that task" in ev.stderr and "Traceback" not in ev.stderr
    lines = run_cli("sample", "--out", rl, "--num", "3", check=True).stdout.splitlines()
    assert len(lines) == 3 and all(" -> " in l and (l.endswith("(right)") or l.endswith("(wrong)")) for l in lines)
    run = open_run(str(rl))
    assert len(run.sample(2, prompt="1+2")) == 2 and run.evaluate()["val"]["sequences"] == 0
    questions = [q for q, _, mark in run.answers(4, temperature=0)]
    assert questions == [p.prompt for p in get_task("add:1").problems("test", 4)]
    # resumed: the command that started the run is kept, the resume recorded after it; step 0 stays logged
    run_cli("rl", "--out", rl, "--resume", "--steps", "6", check=True)
    raw = json.loads((rl / "checkpoint" / "config.json").read_text())
    assert raw["command"][:3] == ["microgpt", "rl", "--from"] and raw["resumed"] == [
        ["microgpt", "rl", "--out", str(rl), "--resume", "--steps", "6"]]
    steps = [json.loads(l)["step"] for l in (rl / "metrics.jsonl").read_text().splitlines()]
    assert steps[0] == 0 and steps[-1] == 6


def test_bad_rl_input(names_run, tmp_path):
    assert_one_line_error(run_cli("rl", "--from", names_run, "--out", tmp_path / "x"), "--task")
    assert_one_line_error(run_cli("rl", "--task", "names-ending:a", "--out", tmp_path / "x"), "--from")
    assert_one_line_error(run_cli("rl", "--from", names_run, "--task", "add", "--out", tmp_path / "x"),
                          "chat task", "sft")
    assert_one_line_error(run_cli("rl", "--from", names_run, "--task", "names-ending:a", "--group-size", "1",
                                  "--out", tmp_path / "x"), "--group-size")
    assert_one_line_error(run_cli("rl", "--from", names_run, "--task", "names-ending:a", "--kl", "nan",
                                  "--out", tmp_path / "x"), "--kl")
    assert_one_line_error(run_cli("rl", "--from", names_run, "--task", "names-ending:a", "--out", tmp_path / "x",
                                  env={"WORLD_SIZE": "2"}), "one process")
    assert not (tmp_path / "x").exists()
