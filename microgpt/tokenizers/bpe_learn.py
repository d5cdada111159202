"""Learning BPE merges from text: the chunks of the split pattern counted once, then the most
frequent adjacent pair merged into a new token, again and again (bpe.py uses the merges).

`learn_merges_textbook` is the algorithm as it is usually written (count every pair of every
chunk, merge the top one, repeat); `learn_merges` gives the same merges much faster by updating
the counts of only the chunks a merge touches (its docstring explains the bookkeeping).
"""

import heapq
from collections import Counter, defaultdict

from microgpt.tokenizers.pattern import PATTERN, stdlib_regex

INF = float("inf")


def utf8(chunk):
    """The UTF-8 bytes of a chunk. A str can hold lone surrogates (half of a UTF-16 pair, e.g. from
    a broken JSON string), which are not text and have no UTF-8: they become U+FFFD, as in tiktoken
    (and a well-formed pair of surrogates becomes its character)."""
    try:
        return chunk.encode("utf-8")
    except UnicodeEncodeError:
        return chunk.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def merge(ids, pair, new_id):
    """`ids` with every occurrence of `pair`, left to right, replaced by `new_id`."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def count_chunks(text, pattern=PATTERN):
    """(words, counts): the distinct chunks of `text` (a str, or an iterable of str documents,
    split separately) as lists of byte ids, and how many times each occurs, in first-seen order."""
    split = stdlib_regex(pattern).findall
    chunk_counts = Counter()
    for doc in [text] if isinstance(text, str) else text:
        chunk_counts.update(split(doc))
    by_bytes = Counter()  # two chunks can have the same bytes only through lone surrogates
    for chunk, n in chunk_counts.items():
        by_bytes[utf8(chunk)] += n
    return [list(b) for b in by_bytes], list(by_bytes.values())


def learn_merges_textbook(words, counts, n_merges):
    """The algorithm as stated (minbpe's loop): count every adjacent pair of every chunk, weighted
    by how often the chunk occurs; merge the most frequent everywhere; repeat. Each merge looks at
    the whole text again. Returns the merges [(left, right), ...], fewer if pairs run out."""
    words = [list(w) for w in words]
    merges = []
    while len(merges) < n_merges:
        pair_count = Counter()
        for ids, c in zip(words, counts):
            for pair in zip(ids, ids[1:]):
                pair_count[pair] += c
        if not pair_count:
            break  # every chunk is a single token: nothing left to merge
        # most frequent; on a tie, the smallest (left, right)
        pair = min(pair_count, key=lambda p: (-pair_count[p], p))
        new_id = 256 + len(merges)
        words = [merge(ids, pair, new_id) for ids in words]
        merges.append(pair)
    return merges


def learn_merges(words, counts, n_merges, history=None):
    """The same merges as `learn_merges_textbook`, with a merge costing only the chunks it touches.
    If `history` is a list, it gets (count, tied) for each merge: how often the merged pair
    occurred, and whether another pair occurred as often (where the tie-break decided).

    The bookkeeping, kept up to date after every merge:
      words[w]          the current ids of distinct chunk w (at first its bytes)
      counts[w]         how many times chunk w occurs in the text (never changes)
      pair_count[p]     how often pair p = (left, right) stands side by side in the whole text:
                        the sum over chunks of (occurrences in words[w]) * counts[w]
      where[p]          the set of chunks w whose words[w] contain p
      heap              entries (-count, left, right): heapq's smallest = the most frequent pair,
                        the smallest (left, right) on a tie. heapq cannot change an entry, so a
                        pair whose count changes gets a new entry, and entries whose count no
                        longer equals pair_count are skipped when they come up ("lazy deletion")

    Merging pair p visits only the chunks in where[p]: each one's pairs are taken out of the
    counts, the chunk is merged, and its new pairs are put back. Early merges (" t", "he") touch
    thousands of chunks, later ones a handful, so the whole run costs about as much as a few
    passes over the text instead of one pass per merge.
    """
    words = [list(w) for w in words]
    pair_count = defaultdict(int)
    where = defaultdict(set)
    for w, (ids, c) in enumerate(zip(words, counts)):
        for pair in zip(ids, ids[1:]):
            pair_count[pair] += c
            where[pair].add(w)
    heap = [(-c, a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)

    def pop_top():
        """The most frequent pair and its count, (None, 0) if there is none."""
        while heap:
            neg_count, a, b = heapq.heappop(heap)
            if pair_count.get((a, b), 0) == -neg_count:  # else: a stale entry
                return (a, b), -neg_count
        return None, 0

    merges = []
    while len(merges) < n_merges:
        pair, count = pop_top()
        if pair is None:
            break  # every chunk is a single token: nothing left to merge
        if history is not None:
            runner_up, runner_up_count = pop_top()
            if runner_up is not None:
                heapq.heappush(heap, (-runner_up_count,) + runner_up)
            history.append((count, runner_up_count == count))
        new_id = 256 + len(merges)
        merges.append(pair)

        change = defaultdict(int)  # pair -> change of its count through this merge
        for w in where.pop(pair):
            ids, c = words[w], counts[w]
            new = merge(ids, pair, new_id)
            old_pairs, new_pairs = list(zip(ids, ids[1:])), list(zip(new, new[1:]))
            for p in old_pairs:
                change[p] -= c
            for p in new_pairs:
                change[p] += c
            for p in set(old_pairs).difference(new_pairs):
                if p != pair:  # the merged pair's set is gone already
                    where[p].discard(w)
            for p in new_pairs:
                where[p].add(w)
            words[w] = new
        for p, d in change.items():
            if d:
                pair_count[p] += d
                if pair_count[p]:
                    heapq.heappush(heap, (-pair_count[p], p[0], p[1]))
                else:
                    del pair_count[p]
                    where.pop(p, None)
    return merges
