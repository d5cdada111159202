"""Sampling policy, shared by every engine: the engine gives logits, this picks tokens.

The arithmetic copies the seed's Value softmax float for float (l / T computed as l * T**-1,
a left-to-right sum, e * total**-1) so that the same logits draw the same samples.
"""

import math


def probs_from_logits(logits, temperature=1.0, top_k=0):
    scaled = [l * temperature ** -1 for l in logits]
    if top_k and top_k < len(scaled):
        kth = sorted(scaled, reverse=True)[top_k - 1]
        scaled = [s if s >= kth else -math.inf for s in scaled]
    max_val = max(scaled)
    exps = [math.exp(s - max_val) for s in scaled]
    total = 0.0
    for e in exps:  # left to right, as the seed's Value sum (not the compensated built-in sum)
        total += e
    inv = total ** -1
    return [e * inv for e in exps]


def generate(model, tokenizer, rng, block_size, temperature=0.5, top_k=0, prompt="",
             max_new_tokens=None, stop_at_bos=True):
    """One sample: feed [BOS] + prompt, then draw tokens until BOS (docs) or max_new_tokens.

    Returns the generated text (prompt included). When the context reaches block_size the cache
    is rebuilt from the last block_size // 2 tokens, so text can run past the model's window.
    """
    prompt_ids = tokenizer.encode(prompt)
    context = ([tokenizer.BOS] if stop_at_bos or not prompt_ids else []) + prompt_ids
    if max_new_tokens is None:
        max_new_tokens = block_size - len(prompt_ids)  # the seed: stop after block_size positions
    out = list(prompt_ids)
    gen, pos, logits = model.generator(), 0, None
    for tok in context:
        if pos == block_size:
            break
        logits = gen.next_logits(tok, pos)
        pos += 1
    for _ in range(max(0, max_new_tokens)):
        if logits is None:
            break
        probs = probs_from_logits(logits, temperature, top_k)
        token_id = rng.choices(range(len(probs)), weights=probs)[0]
        if token_id == tokenizer.BOS and stop_at_bos:
            break
        out.append(token_id)
        if pos == block_size:
            if stop_at_bos:
                break  # a document is at most block_size tokens long
            keep = out[-(block_size // 2):]
            gen, pos = model.generator(), 0
            for tok in keep[:-1]:
                gen.next_logits(tok, pos)
                pos += 1
            token_id = keep[-1]
        logits = gen.next_logits(token_id, pos)
        pos += 1
    return tokenizer.decode(out)
