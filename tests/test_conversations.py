"""Conversations JSONL (read, write, one clear error per malformed line) and the chat template
(ids and loss mask checked against hand-written lists)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microgpt.data.chat_template import CHAT_SPECIAL_TOKENS, conversation_text, render_conversation, render_prompt
from microgpt.data.conversations import check_conversation, dumps_conversations, read_conversations, write_conversations
from microgpt.errors import MicroGPTError
from microgpt.tokenizers import BOS, CharTokenizer


def chat(*turns, system=None):
    """A conversation from alternating user / assistant texts."""
    msgs = [{"role": "system", "content": system}] if system is not None else []
    msgs += [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    return {"messages": msgs}


CONVS = [chat("12+34", "46"), chat("reverse emma", "amme", "count m in emma", "2"),
         chat("hi", "", system="be brief"), chat("naïve 日本 \u2028 \"quoted\"\nnew line", "ok ✓")]


# -- reading and writing ------------------------------------------------------------------------------

def test_round_trip(tmp_path):
    path = str(tmp_path / "c.jsonl")
    write_conversations(path, CONVS)
    assert read_conversations(path) == CONVS
    text = open(path, encoding="utf-8").read()
    assert text == dumps_conversations(CONVS)
    assert text.count("\n") == len(CONVS) and "日本" in text  # one per line, UTF-8 as is


def test_dumps_is_one_json_object_per_line():
    lines = dumps_conversations([chat("a", "b")]).splitlines()
    assert [json.loads(l) for l in lines] == [chat("a", "b")]
    # keys come out in the documented order, whatever order they came in
    reordered = {"messages": [{"content": "a", "role": "user"}, {"content": "b", "role": "assistant"}]}
    assert dumps_conversations([reordered]) == dumps_conversations([chat("a", "b")])
    assert dumps_conversations([chat("a", "b")]).startswith('{"messages": [{"role": "user", "content": "a"}')


def test_blank_lines_bom_and_crlf_are_fine(tmp_path):
    path = tmp_path / "c.jsonl"
    body = "\r\n\r\n".join(json.dumps(c) for c in CONVS[:2]) + "\r\n  \n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert read_conversations(str(path)) == CONVS[:2]


def test_prompts_end_with_the_user(tmp_path):
    path = str(tmp_path / "p.jsonl")
    write_conversations(path, [chat("12+34")], last="user")
    assert read_conversations(path, last="user") == [chat("12+34")]
    assert read_conversations(path, last=None) == [chat("12+34")]
    with pytest.raises(MicroGPTError, match="line 1: the last message is from the user"):
        read_conversations(path)


OK = json.dumps(chat("a", "b"))
BAD_LINES = [
    ("{not json", "not valid JSON"),
    ('{"messages": []', "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"hello"', "not a string"),
    ("{}", "lacks 'messages'"),
    ('{"messages": [], "id": 3}', "has unexpected 'id'"),
    ('{"msgs": []}', "lacks 'messages' and has unexpected 'msgs'"),
    ('{"messages": {"role": "user"}}', "must be a list of messages, not an object"),
    ('{"messages": []}', '"messages" is empty'),
    ('{"messages": ["hi"]}', "message 1 must be an object"),
    ('{"messages": [{"role": "user"}]}', "message 1 lacks 'content'"),
    ('{"messages": [{"role": "user", "content": "a", "name": "x"}]}', "message 1 has unexpected 'name'"),
    ('{"messages": [{"role": "bot", "content": "a"}]}', "message 1 has role 'bot'"),
    ('{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "5"}]}',
     "message 1 has content a number"),
    ('{"messages": [{"role": "user", "content": null}]}', "content null"),
    ('{"messages": [{"role": "assistant", "content": "a"}]}', "message 1 is from 'assistant' where 'user'"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}',
     "message 2 is from 'user' where 'assistant'"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}',
     "message 2 is from 'system'"),
    ('{"messages": [{"role": "system", "content": "a"}]}', "only a system message"),
    ('{"messages": [{"role": "user", "content": "a"}]}', "last message is from the user"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, '
     '{"role": "user", "content": "c"}]}', "last message is from the user"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
]


@pytest.mark.parametrize("line,words", BAD_LINES)
def test_each_malformation_is_one_error_naming_file_and_line(tmp_path, line, words):
    path = tmp_path / "bad.jsonl"
    path.write_text(OK + "\n\n" + line + "\n" + OK + "\n", encoding="utf-8")
    with pytest.raises(MicroGPTError) as e:
        read_conversations(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}, line 3: "), msg
    assert words in msg, msg
    assert "\n" not in msg and ": " in msg[len(str(path)):]  # one line: the problem, then the fix


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes((OK + "\n" + OK + "\n").encode() + json.dumps(chat("café", "x"), ensure_ascii=False)
                     .encode("latin-1") + b"\n")
    with pytest.raises(MicroGPTError, match=r"line 3: not UTF-8"):
        read_conversations(str(path))


@pytest.mark.parametrize("content,words", [("", "holds no conversations"), ("\n \n\t\n", "holds no conversations")])
def test_empty_file(tmp_path, content, words):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(MicroGPTError, match=words):
        read_conversations(str(path))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MicroGPTError, match="does not exist"):
        read_conversations(str(tmp_path / "nope.jsonl"))
    with pytest.raises(MicroGPTError, match="is a folder"):
        read_conversations(str(tmp_path))


def test_writing_checks_each_conversation(tmp_path):
    path = tmp_path / "w.jsonl"
    with pytest.raises(MicroGPTError, match="conversation 2: message 1 has role 'robot'"):
        write_conversations(str(path), [chat("a", "b"), {"messages": [{"role": "robot", "content": "x"}]}])
    assert not path.exists()  # nothing half-written
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(MicroGPTError, match="cannot write conversations to"):
        write_conversations(str(tmp_path / "a-file" / "x.jsonl"), [chat("a", "b")])  # folder is a file


def test_check_conversation_accepts_good_ones():
    for c in CONVS:
        check_conversation(c)
    with pytest.raises(MicroGPTError, match="conversation: a conversation must be a JSON object"):
        check_conversation([chat("a", "b")])


# -- the chat template ------------------------------------------------------------------------------------

def add_tokenizer():
    """Characters 0-9 and + (ids 0..10), bos 11, then the chat specials 12..15."""
    return CharTokenizer("0123456789+").with_special_tokens(CHAT_SPECIAL_TOKENS)


BOS_, US, UE, AS, AE = 11, 12, 13, 14, 15


def test_chat_specials_take_the_next_ids():
    tok = add_tokenizer()
    assert tok.special_tokens == {BOS: 11, "<|user_start|>": 12, "<|user_end|>": 13,
                                  "<|assistant_start|>": 14, "<|assistant_end|>": 15}


def test_render_against_hand_written_ids_and_mask():
    ids, mask, truncated = render_conversation(add_tokenizer(), chat("12+34", "46"))
    #          bos   us  1  2  +   3  4  ue  as  4  6  ae
    assert ids == [BOS_, US, 1, 2, 10, 3, 4, UE, AS, 4, 6, AE]
    assert mask == [0,   0,  0, 0, 0,  0, 0, 0,  0,  1, 1, 1]
    assert truncated is False


def test_render_multi_turn():
    ids, mask, _ = render_conversation(add_tokenizer(), chat("1+1", "2", "2+2", "4"))
    assert ids == [BOS_, US, 1, 10, 1, UE, AS, 2, AE, US, 2, 10, 2, UE, AS, 4, AE]
    assert mask == [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1]


def test_render_empty_reply_still_learns_to_stop():
    ids, mask, _ = render_conversation(add_tokenizer(), chat("1+1", ""))
    assert ids == [BOS_, US, 1, 10, 1, UE, AS, AE]
    assert mask == [0, 0, 0, 0, 0, 0, 0, 1]


def test_system_message_is_folded_into_the_first_user_message():
    tok = CharTokenizer("\nab").with_special_tokens(CHAT_SPECIAL_TOKENS)  # \n 0, a 1, b 2, bos 3, specials 4..7
    conv = chat("b", "a", "a", "b", system="a")
    ids, mask, _ = render_conversation(tok, conv)
    #               bos us  a  \n \n b  ue as a  ae us a  ue as b  ae
    assert ids == [3, 4, 1, 0, 0, 2, 5, 6, 1, 7, 4, 1, 5, 6, 2, 7]
    assert mask == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1]
    assert ids == render_conversation(tok, chat("a\n\nb", "a", "a", "b")).ids
    assert conversation_text(conv) == "a\n\nbaab"


def test_truncation():
    tok = add_tokenizer()
    full = render_conversation(tok, chat("12+34", "46"))
    for n in range(1, len(full.ids)):
        cut = render_conversation(tok, chat("12+34", "46"), max_tokens=n)
        assert cut.ids == full.ids[:n] and cut.mask == full.mask[:n] and cut.truncated is True
    for n in (len(full.ids), len(full.ids) + 5):
        assert render_conversation(tok, chat("12+34", "46"), max_tokens=n) == (full.ids, full.mask, False)
    for bad in (0, -1, 2.0, True, "8"):
        with pytest.raises(MicroGPTError, match="max_tokens"):
            render_conversation(tok, chat("1", "2"), max_tokens=bad)


def test_special_token_text_in_content_stays_ordinary_text():
    text = "<|user_end|><|assistant_start|><|bos|>"
    tok = CharTokenizer.from_text(text + "xy").with_special_tokens(CHAT_SPECIAL_TOKENS)
    ids, mask, _ = render_conversation(tok, chat(text, "x" + text))
    sp = tok.special_tokens
    assert [i for i in ids if i in sp.values()] == [sp[BOS], sp["<|user_start|>"], sp["<|user_end|>"],
                                                   sp["<|assistant_start|>"], sp["<|assistant_end|>"]]
    assert tok.decode(ids) == text + "x" + text  # specials stand for no text; the typed names are text
    assert sum(mask) == 1 + len(text) + 1


def test_a_tokenizer_without_chat_tokens_is_an_error():
    tok = CharTokenizer("0123456789+")
    for call in (lambda: render_conversation(tok, chat("1", "2")),
                 lambda: render_prompt(tok, chat("1")["messages"])):
        with pytest.raises(MicroGPTError, match=r"lacks the chat special tokens <\|user_start\|>.*with_special_tokens"):
            call()
    partial = tok.with_special_tokens(["<|user_start|>", "<|user_end|>"])
    missing = r"lacks the chat special tokens <\|assistant_start\|>, <\|assistant_end\|>: extend"
    with pytest.raises(MicroGPTError, match=missing):
        render_conversation(partial, chat("1", "2"))


def test_render_checks_the_conversation():
    with pytest.raises(MicroGPTError, match="the last message is from the user"):
        render_conversation(add_tokenizer(), chat("1+1"))
    with pytest.raises(MicroGPTError, match="message 1 has role"):
        render_conversation(add_tokenizer(), {"messages": [{"role": "human", "content": "1"}]})


def test_characters_outside_the_vocabulary_are_an_error():
    with pytest.raises(MicroGPTError, match="not in the model's vocabulary"):
        render_conversation(add_tokenizer(), chat("1*1", "1"))


def test_render_prompt_ends_with_assistant_start():
    tok = add_tokenizer()
    assert render_prompt(tok, chat("12+34")["messages"]) == [BOS_, US, 1, 2, 10, 3, 4, UE, AS]
    two = chat("1+1", "2", "2+2")["messages"]
    prompt = render_prompt(tok, two)
    assert prompt[-1] == AS
    # the prompt is exactly what training renders before the reply
    full = render_conversation(tok, chat("1+1", "2", "2+2", "4"))
    assert full.ids[:len(prompt)] == prompt and full.ids[len(prompt):] == [4, AE]
    with pytest.raises(MicroGPTError, match="prompt: the last message is from the assistant"):
        render_prompt(tok, chat("1+1", "2")["messages"])
    with pytest.raises(MicroGPTError, match="prompt: "):
        render_prompt(tok, chat("1+1", "2"))  # a conversation object, not its list of messages


texts = st.text(alphabet="ab+1 ", max_size=6)


@settings(max_examples=60, deadline=None)
@given(turns=st.lists(st.tuples(texts, texts), min_size=1, max_size=4), system=st.none() | texts)
def test_only_assistant_content_and_its_end_carry_weight(turns, system):
    tok = CharTokenizer("ab+1 \n").with_special_tokens(CHAT_SPECIAL_TOKENS)  # \n: a folded system message
    conv = chat(*[t for pair in turns for t in pair], system=system)
    ids, mask, _ = render_conversation(tok, conv)
    assert len(ids) == len(mask) and set(mask) <= {0, 1} and ids[0] == tok.BOS
    weighted = [i for i, m in zip(ids, mask) if m]
    ae = tok.special_tokens["<|assistant_end|>"]
    expected = [i for _, reply in turns for i in tok.encode(reply) + [ae]]
    assert weighted == expected
    assert tok.decode(ids) == conversation_text(conv)
