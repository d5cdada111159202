"""The python engine's GPT: parameter layout, seeded init, and whole-model gradients vs finite differences."""

import random

import pytest

from microgpt.config import EngineConfig, GPTConfig, TrainConfig
from microgpt.engines.python import fused, textbook
from microgpt.engines.python.engine import Model
from microgpt.params import init_weights, num_params, param_shapes


def test_reference_model_has_4192_parameters_in_the_seed_order():
    config = GPTConfig()
    assert num_params(config) == 4192
    names = [n for n, _ in param_shapes(config)]
    assert names == ["wte", "wpe", "lm_head", "layer0.attn_wq", "layer0.attn_wk", "layer0.attn_wv",
                     "layer0.attn_wo", "layer0.mlp_fc1", "layer0.mlp_fc2"]
    assert dict(param_shapes(config))["layer0.mlp_fc1"] == [64, 16]


def test_init_draws_one_gauss_per_element_row_major():
    config = GPTConfig(vocab_size=5, n_layer=1, n_embd=4, n_head=2, block_size=3)
    w = init_weights(config, random.Random(7))
    rng = random.Random(7)
    expected_first_row = [rng.gauss(0, 0.08) for _ in range(4)]
    assert w["wte"][0] == expected_first_row
    assert len(w["wte"]) == 5 and len(w["wpe"]) == 3 and len(w["layer0.mlp_fc2"][0]) == 16


def _loss_at(model, seqs):
    return textbook.loss(model.state_dict, model.config, seqs).data


def _fused_loss_at(model, seqs):  # (the same forward as textbook's, bit for bit (test_fused), 10x faster)
    return fused.loss(model.state_dict, model.config, seqs).data


@pytest.mark.parametrize("n_layer,n_embd,n_head", [(1, 8, 2), (2, 8, 4)])
def test_model_gradients_match_finite_differences(n_layer, n_embd, n_head):
    config = GPTConfig(vocab_size=6, n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=6)
    rng = random.Random(0)
    model = Model(config, init_weights(config, rng, std=0.5), EngineConfig(graph="textbook"))
    seqs = [[5, 1, 2, 3, 5], [5, 4, 0, 0, 2, 1, 5][:7]]
    loss = textbook.loss(model.state_dict, config, seqs)
    loss.backward()
    h = 1e-6
    for p in rng.sample(model.params, 40):
        analytic = p.grad
        x0 = p.data
        p.data = x0 + h
        up = _fused_loss_at(model, seqs)
        p.data = x0 - h
        down = _fused_loss_at(model, seqs)
        p.data = x0
        assert analytic == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_batch_loss_is_the_mean_over_all_target_tokens():
    config = GPTConfig(vocab_size=6, n_layer=1, n_embd=8, n_head=2, block_size=6)
    model = Model(config, init_weights(config, random.Random(1)), EngineConfig(graph="textbook"))
    a, b = [5, 1, 2, 5], [5, 3, 5]
    losses = model.token_losses([a, b])
    assert [len(l) for l in losses] == [3, 2]
    assert _loss_at(model, [a, b]) == pytest.approx(sum(losses[0] + losses[1]) / 5, rel=1e-13)


def test_weights_scale_each_target_tokens_loss():
    """weights = 1/N everywhere is the mean; a 0/1 mask counts only its tokens; any weights are
    the weighted sum of the token losses, and their gradient is that sum's gradient."""
    config = GPTConfig(vocab_size=6, n_layer=1, n_embd=8, n_head=2, block_size=6)
    model = Model(config, init_weights(config, random.Random(1)), EngineConfig(graph="textbook"))
    seqs = [[5, 1, 2, 5], [5, 3, 5]]
    (la, lb) = model.token_losses(seqs)
    mean, g_mean = model.loss_and_grads(seqs)
    same, g_same = model.loss_and_grads(seqs, [[0.2] * 3, [0.2] * 2])
    assert same == pytest.approx(mean, rel=1e-13)
    assert all(a == pytest.approx(b, rel=1e-12, abs=1e-15) for n in g_mean for ra, rb in zip(g_mean[n], g_same[n])
               for a, b in zip(ra, rb))
    masked, _ = model.loss_and_grads(seqs, [[0, 0.5, 0.5], [0, 0]])
    assert masked == pytest.approx((la[1] + la[2]) / 2, rel=1e-13)
    signed, _ = model.loss_and_grads(seqs, [[1.5, -2, 0], [0.25, 3]])
    assert signed == pytest.approx(1.5 * la[0] - 2 * la[1] + 0.25 * lb[0] + 3 * lb[1], rel=1e-12)


def test_adam_step_moves_weights_and_zeroes_grads():
    config = GPTConfig(vocab_size=6, n_layer=1, n_embd=8, n_head=2, block_size=6)
    model = Model(config, init_weights(config, random.Random(1)), EngineConfig(graph="textbook"))
    before = model.get_weights()
    model.train_step([[5, 1, 2, 5]], 0.01, 1, TrainConfig())
    after = model.get_weights()
    assert before != after
    assert all(p.grad == 0 for p in model.params)
    # bias-corrected Adam's first step moves each weight with a gradient by ~lr
    moved = [abs(a - b) for n in before for ra, rb in zip(after[n], before[n]) for a, b in zip(ra, rb)]
    assert max(moved) == pytest.approx(0.01, rel=1e-3)


def test_weight_decay_is_decoupled_from_the_gradient():
    """AdamW: with no gradient (m = v = 0) a step only shrinks each weight by (1 - lr * wd)."""
    from microgpt.engines.python.optim import Adam
    from microgpt.reference import Value
    params = [Value(2.0), Value(-0.5)]
    Adam(params).step(0.01, 1, TrainConfig(weight_decay=0.1))
    assert [p.data for p in params] == [2.0 * (1 - 0.001), -0.5 * (1 - 0.001)]
