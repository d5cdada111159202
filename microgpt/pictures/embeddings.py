"""Embedding pictures: where training put each token, and how alike the positions became.

Left: every row of the token embedding `wte` [vocab, n_embd] projected to the plane that keeps
the most of its spread (the first two principal components), drawn as its token. Tokens that
the model treats alike end up close (in the makemore lectures, the vowels gather).
Right: the cosine similarity of every pair of position embeddings `wpe` [block_size, n_embd].
"""

import os

from microgpt.pictures import require_matplotlib, save_figure
from microgpt.pictures.attention import _numpy, token_labels

VOWELS = set("aeiouAEIOU")
KINDS = {  # token kind -> (colour, legend name)
    "vowel": ("#d62728", "vowel"),
    "consonant": ("#1f77b4", "consonant"),
    "digit": ("#2ca02c", "digit"),
    "other": ("#7f7f7f", "space, punctuation, pieces"),
    "special": ("#9467bd", "special token"),
}


def pca_2d(matrix):
    """The rows of `matrix` [N, D] in their first two principal components: (coords [N, 2],
    explained variance ratio [2]).

    Centre the columns, take the SVD X = U S V^T; the components are the first rows of V^T and
    the coordinates X V = U S. An SVD's signs are arbitrary, so each component is flipped to make
    its largest-magnitude entry positive (the first such entry on a tie): the same matrix always
    gives the same picture. With D = 1 (or one row) the missing component is zeros.
    """
    np = _numpy()
    X = np.asarray(matrix, dtype=np.float64)
    X = X - X.mean(axis=0)                            # [N, D], columns centred
    _, S, Vt = np.linalg.svd(X, full_matrices=False)  # S [k], Vt [k, D], k = min(N, D)
    components = np.zeros((2, X.shape[1]))
    ratio = np.zeros(2)
    k = min(2, len(S))
    components[:k] = Vt[:k]
    total = float((S ** 2).sum())
    if total > 0:
        ratio[:k] = S[:k] ** 2 / total
    for c in components:
        if c.any() and c[np.argmax(np.abs(c))] < 0:
            c *= -1
    return X @ components.T, ratio                    # [N, D] @ [D, 2] -> [N, 2]


def cosine_similarity(matrix):
    """[N, N]: cos of the angle between every pair of rows (a zero row is similar to nothing)."""
    np = _numpy()
    X = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    U = X / np.where(norms > 0, norms, 1.0)
    return U @ U.T


def token_kind(tokenizer, token_id):
    if token_id in tokenizer.special_tokens.values():
        return "special"
    text = tokenizer.token_bytes(token_id).decode("utf-8", errors="replace")
    if len(text) == 1 and text.isalpha():
        return "vowel" if text in VOWELS else "consonant"
    if text.isdigit():
        return "digit"
    return "other"


def embeddings_figure(wte, wpe, labels, kinds=None, title=None, max_labels=40):
    """Token embeddings in 2-D (PCA) beside the position embeddings' cosine-similarity matrix
    (wpe None, a model with rotary positions: a note instead).
    labels: one string per row of wte; kinds: one key of KINDS per row (colours), or None.

    Every token is a point; labels are placed only where they can be read (pictures/labels.py):
    a small vocabulary (<= 128 tokens) has each label on its point where it fits, else beside it;
    a big one (BPE) labels at most `max_labels` tokens, the special tokens first and then those
    furthest from the centre, each beside its dot. The axes title says how many are labelled."""
    from microgpt.pictures.labels import laid_out_renderer, place_labels
    Figure = require_matplotlib()
    np = _numpy()
    wte = np.asarray(wte, dtype=np.float64)
    coords, ratio = pca_2d(wte)
    kinds = list(kinds) if kinds is not None else ["consonant"] * len(labels)
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    ax, ax_pos = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    few = len(labels) <= 128  # a disc behind each label; a big vocabulary gets dots
    for kind, (color, name) in KINDS.items():
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            ax.scatter(coords[idx, 0], coords[idx, 1], s=110 if few else 12, color=color,
                       alpha=0.18 if few else 0.5, edgecolors="none", label=name)
    pad = 0.12 * max(np.ptp(coords[:, 0]), np.ptp(coords[:, 1]), 1e-9)
    ax.set_xlim(coords[:, 0].min() - pad, coords[:, 0].max() + pad)
    ax.set_ylim(coords[:, 1].min() - pad, coords[:, 1].max() + pad)
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)
    ax.set_xlabel(f"principal component 1 ({100 * ratio[0]:.1f}% of the variance)")
    ax.set_ylabel(f"principal component 2 ({100 * ratio[1]:.1f}% of the variance)")
    legend = ax.legend(fontsize=8, loc="best", markerscale=0.6 if few else 2.5, framealpha=0.85) \
        if len(set(kinds)) > 1 else None
    _position_panel(fig, ax_pos, wpe)
    fig.suptitle(title or "what the embeddings learned", fontsize=12)
    head = f"token embeddings wte [{wte.shape[0]} \u00d7 {wte.shape[1]}], PCA to 2-D"
    n = len(labels)
    ax.set_title(f"{head} ({n} of {n} labelled)", fontsize=10)  # the widest it gets, for the layout
    renderer = laid_out_renderer(fig)  # the panels' final places: label boxes measured as drawn
    far = np.argsort(-np.linalg.norm(coords, axis=1), kind="stable")
    specials = [i for i in far if kinds[i] == "special"]
    order = specials + [i for i in far if kinds[i] != "special" and "\\x" not in labels[i]]  # no raw bytes
    shown = place_labels(ax, renderer, coords, labels, [KINDS[k][0] for k in kinds], order,
                         fontsizes=[11 if few and len(t) <= 2 else 8 for t in labels], on_point=few,
                         point_size=10.5 if few else 3.5, max_labels=None if few else max_labels,
                         obstacles=[tuple(legend.get_window_extent(renderer).extents)] if legend else (),
                         may_cover=specials)
    ax.set_title(head + ("" if len(shown) == n else f" ({len(shown)} of {n} labelled)"), fontsize=10)
    return fig


def _position_panel(fig, ax_pos, wpe):
    """The cosine similarity of every pair of learned positions, or a note for rotary ones."""
    np = _numpy()
    if wpe is None:  # rotary positions: nothing learned to draw
        ax_pos.axis("off")
        ax_pos.text(0.5, 0.5, "no position embeddings:\nrotary positions (--pos rope)\nturn q and k instead",
                    ha="center", va="center", fontsize=11, color="0.35", transform=ax_pos.transAxes)
        return
    wpe = np.asarray(wpe, dtype=np.float64)
    sim = cosine_similarity(wpe)
    image = ax_pos.imshow(sim, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    T = len(sim)
    ticks = list(range(0, T, max(1, T // 16)))
    ax_pos.set_xticks(ticks)
    ax_pos.set_yticks(ticks)
    ax_pos.tick_params(labelsize=8)
    ax_pos.set_xlabel("position")
    ax_pos.set_ylabel("position")
    ax_pos.set_title(f"position embeddings wpe [{wpe.shape[0]} \u00d7 {wpe.shape[1]}]: "
                     f"cosine similarity", fontsize=10)
    fig.colorbar(image, ax=ax_pos, shrink=0.85, label="cosine similarity")


def plot_embeddings(run_dir, out=None, svg=False):
    """Draw the run's embeddings to `out` (default RUN/embeddings.png). -> [paths]"""
    from microgpt import checkpoint
    ckpt = checkpoint.load(run_dir, with_optimizer=False)
    return save_figure(embeddings_figure_of(ckpt, os.path.basename(os.path.abspath(run_dir))),
                       os.fspath(out or os.path.join(run_dir, "embeddings.png")), svg=svg)


def embeddings_figure_of(ckpt, name=None):
    """embeddings_figure for a loaded checkpoint: labels and colours from its tokenizer."""
    tok = ckpt.tokenizer
    ids = range(ckpt.config.vocab_size)
    return embeddings_figure(_rows(ckpt.weights["wte"]), _rows(ckpt.weights["wpe"]) if "wpe" in ckpt.weights else None,
                             token_labels(tok, ids), [token_kind(tok, i) for i in ids],
                             title=f"what the embeddings of {name} learned" if name else None)


def _rows(matrix):
    np = _numpy()
    return np.array([np.asarray(r, dtype=np.float64) for r in matrix])
