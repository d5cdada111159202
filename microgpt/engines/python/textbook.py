"""The textbook graph: the seed's GPT, one Value node per +, *, **, log, exp and relu.

Slow on purpose: it is the algorithm exactly as written in the seed, kept for teaching and as
the yardstick every faster engine is checked against.
"""


def linear(x, w):
    return [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]


def softmax(logits):
    max_val = max(val.data for val in logits)  # subtracting the max changes nothing but overflow
    exps = [(val - max_val).exp() for val in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x):
    ms = sum(xi * xi for xi in x) / len(x)
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def gpt(state_dict, config, token_id, pos_id, keys, values):
    """Logits for the token after `token_id` at position `pos_id`; appends this token's k, v to the cache."""
    n_head, head_dim = config.n_head, config.head_dim
    tok_emb = state_dict["wte"][token_id]
    pos_emb = state_dict["wpe"][pos_id]
    x = [t + p for t, p in zip(tok_emb, pos_emb)]
    x = rmsnorm(x)
    for li in range(config.n_layer):
        # 1) multi-head causal self-attention: this token looks at itself and every earlier one
        x_residual = x
        x = rmsnorm(x)
        q = linear(x, state_dict[f"layer{li}.attn_wq"])
        k = linear(x, state_dict[f"layer{li}.attn_wk"])
        v = linear(x, state_dict[f"layer{li}.attn_wv"])
        keys[li].append(k)
        values[li].append(v)
        x_attn = []
        for h in range(n_head):
            hs = h * head_dim
            q_h = q[hs:hs + head_dim]
            k_h = [ki[hs:hs + head_dim] for ki in keys[li]]
            v_h = [vi[hs:hs + head_dim] for vi in values[li]]
            attn_logits = [sum(q_h[j] * k_h[t][j] for j in range(head_dim)) / head_dim ** 0.5
                           for t in range(len(k_h))]
            attn_weights = softmax(attn_logits)
            head_out = [sum(attn_weights[t] * v_h[t][j] for t in range(len(v_h))) for j in range(head_dim)]
            x_attn.extend(head_out)
        x = linear(x_attn, state_dict[f"layer{li}.attn_wo"])
        x = [a + b for a, b in zip(x, x_residual)]
        # 2) MLP: think about what was gathered, one position at a time
        x_residual = x
        x = rmsnorm(x)
        x = linear(x, state_dict[f"layer{li}.mlp_fc1"])
        x = [xi.relu() for xi in x]
        x = linear(x, state_dict[f"layer{li}.mlp_fc2"])
        x = [a + b for a, b in zip(x, x_residual)]
    return linear(x, state_dict["lm_head"])


def sequence_losses(state_dict, config, seq):
    """The cross-entropy loss Value at each position of one token sequence."""
    keys, values = [[] for _ in range(config.n_layer)], [[] for _ in range(config.n_layer)]
    losses = []
    for pos_id in range(len(seq) - 1):
        token_id, target_id = seq[pos_id], seq[pos_id + 1]
        logits = gpt(state_dict, config, token_id, pos_id, keys, values)
        probs = softmax(logits)
        losses.append(-probs[target_id].log())
    return losses


def loss(state_dict, config, seqs):
    """Mean cross-entropy over every target token of every sequence (one sequence: the seed's loss)."""
    losses = [l for seq in seqs for l in sequence_losses(state_dict, config, seq)]
    return (1 / len(losses)) * sum(losses)
