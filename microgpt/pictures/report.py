"""A run's report card: one self-contained report.html in the run directory.

What was trained and how to train it again, the loss curves, attention and embedding pictures,
samples marked train / val / new, evaluation results, time and throughput. Self-contained:
the styles are inline, the pictures are PNG data URIs, there is no script, font or link to
fetch, and a Content-Security-Policy tells the browser to load nothing from anywhere. Every
piece of text that comes from outside (file names, samples, tokens, results) is HTML-escaped.
"""

import math
import os
import statistics
import time

from microgpt import __version__
from microgpt.errors import MicroGPTError
from microgpt.pictures.page import CSP, MARKS, STYLE, card, cards_grid, command_block, duration, esc, figure, num, table
from microgpt.pictures.run_text import (
    describe_tokenizer,
    estimate_size,
    reproduce_command,
    sequences,
    shown_command,
    shown_path,
)
from microgpt.stages.open import OpenRun, open_run


def _last(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
            and math.isfinite(r[key])]
    return vals[-1] if vals else None


def _attention_sequences(run, model, texts, samples, n):
    """[(title text, ids)] to draw: the given texts, else the first validation documents of the
    run's data (else of its samples). Long ones are cut to block_size. A chat model's texts are
    questions, drawn with the model's replies."""
    from microgpt.pictures.attention import conversation_ids, sequence_ids
    tok, block = run.tokenizer, run.config.block_size
    bos = run.cfg.train.data_mode == "docs"
    if run.cfg.train.data_mode == "chat":
        return [conversation_ids(model, tok, block, t) for t in (texts or [])[:n]]
    if texts:
        return [(t, sequence_ids(tok, t, block, bos)) for t in texts]
    out = []
    try:
        docs = run.ds.val_examples(n, min(block, 24))  # (windows short enough to label every token)
        for doc in docs:
            ids = (([tok.BOS] if bos else []) + list(doc))[:block]
            out.append((tok.decode(ids), ids))
    except (MicroGPTError, OSError):
        pass  # the data file is gone: draw the samples instead
    if not out:
        for text, _ in (samples or [])[:n]:
            try:
                out.append((text, sequence_ids(tok, text, block, bos)))
            except MicroGPTError:
                continue
    return out


def build_report(run, *, samples=None, eval_results=None, evaluation=None, command=None, attention_texts=None,
                 n_attention=2, out=None):
    """Write RUN/report.html (or `out`) and return its path. run: a run folder, or the run opened
    (microgpt.stages.open.open_run), so its checkpoint is read once.

    samples: [(text, mark)], mark "train" | "val" | "new" (or any word), as `microgpt sample` marks them.
    eval_results: {name: value} or [(name, value)] (e.g. pass@k of a task), shown as a table.
    evaluation: {split: loss figures} as OpenRun.evaluate returns them, shown with what they cover.
    command: the command that trained the run (default: rebuilt from the checkpoint).
    attention_texts: texts whose attention to draw (default: the first n_attention validation docs).
    """
    from microgpt.params import num_params
    from microgpt.pictures import figure_bytes, write_file
    from microgpt.pictures.attention import (
        attention_figure,
        attention_maps,
        attention_title,
        numpy_model,
        token_labels,
    )
    from microgpt.pictures.curves import (
        RATE_KEYS,
        cumulative_elapsed,
        curves_figure,
        read_metrics,
        run_names,
        train_windows,
    )
    from microgpt.pictures.embeddings import embeddings_figure_of
    if not isinstance(run, OpenRun):
        run = open_run(os.fspath(run))
    run_dir, ckpt = run.out, run.checkpoint
    name = run_names([run_dir])[0]
    try:
        rows = read_metrics(run_dir)
    except MicroGPTError:
        rows = []
    cfg, tc, raw = ckpt.config, ckpt.train, ckpt.raw_config
    step = int(ckpt.state.get("step", 0))
    elapsed = cumulative_elapsed(rows)
    seconds = elapsed[-1] if elapsed else None
    speeds = [r["tokens_per_s"] for r in rows
              if isinstance(r.get("tokens_per_s"), (int, float)) and r["tokens_per_s"] > 0]
    tokens_per_s = statistics.median(speeds) if speeds else None
    _, train_means = train_windows(elapsed, rows) if rows else ([], [])
    final_train = train_means[-1] if train_means else ckpt.state.get("last_loss")
    final_val, final_bpb, tokens = _last(rows, "val_loss"), _last(rows, "val_bpb"), _last(rows, "tokens")
    val_step = max((int(r["step"]) for r in rows if _last([r], "val_loss") is not None), default=None)
    estimate = _estimate_words(run) if final_val is not None else ""
    data_path = (raw.get("data") or {}).get("path")
    engine = ckpt.engine.name + (f" ({ckpt.engine.dtype})" if ckpt.engine.dtype else "")
    rl = run.cfg.rl
    rl_task = rl.task if run.stage == "rl" else None

    if not run.reads_data:  # rl on a chat task: it draws problems, it reads no file
        data = card("data", "none", "an rl run on a task: fresh problems every step")
    else:
        sha = (raw.get("data") or {}).get("sha256")
        data = card("data", os.path.basename(data_path) if data_path else "names.txt",
                    (shown_path(data_path) if data_path else "the default names data set") + f"; {tc.data_mode} mode"
                    + (f"; sha256 {sha[:12]}\u2026" if sha else ""))

    parts = []
    cards = [card("parameters", f"{num_params(cfg):,}", f"{cfg.n_layer} layer(s), n_embd {cfg.n_embd}, "
                                                         f"{cfg.n_head} heads, block {cfg.block_size}"),
             card("engine", engine),
             card("tokenizer", f"{cfg.vocab_size} tokens", describe_tokenizer(ckpt.tokenizer)),
             data,
             card("steps", f"{step:,}", f"of {tc.steps:,}; " + (f"{rl.prompts} problems \u00d7 "
                   f"{rl.group_size} answers" if rl_task else f"batch {tc.batch_size}"))]
    if rl_task:
        cards.append(card("rl task", rl_task, f"temperature {rl.temperature}, kl {rl.kl}"
                           + (", std-normalised" if rl.std_normalize else "")))
    if final_train is not None:
        cards.append(card("train loss", num(final_train), "nats / token, last window"))
    if final_val is not None:
        cards.append(card("val loss, in training", num(final_val), f"nats / token; step {val_step}, {estimate}"))
    if final_bpb is not None:
        cards.append(card("val bits / byte", num(final_bpb), "the same estimate"))
    if seconds is not None:
        cards.append(card("training time", duration(seconds), "wall clock, evaluation included"))
    if tokens_per_s is not None:
        cards.append(card("throughput", f"{tokens_per_s:,.0f} tok/s", "median over logged windows"))
    if tokens is not None:
        cards.append(card("tokens seen", f"{int(tokens):,}"))
    parts.append(f"<section>{cards_grid(cards)}</section>")

    rebuilt = command is None and not raw.get("command")
    again, cut = shown_command(command.splitlines()) if command else reproduce_command(run_dir, ckpt)
    parts.append("<section><h2>Train it again</h2>"
                 + command_block(again)
                 + ('<p class="note">Rebuilt from the checkpoint\'s configuration; the logging and '
                    'evaluation cadence (--eval-every, --log-every) is not saved with a run.</p>' if rebuilt else "")
                 + ('<p class="note">Paths outside the folder this page was made in are shown by their file name '
                    "only: the page names no folder of the machine it was made on.</p>" if cut else "")
                 + "</section>")

    model_rows = [(k, v) for k, v in cfg.to_dict().items()] + [("parameters", f"{num_params(cfg):,}")]
    train_rows = [(k, v) for k, v in tc.to_dict().items()]
    parts.append('<section><h2>Configuration</h2><div class="tables">'
                 f'<div><h3>model</h3>{table(model_rows)}</div>'
                 f'<div><h3>training</h3>{table(train_rows)}</div></div></section>')

    if rows:
        fig = curves_figure([(name, rows)])
        panels = [a.get_ylabel() for a in fig.axes]
        says = []
        if "loss (nats / token)" in panels:
            says.append("Cross-entropy loss in nats per token (lower is better; a model guessing uniformly among "
                        f"{cfg.vocab_size} tokens scores ln {cfg.vocab_size} = {math.log(cfg.vocab_size):.2f}). The "
                        "line is the training loss averaged over windows of steps, the dots the loss on held-out "
                        f"validation data ({estimate}, each time training evaluated): when they part ways, the "
                        "model is memorising.")
        if "val bits / byte" in panels:
            says.append("Bits per byte: the validation loss per byte of text, comparable across tokenizers.")
        if "held out" in panels:
            says.append("Held out: the share of test problems answered right (pass@1, greedy) or, on a names "
                        "task, of fresh samples rewarded, and how many of them are unique and new.")
        elif "reward, pass@k" in panels:
            says.append("The reward of the answers sampled for training, and the share of them that are right.")
        if "learning rate" in panels:
            says.append("Below, the learning rate schedule.")
        parts.append("<section><h2>Training curves</h2>"
                     + figure(figure_bytes(fig), f"training curves of {name}", " ".join(says)) + "</section>")

    model = numpy_model(ckpt)
    seqs = _attention_sequences(run, model, attention_texts, samples, n_attention)
    if seqs:
        figs = []
        for text, ids in seqs:
            labels = token_labels(ckpt.tokenizer, ids)
            png = figure_bytes(attention_figure(attention_maps(model, ids), labels, attention_title(text, cfg)))
            figs.append(figure(png, f"attention of {text}",
                                f"Attention of {esc(repr(text))}: in each panel (one per layer and head) row i "
                                "shows how the token at position i shares its attention among itself and the "
                                "tokens before it; each row sums to 1 and later tokens (blank) are hidden."))
        parts.append("<section><h2>Attention</h2>" + "".join(figs) + "</section>")

    png = figure_bytes(embeddings_figure_of(ckpt, name))
    parts.append("<section><h2>Embeddings</h2>" + figure(
        png, f"embeddings of {name}",
        "Left: every token's learned vector, projected onto the two directions along which the vectors "
        "differ most (PCA); tokens the model uses alike sit close together. Right: how similar the "
        "learned vector of each position is to every other position's (1 = same direction).") + "</section>")

    if samples:
        marks = [str(m or "") for _, m in samples]
        counts = ", ".join(f"{marks.count(m)} {esc(m)}" for m in dict.fromkeys(marks) if m)
        items = "".join(
            f'<div><span class="mark mark-{m if m in MARKS else "other"}">{esc(m or "?")}</span>'
            f"{esc(text)}</div>" for text, m in zip((t for t, _ in samples), marks))
        meaning = ("<b>right</b> / <b>wrong</b>: the reply to a held-out problem of the run's task."
                   if {"right", "wrong"} & set(marks) else
                   "<b>train</b> / <b>val</b>: the text is a document of the training / validation split (a reply: "
                   "the one written in that conversation); <b>new</b>: it is in neither.")
        parts.append(f"<section><h2>Samples</h2><p class=\"note\">{len(samples)} samples: {counts}. {meaning}</p>"
                     f"<div class=\"samples\">{items}</div></section>")

    results = list(eval_results.items()) if isinstance(eval_results, dict) else list(eval_results or [])
    evaluated = {k: r for k, r in (evaluation or {}).items() if r.get("sequences")}
    for split, r in evaluated.items():
        seqs = sequences(r["sequences"], tc.data_mode, cfg.block_size)
        results += [(f"{split} loss, evaluated ({seqs})", r["loss"]), (f"{split} bits per byte, evaluated", r["bpb"])]
    rl_keys = sorted({k for r in rows for k in r if k in RATE_KEYS or k.startswith("pass@")})
    rl = [(k, _last(rows, k)) for k in rl_keys]
    results += [(f"{k} (last logged)", v) for k, v in rl if v is not None]
    if final_val is not None:
        results.append((f"val loss, in training (step {val_step}, {estimate})", final_val))
    if final_bpb is not None:
        results.append(("val bits per byte, in training", final_bpb))
    if results:
        parts.append("<section><h2>Evaluation</h2>" + table([(k, num(v)) for k, v in results], head=("metric", "value"))
                     + _two_val_losses("val" in evaluated, final_val is not None, step, val_step) + "</section>")

    if rows:
        timing = [("training time (wall clock)", duration(seconds) if seconds is not None else "?"),
                  ("steps", f"{step:,}")]
        if seconds:
            timing.append(("steps per second", f"{step / seconds:,.2f}"))
        if speeds:
            timing += [("tokens per second, median", f"{statistics.median(speeds):,.0f}"),
                       ("tokens per second, best window", f"{max(speeds):,.0f}")]
        parts.append("<section><h2>Time and throughput</h2>" + table(timing)
                     + '<p class="note">Tokens per second count training steps only, not evaluation.</p></section>')

    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>microgpt report: {esc(name)}</title><style>{STYLE}</style></head><body><main>"
            f"<header><h1>microgpt report: {esc(name)}</h1>"
            f'<div class="sub">{esc(shown_path(os.path.abspath(run_dir)))}'
            f' \u00b7 written {esc(time.strftime("%Y-%m-%d %H:%M"))}'
            f" \u00b7 microgpt {esc(__version__)}</div></header>"
            + "\n".join(parts)
            + "<footer>Made by <code>microgpt report</code>. Everything on this page is inside this one "
              "file; it loads nothing from anywhere.</footer></main></body></html>\n")
    return write_file(os.fspath(out or os.path.join(run_dir, "report.html")), page.encode("utf-8"))


def _estimate_words(run):
    """What the training loop's validation estimates covered: '30 documents', 'up to 100 ...'."""
    n, mode, block = estimate_size(run), run.cfg.train.data_mode, run.config.block_size
    if n is not None:
        return sequences(n, mode, block)
    docs = run.cfg.eval_docs  # the data cannot be read: what was asked for
    return sequences(f"up to {docs:,}" if docs else "all", mode, block)


def _two_val_losses(evaluated, in_training, step, val_step):
    """The note that says which validation loss is which."""
    says = []
    if evaluated:
        says.append(f"<b>evaluated</b>: measured as this page was made, on the saved weights (step {step:,}), over "
                    "the first sequences of each split (<code>microgpt report --max-docs</code>)")
    if in_training:
        says.append(f"<b>in training</b>: the last estimate the training loop logged (step {val_step:,}: the curves' "
                    "last validation dot), over the first sequences of the validation split (<code>--eval-docs</code>)")
    if not says:
        return ""
    same = (" Same weights: the two validation losses differ only by how many sequences they average."
            if evaluated and in_training and val_step == step else "")
    return f'<p class="note">{"; ".join(says)}.{same}</p>'
