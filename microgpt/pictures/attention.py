"""Attention pictures: for every layer and head, how much each position looks at each earlier one.

The weights are computed by the numpy engine (numpy comes with matplotlib), from any engine's
checkpoint: the model reads [BOS] + the text's tokens, as in training, and each head's softmax
probabilities P [T, T] are drawn as a heatmap, row i = query position i, column j = key
position j <= i. Positions after the query (j > i) are hidden by the causal mask: left blank.
"""

import os

from microgpt.config import EngineConfig
from microgpt.errors import MicroGPTError
from microgpt.pictures import PLOT_EXTRA, require_matplotlib, save_figure


def _numpy():
    try:
        import numpy as np
    except ImportError:
        raise MicroGPTError(f"pictures need numpy and matplotlib: {PLOT_EXTRA}") from None
    return np


def sequence_ids(tokenizer, text, block_size, bos=True):
    """The token ids drawn for `text`: [BOS] + encode(text) as in training (bos=False for runs on
    continuous text, which never saw BOS). At most block_size: the model has no later positions."""
    ids = ([tokenizer.BOS] if bos else []) + tokenizer.encode(text)
    if len(ids) > block_size:
        raise MicroGPTError(f"{text!r} is {len(ids)} tokens{' with BOS' if bos else ''}, more than the "
                            f"model's block_size {block_size}: give a text of at most "
                            f"{block_size - int(bos)} tokens")
    if not ids:
        raise MicroGPTError("give a non-empty text to draw its attention")
    return ids


def numpy_model(ckpt):
    """A float64 numpy-engine model of a checkpoint (of any engine)."""
    _numpy()
    from microgpt.engines.numpy_engine.engine import Model
    return Model(ckpt.config, ckpt.weights, EngineConfig(name="numpy", dtype="float64"))


def attention_maps(source, ids):
    """Attention probabilities [n_layer, n_head, T, T] of the sequence `ids`: row i of a head is the
    softmax over key positions 0..i of query position i (zeros after i). `source`: a numpy-engine
    Model, or a checkpoint (what microgpt.checkpoint.load returns)."""
    model = source if hasattr(source, "attention_maps") else numpy_model(source)
    if len(ids) > model.config.block_size:
        raise MicroGPTError(f"{len(ids)} tokens is more than the model's block_size {model.config.block_size}")
    return model.attention_maps(list(ids))


SHORT = {"<user_start>": "<user>", "<user_end>": "</user>", "<assistant_start>": "<asst>",
         "<assistant_end>": "</asst>"}  # the chat's special tokens, short enough to label a cell


def token_labels(tokenizer, ids):
    """The label of each token of a picture: its readable piece, chat special tokens shortened."""
    return [SHORT.get(p, p) for p in map(tokenizer.readable_piece, ids)]


def attention_figure(maps, labels, title=None):
    """A grid of heatmaps, one row of panels per layer and one column per head, sharing one
    colour scale (0..1) and colorbar. maps [n_layer, n_head, T, T]; labels: T token strings."""
    Figure = require_matplotlib()
    np = _numpy()
    maps = np.asarray(maps, dtype=float)
    L, H, T, _ = maps.shape
    if len(labels) != T:
        raise ValueError(f"{len(labels)} labels for {T} positions")
    panel = min(3.2, max(2.0, 0.17 * T))     # inches per heatmap: room for T labels
    fig = Figure(figsize=(H * panel + 1.1, L * panel + 1.1), layout="constrained")
    # room between the title and the panels' titles (and between rows of panels): 6 points, not 3
    engine = getattr(fig, "get_layout_engine", None)  # (matplotlib >= 3.6; before, the old call)
    engine().set(h_pad=6 / 72) if engine else fig.set_constrained_layout_pads(h_pad=6 / 72)
    axes = fig.subplots(L, H, squeeze=False)
    import matplotlib
    # the masked future is blank (white), unlike a weight of 0 (dark)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    size = 9 if T <= 12 else 7 if T <= 24 else 6 if T <= 40 else 5
    every = max(1, T // 32)                  # very long texts: label every k-th token only
    ticks = list(range(0, T, every))
    image = None
    for l in range(L):
        for h in range(H):
            ax = axes[l, h]
            image = ax.imshow(np.ma.masked_array(maps[l, h], future), cmap=cmap, vmin=0.0, vmax=1.0,
                              interpolation="nearest")
            ax.set_xticks(ticks)
            for tick, i in zip(ax.set_xticklabels([labels[i] for i in ticks], fontsize=size), ticks):
                tick.set_rotation(90 if len(labels[i]) > 2 else 0)   # letters upright, <bos> and BPE pieces turned
            ax.set_yticks(ticks)
            ax.set_yticklabels([labels[i] for i in ticks] if h == 0 else [], fontsize=size)
            ax.tick_params(length=0)
            ax.set_title(f"layer {l} \u00b7 head {h}", fontsize=9)
            if T <= 8:   # few cells: write each weight in its cell
                for i in range(T):
                    for j in range(i + 1):
                        w = maps[l, h, i, j]
                        ax.text(j, i, f"{w:.2f}".lstrip("0") if w < 1 else "1", ha="center", va="center",
                                fontsize=6.5, color="black" if w > 0.55 else "white")
        axes[l, 0].set_ylabel("query: the token reading", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    fig.suptitle(title or "attention", fontsize=11)
    fig.supxlabel("key: the earlier token it reads (a row sums to 1; later tokens are hidden, blank)",
                  fontsize=8.5)
    return fig


def conversation_ids(model, tokenizer, block_size, question):
    """A chat model reads a question through the chat template and writes its reply: the ids of
    both (the reply greedy, as far as block_size allows) and a title "question -> reply"."""
    import random

    from microgpt.data.chat_template import ASSISTANT_END, render_prompt
    from microgpt.evaluate import replies
    prompt = render_prompt(tokenizer, [{"role": "user", "content": question}])
    if len(prompt) > block_size:
        raise MicroGPTError(f"{question!r} is {len(prompt)} tokens with the chat template, more than the "
                            f"model's block_size {block_size}: give a shorter question")
    reply = replies(model, tokenizer, block_size, [prompt], random.Random(0))[0]
    ids = (prompt + reply + [tokenizer.special_tokens[ASSISTANT_END]])[:block_size]
    return f"{question} \u2192 {tokenizer.decode(reply)}", ids


def plot_attention(run_dir, text, out=None, svg=False):
    """Draw the attention of `text` in the run's model to `out` (default RUN/attention.png).
    The text starts with BOS as in training (not for a run on continuous text); for a chat model
    (sft, rl) it is a question, drawn with the template and the model's reply. -> [paths]"""
    from microgpt import checkpoint
    ckpt = checkpoint.load(run_dir, with_optimizer=False)
    if ckpt.train.data_mode == "chat":
        model = numpy_model(ckpt)
        text, ids = conversation_ids(model, ckpt.tokenizer, ckpt.config.block_size, text)
    else:
        model = ckpt
        ids = sequence_ids(ckpt.tokenizer, text, ckpt.config.block_size, bos=ckpt.train.data_mode == "docs")
    maps = attention_maps(model, ids)
    labels = token_labels(ckpt.tokenizer, ids)
    fig = attention_figure(maps, labels, title=attention_title(text, ckpt.config))
    return save_figure(fig, os.fspath(out or os.path.join(run_dir, "attention.png")), svg=svg)


def attention_title(text, config):
    shown = text if len(text) <= 40 else text[:37] + "..."
    layers = f"{config.n_layer} layer" + ("s" if config.n_layer > 1 else "")
    return f"attention of {shown!r} ({layers} \u00d7 {config.n_head} heads)"
