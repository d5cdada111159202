"""Sampling, shared by every engine: the engine gives logits, this picks tokens.

Temperature 0 means greedy decoding (the likeliest token, no random draw) in every command.
Otherwise the arithmetic copies the seed's (l / T computed as l * T**-1, then its softmax), so
the same logits draw the same samples from the same random stream.
"""

import math

from microgpt.errors import MicroGPTError
from microgpt.softmax import softmax


def probs_from_logits(logits, temperature=1.0, top_k=0):
    scaled = [l * temperature ** -1 for l in logits]
    if top_k and top_k < len(scaled):
        kth = sorted(scaled, reverse=True)[top_k - 1]
        scaled = [s if s >= kth else -math.inf for s in scaled]
    return softmax(scaled)


def pick(logits, rng, temperature, top_k=0):
    """The next token: the argmax at temperature 0, else a draw from softmax(logits / T) (top-k)."""
    if temperature == 0:
        return max(range(len(logits)), key=logits.__getitem__)
    probs = probs_from_logits(logits, temperature, top_k)
    if not math.isfinite(sum(probs)):  # NaN logits: the weights overflow somewhere
        raise MicroGPTError("the model's next-token probabilities are not numbers (NaN): its weights have "
                            "diverged; train it again, with a lower --lr")
    return rng.choices(range(len(probs)), weights=probs)[0]


def generate(model, prompts, rng, block_size, max_new_tokens=None, temperature=0.5, top_k=0, stop=(),
             slide=False, on_token=None, keep_stop=False):
    """Continue each prompt (a non-empty list of token ids); returns the new tokens of each.

    All rows advance together, one position per model call -- a prompt is fed token by token
    too, so prompts of different lengths share every call, and each row starts drawing when its
    prompt is used up (rows draw in order, so a batch is reproducible from the random stream).
    A row ends at a token in `stop` (returned last only with keep_stop: RL trains on it, as the
    policy's choice to end), after max_new_tokens, or when the context
    is full (block_size positions); with `slide`, a full context is instead rebuilt from the
    last block_size // 2 tokens of every row, so text can run past the model's window.
    on_token(row, token), if given, hears every token as it is drawn (to print it at once).
    """
    for p in prompts:
        if not p or len(p) > block_size:
            raise MicroGPTError(f"a prompt of {len(p)} tokens does not fit: the model reads 1 to "
                                f"{block_size} tokens (its block_size); use a shorter prompt")
    seqs = [list(p) for p in prompts]
    new = [[] for _ in prompts]
    live = [max_new_tokens is None or max_new_tokens > 0 for _ in prompts]
    gen, pos, shift = model.generator(len(prompts)), 0, 0  # seqs[b][shift + pos] is fed at `pos`
    while any(live):
        if pos == block_size:
            if not slide:
                break
            keep = block_size // 2  # the window restarts from the last `keep` tokens, the pending one last
            shift += block_size + 1 - keep
            gen, pos = model.generator(len(prompts)), 0
        tokens = [s[shift + pos] if shift + pos < len(s) else 0 for s in seqs]  # (ended rows: any token)
        logits = gen.next_logits(tokens, pos)
        pos += 1
        for b, s in enumerate(seqs):
            if not live[b] or shift + pos < len(s):  # ended, or its prompt goes on
                continue
            token = pick(logits[b], rng, temperature, top_k)
            if token in stop:
                live[b] = False
                if keep_stop:
                    new[b].append(token)
                continue
            s.append(token)
            new[b].append(token)
            if on_token:
                on_token(b, token)
            if max_new_tokens is not None and len(new[b]) >= max_new_tokens:
                live[b] = False
    return new


def sample_texts(model, tokenizer, config, data_mode, rng, num, temperature=0.5, top_k=0, prompt="",
                 max_new_tokens=None):
    """`num` samples, one after another (so the random stream is drawn as the seed draws it)."""
    docs = data_mode == "docs"
    prompt_ids = tokenizer.encode(prompt)
    if docs:
        context = [tokenizer.BOS] + prompt_ids
    else:
        context = prompt_ids or tokenizer.encode(default_stream_prompt(tokenizer))
    out = []
    for _ in range(num):
        new = generate(model, [context], rng, config.block_size, None if docs else (max_new_tokens or 500),
                       temperature, top_k, stop=(tokenizer.BOS,) if docs else (), slide=not docs)[0]
        out.append(tokenizer.decode(prompt_ids + new) if docs else tokenizer.decode(context + new))
    return out


def default_stream_prompt(tokenizer):
    """Continuous text has no BOS in training: start a sample from a newline (or the first token)."""
    try:
        tokenizer.encode("\n")
        return "\n"
    except MicroGPTError:
        return tokenizer.piece(0)
