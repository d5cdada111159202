"""The parameters' names and shapes, and the seeded initialisation every engine shares.

Every weight is rng.gauss(0, INIT_STD), one call per element, row-major, matrices in the seed's
order. Engines convert these floats, so one seed gives the same starting weights everywhere.
"""

from microgpt.config import INIT_STD


def param_shapes(config):
    """(name, [out, in]) for every matrix, in the seed's creation order. A matrix is [out][in].
    With rotary positions (config.pos "rope") there is no `wpe`; the order is otherwise the same."""
    V, C, T = config.vocab_size, config.n_embd, config.block_size
    shapes = [("wte", [V, C]), ("wpe", [T, C]), ("lm_head", [V, C])]
    if config.pos == "rope":
        del shapes[1]
    for i in range(config.n_layer):
        shapes += [(f"layer{i}.attn_wq", [C, C]), (f"layer{i}.attn_wk", [C, C]),
                   (f"layer{i}.attn_wv", [C, C]), (f"layer{i}.attn_wo", [C, C]),
                   (f"layer{i}.mlp_fc1", [4 * C, C]), (f"layer{i}.mlp_fc2", [C, 4 * C])]
    return shapes


def param_slices(config):
    """(name, [out, in], start, end): where each matrix lies when all of them are laid out
    flat, one after another, in the seed's order (as engines keep them for Adam)."""
    out, start = [], 0
    for name, (n_out, n_in) in param_shapes(config):
        out.append((name, [n_out, n_in], start, start + n_out * n_in))
        start += n_out * n_in
    return out


def num_params(config):
    """The total of param_shapes, by arithmetic: an absurd config (a hostile checkpoint's) is
    measured without building a list of its matrices first."""
    V, C, T, L = config.vocab_size, config.n_embd, config.block_size, config.n_layer
    wpe = 0 if config.pos == "rope" else T * C
    return 2 * V * C + wpe + L * (4 * C * C + 2 * 4 * C * C)


def init_weights(config, rng, std=INIT_STD):
    """{name: list of rows of floats}, drawn from `rng` (a random.Random) in the seed's order."""
    return {name: [[rng.gauss(0, std) for _ in range(n_in)] for _ in range(n_out)]
            for name, (n_out, n_in) in param_shapes(config)}


def grow_rows(weights, config, rng, std=INIT_STD):
    """wte and lm_head with a fresh row (gauss(0, std), drawn from rng) for every id from their
    old length up to config.vocab_size; every other matrix, and every old row, as it was."""
    out = dict(weights)
    for name in ("wte", "lm_head"):
        rows = [list(r) for r in weights[name]]
        rows += [[rng.gauss(0, std) for _ in range(config.n_embd)] for _ in range(config.vocab_size - len(rows))]
        out[name] = rows
    return out
