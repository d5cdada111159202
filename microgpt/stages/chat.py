"""Talking to a chat model (made by sft or rl): its replies to held-out questions, marked right or
wrong, and a conversation in the terminal (`microgpt chat`).

    session = ChatSession(run.model, run.tokenizer, run.config.block_size, random.Random(0))
    session.say("12+34")   # -> "46"
"""

import codecs

from microgpt.data.chat_template import render_prompt
from microgpt.errors import MicroGPTError
from microgpt.evaluate import replies
from microgpt.tasks import get_task


def answer_questions(model, tokenizer, block_size, cfg, rng, num, temperature=0.5, top_k=0, prompt="",
                     max_new_tokens=None, val_conversations=None):
    """[(question, reply, mark)]: `num` replies to `prompt`, or without one a reply to each of up
    to `num` held-out questions (held_out_questions), with how each reply fares."""
    if prompt:
        asked = [([{"role": "user", "content": prompt}], None)] * num
    else:
        asked = held_out_questions(cfg, num, val_conversations)
    prompts = [render_prompt(tokenizer, messages) for messages, _ in asked]
    got = replies(model, tokenizer, block_size, prompts, rng, temperature, top_k, max_new_tokens)
    return [(messages[-1]["content"], reply, mark(reply) if mark else "")
            for (messages, mark), reply in zip(asked, map(tokenizer.decode, got))]


def held_out_questions(cfg, num, val_conversations=None):
    """Up to `num` (messages ending with a user's, mark) pairs a chat model has not trained on, and
    mark(reply): the test problems of the run's task (`rl --task`, `--eval-task`), marked "right"
    or "wrong", else the first question of each validation conversation (val_conversations(num)
    gives them), marked "in val" when the reply is the one written there, else "new"."""
    name = cfg.rl.task or cfg.eval_task
    task = get_task(name) if name else None
    if task is not None and task.chat:
        problems = task.problems("test", num if task.has_problems("test", num) else task.max_problems("test"))
        return [(task.conversation(p)["messages"][:1],
                 lambda reply, p=p: "right" if task.is_correct(p, reply) else "wrong") for p in problems]
    out = []
    for conv in (val_conversations(num) if val_conversations else []):
        messages = conv["messages"]
        first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
        written = messages[first]["content"]
        out.append((messages[:first], lambda reply, w=written: "in val" if reply == w else "new"))
    return out


class ChatSession:
    """One conversation with a chat model: say() sends a user message and returns the reply,
    streamed through `on_text` as it is generated; reset() starts over. When the conversation
    leaves the reply less than a quarter of the model's context, the oldest turns are left out
    of what it reads (else the reply would be cut off after a token or two)."""

    def __init__(self, model, tokenizer, block_size, rng, temperature=0.8, top_k=0, on_text=None):
        self.model, self.tokenizer, self.block_size, self.rng = model, tokenizer, block_size, rng
        self.temperature, self.top_k, self.on_text = temperature, top_k, on_text
        self.messages = []

    def reset(self):
        self.messages = []

    def say(self, text):
        tok = self.tokenizer
        tok.encode(text)  # a character a char tokenizer cannot read is an error before anything changes
        messages = self.messages + [{"role": "user", "content": text}]
        start = 0
        prompt = render_prompt(tok, messages)
        room = max(4, self.block_size // 4)  # earlier turns give way so the reply has this many tokens to be said in
        while len(prompt) > self.block_size - room and start + 2 < len(messages):
            start += 2  # leave out the oldest exchange (a user message and its reply)
            prompt = render_prompt(tok, messages[start:])
        if len(prompt) >= self.block_size:
            raise MicroGPTError(f"this message takes {len(prompt)} tokens with the chat template, and the model "
                                f"reads {self.block_size}: say something shorter")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a token may end inside a character

        def stream(row, token_id):
            piece = decoder.decode(tok.token_bytes(token_id))
            if piece and self.on_text:
                self.on_text(piece)

        ids = replies(self.model, tok, self.block_size, [prompt], self.rng, self.temperature, self.top_k,
                      on_token=stream)[0]
        reply = tok.decode(ids)
        self.messages = messages + [{"role": "assistant", "content": reply}]
        return reply
