"""Measuring a model: its loss and bits per byte over a split of data, the replies it gives to
prompts (many at once), and its accuracy on a task's held-out problems (pass@k).

A chat model answers a conversation rendered with the template (data/chat_template.py): the
conversation so far, then <|assistant_start|>; it writes its reply and <|assistant_end|>.
Many prompts are answered at once (generate advances them together as rows of one batch,
each prompt prefilled in one pass), which is what evaluation and RL need. A names model (no template) is sampled from
BOS, as the seed samples.
"""

import math
import random

from microgpt.data.chat_template import ASSISTANT_END, render_conversation, render_prompt
from microgpt.data.text import target_bytes
from microgpt.errors import MicroGPTError, math_overflow
from microgpt.generate import generate


def split_loss(model, tokenizer, pairs, batch_size=64):
    """The mean loss per target token (nats) and bits per byte over (tokens, mask) pairs: every
    target counts where mask is None, else only those with mask 1 (an assistant's tokens)."""
    total, n, nbytes = 0.0, 0, 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        try:
            batch_losses = model.token_losses([s for s, _ in chunk])
        except (OverflowError, ValueError) as e:
            if not math_overflow(e):
                raise
            batch_losses = [[math.inf] * (len(s) - 1) for s, _ in chunk]
        for losses, (seq, mask) in zip(batch_losses, chunk):
            for t, loss in enumerate(losses):
                if mask is None or mask[t + 1]:
                    total += loss
                    n += 1
                    nbytes += target_bytes(tokenizer, seq[t + 1])
    return {"loss": total / n if n else float("nan"),
            "bpb": total / math.log(2) / nbytes if nbytes else float("nan"),
            "tokens": n, "sequences": len(pairs)}


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


REDRAWS = 10  # draws of a problem's earlier exchanges before its turn is said not to fit


def turn_prompts(tokenizer, block_size, task, problems, turn=1, seed=0):
    """The prompt of each problem asked at turn `turn` of a conversation: turn - 1 earlier
    exchanges (held-out problems of the task, each answered right), then the problem's question,
    rendered with the chat template up to <|assistant_start|>. The earlier problems are drawn from
    a stream seeded by (task, seed, turn), among those with which the whole conversation (the
    right answer and <|assistant_end|> included) fits block_size + 1 tokens."""
    if turn == 1:
        return [render_prompt(tokenizer, task.conversation(p)["messages"][:-1]) for p in problems]
    rng = random.Random(f"{task.name}/{seed}/turn{turn}")

    def fits(asked):
        return len(render_conversation(tokenizer, task.conversation(*asked), checked=True).ids) <= block_size + 1

    prompts = []
    for p in problems:
        for _ in range(REDRAWS):  # a draw can run out of room before its last earlier exchange: again
            earlier = task.more_problems("test", turn - 1, rng, lambda e, p=p: fits(e + [p]), avoid={p.prompt})
            if len(earlier) == turn - 1:
                break
        else:
            raise MicroGPTError(f"turn {turn} of {task.name} cannot be asked: found no {turn - 1} other held-out "
                                f"problems to ask before {p.prompt!r} with which the conversation fits the model's "
                                f"block_size + 1 = {block_size + 1} tokens; ask for an earlier --turn")
        prompts.append(render_prompt(tokenizer, task.conversation(*earlier, p)["messages"][:-1]))
    return prompts


def evaluate_task(model, tokenizer, block_size, task, num, rng, samples=1, temperature=0.0, top_k=0, seed=0,
                  train_texts=(), turn=1):
    """Accuracy on `num` held-out (test-split) problems of `task`.

    Chat tasks: pass@1 of the greedy reply; with samples = k > 1, also k replies drawn at the
    given temperature (1 if 0 is given): pass@k (a problem counts when any of its k replies is
    right) and the mean accuracy of the drawn replies. `turn` = t > 1 asks each problem as the
    t-th question of a conversation (turn_prompts): the same problems as turn 1, after t - 1
    earlier exchanges. Names tasks (no prompt): `num` names drawn at `temperature` (1 if 0 is
    given: greedy would draw one name), the fraction rewarded, and how diverse they are: unique
    names, and names not in `train_texts`.
    """
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
        raise MicroGPTError(f"--turn must be a whole number >= 1, not {turn!r}")
    if not task.chat and turn != 1:
        raise MicroGPTError(f"task {task.name} has no conversations, so no turn {turn}: --turn needs a chat task "
                            f"(add, reverse, count)")
    if not task.chat:
        texts = [tokenizer.decode(ids) for ids in
                 sample_names(model, tokenizer, block_size, num, rng, temperature or 1.0, top_k)]
        rewards = [task.reward(None, t) for t in texts]
        seen = set(train_texts)
        return {"task": task.name, "num": num, "reward_mean": sum(rewards) / num, "pass@1": sum(rewards) / num,
                "unique": len(set(texts)) / num, "new": sum(t not in seen for t in texts) / num,
                "examples": texts[:10]}
    problems = task.problems("test", num, seed)
    prompts = turn_prompts(tokenizer, block_size, task, problems, turn, seed)
    k = max(1, samples)
    answers = [tokenizer.decode(r) for r in replies(model, tokenizer, block_size, prompts, rng)]
    correct = [task.is_correct(p, a) for p, a in zip(problems, answers)]
    result = {"task": task.name, "num": num, "turn": turn, "pass@1": sum(correct) / num,
              "examples": [(p.prompt, a, c) for p, a, c in list(zip(problems, answers, correct))[:10]]}
    if k > 1:
        drawn = replies(model, tokenizer, block_size, [p for p in prompts for _ in range(k)], rng,
                        temperature or 1.0, top_k)
        ok = [task.is_correct(problems[i // k], tokenizer.decode(r)) for i, r in enumerate(drawn)]
        result[f"pass@{k}"] = sum(any(ok[j * k:(j + 1) * k]) for j in range(num)) / num
        result["sample_accuracy"] = sum(ok) / len(ok)
    return result
