"""The chat template: how a conversation becomes one token sequence, and which tokens are learned.

A conversation (conversations.py)

    {"messages": [{"role": "user", "content": "12+34"}, {"role": "assistant", "content": "46"}]}

becomes the tokens below, with a mask of 1 where the token is one the model must learn to
produce (a char tokenizer extended with the four chat special tokens):

    token  <|bos|> <|user_start|> 1 2 + 3 4 <|user_end|> <|assistant_start|> 4 6 <|assistant_end|>
    mask      0          0        0 0 0 0 0      0               0           1 1        1

* The sequence starts with `<|bos|>`. Each user message is `<|user_start|>` text `<|user_end|>`;
  each assistant message is `<|assistant_start|>` text `<|assistant_end|>`. Nothing separates
  the turns: the special tokens are the separators.
* Weight (mask 1) on every token of every assistant message's content and on its
  `<|assistant_end|>`: the model learns what to answer and when to stop. The user's text is
  given, and `<|assistant_start|>` is written by the chat program, not the model: mask 0.
* Training on a rendered sequence: inputs `ids[:-1]`, targets `ids[1:]`, weight of target i
  `mask[i + 1]` (the weight of predicting `ids[i]` is `mask[i]`; `mask[0]`, the bos, is 0).
* A system message (allowed only first) is folded into the first user message, as nanochat
  does: that user message's text becomes system + "\\n\\n" + user. The template has no system
  tokens, so a model learns a system prompt as the start of what the user said.
* Special tokens are inserted as ids, never found in the text: a user who types
  "<|user_end|>" gets those twelve characters as ordinary text.
* Several turns repeat the pattern, each assistant reply carrying weight:

    <|bos|> <|user_start|> Q1 <|user_end|> <|assistant_start|> [A1 <|assistant_end|>]
            <|user_start|> Q2 <|user_end|> <|assistant_start|> [A2 <|assistant_end|>]

  (brackets: the tokens with mask 1).

For generation, `render_prompt` renders the conversation so far (ending with the user)
followed by `<|assistant_start|>`; the model writes the reply and then `<|assistant_end|>`,
where the chat program stops and takes the reply as the text of the tokens before it.

A tokenizer must hold the four chat special tokens: extend one with
`tokenizer.with_special_tokens(CHAT_SPECIAL_TOKENS)` (new ids after every existing one), and a
char tokenizer with `tokenizer.with_chars(text)` for the characters of the conversations
(`conversation_text` gives that text, the "\\n\\n" of a folded system message included).
"""

from typing import List, NamedTuple

from microgpt.data.conversations import check_conversation, messages_problem
from microgpt.errors import MicroGPTError
from microgpt.tokenizers.base import BOS

USER_START, USER_END = "<|user_start|>", "<|user_end|>"
ASSISTANT_START, ASSISTANT_END = "<|assistant_start|>", "<|assistant_end|>"
CHAT_SPECIAL_TOKENS = (USER_START, USER_END, ASSISTANT_START, ASSISTANT_END)
SYSTEM_SEPARATOR = "\n\n"  # between a folded system message and the first user message


class Rendered(NamedTuple):
    ids: List[int]    # the token ids
    mask: List[int]   # 1 where the model must learn to produce ids[i], else 0
    truncated: bool   # True when the conversation was longer than max_tokens and was cut


def chat_token_ids(tokenizer):
    """{name: id} of bos and the four chat special tokens, or a MicroGPTError naming those missing."""
    missing = [n for n in (BOS,) + CHAT_SPECIAL_TOKENS if n not in tokenizer.special_tokens]
    if missing:
        raise MicroGPTError(f"the tokenizer lacks the chat special tokens {', '.join(missing)}: extend it "
                            f"with tokenizer.with_special_tokens(CHAT_SPECIAL_TOKENS) (the model then needs "
                            f"embedding rows for the new ids)")
    return {n: tokenizer.special_tokens[n] for n in (BOS,) + CHAT_SPECIAL_TOKENS}


def fold_system(messages):
    """The messages with a leading system message merged into the first user message."""
    if not messages or messages[0]["role"] != "system":
        return list(messages)
    system, user = messages[0], messages[1]
    merged = {"role": "user", "content": system["content"] + SYSTEM_SEPARATOR + user["content"]}
    return [merged] + list(messages[2:])


def conversation_text(conversation, checked=False):
    """All the ordinary text the template encodes for a conversation (for CharTokenizer.with_chars).
    checked: the conversation was checked already (read_conversations checks each)."""
    if not checked:
        check_conversation(conversation, last=None)
    return "".join(m["content"] for m in fold_system(conversation["messages"]))


def _render(tokenizer, messages):
    sp = chat_token_ids(tokenizer)
    ids, mask = [sp[BOS]], [0]

    def add(tokens, weight):
        ids.extend(tokens)
        mask.extend([weight] * len(tokens))

    for m in fold_system(messages):
        text = tokenizer.encode(m["content"])  # ordinary text: special-token names stay characters
        if m["role"] == "user":
            add([sp[USER_START]], 0)
            add(text, 0)
            add([sp[USER_END]], 0)
        else:
            add([sp[ASSISTANT_START]], 0)  # written by the chat program, not learned
            add(text, 1)
            add([sp[ASSISTANT_END]], 1)    # learned: the model must say when its reply is over
    return ids, mask


def render_conversation(tokenizer, conversation, max_tokens=None, checked=False):
    """(ids, mask, truncated) of a conversation that ends with the assistant's reply (checked: as
    conversation_text).

    With `max_tokens` (e.g. block_size + 1, one training sequence), a longer rendering is cut to
    its first `max_tokens` ids and mask entries and `truncated` is True; the caller decides
    whether to keep it (a cut that removes every assistant token leaves nothing to learn).
    """
    if not checked:
        check_conversation(conversation, last="assistant")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                   or max_tokens < 1):
        raise MicroGPTError(f"max_tokens must be a whole number >= 1 or None, not {max_tokens!r}")
    ids, mask = _render(tokenizer, conversation["messages"])
    truncated = max_tokens is not None and len(ids) > max_tokens
    if truncated:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return Rendered(ids, mask, truncated)


def render_prompt(tokenizer, messages):
    """Ids of the conversation so far (a list of messages ending with the user's) followed by
    <|assistant_start|>: the model continues with its reply and <|assistant_end|>."""
    problem = messages_problem(messages, last="user")
    if problem:
        raise MicroGPTError(f"prompt: {problem}")
    ids, _ = _render(tokenizer, messages)
    return ids + [tokenizer.special_tokens[ASSISTANT_START]]
