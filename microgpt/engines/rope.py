"""Rotary position embeddings (RoPE): the tables every engine shares, in plain Python.

Instead of adding a learned position vector `wpe[p]` to the token, rotary embeddings turn each
head's query and key by an angle proportional to the position, so that q_p . k_t depends on
the positions only through p - t. The layout of nanochat and of Hugging Face's
NanoChatForCausalLM: a head of d dimensions is two halves x1 = x[:d/2], x2 = x[d/2:], and pair
j = (x1[j], x2[j]) turns by the angle -p f_j with f_j = theta^(-2j / d):

    rope(x) = x * cos + rotate_half(x) * sin,   rotate_half(x) = [x2, -x1]

with cos and sin of the angles [p f_0 .. p f_(d/2-1), p f_0 .. p f_(d/2-1)] (each half repeated).
(Llama's rotate_half is [-x2, x1], the turn the other way: the same idea, other numbers.)
"""

import functools
import math


@functools.lru_cache(maxsize=16)
def rope_tables(head_dim, n_pos, theta):
    """(cos, sin): tuples of n_pos rows of head_dim floats, row p for position p."""
    half = head_dim // 2
    freqs = [1.0 / theta ** (2 * j / head_dim) for j in range(half)]
    angles = [[p * f for f in freqs] * 2 for p in range(n_pos)]
    return (tuple(tuple(math.cos(a) for a in row) for row in angles),
            tuple(tuple(math.sin(a) for a in row) for row in angles))
