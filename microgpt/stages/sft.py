"""Stage 2, supervised fine-tuning (`microgpt sft`): a model that continues text becomes an
assistant by training on conversations, learning only the assistant's tokens.

    microgpt tasks make --task add --num 60000 --split train --to add.jsonl
    microgpt sft --data add.jsonl --eval-task add --out runs/add ...          # from scratch
    microgpt sft --from runs/base --data add.jsonl --out runs/add-sft ...     # from a trained run

Each conversation is rendered with the chat template (data/chat_template.py) into one sequence
and a mask; the loss is the mean over the masked-in (assistant) target tokens of the batch: every
engine's training step takes one weight per target token, here mask / (their count).
Starting from a trained run (--from), its tokenizer gains the chat's special tokens (and, for
characters, any character the conversations need) as NEW ids after every existing one; wte and
lm_head grow by a freshly initialised row per new token and keep every old row exactly.
Everything else is the training loop of train/loop.py: checkpoints, resume, Ctrl-C, metrics.
"""

import random
from dataclasses import replace

from microgpt import checkpoint
from microgpt.data.chat import ChatDataset, chat_tokenizer
from microgpt.data.chat_template import CHAT_SPECIAL_TOKENS, conversation_text
from microgpt.data.conversations import parse_conversations
from microgpt.data.text import read_data
from microgpt.errors import MicroGPTError
from microgpt.evaluate import evaluate_task
from microgpt.params import grow_rows, init_weights
from microgpt.stages.pretrain import Run, note_stopped_early
from microgpt.tasks import get_task
from microgpt.tokenizers import CharTokenizer
from microgpt.tokenizers.bpe import BPETokenizer


def prepare(config, base=None):
    """The config of a fine-tuning run: on conversations; from `base` (a Checkpoint), the model's
    shape is the base run's."""
    if config.data is None:
        raise MicroGPTError("sft needs conversations: --data FILE.jsonl (microgpt tasks make writes some)")
    config = replace(config, stage="sft", train=replace(config.train, data_mode="chat"))
    if base is not None:
        config = replace(config, model=replace(config.model, **{k: getattr(base.config, k) for k in
                                                                ("n_layer", "n_embd", "n_head", "block_size")}))
    return config


def read_conversations_file(path):
    """(the DataFile, its conversations): the file read once, each conversation checked once."""
    data = read_data(path, "conversations file")
    return data, parse_conversations(data.raw, path)


def new_tokenizer(cfg, conversations, base=None):
    """A fine-tuned model's tokenizer: the base run's with the chat's (new ids), else one of its own."""
    if base is not None:
        return chat_tokenizer(base.tokenizer, conversations)
    if cfg.tokenizer == "bpe":
        text = "\n".join(conversation_text(c, checked=True) for c in conversations)
        try:
            return BPETokenizer.train(text, cfg.vocab_size).with_special_tokens(CHAT_SPECIAL_TOKENS)
        except ValueError as e:
            raise MicroGPTError(f"{e}: pass a larger --vocab-size") from None
    return chat_tokenizer(CharTokenizer([]), conversations)


def open_dataset(cfg, tokenizer):
    """The conversations of a saved run, split as it trained on them."""
    _, conversations = read_conversations_file(cfg.data)
    return ChatDataset(conversations, tokenizer, cfg.model.block_size, cfg.train.val_frac,
                       random.Random(cfg.train.seed))


def masked_weights(pairs):
    """One weight per target token: mask / (number of masked-in targets of the whole batch), so the
    loss is the mean over the assistant's tokens."""
    n = sum(sum(mask[1:]) for _, mask in pairs)
    return [[m / n for m in mask[1:]] for _, mask in pairs]


class SFTRun(Run):
    """A run on conversations (data_mode "chat"), from scratch or from a trained run (init_from;
    `base` = its checkpoint when the caller has read it already)."""

    log_fields = (("train_loss", "loss"), ("val_loss", "val"), ("test_pass@1", "held-out pass@1"))

    prepare = staticmethod(prepare)

    def __init__(self, config, resume=False, base=None, **kw):
        if config.init_from and not resume and base is None:
            base = checkpoint.load(config.init_from, with_optimizer=False)
        super().__init__(config, resume=resume, base=base, **kw)

    def read_data(self):
        data, self.conversations = read_conversations_file(self.cfg.data)
        return data

    def make_dataset(self, ckpt):
        cfg = self.cfg
        tokenizer = ckpt.tokenizer if ckpt else new_tokenizer(cfg, self.conversations, self.base)
        ds = ChatDataset(self.conversations, tokenizer, cfg.model.block_size, cfg.train.val_frac, self.rng)
        if ds.n_truncated:
            self.note(f"{ds.n_truncated} conversations are longer than block_size + 1 = {cfg.model.block_size + 1} "
                      f"tokens and are cut there" +
                      (f"; {ds.n_dropped} lost every assistant token and are left out" if ds.n_dropped else ""))
        if getattr(tokenizer, "stopped_early", False):
            note_stopped_early(self.note, cfg, tokenizer)
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
            r = evaluate_task(self.model, self.tokenizer, self.config.block_size, get_task(self.cfg.eval_task),
                              self.cfg.eval_num, random.Random(0))
            out["test_pass@1"] = r["pass@1"]
        return out


RUN_CLASS = SFTRun
