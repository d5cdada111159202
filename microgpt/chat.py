"""Talking to a model: replies through the chat template, accuracy on a task, and a chat session.

A chat model answers a conversation rendered with the template (chat_template.py): the
conversation so far, then <|assistant_start|>; it writes its reply and <|assistant_end|>.
Many prompts are answered at once (sample.generate advances them together, one model call
per position), which is what evaluation and RL need. A names model (no template) is sampled
from BOS, as the seed samples.
"""

import codecs

from microgpt import MicroGPTError
from microgpt.chat_template import ASSISTANT_END, render_prompt
from microgpt.sample import generate


def replies(model, tokenizer, block_size, prompts, rng, temperature=0.0, top_k=0, max_new_tokens=None,
            batch_size=256, on_token=None):
    """The reply to each prompt (token ids ending with <|assistant_start|>), as token ids without
    the <|assistant_end|> that closes it. A reply the context cuts short is returned as far as
    it got. Temperature 0: greedy."""
    stop = (tokenizer.special_tokens[ASSISTANT_END],)
    out = []
    for i in range(0, len(prompts), batch_size):
        out += generate(model, prompts[i:i + batch_size], rng, block_size, max_new_tokens, temperature, top_k,
                        stop=stop, on_token=on_token)
    return out


def sample_names(model, tokenizer, block_size, num, rng, temperature=1.0, top_k=0, batch_size=256):
    """`num` documents drawn from BOS (a names model: a sample is a name), as token ids."""
    bos = tokenizer.BOS
    out = []
    for i in range(0, num, batch_size):
        out += generate(model, [[bos]] * min(batch_size, num - i), rng, block_size, None, temperature, top_k,
                        stop=(bos,))
    return out


def evaluate_task(model, tokenizer, block_size, task, num, rng, samples=1, temperature=0.0, top_k=0, seed=0,
                  train_texts=()):
    """Accuracy on `num` held-out (test-split) problems of `task`.

    Chat tasks: pass@1 of the greedy reply; with samples = k > 1, also k replies drawn at the
    given temperature (1 if 0 is given): pass@k (a problem counts when any of its k replies is
    right) and the mean accuracy of the drawn replies. Names tasks (no prompt): `num` names
    drawn at `temperature` (1 if 0 is given: greedy would draw one name), the fraction rewarded,
    and how diverse they are: unique names, and names not in `train_texts`.
    """
    if not task.chat:
        texts = [tokenizer.decode(ids) for ids in
                 sample_names(model, tokenizer, block_size, num, rng, temperature or 1.0, top_k)]
        rewards = [task.reward(None, t) for t in texts]
        seen = set(train_texts)
        return {"task": task.name, "num": num, "reward_mean": sum(rewards) / num, "pass@1": sum(rewards) / num,
                "unique": len(set(texts)) / num, "new": sum(t not in seen for t in texts) / num,
                "examples": texts[:10]}
    problems = task.problems("test", num, seed)
    prompts = [render_prompt(tokenizer, task.conversation(p)["messages"][:-1]) for p in problems]
    k = max(1, samples)
    answers = [tokenizer.decode(r) for r in replies(model, tokenizer, block_size, prompts, rng)]
    correct = [task.is_correct(p, a) for p, a in zip(problems, answers)]
    result = {"task": task.name, "num": num, "pass@1": sum(correct) / num,
              "examples": [(p.prompt, a, c) for p, a, c in list(zip(problems, answers, correct))[:10]]}
    if k > 1:
        drawn = replies(model, tokenizer, block_size, [p for p in prompts for _ in range(k)], rng,
                        temperature or 1.0, top_k)
        ok = [task.is_correct(problems[i // k], tokenizer.decode(r)) for i, r in enumerate(drawn)]
        result[f"pass@{k}"] = sum(any(ok[j * k:(j + 1) * k]) for j in range(num)) / num
        result["sample_accuracy"] = sum(ok) / len(ok)
    return result


class ChatSession:
    """One conversation with a chat model: say() sends a user message and returns the reply,
    streamed through `on_text` as it is generated; reset() starts over. When the conversation
    outgrows the model's context, the oldest turns are left out of what it reads."""

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
        while len(prompt) >= self.block_size and start + 2 < len(messages):
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
