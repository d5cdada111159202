"""Tasks: answers recomputed independently, rewards, determinism, train/test never overlapping,
spec parsing, names tasks, mixtures, and conversations that read back."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microgpt.data.conversations import read_conversations, write_conversations
from microgpt.errors import MicroGPTError
from microgpt.tasks import (
    TASKS,
    Add,
    Count,
    Mixture,
    NamesEnding,
    NamesLength,
    Problem,
    Reverse,
    describe_tasks,
    get_task,
    make_conversations,
    split_of,
)

WORDS = ["anna", "bob", "emma", "olivia", "zoe", "ava", "mia", "liam", "noah", "eve", "kai", "isabella"]


@pytest.fixture(scope="module")
def names(names_path):
    with open(names_path) as f:
        return {line.strip() for line in f if line.strip()}


def prompts(problems):
    return {p.prompt for p in problems}


# -- answers are right ----------------------------------------------------------------------------

@pytest.mark.parametrize("digits", [1, 2, 3, 5])
def test_add_answers(digits):
    task = get_task(f"add:{digits}")
    n_train, n_test = (task.max_problems("train"), task.max_problems("test")) if digits == 1 else (200, 50)
    for p in task.problems("train", n_train, seed=1) + task.problems("test", n_test, seed=1):
        a, b = p.prompt.split("+")
        for n in (a, b):  # exactly D digits, no leading zero
            assert len(n) == digits and n[0] != "0" and n.isdigit()
        assert p.answer == str(int(a) + int(b))
        assert p.task == f"add:{digits}"


def test_add_default_is_three_digits():
    assert get_task("add").name == "add:3"
    assert get_task("add").problems("train", 1)[0].prompt == get_task("add:3").problems("train", 1)[0].prompt


def test_reverse_answers(names):
    task = get_task("reverse")
    for p in task.problems("train", 300, seed=3) + task.problems("test", 100, seed=3):
        word = re.fullmatch(r"reverse ([a-z]+)", p.prompt).group(1)
        assert word in names
        assert p.answer == "".join(word[i] for i in range(len(word) - 1, -1, -1))


def test_count_answers_with_present_and_absent_letters(names):
    task = get_task("count")
    answers = []
    for p in task.problems("train", 400, seed=5) + task.problems("test", 100, seed=5):
        letter, word = re.fullmatch(r"count ([a-z]) in ([a-z]+)", p.prompt).groups()
        assert word in names
        assert p.answer == str(sum(1 for ch in word if ch == letter))
        answers.append(p.answer)
    zeros = answers.count("0") / len(answers)
    assert 0.35 < zeros < 0.65, zeros  # absent letters about half the time, present the other half
    assert {"1", "2"} <= set(answers)


def test_max_len_keeps_short_words(names):
    for spec in ("reverse:5", "count:5"):
        for p in get_task(spec).problems("train", 300):
            assert len(p.prompt.split()[-1]) <= 5
    assert get_task("reverse:5").size() == len({n for n in names if len(n) <= 5})


def test_custom_words():
    task = Reverse(words=WORDS)
    got = task.problems("train", task.max_problems("train"), seed=0)
    assert {p.prompt[len("reverse "):] for p in got} | \
        {p.prompt[len("reverse "):] for p in task.problems("test", task.max_problems("test"))} == set(WORDS)
    # count's letters are the words' alphabet, not a-z: a, b, e, m, n, o x 3 words
    assert Count(words=["anna", "bob", "emma"]).size() == 6 * 3
    assert get_task("count", words=["ab", "ba", "ab"]).size() == 2 * 2  # duplicates count once


@pytest.mark.parametrize("words", [[], ["two words"], [""], ["ok", "tab\there"]])
def test_bad_words(words):
    with pytest.raises(MicroGPTError, match="task reverse"):
        Reverse(words=words)


def test_no_word_short_enough():
    with pytest.raises(MicroGPTError, match="at most 2 letters"):
        Reverse(max_len=2, words=WORDS)


@pytest.mark.parametrize("spec", ["add:2", "reverse", "count", "add,reverse,count"])
def test_chars_cover_every_prompt_and_answer(spec, names_path):
    task = get_task(spec)
    for p in task.problems("train", 300) + task.problems("test", 100):
        assert set(p.prompt + p.answer) <= set(task.chars), p


# -- rewards --------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["add", "add:1", "reverse", "count"])
def test_reward_accepts_right_answer_and_rejects_wrong_ones(spec, names_path):
    task = get_task(spec)
    for p in task.problems("train", 30, seed=7) + task.problems("test", 10, seed=7):
        for right in (p.answer, f" {p.answer}", f"{p.answer}\n", f"\t {p.answer}  \n"):
            assert task.reward(p, right) == 1.0 and task.is_correct(p, right)
        wrong = [p.answer + "1", p.answer[:-1], "", " ", p.answer.upper() + "x", "0" + p.answer]
        if len(p.answer) > 1:
            wrong.append(p.answer[0] + " " + p.answer[1:])
        for w in wrong:
            assert task.reward(p, w) == 0.0 and not task.is_correct(p, w), (p, w)


def test_reward_is_a_float_in_0_1():
    task = get_task("add:2")
    p = task.problems("test", 1)[0]
    assert isinstance(task.reward(p, p.answer), float)
    assert isinstance(task.reward(p, "nope"), float)


# -- determinism ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["add", "reverse", "count", "add,reverse"])
def test_same_seed_same_problems_other_seed_other_problems(spec, names_path):
    task = get_task(spec)
    for split in ("train", "test"):
        a = task.problems(split, 50, seed=11)
        assert a == get_task(spec).problems(split, 50, seed=11)  # a fresh task object too
        assert prompts(a) != prompts(task.problems(split, 50, seed=12))
        assert len(prompts(a)) == 50  # distinct


def test_drawing_more_keeps_the_first_ones():
    task = get_task("add:2")
    assert task.problems("train", 300, seed=4)[:100] == task.problems("train", 100, seed=4)


def test_two_tasks_with_one_seed_draw_independently():
    # the same words under two names: one seed must not give both the same problems
    a, b = Reverse(words=WORDS), Reverse(max_len=20, words=WORDS)
    assert a.size() == b.size()
    assert prompts(a.problems("train", 5, seed=0)) != prompts(b.problems("train", 5, seed=0))


# -- train and test never overlap ------------------------------------------------------------------

def test_add1_enumerated_splits_partition_all_problems():
    task = get_task("add:1")
    n_train, n_test = task.max_problems("train"), task.max_problems("test")
    assert n_train + n_test == 81
    train = task.problems("train", n_train, seed=0)
    test = task.problems("test", n_test, seed=0)
    everything = {f"{a}+{b}" for a in range(1, 10) for b in range(1, 10)}
    assert prompts(train) | prompts(test) == everything
    assert not prompts(train) & prompts(test)
    assert 0 < n_test < 20  # about 10%
    # a+b and b+a are the same sum: always in the same split
    for p in test:
        a, b = p.prompt.split("+")
        assert f"{b}+{a}" in prompts(test)


@pytest.mark.parametrize("spec,n_train,n_test", [("add:3", 5000, 2000), ("reverse", 5000, 1500),
                                                 ("count", 5000, 2000)])
def test_large_draws_never_overlap(spec, n_train, n_test, names_path):
    task = get_task(spec)
    train = task.problems("train", n_train, seed=1)
    test = task.problems("test", n_test, seed=2)
    assert not prompts(train) & prompts(test)
    assert not {p.key for p in train} & {p.key for p in test}
    assert all(split_of(p.key) == "train" for p in train) and all(split_of(p.key) == "test" for p in test)
    if spec == "reverse":  # a word reversed in the test split is never seen reversed in training
        assert not {p.answer for p in train} & {p.answer for p in test}


ADD = {d: get_task(f"add:{d}") for d in (1, 2, 3)}  # made once: counting add:3's splits takes ~1 s


@settings(max_examples=40, deadline=None)
@given(seed_a=st.integers(0, 10 ** 9), seed_b=st.integers(0, 10 ** 9),
       n_a=st.integers(0, 500), n_b=st.integers(0, 80), digits=st.integers(1, 3))
def test_split_property(seed_a, seed_b, n_a, n_b, digits):
    task = ADD[digits]
    if digits < 3:  # add:3 has far more of both
        n_a, n_b = min(n_a, task.max_problems("train")), min(n_b, task.max_problems("test"))
    train, test = task.problems("train", n_a, seed_a), task.problems("test", n_b, seed_b)
    assert len(train) == n_a and len(test) == n_b
    assert not prompts(train) & prompts(test)
    # the commuted sum of a test problem is never a training problem either
    commuted = {"+".join(reversed(p.prompt.split("+"))) for p in test}
    assert not commuted & prompts(train)


def test_split_of_is_about_ten_percent():
    keys = [f"k{i}" for i in range(20000)]
    share = sum(split_of(k) == "test" for k in keys) / len(keys)
    assert 0.09 < share < 0.11


def test_split_of_known_values():
    # pinned: a change of the hash would move problems between the splits of existing runs
    keys = [f"add:{a}+{b}" for a in range(1, 10) for b in range(a, 10)] + ["add:123+456", "count:a:anna"] + \
        [f"reverse:{w}" for w in WORDS]
    assert [k for k in keys if split_of(k) == "test"] == [
        "add:1+2", "add:1+4", "add:3+9", "add:4+5", "add:6+9", "add:9+9", "reverse:bob", "reverse:eve"]


# -- too many problems, bad arguments ---------------------------------------------------------------

def test_too_many_problems_names_the_maximum():
    task = get_task("add:1")
    most = task.max_problems("test")
    assert len(task.problems("test", most)) == most
    with pytest.raises(MicroGPTError, match=rf"only {most} test problems.*at most that many"):
        task.problems("test", most + 1)


def test_too_many_on_a_large_task_counts_it():
    task = get_task("reverse", words=[f"w{i}" for i in range(200)])
    most = task.max_problems("train")
    with pytest.raises(MicroGPTError, match=f"only {most} train"):
        task.problems("train", most + 1)


@pytest.mark.parametrize("split,num,match", [("val", 5, "unknown split 'val'"), ("train", -1, ">= 0"),
                                             ("train", 2.5, ">= 0"), ("test", True, ">= 0")])
def test_bad_split_or_num(split, num, match):
    with pytest.raises(MicroGPTError, match=match):
        get_task("add:2").problems(split, num)


def test_zero_problems():
    assert get_task("add:2").problems("train", 0) == []
    assert get_task("add:1,add:2").problems("test", 0) == []


# -- spec parsing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,cls,name", [
    ("add", Add, "add:3"), ("add:4", Add, "add:4"), (" add:1 ", Add, "add:1"), ("reverse", Reverse, "reverse"),
    ("reverse:6", Reverse, "reverse:6"), ("count", Count, "count"), ("count:7", Count, "count:7"),
    ("names-ending:a", NamesEnding, "names-ending:a"), ("names-ending:lyn", NamesEnding, "names-ending:lyn"),
    ("names-length:6-8", NamesLength, "names-length:6-8"), ("names-length:5", NamesLength, "names-length:5-5"),
    ("add, reverse,count", Mixture, "add:3,reverse,count"),
    ("names-ending:a,names-length:3-5", Mixture, "names-ending:a,names-length:3-5")])
def test_get_task(spec, cls, name, names_path):
    task = get_task(spec)
    assert isinstance(task, cls) and task.name == name
    assert get_task(task.name).name == name  # a task's name is a spec for the same task


@pytest.mark.parametrize("spec,words", [
    ("", "no task given"), ("   ", "no task given"), (None, "no task given"),
    ("mul", "unknown task 'mul'"), ("Add", "unknown task"), ("names", "unknown task"),
    ("add:0", "1..9"), ("add:10", "1..9"), ("add:x", "number of digits"), ("add:", "number of digits"),
    ("add:-3", "number of digits"), ("add:3.5", "number of digits"), ("reverse:0", ">= 1"),
    ("count:abc", "longest word length"),
    ("names-ending", "needs a suffix"), ("names-ending:", "needs a suffix"), ("names-ending:a b", "needs a suffix"),
    ("names-length", "LO-HI"), ("names-length:8-6", "LO-HI"), ("names-length:0-3", "LO-HI"),
    ("names-length:a-b", "LO-HI"), ("names-length:3-", "LO-HI"),
    ("add,,reverse", "empty part"), ("add,", "empty part"),
    ("add,names-ending:a", "mixes chat tasks with names tasks"), ("add,add:3", "appears twice"),
])
def test_bad_specs(spec, words):
    with pytest.raises(MicroGPTError) as e:
        get_task(spec, words=WORDS)
    msg = str(e.value)
    assert words in msg and "\n" not in msg
    assert ":" in msg  # problem: fix


def test_unknown_task_lists_what_exists():
    with pytest.raises(MicroGPTError) as e:
        get_task("multiply")
    for name in TASKS:
        assert name in str(e.value)


def test_help_text_names_every_task():
    text = describe_tasks()
    assert len(text.splitlines()) == len(TASKS)
    for name in TASKS:
        assert name in text


# -- names tasks -----------------------------------------------------------------------------------

def test_names_ending():
    task = get_task("names-ending:a")
    assert not task.chat
    p = task.problems("train", 3)[0]
    assert p.prompt == "" and p.answer is None and p.task == "names-ending:a"
    for name, r in [("emma", 1.0), (" olivia\n", 1.0), ("a", 1.0), ("emily", 0.0), ("", 0.0), ("ana ", 1.0),
                    ("anA", 0.0), ("ab", 0.0)]:
        assert task.reward(p, name) == r, name
        assert task.is_correct(p, name) == (r == 1.0)
    lyn = get_task("names-ending:lyn")
    assert lyn.reward(p, "katelyn") == 1.0 and lyn.reward(p, "lynn") == 0.0


def test_names_length():
    task = get_task("names-length:6-8")
    p = task.problems("test", 1)[0]
    for name, r in [("abcde", 0.0), ("abcdef", 1.0), ("abcdefg", 1.0), ("abcdefgh", 1.0), ("abcdefghi", 0.0),
                    ("  abcdef  ", 1.0), ("", 0.0)]:
        assert task.reward(p, name) == r, name


def test_names_tasks_give_as_many_empty_problems_as_asked():
    task = get_task("names-length:6-8")
    assert len(task.problems("train", 1000, seed=3)) == 1000
    assert task.problems("train", 5) == task.problems("test", 5)  # nothing to leak: no prompt


def test_names_tasks_have_no_conversations():
    task = get_task("names-ending:a")
    with pytest.raises(MicroGPTError, match="no conversations"):
        make_conversations(task, "train", 3)
    with pytest.raises(MicroGPTError, match="no conversations"):
        task.conversation(task.problems("train", 1)[0])


# -- mixtures ----------------------------------------------------------------------------------------

def test_mixture_interleaves_and_dispatches(names_path):
    task = get_task("add:2,reverse,count")
    got = task.problems("train", 30, seed=9)
    assert [p.task for p in got] == ["add:2", "reverse", "count"] * 10
    # each part's problems are its own draw with the same seed, in order
    assert [p for p in got if p.task == "add:2"] == get_task("add:2").problems("train", 10, seed=9)
    assert [p for p in got if p.task == "count"] == get_task("count").problems("train", 10, seed=9)
    for p in got:
        assert task.reward(p, p.answer) == 1.0 and task.reward(p, p.answer + "0") == 0.0
        assert task.conversation(p)["messages"][1]["content"] == p.answer
    assert task.problems("train", 31, seed=9)[:30] == got
    uneven = task.problems("test", 7, seed=9)
    assert [p.task for p in uneven] == ["add:2", "reverse", "count", "add:2", "reverse", "count", "add:2"]


def test_mixture_reward_of_a_foreign_problem():
    task = get_task("add:1,add:2")
    with pytest.raises(MicroGPTError, match="not one of the mixture"):
        task.reward(Problem("reverse", "reverse bob", "bob", "reverse:bob"), "bob")


def test_mixture_too_many_names_its_maximum():
    task = get_task("add:1,add:2")
    most = task.max_problems("test")
    # add:1's few test problems limit the mixture: it gives every other problem
    assert most == 2 * get_task("add:1").max_problems("test")
    assert len(task.problems("test", most)) == most
    with pytest.raises(MicroGPTError, match=rf"only {most} test problems"):
        task.problems("test", most + 1)


def test_mixture_of_names_tasks():
    task = get_task("names-ending:a,names-length:6-8")
    got = task.problems("train", 4)
    assert [p.task for p in got] == ["names-ending:a", "names-length:6-8"] * 2
    assert [task.reward(p, "olivia") for p in got] == [1.0, 1.0, 1.0, 1.0]
    assert [task.reward(p, "ann") for p in got] == [0.0, 0.0, 0.0, 0.0]
    assert [task.reward(p, "bob") for p in got] == [0.0, 0.0, 0.0, 0.0]
    assert [task.reward(p, "mia") for p in got] == [1.0, 0.0, 1.0, 0.0]


# -- conversations -----------------------------------------------------------------------------------

def test_conversation_of_a_problem():
    p = get_task("add").problems("train", 1)[0]
    assert get_task("add").conversation(p) == {"messages": [{"role": "user", "content": p.prompt},
                                                            {"role": "assistant", "content": p.answer}]}


def test_make_conversations_round_trips_through_jsonl(tmp_path, names_path):
    task = get_task("add,reverse,count")
    convs = make_conversations(task, "test", 60, seed=2)
    assert len(convs) == 60
    path = tmp_path / "out" / "test.jsonl"
    write_conversations(str(path), convs)
    assert read_conversations(str(path)) == convs
    assert len(path.read_text().splitlines()) == 60
    problems = task.problems("test", 60, seed=2)
    assert [c["messages"][0]["content"] for c in convs] == [p.prompt for p in problems]
    assert all(task.is_correct(p, c["messages"][1]["content"]) for p, c in zip(problems, convs))
