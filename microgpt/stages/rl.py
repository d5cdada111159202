"""Stage 3, reinforcement learning (`microgpt rl`) on rewards that can be checked: the model samples answers, the task
scores them, and the policy gradient makes the good ones likelier.

    microgpt rl --from runs/names --task names-ending:a --out runs/rl-a            # the seed's model
    microgpt rl --from runs/add-sft --task add --kl 0.05 --out runs/rl-add --engine numpy

Each step: P problems of the task's training split (fresh ones every step), G answers sampled
for each (all P*G together, with the KV cache), a reward per answer, and the advantage
A = reward - the mean reward of its group (optionally / the group's std: "GRPO" without its
clipping, as nanochat's REINFORCE). The loss is the REINFORCE surrogate over the answer tokens
(the prompt carries no weight), each token's loss -log p weighted by A / N (N = answer tokens
in the batch): its gradient is the policy gradient estimate. With --kl beta, each answer token
also pays beta * KL(policy || the starting model), estimated per token as r - log r - 1 with
r = p_start / p_policy (Schulman's k3); its gradient is folded into the same weights:
weight = (A + beta * (r - 1)) / N. So every engine trains RL through the same weighted step.

Names tasks have no prompt: a sample is a name drawn from BOS, as the seed samples, and the
"group" is all the names of a step. The run reports how diverse they stay (unique, and not in
the training data): what a KL penalty protects.
"""

import math
import os
import random
from dataclasses import replace

from microgpt import checkpoint
from microgpt.data.chat_template import ASSISTANT_END, ASSISTANT_START, render_prompt
from microgpt.data.text import Dataset, read_data
from microgpt.errors import MicroGPTError
from microgpt.evaluate import evaluate_task
from microgpt.generate import generate
from microgpt.stages.pretrain import Run
from microgpt.tasks import get_task

REFERENCE = "reference.safetensors"  # in the run directory: the starting weights, for the KL penalty


def prepare(config, base=None):
    """The config of an RL run: from `base` (a Checkpoint, the run it starts from) its model, its
    data mode and, for names tasks, its data (so "new" means not among the names it learnt)."""
    config.rl.validate()
    task = get_task(config.rl.task)
    config = replace(config, stage="rl")
    if base is None:
        return config
    if not task.chat and base.train.data_mode != "docs":
        raise MicroGPTError(f"{config.init_from} was not trained on documents: names tasks need a model "
                            f"that samples one name after BOS")
    return replace(config, model=base.config, train=replace(config.train, data_mode=base.train.data_mode),
                   data=None if task.chat else base.run_config.data)


def dataset(cfg, data, tokenizer, split=None):
    """Names tasks: the names, split as `split` (a TrainConfig: the base run's, so that "new" means
    not among the names it learnt from; else the run's own) splits them. Chat tasks: problems."""
    if data is None:
        return Problems(tokenizer)
    split = split or cfg.train
    return Dataset(data.text, "docs", cfg.model.block_size, split.val_frac, random.Random(split.seed),
                   tokenizer=tokenizer)


def open_dataset(cfg, tokenizer):
    return dataset(cfg, None if get_task(cfg.rl.task).chat else read_data(cfg.data), tokenizer)


class RLRun(Run):
    log_fields = (("reward_mean", "reward"), ("kl", "kl"), ("answer_len", "len"), ("unique", "unique"),
                  ("new", "new"), ("test_pass@1", "held-out pass@1"), ("test_reward", "held-out reward"),
                  ("test_unique", "held-out unique"), ("test_new", "held-out new"))
    evaluate_first = True
    loss_key = "pg_loss"  # the policy-gradient surrogate: its value means little, its gradient is the point
    prepare = staticmethod(prepare)

    def __init__(self, config, resume=False, base=None, **kw):
        config.rl.validate()
        self.task = get_task(config.rl.task)
        if not resume and base is None:
            if not config.init_from:
                raise MicroGPTError("rl starts from a trained run: --from RUN (a names model, or a chat model "
                                    "from microgpt sft)")
            base = checkpoint.load(config.init_from, with_optimizer=False)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise MicroGPTError("rl runs in one process: launch it without torchrun")
        super().__init__(config, resume=resume, base=base, **kw)
        if self.task.chat and ASSISTANT_START not in self.tokenizer.special_tokens:
            raise MicroGPTError(f"task {self.task.name} is a chat task, but the model has no chat template: "
                                f"fine-tune it first with microgpt sft")
        self.reference = None
        if self.cfg.rl.kl:
            self.reference = self.engine.Model(self.config, self.reference_weights(), self.cfg.engine)

    # ------------------------------------------------------------------ setting up

    def read_data(self):
        """Names tasks: the names the base run learnt from (to count new samples). Chat tasks: none."""
        return None if self.task.chat else read_data(self.cfg.data)

    def make_dataset(self, ckpt):
        if ckpt:
            return dataset(self.cfg, self.data, ckpt.tokenizer)
        return dataset(self.cfg, self.data, self.base.tokenizer, self.base.train)

    def initial_weights(self):
        return self.base.weights

    def reference_weights(self):
        """The starting weights: the base run's, or (resuming) the copy the run keeps beside it."""
        if self.base is not None:
            return self.base.weights
        return checkpoint.load_weights(os.path.join(self.out, REFERENCE), self.config)

    def save(self, run_dir=None):
        path = os.path.join(self.out, REFERENCE)
        if self.is_main and not os.path.exists(path):  # kept beside the run: the KL reference after a resume
            checkpoint.save_weights(path, self.base.weights, self.config)
        super().save(run_dir)

    # ------------------------------------------------------------------ one step

    def prompts(self, step):
        """The step's P problems (fresh ones every step, the same after a resume) and their prompts."""
        rl = self.cfg.rl
        problems = self.task.problems("train", rl.prompts, seed=self.cfg.train.seed * 1_000_003 + step)
        if not self.task.chat:
            return problems, [[self.tokenizer.BOS]] * len(problems)
        return problems, [render_prompt(self.tokenizer, self.task.conversation(p)["messages"][:-1])
                          for p in problems]

    def batch(self, step):
        rl, tok = self.cfg.rl, self.tokenizer
        problems, prompts = self.prompts(step)
        G = rl.group_size
        stop = tok.special_tokens[ASSISTANT_END] if self.task.chat else tok.BOS
        answers = generate(self.model, [p for p in prompts for _ in range(G)], self.rng, self.config.block_size,
                           None, rl.temperature, rl.top_k, stop=(stop,), keep_stop=True)
        texts = [tok.decode([t for t in a if t != stop]) for a in answers]
        rewards = [self.task.reward(problems[i // G], t) for i, t in enumerate(texts)]
        seqs = [prompts[i // G] + a for i, a in enumerate(answers)]
        n_prompt = [len(prompts[i // G]) for i in range(len(answers))]
        advantages = group_advantages(rewards, G, rl.std_normalize)
        weights, kl = policy_weights(seqs, n_prompt, advantages, self.model if self.reference else None,
                                     self.reference, rl.kl)
        extra = {"reward_mean": sum(rewards) / len(rewards),
                 "pass@1": sum(r == 1 for r in rewards) / len(rewards),
                 "answer_len": sum(len(a) for a in answers) / len(answers),
                 "unique": len(set(texts)) / len(texts)}
        if self.reference is not None:
            extra["kl"] = kl
        if not self.task.chat:
            extra["new"] = sum(t not in self.ds.train_text for t in texts) / len(texts)
        return seqs, weights, extra

    def evaluate_now(self):
        r = evaluate_task(self.model, self.tokenizer, self.config.block_size, self.task, self.cfg.eval_num,
                          random.Random(0), temperature=self.cfg.rl.temperature,
                          train_texts=self.ds.train_text)
        if self.task.chat:
            return {"test_pass@1": r["pass@1"]}
        return {"test_reward": r["reward_mean"], "test_unique": r["unique"], "test_new": r["new"]}


class Problems:
    """What an RL run on a chat task has instead of a data set: the tokenizer, nothing to score."""

    mode = "chat"
    train = val = val_conversations = ()
    train_text = val_text = frozenset()

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def describe(self):
        return f"problems drawn from the task, vocab size {self.tokenizer.vocab_size}"

    def eval_pairs(self, split, max_seqs=0):
        return []


def group_advantages(rewards, group_size, std_normalize=False):
    """reward - the mean reward of its group (the G answers to one problem); / the group's standard
    deviation too with std_normalize (a group whose answers all scored alike gets 0)."""
    out = []
    for g in range(0, len(rewards), group_size):
        group = rewards[g:g + group_size]
        mean = sum(group) / len(group)
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / len(group))
        out += [(r - mean) / (std + 1e-6) if std_normalize else r - mean for r in group]
    return out


def policy_weights(seqs, n_prompt, advantages, policy=None, reference=None, beta=0.0):
    """One weight per target token (engine convention): (A + beta * (r - 1)) / N on the answer's
    tokens, 0 on the prompt's; N = the batch's answer tokens. Returns (weights, mean KL per
    answer token, estimated as r - log r - 1 with r = p_reference / p_policy)."""
    n = sum(len(s) - p for s, p in zip(seqs, n_prompt))
    ratios = None
    if beta:
        lp_policy, lp_ref = policy.token_losses(seqs), reference.token_losses(seqs)  # -log p of each target
        ratios = [[math.exp(lp - lr) for lp, lr in zip(a, b)] for a, b in zip(lp_policy, lp_ref)]
    weights, kl = [], 0.0
    for i, (seq, p, adv) in enumerate(zip(seqs, n_prompt, advantages)):
        w = []
        for t in range(len(seq) - 1):  # target t is seq[t + 1]: an answer token when t + 1 >= p
            if t + 1 < p:
                w.append(0.0)
                continue
            if ratios is None:
                w.append(adv / n)
                continue
            r = ratios[i][t]
            kl += r - math.log(r) - 1
            w.append((adv + beta * (r - 1)) / n)
        weights.append(w)
    return weights, kl / n


RUN_CLASS = RLRun
