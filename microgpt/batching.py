"""Batching for the array engines: pad token sequences of different lengths into rectangles."""


def pad_batch(seqs, weights=None, pad_id=0):
    """seqs: token lists (inputs seq[:-1], targets seq[1:]) -> (inputs, targets, w), each [B][T].

    T is the longest sequence's length - 1. w holds the given per-target weights, or 1.0 at every
    real target when weights is None; padding always weighs 0.0, so it adds nothing to the loss.
    """
    T = max(len(s) for s in seqs) - 1
    if weights is None:
        weights = [[1.0] * (len(s) - 1) for s in seqs]
    inputs = [s[:-1] + [pad_id] * (T - len(s) + 1) for s in seqs]
    targets = [s[1:] + [pad_id] * (T - len(s) + 1) for s in seqs]
    w = [list(ws) + [0.0] * (T - len(s) + 1) for s, ws in zip(seqs, weights)]
    return inputs, targets, w
