"""Pictures of a run: loss curves, attention, embeddings, the report page, TensorBoard files.

Each picture is drawn from a tiny run trained here (a few seconds); the tests check the files
(valid PNG / SVG / HTML), the figures' panels, and the numbers drawn against an independent
computation: attention against the seed's one-token-at-a-time forward in plain Python, PCA
against the eigenvectors of the covariance matrix.
"""

import base64
import html.parser
import json
import math
import os
import re
import shutil
import struct
import sys
import xml.etree.ElementTree as ET

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("matplotlib")

from helpers import NAMES, run_cli  # noqa: E402

from microgpt import MicroGPTError, checkpoint  # noqa: E402
from microgpt.pictures import attention, curves, embeddings, figure_bytes, report, require_matplotlib  # noqa: E402
from microgpt.tokenizers.char import CharTokenizer  # noqa: E402
from microgpt.train import metrics, tensorboard  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path_or_bytes):
    raw = path_or_bytes if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb").read()
    return raw[:8] == PNG_MAGIC and len(raw) > 1000


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """300 names: enough for a run whose validation split is not empty, quick to load."""
    if not os.path.exists(NAMES):
        pytest.skip("names.txt not found: set MICROGPT_DATA_DIR")
    path = tmp_path_factory.mktemp("data") / "names300.txt"
    with open(NAMES) as f:
        path.write_text("".join(f.readlines()[:300]))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_file):
    """A 2-layer, 2-head numpy-engine run of 60 steps, validation every 20."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run_cli("train", "--out", out, "--data", data_file, "--engine", "numpy", "--n-layer", "2", "--n-head", "2",
            "--n-embd", "8", "--steps", "60", "--batch-size", "4", "--eval-every", "20", "--num-samples", "0",
            "--quiet", check=True)
    return str(out)


def write_metrics(run_dir, rows):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return str(run_dir)


def synthetic_rows(n=1000, log_every=1, tokens=True, bpb=False, rl=False):
    """A run's metrics as the training loop logs them; train loss falls like 1/sqrt(step)."""
    rows = []
    for s in range(log_every, n + 1, log_every):
        r = {"step": s, "train_loss": 2.0 + 1.3 / math.sqrt(s), "lr": 0.01 * (1 - s / n),
             "tokens_per_s": 1000.0, "elapsed": s * 0.01}
        if tokens:
            r["tokens"] = 7 * s
        if s % 100 == 0:
            r["val_loss"] = 2.1 + 1.3 / math.sqrt(s)
            if bpb:
                r["val_bpb"] = r["val_loss"] / math.log(2) / 1.1
        if rl:
            r["reward_mean"], r["pass@1"] = s / n, s / n / 2
        rows.append(r)
    return rows


def drawn(fig):
    """Draw the figure with Agg at its own dpi; the renderer, to measure what was drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def overlap(a, b):
    """The area (pixels) two boxes share."""
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


def readable_labels(fig):
    """The token labels of an embeddings figure, checked readable as drawn: each inside its panel,
    none overlapping another or the legend. -> their texts"""
    from matplotlib.text import Text
    figure_bytes(fig)  # as saved, then measured at the figure's own dpi
    renderer = drawn(fig)
    tokens = fig.axes[0]
    frame = tokens.get_window_extent(renderer)
    boxes = [Text.get_window_extent(t, renderer) for t in tokens.texts]  # the text, not its line to the point
    legend = tokens.get_legend()
    for i, box in enumerate(boxes):
        assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1
        assert legend is None or overlap(box, legend.get_window_extent(renderer)) < 1, tokens.texts[i].get_text()
        for j in range(i):
            assert overlap(box, boxes[j]) < 1, (tokens.texts[i].get_text(), tokens.texts[j].get_text())
    return [t.get_text() for t in tokens.texts]


def image_axes(fig):
    """The heatmap panels of a figure: axes holding an image, not the colorbar's."""
    bars = {id(im.colorbar.ax) for ax in fig.axes for im in ax.images if im.colorbar is not None}
    return [ax for ax in fig.axes if ax.images and id(ax) not in bars]


# --- the one-line error without matplotlib ------------------------------------------------------

def test_pictures_without_matplotlib_say_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes `import matplotlib.figure` fail
    with pytest.raises(MicroGPTError, match=r"pip install 'microgpt\[plot\]'"):
        require_matplotlib()


def test_importing_microgpt_does_not_import_matplotlib():
    code = "import microgpt.cli, microgpt.stages.pretrain, microgpt.pictures, sys; print('matplotlib' in sys.modules)"
    import subprocess
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__))))
    assert p.stdout.strip() == "False", p.stderr


# --- loss curves ---------------------------------------------------------------------------------

def test_read_metrics_skips_a_half_written_last_line_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "train_loss": 3.3}\n{"step": 2, "train_lo')
    assert curves.read_metrics(tmp_path) == [{"step": 1, "train_loss": 3.3}]
    path.write_text('{"step": 1, "train_loss": 3.3}\nnot json\n{"step": 3, "train_loss": 3.1}\n')
    with pytest.raises(MicroGPTError, match="line 2"):
        curves.read_metrics(tmp_path)
    with pytest.raises(MicroGPTError, match="no metrics.jsonl"):
        curves.read_metrics(tmp_path / "nothing")


def test_train_windows_are_step_weighted_means():
    rows = synthetic_rows(1000)
    xs = [r["step"] for r in rows]
    wx, wy = curves.train_windows(xs, rows)
    assert 20 <= len(wx) <= curves.MAX_POINTS
    assert len(wx) == 100  # 1000 one-step rows: windows of MIN_WINDOW_STEPS = 10 steps
    assert wy[0] == pytest.approx(np.mean([r["train_loss"] for r in rows[:10]]))
    assert wx[0] == pytest.approx(5.5)
    # rows that already average 50 steps each are drawn as they are
    coarse = synthetic_rows(1000, log_every=50)
    wx, wy = curves.train_windows([r["step"] for r in coarse], coarse)
    assert wy == [r["train_loss"] for r in coarse]
    # a long run gets at most MAX_POINTS windows, and a short one at least 20
    long = synthetic_rows(30000, log_every=10)
    assert len(curves.train_windows([r["step"] for r in long], long)[0]) <= curves.MAX_POINTS
    short = synthetic_rows(40)
    assert len(curves.train_windows([r["step"] for r in short], short)[0]) == 20


def test_time_axis_continues_across_a_resume():
    rows = [{"step": 1, "elapsed": 1.0}, {"step": 2, "elapsed": 2.0}, {"step": 3, "elapsed": 0.5},
            {"step": 4, "elapsed": 1.5}]
    assert curves.cumulative_elapsed(rows) == [1.0, 2.0, 2.5, 3.5]


def test_curves_of_several_runs(tmp_path, run):
    a = write_metrics(tmp_path / "a", synthetic_rows(1000, bpb=True))
    b = write_metrics(tmp_path / "b", synthetic_rows(500, tokens=False))
    runs = [(n, curves.read_metrics(d)) for n, d in zip(curves.run_names([a, b, run]), [a, b, run])]

    fig = curves.curves_figure(runs)
    loss, bpb, lr = fig.axes  # val_bpb in run a: a bits-per-byte panel; lr always
    assert (loss.get_ylabel(), bpb.get_ylabel(), lr.get_ylabel()) == \
           ("loss (nats / token)", "val bits / byte", "learning rate")
    labels = loss.get_legend().get_texts()
    assert {t.get_text() for t in labels} >= {"a \u00b7 train (window mean)", "a \u00b7 validation",
                                             "b \u00b7 train (window mean)", "tiny \u00b7 validation"}
    assert len(lr.get_lines()) == 3 and loss.get_xscale() == "linear"

    assert curves.curves_figure(runs, x="tokens").axes[-1].get_xlabel() == \
           "step (no token counts recorded in b)"  # one axis, one unit: all fall back to steps
    assert curves.curves_figure(runs[:1], x="tokens").axes[-1].get_xlabel() == "training tokens"
    assert curves.curves_figure(runs, x="time").axes[-1].get_xlabel() == "time (seconds)"
    log = curves.curves_figure(runs, log=True)
    assert log.axes[0].get_yscale() == "log" and log.axes[1].get_yscale() == "log"
    with pytest.raises(MicroGPTError, match="unknown x axis"):
        curves.curves_figure(runs, x="epochs")

    paths = curves.plot_curves([a, b, run], x="time", log=True, svg=True, out=str(tmp_path / "cmp.png"))
    assert paths == [str(tmp_path / "cmp.png"), str(tmp_path / "cmp.svg")]
    assert is_png(paths[0])
    root = ET.parse(paths[1]).getroot()  # valid XML, an SVG document
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_curves_of_one_run_default_path_and_rl_panel(tmp_path, run):
    assert curves.plot_curves(run) == [os.path.join(run, "loss.png")]
    assert is_png(os.path.join(run, "loss.png"))
    rl = write_metrics(tmp_path / "rl", synthetic_rows(200, rl=True))
    fig = curves.curves_figure([("rl", curves.read_metrics(rl))])
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss (nats / token)", "reward, pass@k", "learning rate"]
    assert fig._suptitle.get_text() == "rl"


def test_same_folder_names_are_told_apart(tmp_path):
    assert curves.run_names([tmp_path / "x" / "run", tmp_path / "y" / "run"]) == ["x/run", "y/run"]


# --- attention -----------------------------------------------------------------------------------

def attention_reference(weights, config, ids):
    """The seed's forward (reference.py's), one token at a time with a KV cache, in plain Python:
    returns the softmax weights of every layer, head and query position over the keys so far."""
    def linear(x, W):
        return [sum(w * v for w, v in zip(row, x)) for row in W]

    def rmsnorm(x):
        s = (sum(v * v for v in x) / len(x) + 1e-5) ** -0.5
        return [v * s for v in x]

    W = {k: [list(map(float, r)) for r in v] for k, v in weights.items()}
    L, H, T = config.n_layer, config.n_head, len(ids)
    hd = config.n_embd // H
    maps = np.zeros((L, H, T, T))
    keys, values = [[] for _ in range(L)], [[] for _ in range(L)]
    for pos, tok in enumerate(ids):
        x = rmsnorm([a + b for a, b in zip(W["wte"][tok], W["wpe"][pos])])
        for li in range(L):
            p = f"layer{li}."
            x_res, x = x, rmsnorm(x)
            q = linear(x, W[p + "attn_wq"])
            keys[li].append(linear(x, W[p + "attn_wk"]))
            values[li].append(linear(x, W[p + "attn_wv"]))
            heads = []
            for h in range(H):
                s = slice(h * hd, (h + 1) * hd)
                scores = [sum(a * b for a, b in zip(q[s], k[s])) / hd ** 0.5 for k in keys[li]]
                top = max(scores)
                e = [math.exp(z - top) for z in scores]
                w = [z / sum(e) for z in e]
                maps[li, h, pos, :pos + 1] = w
                heads += [sum(w[t] * values[li][t][s][j] for t in range(pos + 1)) for j in range(hd)]
            x = [a + b for a, b in zip(linear(heads, W[p + "attn_wo"]), x_res)]
            x_res, x = x, rmsnorm(x)
            x = [max(0.0, v) for v in linear(x, W[p + "mlp_fc1"])]
            x = [a + b for a, b in zip(linear(x, W[p + "mlp_fc2"]), x_res)]
    return maps


def test_attention_maps_equal_the_seeds_forward(run):
    ckpt = checkpoint.load(run)
    ids = attention.sequence_ids(ckpt.tokenizer, "emma", ckpt.config.block_size)
    assert ids == [ckpt.tokenizer.BOS] + ckpt.tokenizer.encode("emma")
    maps = attention.attention_maps(ckpt, ids)
    L, H, T = ckpt.config.n_layer, ckpt.config.n_head, len(ids)
    assert maps.shape == (L, H, T, T) == (2, 2, 5, 5)
    np.testing.assert_allclose(maps, attention_reference(ckpt.weights, ckpt.config, ids), rtol=0, atol=1e-12)
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, atol=1e-12)   # each query's weights sum to 1
    assert (maps[..., np.triu_indices(T, k=1)[0], np.triu_indices(T, k=1)[1]] == 0).all()  # causal zeros
    assert maps[:, :, 0, 0].tolist() == [[1.0] * H] * L  # the first token can only read itself


def test_recording_attention_leaves_the_forward_unchanged(run):
    from microgpt.engines.numpy_engine.model import gpt
    model = attention.numpy_model(checkpoint.load(run))
    idx = np.array([[0, 4, 12, 12, 0]])
    record = []
    with_record = gpt(model.params, model.config, idx, record=record).data
    assert (with_record == gpt(model.params, model.config, idx).data).all()
    assert [P.shape for P in record] == [(1, 2, 5, 5)] * 2


def test_attention_of_a_python_engine_checkpoint(tmp_path, data_file):
    out = tmp_path / "py"
    run_cli("train", "--out", out, "--data", data_file, "--steps", "3", "--eval-every", "0",
            "--num-samples", "0", "--quiet", check=True)
    ckpt = checkpoint.load(out)
    ids = attention.sequence_ids(ckpt.tokenizer, "ava", ckpt.config.block_size)
    np.testing.assert_allclose(attention.attention_maps(ckpt, ids),
                               attention_reference(ckpt.weights, ckpt.config, ids), rtol=0, atol=1e-12)
    paths = attention.plot_attention(str(out), "ava")
    assert paths == [os.path.join(str(out), "attention.png")] and is_png(paths[0])


def test_attention_figure_has_a_panel_per_layer_and_head(run, tmp_path):
    ckpt = checkpoint.load(run)
    ids = attention.sequence_ids(ckpt.tokenizer, "olivia", ckpt.config.block_size)
    maps = attention.attention_maps(ckpt, ids)
    labels = [ckpt.tokenizer.readable_piece(i) for i in ids]
    fig = attention.attention_figure(maps, labels, attention.attention_title("olivia", ckpt.config))
    panels = image_axes(fig)
    assert len(panels) == ckpt.config.n_layer * ckpt.config.n_head == 4
    assert [ax.get_title() for ax in panels] == ["layer 0 \u00b7 head 0", "layer 0 \u00b7 head 1",
                                                 "layer 1 \u00b7 head 0", "layer 1 \u00b7 head 1"]
    assert fig._suptitle.get_text() == "attention of 'olivia' (2 layers \u00d7 2 heads)"
    renderer = drawn(fig)                            # the title has room above the panels' titles
    top = max(ax.title.get_window_extent(renderer).y1 for ax in panels)
    assert (fig._suptitle.get_window_extent(renderer).y0 - top) * 72 / fig.dpi >= 6.5  # (was 5.4: touching)
    first = panels[0]
    assert [t.get_text() for t in first.get_xticklabels()] == ["<bos>", "o", "l", "i", "v", "i", "a"]
    assert [t.get_text() for t in first.get_yticklabels()] == labels
    shown = first.images[0].get_array()  # the drawn weights: the engine's, the future masked out
    np.testing.assert_array_equal(shown.data, maps[0, 0])
    assert (shown.mask == np.triu(np.ones((7, 7), dtype=bool), k=1)).all()
    paths = attention.plot_attention(run, "olivia", out=str(tmp_path / "att.png"), svg=True)
    assert is_png(paths[0]) and ET.parse(paths[1]).getroot().tag.endswith("svg")


def test_attention_text_errors(run):
    ckpt = checkpoint.load(run)
    block = ckpt.config.block_size
    with pytest.raises(MicroGPTError, match=f"block_size {block}.*at most {block - 1} tokens"):
        attention.sequence_ids(ckpt.tokenizer, "a" * block, block)
    assert len(attention.sequence_ids(ckpt.tokenizer, "a" * (block - 1), block)) == block
    with pytest.raises(MicroGPTError, match="not in the model's vocabulary"):
        attention.plot_attention(run, "Emma!")


def test_readable_pieces():
    tok = CharTokenizer(" \nab\t").with_special_tokens(["<|user_start|>"])
    shown = [tok.readable_piece(i) for i in range(tok.vocab_size)]
    assert shown == ["\u2423", "\u21b5", "a", "b", "\u21e5", "<bos>", "<user_start>"]


# --- embeddings ----------------------------------------------------------------------------------

def test_pca_against_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(27, 16)) @ rng.normal(size=(16, 16))  # correlated columns
    coords, ratio = embeddings.pca_2d(X)
    Xc = X - X.mean(axis=0)
    evals, evecs = np.linalg.eigh(Xc.T @ Xc)       # ascending; an independent route to the components
    top = evecs[:, ::-1][:, :2]
    for c in range(2):                              # the documented sign: largest-|entry| positive
        if top[np.argmax(np.abs(top[:, c])), c] < 0:
            top[:, c] *= -1
    np.testing.assert_allclose(coords, Xc @ top, atol=1e-10)
    np.testing.assert_allclose(ratio, evals[::-1][:2] / evals.sum(), atol=1e-12)
    # and against numpy's SVD of the centred matrix, up to each component's sign
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    np.testing.assert_allclose(np.abs(coords), np.abs(U[:, :2] * S[:2]), atol=1e-10)
    # the components do not depend on the SVD's arbitrary signs: -X has the same components
    # (so its points are mirrored through the origin), whatever signs its SVD came out with
    np.testing.assert_allclose(embeddings.pca_2d(-X)[0], -coords, atol=1e-10)


def test_pca_edge_cases():
    coords, ratio = embeddings.pca_2d([[1.0], [2.0], [4.0]])  # one dimension: the second is zeros
    np.testing.assert_allclose(coords[:, 1], 0.0)
    np.testing.assert_allclose(ratio, [1.0, 0.0])
    coords, ratio = embeddings.pca_2d([[1.0, 2.0, 3.0]])       # one row: nothing to spread
    np.testing.assert_allclose(coords, 0.0)
    np.testing.assert_allclose(ratio, 0.0)


def test_cosine_similarity():
    sim = embeddings.cosine_similarity([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(sim[:3, :3], [[1, 0, -1], [0, 1, 0], [-1, 0, 1]])
    assert (sim[3] == 0).all()


def test_embeddings_figure(run, tmp_path):
    ckpt = checkpoint.load(run)
    fig = embeddings.embeddings_figure_of(ckpt, "tiny")
    tokens, positions, bar = fig.axes
    texts = readable_labels(fig)  # (a and e, v and y sit close: one of each pair is moved beside its disc)
    assert sorted(texts) == sorted(ckpt.tokenizer.readable_piece(i) for i in range(ckpt.config.vocab_size))
    assert tokens.get_title() == "token embeddings wte [27 \u00d7 8], PCA to 2-D"  # every token labelled
    assert re.fullmatch(r"principal component 1 \(\d+\.\d% of the variance\)", tokens.get_xlabel())
    shown = positions.images[0].get_array()
    assert shown.shape == (ckpt.config.block_size,) * 2
    np.testing.assert_allclose(np.diag(shown), 1.0)
    assert bar.get_ylabel() == "cosine similarity"
    assert {t.get_text() for t in tokens.get_legend().get_texts()} == {"vowel", "consonant", "special token"}
    paths = embeddings.plot_embeddings(run, out=str(tmp_path / "emb.png"))
    assert is_png(paths[0])


def test_a_big_vocabulary_labels_only_what_can_be_read():
    """512 tokens (a BPE vocabulary): every token a dot at its PCA coordinates, at most max_labels
    labelled, none overlapping, the special token among them; the title says how many."""
    rng = np.random.default_rng(1)
    wte = rng.normal(size=(512, 16)) @ rng.normal(size=(16, 16))
    labels = [f"t{i}" for i in range(511)] + ["<bos>"]
    kinds = ["other"] * 300 + ["vowel"] * 100 + ["consonant"] * 111 + ["special"]
    fig = embeddings.embeddings_figure(wte, rng.normal(size=(8, 16)), labels, kinds, max_labels=40)
    texts = readable_labels(fig)
    assert 15 <= len(texts) <= 40 and "<bos>" in texts
    assert fig.axes[0].get_title().endswith(f"({len(texts)} of 512 labelled)")
    coords, _ = embeddings.pca_2d(wte)
    dots = np.concatenate([c.get_offsets() for c in fig.axes[0].collections])
    np.testing.assert_allclose(np.sort(dots, axis=0), np.sort(coords, axis=0), atol=1e-12)  # the PCA, unchanged
    for t in fig.axes[0].texts:                  # each label points at its own token
        np.testing.assert_allclose(t.xy, coords[labels.index(t.get_text())], atol=1e-12)
    dollars = embeddings.embeddings_figure(wte[:4], None, ["$a", "b$", "$$", "c"], None)
    assert sorted(readable_labels(dollars)) == ["$$", "$a", "b$", "c"]
    assert not any(t.get_parse_math() for t in dollars.axes[0].texts)  # drawn as written, not as mathtext


# --- the report page -----------------------------------------------------------------------------

class StrictParser(html.parser.HTMLParser):
    """Collects tags, attributes and text; checks that every opened element is closed in order."""
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.attrs, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_page(path):
    with open(path, encoding="utf-8") as f:
        page = f.read()
    p = StrictParser()
    p.feed(page)
    p.close()
    assert not p.stack, f"unclosed elements: {p.stack}"
    return page, p


def words_of(p):
    """The page's text as a reader sees it: every run of white space one space."""
    return " ".join(" ".join(p.text).split())


def test_report_is_self_contained_and_escaped(run, tmp_path):
    evil = str(tmp_path / "run <img src=x onerror=alert('dir')>")
    shutil.copytree(run, evil)
    samples = [("emma", "train"), ("zoe", "val"), ("<script>alert(1)</script>", "new"), ("x&y", "<b>")]
    path = report.build_report(evil, samples=samples, eval_results={"pass@1 <i>": 0.25})
    assert path == os.path.join(evil, "report.html")
    page, p = parse_page(path)
    assert page.startswith("<!DOCTYPE html>")
    assert "script" not in p.tags and "<script" not in page.lower()  # no script at all, none injected
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;" in page and "x&amp;y" in page
    assert "pass@1 &lt;i&gt;" in page and "run &lt;img src=x onerror=alert(&#x27;dir&#x27;)&gt;" in page
    # self-contained: nothing to fetch, every picture inline
    for tag, attrs in p.attrs:
        for name in ("src", "href", "srcset", "action", "data"):
            assert name not in attrs or attrs[name].startswith("data:"), (tag, attrs)
    assert not re.search(r"(?:https?:)?//[\w.-]+\.\w", re.sub(r"data:[^\"]*", "", page))
    assert "url(" not in page and "@import" not in page
    imgs = [attrs["src"] for tag, attrs in p.attrs if tag == "img"]
    assert len(imgs) == 4  # loss, attention of the first 2 validation documents, embeddings
    for src in imgs:
        assert src.startswith("data:image/png;base64,") and is_png(base64.b64decode(src.split(",", 1)[1]))
    csp = [a for t, a in p.attrs if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0]["content"] == report.CSP
    text = words_of(p)
    for heading in ("Train it again", "Configuration", "Training curves", "Attention", "Embeddings", "Samples",
                    "Evaluation", "Time and throughput"):
        assert heading in p.text, heading
    # the command the run recorded, as it was typed, but for its folders: the run and its data were
    # given as absolute paths outside the current folder, so the page names them only
    assert "microgpt train --out tiny --data names300.txt --engine numpy --n-layer 2 --n-head 2 --n-embd 8 " \
           "--steps 60 --batch-size 4" in text and "shown by their file name only" in text
    # a shared page names no folder of this machine: not the run's, nor its data's, nor the temporary folder
    assert os.path.dirname(os.path.dirname(run)) not in html.unescape(page)
    assert os.path.abspath(evil) not in html.unescape(page) and "/tmp/" not in html.unescape(page)
    assert "1 train, 1 val, 1 new, 1 <b>" in text and "0.2500" in text
    assert "data names300.txt names300.txt; docs mode; sha256" in text  # the data card: the file, no folder


def test_paths_on_the_page_are_relative_or_names(tmp_path, monkeypatch):
    from microgpt.pictures.run_text import shown_args, shown_path
    monkeypatch.chdir(tmp_path)
    inside, outside = str(tmp_path / "runs" / "a"), os.path.join(os.path.dirname(str(tmp_path)), "x", "names.txt")
    assert shown_path(inside) == os.path.join("runs", "a") and shown_path(outside) == "names.txt"
    assert shown_path("../data/names.txt") == "../data/names.txt"     # as typed: relative already
    assert shown_path(inside, base=inside) == "." and shown_path(outside, base="/") == "names.txt"
    args = ["microgpt", "train", "--out", inside, f"--data={outside}", "--steps", "5"]
    assert shown_args(args) == (["microgpt", "train", "--out", "runs/a", "--data=names.txt", "--steps", "5"], True)
    assert shown_args(args[:4]) == (["microgpt", "train", "--out", "runs/a"], False)


def test_summary_cards_fill_even_rows():
    from microgpt.pictures.page import card, cards_grid
    for n in range(1, 16):
        cols = int(re.search(r"cols-(\d)", cards_grid([card("k", i) for i in range(n)])).group(1))
        rows = math.ceil(n / cols)
        assert cols <= 5 and rows == math.ceil(n / 5)   # as few rows as five columns allow
        assert rows * cols - n < rows                    # and no row short by more than one card
    assert 'class="cards cols-4"' in cards_grid(["<div></div>"] * 11)  # 4 + 4 + 3, not 5 + 5 + 1


def test_report_given_texts_and_command_and_no_data(run, tmp_path, data_file):
    copy = str(tmp_path / "copy")
    shutil.copytree(run, copy)
    path = report.build_report(copy, command="microgpt train --my-flags", attention_texts=["ava", "emma", "mia"],
                               out=str(tmp_path / "r.html"))
    page, p = parse_page(path)
    assert "microgpt train --my-flags" in words_of(p) and "Rebuilt from" not in page
    assert sum(t == "img" for t in p.tags) == 5 and "Attention of &#x27;mia&#x27;" in page
    # the data file is gone: the attention section draws the samples instead
    cfg_path = os.path.join(copy, "checkpoint", "config.json")
    cfg = json.load(open(cfg_path))
    cfg["data"]["path"] = str(tmp_path / "gone.txt")
    json.dump(cfg, open(cfg_path, "w"))
    page, p = parse_page(report.build_report(copy, samples=[("noa", "new")]))
    assert "Attention of &#x27;noa&#x27;" in page and sum(t == "img" for t in p.tags) == 3
    assert "val loss, in training (step 60, up to 100 documents)" in words_of(p)  # (--eval-docs: 100 asked for)


def test_report_names_each_validation_loss_and_what_it_covers(run, tmp_path):
    """Two validation losses, each named with the sequences it averages: `evaluate` over the first
    --max-docs, and the training loop's last estimate over the first --eval-docs (here all 30)."""
    from microgpt.stages.open import open_run
    opened = open_run(run)
    logged = curves.read_metrics(run)[-1]
    everything = opened.evaluate(0)["val"]
    assert everything["sequences"] == 30 and everything["loss"] == pytest.approx(logged["val_loss"], abs=1e-12)
    page, p = parse_page(report.build_report(opened, evaluation=opened.evaluate(10), out=str(tmp_path / "r.html")))
    text = words_of(p)
    assert "val loss, evaluated (10 documents)" in text and "train loss, evaluated (10 documents)" in text
    assert f"val loss, in training (step 60, 30 documents) {logged['val_loss']:.4f}" in text
    assert "<b>evaluated</b>: measured as this page was made" in page
    assert "<b>in training</b>: the last estimate" in page
    assert "(<code>--eval-docs</code>)" in page and "(<code>microgpt report --max-docs</code>)" in page
    assert "nats / token; step 60, 30 documents" in text  # the summary card says which one it shows


# --- TensorBoard ---------------------------------------------------------------------------------

def test_crc32c_known_values():
    assert tensorboard.crc32c(b"") == 0
    assert tensorboard.crc32c(b"123456789") == 0xE3069283       # the CRC-32C check value
    assert tensorboard.crc32c(bytes(32)) == 0x8A9136AA          # RFC 3720, B.4
    assert tensorboard.crc32c(b"\xff" * 32) == 0x62A8AB43


def test_event_file_round_trip(tmp_path):
    png = open(os.path.join(os.path.dirname(__file__), "..", "microgpt", "__init__.py"), "rb").read()
    with tensorboard.SummaryWriter(str(tmp_path / "tb")) as w:
        w.add_scalar("loss/train", 3.25, step=1, wall_time=1000.5)
        w.add_scalars({"loss/val": 2.5, "optim/lr": 0.01}, step=200)
        w.add_scalar("big", 1e300, step=3)
        w.add_scalar("neg", -1.5, step=-2)
        with pytest.raises(ValueError):
            w.add_image("not a png", png)
        fig_png = open(curves.plot_curves([write_metrics(tmp_path / "m", synthetic_rows(50))])[0], "rb").read()
        w.add_image("curves", fig_png, step=7)
        w.add_image("curves again", figure_bytes(curves.curves_figure([("m", synthetic_rows(50))])), step=8)
        path = w.path
    assert re.fullmatch(r"events\.out\.tfevents\.\d{10}\.[^/]+\.\d+\.\d+", os.path.basename(path))
    events = tensorboard.read_events(path)
    assert events[0]["file_version"] == "brain.Event:2" and not events[0]["scalars"]
    assert events[1] == {"wall_time": 1000.5, "step": 1, "scalars": {"loss/train": 3.25}, "images": {}}
    assert events[2]["step"] == 200 and events[2]["scalars"] == {"loss/val": 2.5, "optim/lr": pytest.approx(0.01)}
    assert events[3]["scalars"] == {"big": math.inf} and events[4]["step"] == -2
    h, wdt, raw = events[5]["images"]["curves"]
    assert raw == fig_png and (wdt, h) == struct.unpack(">II", fig_png[16:24])
    assert is_png(events[6]["images"]["curves again"][2])
    # a flipped bit is caught by the CRCs
    data = bytearray(open(path, "rb").read())
    data[40] ^= 1
    open(path, "wb").write(bytes(data))
    with pytest.raises(MicroGPTError, match="CRC"):
        tensorboard.read_events(path)
    with pytest.raises(MicroGPTError, match="closed"):
        w.add_scalar("late", 1.0, 1)


def test_run_metrics_to_tensorboard(run):
    rows = curves.read_metrics(run)
    first = metrics.write_run_metrics(run)
    path = metrics.write_run_metrics(run)  # again: replaces the first file
    assert os.listdir(os.path.join(run, "tensorboard")) == [os.path.basename(path)] != [os.path.basename(first)]
    events = tensorboard.read_events(path)[1:]
    assert [e["step"] for e in events] == [r["step"] for r in rows]
    assert [e["scalars"]["loss/train"] for e in events] == \
           [pytest.approx(r["train_loss"], rel=1e-6) for r in rows]     # float32 in the file
    assert [e["step"] for e in events if "loss/val" in e["scalars"]] == [20, 40, 60]
    assert tensorboard.metric_scalars({"step": 5, "pass@4": 0.5, "note": "x", "ok": True}) == {"rl/pass@4": 0.5}


def test_tensorboard_reads_our_event_files(tmp_path, run):
    ea_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    logdir = str(tmp_path / "tb")
    metrics.write_run_metrics(run, logdir)
    with tensorboard.SummaryWriter(logdir) as w:
        png = open(attention.plot_attention(run, "ava", out=str(tmp_path / "a.png"))[0], "rb").read()
        w.add_image("attention", png, 3)
    acc = ea_module.EventAccumulator(logdir, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    rows = curves.read_metrics(run)
    got = acc.Scalars("loss/train")
    assert [e.step for e in got] == [r["step"] for r in rows]
    assert [e.value for e in got] == [pytest.approx(r["train_loss"], rel=1e-6) for r in rows]
    assert [e.step for e in acc.Scalars("loss/val")] == [20, 40, 60]
    assert "optim/lr" in acc.Tags()["scalars"]
    (img,) = acc.Images("attention")
    assert img.step == 3 and img.encoded_image_string[:8] == PNG_MAGIC


def test_report_of_a_run_trained_from_python_rebuilds_its_command(tmp_path, names_path):
    """A run started from the Python API recorded no command line: the page rebuilds one."""
    from microgpt import GPTConfig, Run, RunConfig, TrainConfig
    out = str(tmp_path / "api")
    Run(RunConfig(out=out, model=GPTConfig(n_embd=8, n_head=2), train=TrainConfig(steps=5, lr=0.02),
                  eval_every=0, quiet=True)).train()
    page, p = parse_page(report.build_report(out))
    text = words_of(p)
    assert "microgpt train --out" in text and "--n-embd 8 --n-head 2" in text and "--lr 0.02" in text


def test_pictures_of_a_chat_model(tmp_path):
    """A fine-tuned model reads questions through the chat template: its attention is drawn over a
    question and its own reply, and its report answers held-out problems, marked right or wrong."""
    out = tmp_path / "sft"
    run_cli("tasks", "make", "--task", "add:1", "--num", "40", "--to", tmp_path / "add.jsonl", check=True)
    run_cli("sft", "--data", tmp_path / "add.jsonl", "--n-embd", "8", "--n-head", "2", "--block-size", "12",
            "--steps", "20", "--batch-size", "8", "--eval-every", "10", "--eval-task", "add:1", "--eval-num", "10",
            "--out", out, check=True)
    ckpt = checkpoint.load(str(out))
    title, ids = attention.conversation_ids(attention.numpy_model(ckpt), ckpt.tokenizer, 12, "1+2")
    assert title.startswith("1+2 \u2192 ") and len(ids) <= 12
    assert attention.token_labels(ckpt.tokenizer, ids)[:7] == ["<bos>", "<user>", "1", "+", "2", "</user>", "<asst>"]
    shown = readable_labels(embeddings.embeddings_figure_of(ckpt, "sft"))  # the special tokens short, apart
    assert sorted(shown) == sorted(attention.token_labels(ckpt.tokenizer, range(ckpt.config.vocab_size)))
    assert {"<asst>", "</asst>", "<user>", "</user>"} <= set(shown)
    assert is_png(attention.plot_attention(str(out), "1+2")[0])
    run_cli("report", "--out", out, "--num", "6", check=True)
    page, p = parse_page(str(out / "report.html"))
    text = words_of(p)
    assert "val loss, evaluated (4 conversations)" in text
    assert "val loss, in training (step 20, 4 conversations)" in text
    assert str(tmp_path) not in html.unescape(page)
    assert "Attention" in p.text and "Attention of &#x27;" in page and "\u2192" in text
    assert page.count('class="mark mark-right"') + page.count('class="mark mark-wrong"') == 6
    assert "the reply to a held-out problem" in text and "Held out:" in text
