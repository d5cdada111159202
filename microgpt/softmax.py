"""softmax over plain floats, with the seed's float operations in the seed's order.

The seed computes softmax on Values: subtract the max, exp, a left-to-right sum starting from 0,
then e / total written as e * total**-1. Doing exactly that on floats gives bit-identical
probabilities, so the fused graph's losses and the sampler's draws equal the seed's.
(Python >= 3.12's built-in sum() of floats is compensated, gh-100425: not the seed's sum.)
"""

import math


def softmax(xs):
    max_val = max(xs)
    exps = [math.exp(x + -max_val) for x in xs]
    total = 0
    for e in exps:
        total += e
    inv_total = total ** -1
    return [e * inv_total for e in exps]
