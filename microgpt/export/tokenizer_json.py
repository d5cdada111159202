"""Our tokenizers as Hugging Face `tokenizer.json` (the `tokenizers` library's format), and back.

BPE (byte-level): the Split pre-tokenizer cuts text with our pattern (PATTERN), ByteLevel shows
each byte as a printable character (GPT-2's table: printable Latin-1 bytes as themselves, the
others as chr(256), chr(257), ... in byte order), and the BPE model holds our vocabulary under
those characters with our merges in order, so merge k makes id 256 + k as ours does. Its merge
loop (the lowest-ranked pair first, leftmost on a tie) is ours. `ignore_merges` stays off: with it
on, a chunk that is itself a token would skip the merges, and ours never does.

Char: the BPE model with no merges and one vocabulary entry per character, no pre-tokenizer (the
text is split into characters), and the Fuse decoder to join them without spaces.

Special tokens are `added_tokens` with special=True, and also entries of the model's vocabulary:
the library gives an added token that the model lacks the next free id after the model's, not the
id written beside it, so a BOS at id 0 (a chat model's) would be renumbered. One difference with microgpt's own encode:
transformers finds special-token names written in text ("<|bos|>" typed by a user becomes the
token), where microgpt keeps them as text; the chat template relies on that.
"""

from microgpt.data.chat_template import ASSISTANT_END, ASSISTANT_START, SYSTEM_SEPARATOR, USER_END, USER_START
from microgpt.errors import MicroGPTError
from microgpt.tokenizers import CharTokenizer
from microgpt.tokenizers.base import BOS
from microgpt.tokenizers.bpe import BPETokenizer
from microgpt.tokenizers.pattern import PATTERN


def byte_chars():
    """{byte: the character ByteLevel shows it as}."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    chars.update({b: chr(256 + k) for k, b in enumerate(b for b in range(256) if b not in chars)})
    return chars


def is_chat(tokenizer):
    return all(n in tokenizer.special_tokens for n in (USER_START, USER_END, ASSISTANT_START, ASSISTANT_END))


def _bpe_model(vocab, merges):
    return {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab, "merges": merges}


def tokenizer_json(tok):
    """The tokenizer.json object of our tokenizer (CharTokenizer or BPETokenizer)."""
    added = [{"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for name, i in sorted(tok.special_tokens.items(), key=lambda x: x[1])]
    out = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None}
    if isinstance(tok, CharTokenizer):
        vocab = _with_specials({ch: i for ch, i in tok.stoi.items()}, tok)
        return {**out, "pre_tokenizer": None, "post_processor": None, "decoder": {"type": "Fuse"},
                "model": _bpe_model(vocab, [])}
    if not isinstance(tok, BPETokenizer) or tok.pattern != PATTERN:
        raise MicroGPTError("only microgpt's char and bpe tokenizers (with its own split pattern) can be exported")
    chars = byte_chars()
    shown = [("".join(chars[b] for b in tok.token_bytes(i))) for i in range(256 + len(tok.merges))]
    vocab = {s: i for i, s in enumerate(shown)}
    if len(vocab) != len(shown):
        first = next(i for i, s in enumerate(shown) if vocab[s] != i)
        raise MicroGPTError(f"tokens {vocab[shown[first]]} and {first} of this BPE stand for the same bytes: "
                            f"tokenizer.json (like tiktoken) cannot tell them apart, so it cannot be exported")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    pre = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": PATTERN}, "behavior": "Isolated", "invert": False}, byte_level]}
    return {**out, "pre_tokenizer": pre, "post_processor": None, "decoder": byte_level,
            "model": _bpe_model(_with_specials(vocab, tok), [[shown[a], shown[b]] for a, b in tok.merges])}


def _with_specials(vocab, tok):
    """The vocabulary with the special tokens in it too (see the module's docstring)."""
    clash = [name for name in tok.special_tokens if name in vocab]
    if clash:
        raise MicroGPTError(f"an ordinary token reads {clash[0]!r}, the name of a special token: "
                            f"tokenizer.json cannot hold both, so this tokenizer cannot be exported")
    return {**vocab, **tok.special_tokens}


def chat_template():
    """Jinja that renders a conversation as microgpt's chat template does (chat_template.py):
    <|bos|>, each user message in <|user_start|> .. <|user_end|>, each assistant message in
    <|assistant_start|> .. <|assistant_end|>, a first system message folded into the first user
    message with a blank line; add_generation_prompt ends with <|assistant_start|>."""
    def lit(s):  # a Jinja string literal (the names hold no quote or backslash; the separator is "\n\n")
        return "'" + s + "'"
    return (
        "{%- set ns = namespace(system='', messages=messages) -%}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set ns.system = messages[0]['content'] + " + lit(SYSTEM_SEPARATOR) + " -%}"
        "{%- set ns.messages = messages[1:] -%}"
        "{%- endif -%}"
        "{%- if not ns.messages -%}{{- raise_exception('a conversation needs a user message') -}}{%- endif -%}"
        "{{- " + lit(BOS) + " -}}"
        "{%- for m in ns.messages -%}"
        "{%- if m['role'] != ['user', 'assistant'][loop.index0 % 2] -%}"
        "{{- raise_exception('after an optional first system message, messages alternate user, assistant, "
        "user, ...') -}}"
        "{%- endif -%}"
        "{%- if m['role'] == 'user' -%}"
        "{{- " + lit(USER_START) + " + (ns.system if loop.first else '') + m['content'] + " + lit(USER_END) + " -}}"
        "{%- else -%}"
        "{{- " + lit(ASSISTANT_START) + " + m['content'] + " + lit(ASSISTANT_END) + " -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- " + lit(ASSISTANT_START) + " -}}{%- endif -%}"
    )


def tokenizer_config(tok, block_size, fingerprint):
    """tokenizer_config.json: the class AutoTokenizer builds, the special tokens, the chat template."""
    chat = is_chat(tok)
    eos = ASSISTANT_END if chat else BOS
    out = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": eos, "pad_token": eos,
           "model_max_length": block_size, "clean_up_tokenization_spaces": False,
           "microgpt_fingerprint": fingerprint}
    if chat:
        out["chat_template"] = chat_template()
    return out


# ---------------------------------------------------------------- back: tokenizer.json -> ours


def from_tokenizer_json(d, where):
    """Our tokenizer from a tokenizer.json object, or a MicroGPTError naming what does not fit
    (microgpt runs only its own two kinds: byte-level BPE with its pattern, and characters)."""
    def refuse(why):
        return MicroGPTError(f"{where}: {why}; microgpt runs only byte-level BPE with its own split pattern "
                             f"(ids 0-255 the bytes, merge k making id 256 + k) or one token per character")
    if not isinstance(d, dict) or not isinstance(d.get("model"), dict):
        raise refuse("not a tokenizer.json (no model)")
    model = d["model"]
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict) or \
            not isinstance(model.get("merges", []), list):
        raise refuse(f"its model is {model.get('type')!r}, not BPE")
    if model.get("ignore_merges") or model.get("byte_fallback") or model.get("continuing_subword_prefix") or \
            model.get("end_of_word_suffix") or d.get("normalizer") or d.get("post_processor"):
        raise refuse("it sets options (ignore_merges, byte_fallback, a normalizer, a post-processor, ...) "
                     "that change the ids")
    specials = {}
    for t in d.get("added_tokens") or []:
        if not (isinstance(t, dict) and isinstance(t.get("content"), str) and isinstance(t.get("id"), int)):
            raise refuse("an added token is malformed")
        if not t.get("special"):
            raise refuse(f"added token {t['content']!r} is not special: microgpt has no ordinary added tokens")
        specials[t["content"]] = t["id"]
    if BOS not in specials:
        raise refuse(f"it has no {BOS} token (every microgpt model begins documents with it)")
    vocab = {s: i for s, i in model["vocab"].items() if s not in specials}
    pre = d.get("pre_tokenizer")
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps if isinstance(s, dict)]
    try:
        if "ByteLevel" not in kinds:
            if pre is not None or model.get("merges") or not all(len(s) == 1 for s in vocab):
                raise refuse("it is neither byte-level nor one token per character")
            chars = [s for s, _ in sorted(vocab.items(), key=lambda x: x[1])]
            tok = CharTokenizer(chars, specials)
            if tok.stoi != vocab:
                raise refuse("its character ids are not those of a microgpt char tokenizer")
            return tok
        split = [s for s in steps if isinstance(s, dict) and s.get("type") == "Split"]
        if kinds != ["Split", "ByteLevel"] or split[0].get("pattern") != {"Regex": PATTERN} or \
                split[0].get("behavior") != "Isolated" or split[0].get("invert"):
            raise refuse("its text is split by another pattern than microgpt's")
        return _bpe_from(vocab, model.get("merges", []), specials, refuse)
    except (ValueError, TypeError) as e:
        raise refuse(str(e)) from None


def _bpe_from(vocab, merges, specials, refuse):
    to_byte = {c: b for b, c in byte_chars().items()}
    ids = {}
    for s, i in vocab.items():
        if not all(c in to_byte for c in s):
            raise refuse(f"token {s!r} is not byte-level")
        ids[i] = s
    if any(ids.get(b) != byte_chars()[b] for b in range(256)):
        raise refuse("ids 0-255 are not the 256 bytes in order")
    pairs = []
    for k, m in enumerate(merges):
        a, b = m.split(" ") if isinstance(m, str) else m
        if a not in vocab or b not in vocab or vocab.get(a + b) != 256 + k:
            raise refuse(f"merge {k} ({a!r}, {b!r}) does not make token {256 + k}")
        pairs.append((vocab[a], vocab[b]))
    if len(vocab) != 256 + len(merges):
        raise refuse(f"it has {len(vocab)} ordinary tokens, not the 256 bytes + {len(merges)} merges")
    return BPETokenizer(pairs, specials, PATTERN)
