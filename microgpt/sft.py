"""Supervised fine-tuning: a model that continues text becomes an assistant by training on
conversations, learning only the assistant's tokens.

    microgpt tasks make --task add --num 60000 --split train --to add.jsonl
    microgpt sft --data add.jsonl --eval-task add --out runs/add ...          # from scratch
    microgpt sft --from runs/base --data add.jsonl --out runs/add-sft ...     # from a trained run

Each conversation is rendered with the chat template (chat_template.py) into one sequence and a
mask; the loss is the mean over the masked-in (assistant) target tokens of the batch: every
engine's training step takes one weight per target token, here mask / (their count).
Starting from a trained run (--from), its tokenizer gains the chat's special tokens (and, for
characters, any character the conversations need) as NEW ids after every existing one; wte and
lm_head grow by a freshly initialised row per new token and keep every old row exactly.
Everything else is the training loop of `train`: checkpoints, resume, Ctrl-C, metrics.
"""

import random

from microgpt import MicroGPTError, checkpoint
from microgpt.chat import evaluate_task
from microgpt.chat_template import CHAT_SPECIAL_TOKENS, conversation_text, render_conversation
from microgpt.config import INIT_STD
from microgpt.conversations import read_conversations
from microgpt.init import init_weights
from microgpt.run import Run
from microgpt.tokenizers import CharTokenizer
from microgpt.tokenizers.bpe import BPETokenizer


class ChatDataset:
    """Conversations rendered for training: (ids, mask) pairs, shuffled by the run's random
    stream, the validation split taken from the end."""

    mode = "chat"

    def __init__(self, conversations, tokenizer, block_size, val_frac, rng):
        conversations = list(conversations)
        rng.shuffle(conversations)
        self.tokenizer, self.block_size = tokenizer, block_size
        rendered, kept, self.n_truncated, self.n_dropped = [], [], 0, 0
        for conv in conversations:
            ids, mask, truncated = render_conversation(tokenizer, conv, max_tokens=block_size + 1)
            self.n_truncated += truncated
            if any(mask[1:]):
                rendered.append((ids, mask))
                kept.append(conv)
            else:
                self.n_dropped += 1  # cut before the assistant says anything: nothing to learn
        n_val = int(len(rendered) * val_frac)
        if len(rendered) - n_val < 1:
            raise MicroGPTError(f"only {len(rendered)} conversations with something to learn: too few to "
                                f"train (and hold out {val_frac:.0%}); give more, or a larger --block-size")
        self.train, self.val = rendered[:len(rendered) - n_val], rendered[len(rendered) - n_val:]
        self.val_conversations = kept[len(rendered) - n_val:]  # (questions to sample answers to)
        self.train_text = self.val_text = set()

    def describe(self):
        return (f"{len(self.train)} train / {len(self.val)} val conversations, "
                f"vocab size {self.tokenizer.vocab_size}")

    def train_batch(self, step, batch_size, seed=None):
        start = step * batch_size
        return [self.train[(start + b) % len(self.train)] for b in range(batch_size)]

    def eval_pairs(self, split, max_seqs=0):
        pairs = self.train if split == "train" else self.val
        return pairs[:max_seqs] if max_seqs else pairs

    def eval_sequences(self, split, max_seqs=0):
        return [ids for ids, _ in self.eval_pairs(split, max_seqs)]


def chat_tokenizer(base, conversations):
    """The base tokenizer with the chat's special tokens (and a char tokenizer with the
    characters of the conversations) as new ids after every existing one."""
    if isinstance(base, CharTokenizer):
        base = base.with_chars("".join(conversation_text(c) for c in conversations))
    return base.with_special_tokens(CHAT_SPECIAL_TOKENS)


def grow_rows(weights, config, rng, std=INIT_STD):
    """wte and lm_head with a fresh row (gauss(0, std), drawn from rng) for every id from their
    old length up to config.vocab_size; every other matrix, and every old row, as it was."""
    out = dict(weights)
    for name in ("wte", "lm_head"):
        rows = [list(r) for r in weights[name]]
        rows += [[rng.gauss(0, std) for _ in range(config.n_embd)] for _ in range(config.vocab_size - len(rows))]
        out[name] = rows
    return out


def masked_weights(pairs):
    """One weight per target token: mask / (number of masked-in targets of the whole batch), so the
    loss is the mean over the assistant's tokens."""
    n = sum(sum(mask[1:]) for _, mask in pairs)
    return [[m / n for m in mask[1:]] for _, mask in pairs]


class SFTRun(Run):
    """A run on conversations (data_mode "chat"), from scratch or from a trained run (init_from)."""

    log_fields = (("train_loss", "loss"), ("val_loss", "val"), ("test_pass@1", "held-out pass@1"))

    def __init__(self, config, resume=False, **kw):
        config.train.data_mode = "chat"
        self.base = None
        if config.init_from and not resume:
            self.base = checkpoint.load(config.init_from, with_optimizer=False)
            for k in ("n_layer", "n_embd", "n_head", "block_size"):  # the model is the base run's
                setattr(config.model, k, getattr(self.base.config, k))
        super().__init__(config, resume=resume, **kw)

    def make_dataset(self, ckpt):
        cfg = self.cfg
        if cfg.data is None:
            raise MicroGPTError("sft needs conversations: --data FILE.jsonl (microgpt tasks make writes some)")
        conversations = read_conversations(self.data.path)
        if ckpt:
            tokenizer = ckpt.tokenizer
        elif self.base is not None:
            tokenizer = chat_tokenizer(self.base.tokenizer, conversations)
        elif cfg.tokenizer == "bpe":
            text = "\n".join(conversation_text(c) for c in conversations)
            try:
                tokenizer = BPETokenizer.train(text, cfg.vocab_size).with_special_tokens(CHAT_SPECIAL_TOKENS)
            except ValueError as e:
                raise MicroGPTError(f"{e}: pass a larger --vocab-size") from None
        else:
            tokenizer = chat_tokenizer(CharTokenizer([]), conversations)
        ds = ChatDataset(conversations, tokenizer, cfg.model.block_size, cfg.train.val_frac, self.rng)
        if ds.n_truncated:
            self.note(f"{ds.n_truncated} conversations are longer than block_size + 1 = {cfg.model.block_size + 1} "
                      f"tokens and are cut there" +
                      (f"; {ds.n_dropped} lost every assistant token and are left out" if ds.n_dropped else ""))
        self.note_tokenizer(tokenizer)
        return ds

    def initial_weights(self):
        if self.base is None:
            return init_weights(self.config, self.rng)
        return grow_rows(self.base.weights, self.config, self.rng)

    def batch(self, step):
        pairs = self.ds.train_batch(step, self.cfg.train.batch_size)
        weights = masked_weights(pairs)  # normalised over the whole (global) batch
        return self.my_share([ids for ids, _ in pairs]), self.my_share(weights), {}

    def evaluate_now(self):
        out = {}
        if self.ds.val:
            out["val_loss"] = self.evaluate_split("val", self.cfg.eval_docs)["loss"]
        if self.cfg.eval_task:
            from microgpt.tasks import get_task
            r = evaluate_task(self.model, self.tokenizer, self.config.block_size, get_task(self.cfg.eval_task),
                              self.cfg.eval_num, random.Random(0))
            out["test_pass@1"] = r["pass@1"]
        return out
