"""`microgpt export` of the seed's architecture, loaded by transformers (trust_remote_code): logits =
microgpt's (float32 <= 1e-5, float64 <= 1e-10) for both tokenizers and chat models; greedy generate =
`microgpt sample --temperature 0`; the card's figures = `microgpt eval`'s; export -> import -> export
is byte-identical; bad input is one line, exit 2, nothing written."""

import json
import os
import random
import re

import pytest
from helpers import WORDS, assert_one_line_error, run_cli

from microgpt import safetensors
from microgpt.export.to_hf import export_run
from microgpt.stages.open import open_run

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install 'microgpt[hf]')")
torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'microgpt[hf]')")
yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (transformers brings it)")

TINY = ["--steps", "20", "--n-layer", "2", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--eval-every", "0",
        "--quiet"]
UNICODE_DOCS = WORDS + ["zoë", "josé", "chloé", "björn", "łukasz", "ōsaka", "日本", "東京都", "서울", "αθήνα", "киев",
                        "tel aviv", "😀 smile", "o'neil", "d'arcy", "2024", "x½"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, words):
    """Tiny runs: char and bpe base models (docs), char and bpe chat models (sft on add:2, the char
    one with --eval-task), and a numpy float32 run (F32 weights)."""
    d = tmp_path_factory.mktemp("export")
    (d / "docs.txt").write_text("\n".join(UNICODE_DOCS * 3) + "\n")
    run_cli("tasks", "make", "--task", "add:2", "--num", "120", "--to", d / "add.jsonl", check=True)
    chat = ["--data", d / "add.jsonl", "--batch-size", "4", "--block-size", "24"]
    args = {"char": ["train", "--data", words, *TINY, "--num-samples", "0"],
            "bpe": ["train", "--data", d / "docs.txt", "--tokenizer", "bpe", "--vocab-size", "300", *TINY,
                    "--num-samples", "0"],
            "chat": ["sft", *TINY, *chat, "--eval-task", "add:2", "--eval-num", "20"],
            "chatbpe": ["sft", *TINY, *chat, "--tokenizer", "bpe", "--vocab-size", "280"],
            "f32": ["train", "--data", words, *TINY, "--num-samples", "0", "--engine", "numpy", "--dtype", "float32"]}
    out = {}
    for name, a in args.items():
        if name == "f32" and not _has_engine("numpy"):
            continue
        run_cli(*a, "--out", d / name, check=True)
        out[name] = d / name
    return out


def _has_engine(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    out = {}
    for name, run in runs.items():
        assert export_run(str(run), str(d / name)) == "microgpt"  # the seed's architecture: our modeling code
        out[name] = d / name
    return out


def hf_model(folder, dtype=None):
    return transformers.AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True, dtype=dtype).eval()


def hf_tokenizer(folder):
    return transformers.AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)


def our_logits(run_dir, seqs):
    """[B, T, V] logits of every position, from the run's own engine (its KV-cache generator)."""
    gen = open_run(str(run_dir)).model.generator(len(seqs))
    by_pos = [gen.next_logits([s[p] for s in seqs], p) for p in range(len(seqs[0]))]
    return torch.tensor(by_pos, dtype=torch.float64).transpose(0, 1)


@pytest.mark.parametrize("name", ["char", "bpe", "chat", "chatbpe"])
def test_logits_equal_microgpts(runs, exports, name):
    run = open_run(str(runs[name]))
    V, T = run.config.vocab_size, run.config.block_size
    rng = random.Random(name)
    seqs = [[rng.randrange(V) for _ in range(T)] for _ in range(3)]
    ours = our_logits(runs[name], seqs)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        model = hf_model(exports[name], dtype)
        assert model.dtype == dtype
        with torch.no_grad():
            theirs = model(torch.tensor(seqs)).logits.double()
        assert (theirs - ours).abs().max().item() <= tol, dtype
    assert hf_model(exports[name]).dtype == torch.float64  # the run's own dtype by default


def test_float32_run_exports_float32_weights(runs, exports):
    if "f32" not in runs:
        pytest.skip("the numpy engine is not installed")
    header = safetensors.loads((exports["f32"] / "model.safetensors").read_bytes())[0]
    assert len(header) == 2 + 6 * 2 + 1 and all(a.typecode == "f" for _, a in header.values())
    model = hf_model(exports["f32"])
    assert model.dtype == torch.float32
    seqs = [[1, 2, 3, 4, 5, 6, 7, 8]]
    with torch.no_grad():
        theirs = model(torch.tensor(seqs)).logits.double()
    assert (theirs - our_logits(runs["f32"], seqs)).abs().max().item() <= 1e-5


def printed(p):
    return re.findall(r"^sample +\d+: (.*?)(?:  \((?:new|in train|in val|right|wrong)\))?$", p.stdout, re.M)


@pytest.mark.parametrize("name", ["char", "bpe"])
def test_greedy_generate_equals_microgpt_sample(runs, exports, name):
    tok, model = hf_tokenizer(exports[name]), hf_model(exports[name])
    for prompt in ("", "a", "el"):
        got = printed(run_cli("sample", "--out", runs[name], "--temperature", "0", "--num", "1", "--prompt", prompt,
                              check=True))
        ids = tok(tok.bos_token + prompt, return_tensors="pt")["input_ids"]
        out = model.generate(ids, do_sample=False)
        assert got == [tok.decode(out[0], skip_special_tokens=True)], prompt


@pytest.mark.parametrize("name", ["chat", "chatbpe"])
def test_greedy_chat_equals_microgpt_sample(runs, exports, name):
    tok, model = hf_tokenizer(exports[name]), hf_model(exports[name])
    for question in ("12+34", "5+67"):
        got = printed(run_cli("sample", "--out", runs[name], "--temperature", "0", "--num", "1", "--prompt", question,
                              check=True))
        ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
        reply = tok.decode(model.generate(ids, do_sample=False)[0, ids.shape[1]:], skip_special_tokens=True)
        assert got == [f"{question} -> {reply}"]


def front_matter(folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_card_carries_the_runs_figures_commands_and_fingerprint(runs, exports):
    meta, text = front_matter(exports["chat"])
    evaluated = run_cli("eval", "--out", runs["chat"], check=True).stdout
    val_loss, val_bpb = re.search(r"^val loss (\S+) \| (\S+) bits per byte", evaluated, re.M).groups()
    assert f"{meta['microgpt']['val_loss']:.4f}" == val_loss and f"{meta['microgpt']['val_bpb']:.4f}" == val_bpb
    task = run_cli("eval", "--out", runs["chat"], "--task", "add:2", "--num", "20", check=True).stdout
    assert float(re.search(r"^pass@1 \(greedy\): (\S+)", task, re.M).group(1)) == meta["microgpt"]["pass@1"]
    metrics = [m for r in meta["model-index"][0]["results"] for m in r["metrics"]]
    assert {m["type"] for m in metrics} == {"loss", "bits_per_byte", "pass@1"}
    assert "microgpt sft" in text and "--eval-task add:2" in text and "trust_remote_code=True" in text
    fp = meta["microgpt"]["fingerprint"]
    config = json.loads((exports["chat"] / "config.json").read_text())
    tok_config = json.loads((exports["chat"] / "tokenizer_config.json").read_text())
    weights_meta = safetensors.loads((exports["chat"] / "model.safetensors").read_bytes())[1]
    assert config["microgpt_fingerprint"] == tok_config["microgpt_fingerprint"] == \
        weights_meta["microgpt_fingerprint"] == fp
    gen = json.loads((exports["chat"] / "generation_config.json").read_text())
    assert gen["eos_token_id"] == config["eos_token_id"] == hf_tokenizer(exports["chat"]).eos_token_id
    assert gen["max_length"] == 24 + 1  # block_size positions read, the last one's token written


@pytest.mark.parametrize("name", ["char", "chatbpe", "f32"])
def test_export_import_export_is_byte_identical(runs, exports, tmp_path, name):
    if name not in runs:
        pytest.skip("the numpy engine is not installed")
    run_cli("import", "--from", exports[name], "--out", tmp_path / "run", check=True)
    run_cli("export", "--out", tmp_path / "run", "--to", tmp_path / "again", "--no-eval", check=True)
    for f in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json",
              "generation_config.json", "modeling_microgpt.py"):
        assert (tmp_path / "again" / f).read_bytes() == (exports[name] / f).read_bytes(), f
    # the imported run is the run: the same greedy samples
    prompt = "12+3" if name.startswith("chat") else "a"
    a, b = (run_cli("sample", "--out", r, "--temperature", "0", "--num", "1", "--prompt", prompt, check=True).stdout
            for r in (runs[name], tmp_path / "run"))
    assert a == b and printed(run_cli("sample", "--out", runs[name], "--num", "1", "--prompt", prompt, check=True))


def listing(path):
    return sorted(os.listdir(path))


def test_bad_input_is_one_line_and_writes_nothing(runs, exports, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    before = listing(tmp_path)
    cases = [
        (["export", "--out", tmp_path / "nope", "--to", tmp_path / "x"], "no run folder"),
        (["export", "--out", runs["char"], "--to", tmp_path / "taken"], "already exists"),
        (["export", "--out", runs["char"], "--to", runs["bpe"], "--overwrite"], "holds a microgpt run"),
        (["import", "--from", foreign, "--out", tmp_path / "x"], "'llama' (LlamaForCausalLM)"),
        (["import", "--from", tmp_path / "nope", "--out", tmp_path / "x"], "no folder"),
        (["import", "--from", exports["char"], "--out", tmp_path / "taken"], "already exists"),
        (["import", "--from", exports["char"], "--out", tmp_path / "taken", "--overwrite"], "not a microgpt run"),
        (["import", "--from", runs["char"], "--out", tmp_path / "x"], "no config.json"),
    ]
    for args, words in cases:
        p = run_cli(*args)
        assert_one_line_error(p, words)
        assert p.returncode == 2
    assert listing(tmp_path) == before and (tmp_path / "taken" / "mine.txt").read_text() == "keep"
    assert listing(tmp_path / "taken") == ["mine.txt"]
    # a tokenizer out of sync with the weights (two digits' ids swapped): the fingerprint catches it
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    for f in os.listdir(exports["chat"]):
        (swapped / f).write_bytes((exports["chat"] / f).read_bytes())
    tj = json.loads((swapped / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    vocab["1"], vocab["2"] = vocab["2"], vocab["1"]
    (swapped / "tokenizer.json").write_text(json.dumps(tj))
    p = run_cli("import", "--from", swapped, "--out", tmp_path / "x")
    assert_one_line_error(p, "do not belong together")
    assert p.returncode == 2 and not (tmp_path / "x").exists()


def test_overwrite_replaces_an_export(runs, tmp_path):
    run_cli("export", "--out", runs["char"], "--to", tmp_path / "hf", "--no-eval", check=True)
    (tmp_path / "hf" / "stale.txt").write_text("old")
    run_cli("export", "--out", runs["bpe"], "--to", tmp_path / "hf", "--no-eval", "--overwrite", check=True)
    assert not (tmp_path / "hf" / "stale.txt").exists()
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["vocab_size"] == \
        open_run(str(runs["bpe"])).config.vocab_size
    assert listing(tmp_path) == ["hf"]


@pytest.mark.parametrize("name", ["char", "chat"])
def test_the_cards_python_runs_and_writes_what_microgpt_samples(runs, exports, name, capsys):
    _, text = front_matter(exports[name])
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(code, {"PATH": str(exports[name])})
    wrote = capsys.readouterr().out.strip()
    prompt = ["--prompt", "123+456"] if name == "chat" else []
    got = printed(run_cli("sample", "--out", runs[name], "--temperature", "0", "--num", "1", *prompt, check=True))
    assert got == [f"123+456 -> {wrote}" if name == "chat" else wrote]
