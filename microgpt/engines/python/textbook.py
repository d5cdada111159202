"""The textbook graph: the seed's GPT exactly as microgpt/reference.py writes it, one Value node
per +, *, **, log, exp and relu. Slow on purpose: it is the algorithm as written, kept for
teaching and as the yardstick every faster engine is checked against.

A graph module offers loss(state_dict, config, seqs, weights) -> loss Value, backward(loss),
token_losses(state_dict, config, seq) and gpt(...); the fused graph offers the same.
"""

from microgpt.reference import gpt, token_losses

__all__ = ["backward", "gpt", "loss", "token_losses"]


def loss(state_dict, config, seqs, weights=None):
    """The mean cross-entropy over every target token of `seqs` (one sequence: the seed's loss),
    or with `weights` (one per target token) their weighted sum."""
    losses = [l for seq in seqs for l in token_losses(state_dict, config, seq)]
    if weights is None:
        return (1 / len(losses)) * sum(losses)
    return sum(w * l for w, l in zip((w for ws in weights for w in ws), losses))


def backward(loss_node):
    loss_node.backward()  # search the graph, then the chain rule
