"""Multi-turn conversations: what `tasks make` writes (a share with 2 or 3 exchanges, every reply
right, train and test apart at every turn, within --block-size) and pass@1 on the k-th turn of a
chat (`eval --turn K`): its prompts token by token, turn 1 = the single-turn pass@1."""

import random
import re
from collections import Counter

import pytest
from helpers import FLOAT64, assert_one_line_error, run_cli

from microgpt.config import GPTConfig
from microgpt.data.chat_template import CHAT_SPECIAL_TOKENS, render_conversation, render_prompt
from microgpt.engines import get_engine
from microgpt.errors import MicroGPTError
from microgpt.evaluate import evaluate_task, replies, turn_prompts
from microgpt.params import init_weights
from microgpt.tasks import Add, Count, Mixture, Reverse, get_task, make_conversations, split_of
from microgpt.tasks.base import chat_tokens
from microgpt.tokenizers import CharTokenizer

WORDS = ["anna", "bob", "emma", "olivia", "zoe", "ava", "mia", "liam", "noah", "eve", "kai", "isabella"]
# held-out problems of these words: "reverse bob" and "reverse eve" (pinned in test_tasks.py)


def small_mixture():
    """Tasks with few problems, so a turn drawn from the wrong split could not hide."""
    return Mixture([Add(1), Reverse(words=WORDS), Count(words=WORDS)])


def key_of(prompt):
    """A prompt's split key, recomputed from its text with the tasks' own key functions."""
    if m := re.fullmatch(r"(\d+)\+(\d+)", prompt):
        return Add.key(int(m.group(1)), int(m.group(2)))
    if m := re.fullmatch(r"reverse (\w+)", prompt):
        return Reverse.key(m.group(1))
    letter, word = re.fullmatch(r"count (\w) in (\w+)", prompt).groups()
    return Count.key(letter, word)


def right_answer(prompt):
    if m := re.fullmatch(r"(\d+)\+(\d+)", prompt):
        return str(int(m.group(1)) + int(m.group(2)))
    if m := re.fullmatch(r"reverse (\w+)", prompt):
        return m.group(1)[::-1]
    letter, word = re.fullmatch(r"count (\w) in (\w+)", prompt).groups()
    return str(word.count(letter))


def exchanges(conv):
    m = conv["messages"]
    assert [x["role"] for x in m] == ["user", "assistant"] * (len(m) // 2) and len(m) % 2 == 0
    return [(m[i]["content"], m[i + 1]["content"]) for i in range(0, len(m), 2)]


# -- what tasks make writes -------------------------------------------------------------------------

def test_a_share_is_multi_turn_and_every_reply_is_right(names_path):
    task = get_task("add:2,reverse:6,count:6")
    convs = make_conversations(task, "train", 600, seed=3, multi_turn=0.5, block_size=64)
    turns = Counter(len(exchanges(c)) for c in convs)
    assert set(turns) == {1, 2, 3} and 0.4 < (turns[2] + turns[3]) / 600 < 0.6, turns
    first = task.problems("train", 600, seed=3)
    for conv, p in zip(convs, first):
        asked = exchanges(conv)
        assert asked[0] == (p.prompt, p.answer)  # conversation i begins with problem i
        assert all(a == right_answer(q) for q, a in asked)
        assert len({q for q, _ in asked}) == len(asked)  # no question twice in one conversation
    assert {key_of(q).split(":")[0] for c in convs for q, _ in exchanges(c)[1:]} == {"add", "reverse", "count"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_and_test_never_share_a_problem_at_any_turn(seed):
    task = small_mixture()
    asked, turns = {}, Counter()
    for split in ("train", "test"):  # (31 and 7 first questions: all there are; the later ones are drawn freely)
        convs = make_conversations(task, split, task.max_problems(split), seed=seed, multi_turn=1.0, block_size=64)
        turns.update(len(exchanges(c)) for c in convs)
        asked[split] = {q for c in convs for q, _ in exchanges(c)}
        assert all(split_of(key_of(q)) == split for q in asked[split])
    assert set(turns) == {2, 3}
    assert not asked["train"] & asked["test"]
    # and a test sum is never seen the other way round in training
    assert not {"+".join(reversed(q.split("+"))) for q in asked["test"] if "+" in q} & asked["train"]


def test_conversations_are_reproducible_and_drawing_more_keeps_the_first_ones():
    task = get_task("add:2,reverse,count")
    a = make_conversations(task, "train", 80, seed=5, multi_turn=0.5)
    assert a == make_conversations(get_task("add:2,reverse,count"), "train", 80, seed=5, multi_turn=0.5)
    assert make_conversations(task, "train", 160, seed=5, multi_turn=0.5)[:80] == a
    assert a != make_conversations(task, "train", 80, seed=6, multi_turn=0.5)
    # the default (--multi-turn 0): the single exchanges of before
    assert make_conversations(task, "train", 80, seed=5) == \
        [task.conversation(p) for p in task.problems("train", 80, seed=5)]


def test_chat_tokens_counts_what_the_template_renders():
    task = small_mixture()
    tok = CharTokenizer(sorted(set(task.chars))).with_special_tokens(CHAT_SPECIAL_TOKENS)
    problems = task.problems("train", 30, seed=1)
    for n in (1, 2, 3):
        for i in range(0, 27, 3):
            asked = problems[i:i + n]
            assert chat_tokens(asked) == len(render_conversation(tok, task.conversation(*asked)).ids)


@pytest.mark.parametrize("block_size,most", [(16, 1), (32, 2), (48, 3)])
def test_conversations_fit_the_block_size(block_size, most):
    # add:3: an exchange takes 15 or 16 tokens, <|bos|> one more
    convs = make_conversations(get_task("add"), "train", 200, seed=0, multi_turn=0.5, block_size=block_size)
    turns = Counter(len(exchanges(c)) for c in convs)
    assert max(turns) == most and (most == 1 or turns[1] < 130)
    assert all(chat_tokens([Add(3).make(*map(int, q.split("+"))) for q, _ in exchanges(c)]) <= block_size + 1
               for c in convs if len(exchanges(c)) > 1)


@pytest.mark.parametrize("kw,match", [({"multi_turn": 1.5}, "--multi-turn"), ({"multi_turn": True}, "--multi-turn"),
                                      ({"block_size": 0}, "--block-size"), ({"block_size": 3.0}, "--block-size")])
def test_bad_multi_turn_arguments(kw, match):
    with pytest.raises(MicroGPTError, match=match):
        make_conversations(get_task("add:2"), "train", 5, **kw)


# -- pass@1 on the k-th turn --------------------------------------------------------------------------

def tiny_chat_model(chars, block_size=48):
    tok = CharTokenizer(sorted(set(chars))).with_special_tokens(CHAT_SPECIAL_TOKENS)
    config = GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=8, n_head=2, block_size=block_size)
    model = get_engine("python").Model(config, init_weights(config, random.Random(0), std=0.5), FLOAT64["python"])
    return model, tok


def test_the_turn_k_prompt_is_the_template_of_the_conversation():
    task = Reverse(words=WORDS)
    tok = CharTokenizer(sorted(set("reverse bob eve"))).with_special_tokens(CHAT_SPECIAL_TOKENS)
    # ' ' 0, b 1, e 2, o 3, r 4, s 5, v 6; <|bos|> 7, <|user_start|> 8, <|user_end|> 9, <|assistant_start|> 10,
    # <|assistant_end|> 11
    rev = [4, 2, 6, 2, 4, 5, 2, 0]  # "reverse "
    problems = task.problems("test", 2, seed=0)
    assert [p.prompt for p in problems] == ["reverse bob", "reverse eve"]
    assert turn_prompts(tok, 40, task, problems, turn=1) == [[7, 8, *rev, 1, 3, 1, 9, 10], [7, 8, *rev, 2, 6, 2, 9, 10]]
    # turn 2: the other held-out problem asked and answered first ("eve" reversed is "eve")
    assert turn_prompts(tok, 40, task, problems, turn=2) == [
        [7, 8, *rev, 2, 6, 2, 9, 10, 2, 6, 2, 11, 8, *rev, 1, 3, 1, 9, 10],
        [7, 8, *rev, 1, 3, 1, 9, 10, 1, 3, 1, 11, 8, *rev, 2, 6, 2, 9, 10]]
    # the whole conversation (with the reply and its end) must fit block_size + 1 = 34 tokens: it takes 35
    with pytest.raises(MicroGPTError, match=r"turn 2 of reverse.*block_size \+ 1 = 34.*earlier --turn"):
        turn_prompts(tok, 33, task, problems, turn=2)
    # two held-out problems: no two others to ask before one of them
    with pytest.raises(MicroGPTError, match="turn 3 of reverse"):
        turn_prompts(tok, 100, task, problems, turn=3)


def test_turn_k_prompts_render_the_conversation_and_fit():
    task = get_task("add:2,reverse:6,count:6")
    model, tok = tiny_chat_model(task.chars, block_size=64)
    problems = task.problems("test", 30, seed=1)
    prompts = turn_prompts(tok, 64, task, problems, turn=3, seed=1)
    assert prompts == turn_prompts(tok, 64, task, problems, turn=3, seed=1)  # reproducible
    for p, ids in zip(problems, prompts):
        us, ue, as_, ae = (tok.special_tokens[n] for n in CHAT_SPECIAL_TOKENS)
        text = "".join({us: "<", ue: ">", as_: "[", ae: "]"}.get(i) or tok.decode([i]) for i in ids[1:])
        asked, answered = re.findall(r"<(.*?)>", text), re.findall(r"\[(.*?)\]", text)
        assert len(asked) == 3 and asked[-1] == p.prompt and len(set(asked)) == 3
        assert answered == [right_answer(q) for q in asked[:2]]  # earlier ones answered right
        assert all(split_of(key_of(q)) == "test" for q in asked)
        conv = {"messages": [m for q, a in zip(asked, answered + [p.answer])
                             for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]}
        assert ids == render_prompt(tok, conv["messages"][:-1])
        assert len(render_conversation(tok, conv).ids) <= 65


def test_turn_1_is_todays_pass_at_1():
    task = get_task("add:1,add:2")
    model, tok = tiny_chat_model(task.chars, block_size=32)
    problems = task.problems("test", 12, seed=0)
    prompts = [render_prompt(tok, [{"role": "user", "content": p.prompt}]) for p in problems]
    answers = [tok.decode(r) for r in replies(model, tok, 32, prompts, random.Random(0))]
    r = evaluate_task(model, tok, 32, task, 12, random.Random(0))
    assert r == evaluate_task(model, tok, 32, task, 12, random.Random(0), turn=1)
    assert [a for _, a, _ in r["examples"]] == answers[:10]
    assert r["pass@1"] == sum(task.is_correct(p, a) for p, a in zip(problems, answers)) / 12
    later = evaluate_task(model, tok, 32, task, 12, random.Random(0), turn=2)
    assert later["turn"] == 2 and [q for q, _, _ in later["examples"]] == [q for q, _, _ in r["examples"]]
    with pytest.raises(MicroGPTError, match="--turn"):
        evaluate_task(model, tok, 32, task, 12, random.Random(0), turn=0)
    with pytest.raises(MicroGPTError, match="no conversations"):
        evaluate_task(model, tok, 32, get_task("names-ending:a"), 5, random.Random(0), turn=2)


def test_the_command_line(tmp_path):
    data = tmp_path / "add.jsonl"
    made = run_cli("tasks", "make", "--task", "add:1", "--num", "60", "--multi-turn", "1", "--to", data, check=True)
    assert re.search(r"wrote 60 train conversations of add:1 .*\(\d+ with 2 exchanges and \d+ with 3", made.stdout)
    run_cli("sft", "--data", data, "--engine", "numpy", "--n-layer", "1", "--n-embd", "8", "--n-head", "2",
            "--block-size", "32", "--batch-size", "4", "--steps", "2", "--eval-every", "0", "--out", tmp_path / "r",
            check=True)
    p = run_cli("eval", "--out", tmp_path / "r", "--task", "add:1", "--num", "5", "--turn", "3", check=True)
    assert "asked at turn 3 (after 2 held-out exchanges, answered right)" in p.stdout and "pass@1 (greedy):" in p.stdout
    # add:1 has 11 held-out problems, an exchange takes 8 or 9 tokens: 5 of them never fit 33 tokens
    assert_one_line_error(run_cli("eval", "--out", tmp_path / "r", "--task", "add:1", "--num", "5", "--turn", "5"),
                          "turn 5 of add:1", "earlier --turn")
    assert_one_line_error(run_cli("eval", "--out", tmp_path / "r", "--task", "add:1", "--turn", "0"), "--turn")
    assert_one_line_error(run_cli("tasks", "make", "--task", "add", "--num", "5", "--multi-turn", "2"), "--multi-turn")
