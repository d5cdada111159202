"""Supervised fine-tuning and chat: the loss mask, the vocabulary growing without touching the
old rows, exact resume, batched generation, `eval --task`, `chat --prompt` through the CLI."""

import json
import random

import pytest
from helpers import FLOAT64, assert_one_line_error, run_cli

from microgpt import checkpoint
from microgpt.config import GPTConfig, RunConfig, TrainConfig
from microgpt.data.chat import ChatDataset, chat_tokenizer
from microgpt.data.chat_template import CHAT_SPECIAL_TOKENS, render_conversation
from microgpt.engines import get_engine
from microgpt.generate import generate
from microgpt.params import grow_rows, init_weights
from microgpt.stages.open import open_run
from microgpt.stages.sft import SFTRun, masked_weights
from microgpt.tokenizers import CharTokenizer

SMALL = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "8",
         "--steps", "30", "--eval-every", "15", "--eval-num", "20"]


@pytest.fixture(scope="module")
def add_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sft")
    run_cli("tasks", "make", "--task", "add:2", "--num", "400", "--split", "train", "--to", d / "add.jsonl",
            check=True)
    return d / "add.jsonl"


def test_only_the_assistants_tokens_carry_weight():
    conv = {"messages": [{"role": "user", "content": "12+34"}, {"role": "assistant", "content": "46"}]}
    tok = chat_tokenizer(CharTokenizer([]), [conv])
    ids, mask, _ = render_conversation(tok, conv)
    pairs = [(ids, mask), (ids[:-1], mask[:-1])]  # the second one cut before <|assistant_end|>
    w = masked_weights(pairs)
    assert [len(x) for x in w] == [len(ids) - 1, len(ids) - 2]
    assert sum(sum(x) for x in w) == pytest.approx(1.0)  # the mean over the batch's assistant tokens
    specials = {i: n for n, i in tok.special_tokens.items()}
    weighted = [ids[t + 1] for t, x in enumerate(w[0]) if x > 0]
    assert [tok.decode([i]) or specials[i] for i in weighted] == ["4", "6", "<|assistant_end|>"]


def test_the_vocabulary_grows_and_keeps_every_old_row(names_path, tmp_path):
    base_out = tmp_path / "base"
    run_cli("train", "--out", base_out, "--steps", "5", "--eval-every", "0", "--num-samples", "0", check=True)
    base = checkpoint.load(str(base_out))
    convs = [{"messages": [{"role": "user", "content": "1+2"}, {"role": "assistant", "content": "3"}]}]
    tok = chat_tokenizer(base.tokenizer, convs)
    assert all(tok.encode(ch) == base.tokenizer.encode(ch) for ch in "abcxyz") and tok.BOS == base.tokenizer.BOS
    assert tok.vocab_size == 27 + 4 + 4  # + '1', '2', '3', '+' and the four chat tokens
    config = GPTConfig(vocab_size=tok.vocab_size)
    grown = grow_rows(base.weights, config, random.Random(1))
    for name in base.weights:
        old = [list(r) for r in base.weights[name]]
        assert [list(r) for r in grown[name][:len(old)]] == old
    assert len(grown["wte"]) == len(grown["lm_head"]) == 35 and grown["wte"][27] != grown["wte"][28]
    # the run starts from exactly that (its random stream: the shuffle, then the new rows)
    data = tmp_path / "c.jsonl"
    data.write_text(json.dumps(convs[0]) + "\n")
    run = SFTRun(RunConfig(data=str(data), init_from=str(base_out), out=str(tmp_path / "sft"), quiet=True,
                           train=TrainConfig(val_frac=0.0)))
    w = run.model.get_weights()
    rng = random.Random(42)
    rng.shuffle(list(convs))
    assert w["wte"][:27] == [list(r) for r in base.weights["wte"]]
    assert w["wte"][27:] == [[rng.gauss(0, 0.08) for _ in range(16)] for _ in range(8)]


def test_sft_from_a_run_trains_resumes_exactly_and_chats(add_data, names_path, tmp_path):
    base = tmp_path / "base"
    run_cli("train", "--out", base, "--steps", "10", "--block-size", "16", "--eval-every", "0", "--num-samples", "0",
            check=True)
    common = ["--data", add_data, "--from", base, "--batch-size", "8", "--steps", "24", "--eval-every", "12",
              "--eval-task", "add:2", "--eval-num", "20"]
    straight = run_cli("sft", *common, "--out", tmp_path / "a", check=True)
    assert "pass@1" in straight.stdout and "conversations" in straight.stdout
    run_cli("sft", *common, "--out", tmp_path / "b", "--stop-after", "9", check=True)
    run_cli("sft", "--out", tmp_path / "b", "--resume", check=True)
    a, b = checkpoint.load(str(tmp_path / "a")), checkpoint.load(str(tmp_path / "b"))
    assert a.weights == b.weights and a.optimizer == b.optimizer
    assert b.tokenizer.special_tokens["<|assistant_end|>"] == 27 + 11 + 3  # after the digits and "+"
    rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "test_pass@1" in r] == [12, 24]
    assert all(0 <= r.get("test_pass@1", 0) <= 1 for r in rows)
    chat = run_cli("chat", "--out", tmp_path / "a", "--prompt", "12+34", check=True)
    assert chat.stdout.endswith("\n") and len(chat.stdout.splitlines()) == 1
    ev = run_cli("eval", "--out", tmp_path / "a", "--task", "add:2", "--num", "30", "--samples", "3",
                 "--temperature", "1", check=True)
    assert "pass@1 (greedy):" in ev.stdout and "pass@3:" in ev.stdout and "-> " in ev.stdout
    # sampling a chat model: replies to held-out problems of its --eval-task, marked right or wrong
    lines = run_cli("sample", "--out", tmp_path / "a", "--num", "3", check=True).stdout.splitlines()
    assert len(lines) == 3 and all(" -> " in l and l.endswith(("(right)", "(wrong)")) for l in lines)


def test_sampling_a_chat_model_without_a_task_answers_validation_questions(add_data, tmp_path):
    out = tmp_path / "plain"
    run_cli("sft", "--data", add_data, *SMALL, "--eval-every", "0", "--out", out, check=True)
    run = open_run(str(out))
    answered = run.answers(5, temperature=0)
    held_out = [json.loads(l)["messages"] for l in open(add_data)]
    val = run.ds.val_conversations
    assert len(answered) == 5 and [q for q, _, _ in answered] == [c["messages"][0]["content"] for c in val[:5]]
    assert all(c["messages"] in held_out for c in val)
    for (_, reply, mark), conv in zip(answered, val):
        assert mark == ("in val" if reply == conv["messages"][1]["content"] else "new")
    assert [r for _, r, _ in answered] == run.sample(5, temperature=0)
    p = run_cli("sample", "--out", out, "--num", "2", "--prompt", "12+34", "--temperature", "0", check=True)
    assert [l.split(" -> ")[0] for l in p.stdout.splitlines()] == ["sample  1: 12+34", "sample  2: 12+34"]


def test_sft_from_scratch_with_bpe(tmp_path, names_path):
    run_cli("tasks", "make", "--task", "reverse:6", "--num", "300", "--to", tmp_path / "rev.jsonl", check=True)
    p = run_cli("sft", "--data", tmp_path / "rev.jsonl", "--tokenizer", "bpe", "--vocab-size", "280", *SMALL,
                "--block-size", "24", "--out", tmp_path / "bpe", check=True)
    ck = checkpoint.load(str(tmp_path / "bpe"))
    assert ck.raw_config["tokenizer"]["type"] == "bpe" and set(CHAT_SPECIAL_TOKENS) <= set(ck.tokenizer.special_tokens)
    assert ck.config.vocab_size == 280 + 4 and "vocab size 284" in p.stdout


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_batched_generation_equals_one_prompt_at_a_time(engine):
    """Greedy: rows with prompts of different lengths, generated together, give what each gives
    alone; and every engine gives the python engine's tokens (float64)."""
    pytest.importorskip(engine)
    config = GPTConfig(vocab_size=9, n_layer=2, n_embd=8, n_head=2, block_size=10)
    weights = init_weights(config, random.Random(4), std=0.5)
    py = get_engine("python").Model(config, weights, FLOAT64["python"])
    model = get_engine(engine).Model(config, weights, FLOAT64[engine])
    prompts = [[8, 1], [8, 2, 3, 4, 5], [8], [8, 7, 7]]
    rng = random.Random(0)
    for stop in ((), (8, 1)):  # to the end of the context, or until a stop token
        together = generate(model, prompts, rng, 10, None, 0.0, stop=stop)
        alone = [generate(model, [p], rng, 10, None, 0.0, stop=stop)[0] for p in prompts]
        assert together == alone == generate(py, prompts, rng, 10, None, 0.0, stop=stop)
        assert not any(t in stop for row in together for t in row)
    assert [len(t) for t in generate(model, prompts, rng, 10, None, 0.0)] == [9, 6, 10, 8]


def test_sampling_batches_are_reproducible():
    config = GPTConfig(vocab_size=9, n_layer=1, n_embd=8, n_head=2, block_size=10)
    model = get_engine("python").Model(config, init_weights(config, random.Random(4), std=0.5), FLOAT64["python"])
    draw = lambda: generate(model, [[8]] * 5, random.Random(7), 10, None, 1.0, stop=(8,))
    assert draw() == draw() and len({tuple(t) for t in draw()}) > 1


def test_chat_dataset_cuts_long_conversations_and_drops_empty_ones():
    tok = chat_tokenizer(CharTokenizer([]), [{"messages": [{"role": "user", "content": "x" * 30},
                                                           {"role": "assistant", "content": "abc"}]}])
    convs = [{"messages": [{"role": "user", "content": "x" * n}, {"role": "assistant", "content": "abc"}]}
             for n in (2, 11, 30)]
    ds = ChatDataset(convs, tok, block_size=16, val_frac=0.0, rng=random.Random(0))
    assert ds.n_truncated == 2 and ds.n_dropped == 1 and len(ds.train) == 2
    assert all(len(ids) <= 17 for ids, _ in ds.train)


def test_bad_sft_and_chat_input(add_data, names_path, tmp_path):
    assert_one_line_error(run_cli("sft", "--out", tmp_path / "x"), "--data")
    base = tmp_path / "base"
    run_cli("train", "--out", base, "--steps", "2", "--eval-every", "0", "--num-samples", "0", check=True)
    assert_one_line_error(run_cli("sft", "--data", add_data, "--from", base, "--n-embd", "32", "--out",
                                  tmp_path / "y"), "--n-embd", "--from")
    assert_one_line_error(run_cli("chat", "--out", base, "--prompt", "hi"), "not a chat model")
    assert_one_line_error(run_cli("eval", "--out", base, "--task", "add"), "not a chat model")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert_one_line_error(run_cli("sft", "--data", bad, "--out", tmp_path / "z"), "bad.jsonl", "line 1")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_chat_prompt_with_a_character_it_cannot_read(add_data, tmp_path):
    run_cli("sft", "--data", add_data, *SMALL, "--out", tmp_path / "r", check=True)
    assert_one_line_error(run_cli("chat", "--out", tmp_path / "r", "--prompt", "what is 1+1?"), "vocabulary")


def test_names_task_evaluation_reports_diversity(names_path, tmp_path):
    run_cli("train", "--out", tmp_path / "n", "--steps", "50", "--eval-every", "0", "--num-samples", "0", check=True)
    p = run_cli("eval", "--out", tmp_path / "n", "--task", "names-ending:a", "--num", "40", check=True)
    for key in ("reward_mean", "unique", "new"):
        assert f"{key}: " in p.stdout


def test_sft_from_a_float32_run_keeps_its_dtype_and_logs_every_100_steps(add_data, names_path, tmp_path):
    base = tmp_path / "base"
    run_cli("train", "--engine", "numpy", "--dtype", "float32", "--n-embd", "8", "--n-head", "2", "--steps", "2",
            "--eval-every", "0", "--num-samples", "0", "--out", base, check=True)
    for engine in ([], ["--engine", "numpy"]):  # (naming the base's engine keeps its dtype too)
        out = tmp_path / f"sft{len(engine)}"
        p = run_cli("sft", "--data", add_data, "--from", base, *engine, "--batch-size", "4", "--steps", "200",
                    "--eval-every", "0", "--out", out, check=True)
        assert checkpoint.load(str(out)).engine.dtype == "float32"
        assert [l.split("|")[0].split()[1] for l in p.stdout.splitlines() if l.startswith("step")] == ["100", "200"]
