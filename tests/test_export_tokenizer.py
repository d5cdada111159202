"""tokenizer.json and the chat template of an export: the `tokenizers` library and transformers'
AutoTokenizer give our ids on varied Unicode text, decode to our text, render a conversation as
our chat template does; tokenizer.json reads back into the same tokenizer; a foreign one is refused."""

import copy
import functools
import json

import pytest

from microgpt.data.chat_template import CHAT_SPECIAL_TOKENS, render_conversation, render_prompt
from microgpt.errors import MicroGPTError
from microgpt.export.tokenizer_json import from_tokenizer_json, tokenizer_config, tokenizer_json
from microgpt.tokenizers import CharTokenizer
from microgpt.tokenizers.bpe import BPETokenizer

# scripts, accents (composed and combining), CJK, emoji (with joiners and skin tones), digits of
# several systems, every kind of white space the split pattern knows, contractions in two cases
TEXTS = [
    "Hello, world! Don't we've I'LL they'RE it's",
    "naïve café — naïve cafe\u0301, Ærøskøbing, Straße, İstanbul, ǅemal",
    "日本語のテキスト、中文文本。한국어 텍스트",
    "Ελληνικά κείμενα · русский текст · עברית · العربية ١٢٣ · हिन्दी पाठ",
    "emoji 😀🎉👍🏽 👩‍👩‍👧 ❤️ flags 🇫🇷🇯🇵",
    "numbers 2024, 3.14159, 1,000,000 and ½ ² Ⅻ ٣",
    "  leading spaces\ttabs\t\tand\r\nCRLF\n\n\nblank lines   \u00a0nbsp\u2009thin\u3000ideographic",
    "\u2028line sep\x85nel\x1cfile sep\x0bvt\x0cff",
    "code: def f(x):\n    return x ** 2  # comment <|bo|> is text",
    "trailing white space   \n  ",
    "x",
    "",
]


@functools.cache
def bpe():
    text = "\n".join(TEXTS * 3) + "the quick brown fox jumps over the lazy dog " * 20
    return BPETokenizer.train(text, 420)


def hf(tok):
    """Our tokenizer in the `tokenizers` library (the test skips without it)."""
    tokenizers = pytest.importorskip("tokenizers", reason="HF tokenizers is not installed (pip install 'microgpt[hf]')")
    return tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json(tok)))


def test_bpe_tokenizer_json_gives_our_ids_and_text():
    tok = bpe()
    multi_byte = [i for i in range(256, 256 + len(tok.merges)) if max(tok.token_bytes(i)) >= 0x80]
    assert len(multi_byte) > 20  # merges inside multi-byte characters are exercised
    t = hf(tok)
    for text in TEXTS + ["".join(TEXTS)]:
        ids = tok.encode(text)
        assert t.encode(text, add_special_tokens=False).ids == ids, text
        assert t.decode(ids, skip_special_tokens=True) == tok.decode(ids) == text
    # special tokens: the library finds their names in text (microgpt needs allowed_special for that)
    text = "<|bos|>two docs<|bos|>"
    assert t.encode(text).ids == tok.encode(text, allowed_special="all")
    # a cut inside a character decodes to U+FFFD in both
    cut = tok.encode("😀")[:1] if len(tok.encode("😀")) > 1 else [0xF0]
    assert t.decode(cut) == tok.decode(cut)


def test_char_tokenizer_json_gives_our_ids_and_text():
    tok = CharTokenizer.from_text("".join(TEXTS)).with_special_tokens(CHAT_SPECIAL_TOKENS)
    t = hf(tok)
    for text in TEXTS:
        assert t.encode(text).ids == tok.encode(text), text
        assert t.decode(tok.encode(text)) == text
    # a chat model made from scratch has <|bos|> at id 0, before the characters: ids are kept
    chat = CharTokenizer([], {"<|bos|>": 0}).with_chars("12+34=").with_special_tokens(CHAT_SPECIAL_TOKENS)
    assert hf(chat).encode("<|bos|>12+3<|user_end|>").ids == chat.encode("<|bos|>12+3<|user_end|>", "all")


def autotokenizer(tmp_path, tok, block_size=16):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed "
                                                              "(pip install 'microgpt[hf]')")
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer_json(tok)))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tok, block_size, "0" * 64)))
    return transformers.AutoTokenizer.from_pretrained(str(tmp_path))


def test_autotokenizer_gives_our_ids(tmp_path):
    tok = bpe()
    at = autotokenizer(tmp_path, tok)
    assert (at.bos_token_id, at.eos_token_id) == (tok.BOS, tok.BOS)
    for text in TEXTS:
        ids = tok.encode(text)
        assert at(text)["input_ids"] == ids, text
        assert at.decode(ids) == text


CONVERSATIONS = [
    [{"role": "user", "content": "12+34"}, {"role": "assistant", "content": "46"}],
    [{"role": "system", "content": "Be brief. Café ☕"}, {"role": "user", "content": "naïve 日本?"},
     {"role": "assistant", "content": "Yes, 日本."}, {"role": "user", "content": "And 😀 's?"},
     {"role": "assistant", "content": ""}],
    [{"role": "user", "content": " spaces \n and lines\n"}, {"role": "assistant", "content": "  ok  "}],
]


@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_chat_template_renders_our_ids(tmp_path, kind):
    text = "".join(m["content"] for c in CONVERSATIONS for m in c) + "\n"
    tok = (bpe() if kind == "bpe" else CharTokenizer.from_text(text)).with_special_tokens(CHAT_SPECIAL_TOKENS)
    at = autotokenizer(tmp_path, tok)
    assert at.eos_token == "<|assistant_end|>"
    for messages in CONVERSATIONS:
        ours = render_conversation(tok, {"messages": messages}).ids
        assert at.apply_chat_template(messages, return_dict=True)["input_ids"] == ours
        prompt = messages[:-1]
        assert at.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"] == \
            render_prompt(tok, prompt)
    with pytest.raises(Exception, match="alternate"):  # what our template refuses, the Jinja one refuses
        at.apply_chat_template([{"role": "assistant", "content": "hi"}])


@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_tokenizer_json_reads_back_into_the_same_tokenizer(kind):
    tok = bpe() if kind == "bpe" else CharTokenizer([], {"<|bos|>": 0}).with_chars("abc xyz")
    tok = tok.with_special_tokens(CHAT_SPECIAL_TOKENS)
    back = from_tokenizer_json(json.loads(json.dumps(tokenizer_json(tok))), "tokenizer.json")
    assert type(back) is type(tok) and back.to_dict() == tok.to_dict()


def test_a_tokenizer_microgpt_cannot_run_is_refused():
    good = tokenizer_json(bpe())
    cases = []
    other_split = copy.deepcopy(good)  # nanochat's own pattern keeps digits in groups of 1-2
    other_split["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{N}{1,2}|\s+|\S+"
    cases.append((other_split, "another pattern"))
    renumbered = copy.deepcopy(good)
    v = renumbered["model"]["vocab"]
    first, second = renumbered["model"]["merges"][:2]
    v[first[0] + first[1]], v[second[0] + second[1]] = v[second[0] + second[1]], v[first[0] + first[1]]
    cases.append((renumbered, "does not make token 256"))
    no_bos = copy.deepcopy(good)
    no_bos["added_tokens"] = []
    cases.append((no_bos, "no <|bos|>"))
    wordpiece = {"model": {"type": "WordPiece", "vocab": {}}}
    cases.append((wordpiece, "not BPE"))
    for d, words in cases:
        with pytest.raises(MicroGPTError, match="microgpt runs only") as e:
            from_tokenizer_json(d, "x/tokenizer.json")
        assert words in str(e.value) and "\n" not in str(e.value)
