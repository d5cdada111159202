"""Batching for the array engines: pad token sequences of different lengths into rectangles."""


def pad_batch(seqs, pad_id=0):
    """seqs: token lists (inputs seq[:-1], targets seq[1:]) -> (inputs, targets, mask), each [B][T].

    T is the longest sequence's length - 1; mask is 1.0 at real target tokens and 0.0 at padding,
    so the loss is the mean over real targets (with one sequence: exactly the seed's loss).
    """
    T = max(len(s) for s in seqs) - 1
    inputs = [s[:-1] + [pad_id] * (T - len(s) + 1) for s in seqs]
    targets = [s[1:] + [pad_id] * (T - len(s) + 1) for s in seqs]
    mask = [[1.0] * (len(s) - 1) + [0.0] * (T - len(s) + 1) for s in seqs]
    return inputs, targets, mask
