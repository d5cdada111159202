"""What any run with a model can do, trained here or opened from its folder: sample from it,
say where a sample comes from, evaluate it; a chat model answers questions instead of sampling.

A subclass sets self.cfg (the RunConfig), self.config (its GPTConfig), self.model (an engine's
Model), self.rng (the run's random stream) and self.ds (its data: .tokenizer, splits, texts).
"""

import random

from microgpt.evaluate import split_loss
from microgpt.generate import sample_texts
from microgpt.stages.chat import answer_questions


class ModelRun:
    def sample(self, num=20, temperature=0.5, top_k=0, prompt="", max_new_tokens=None, seed=None):
        """New documents (docs mode: until BOS, as the seed) or continuations of text (stream
        mode). Without a seed they are drawn from the run's own random stream: right after
        training, the seed's samples; from a saved run, the ones its training run printed."""
        if self.cfg.train.data_mode == "chat":  # a chat model (sft, rl) answers instead
            return [reply for _, reply, _ in self.answers(num, temperature, top_k, prompt, max_new_tokens, seed)]
        rng = self.rng if seed is None else random.Random(seed)
        return sample_texts(self.model, self.tokenizer, self.config, self.cfg.train.data_mode, rng,
                            num, temperature, top_k, prompt, max_new_tokens)

    def answers(self, num=20, temperature=0.5, top_k=0, prompt="", max_new_tokens=None, seed=None):
        """A chat model's replies, [(question, reply, mark)]: `num` replies to `prompt`, or without
        one a reply to each of up to `num` held-out questions (see stages.chat.held_out_questions)."""
        rng = self.rng if seed is None else random.Random(seed)
        return answer_questions(self.model, self.tokenizer, self.config.block_size, self.cfg, rng, num, temperature,
                                top_k, prompt, max_new_tokens, lambda n: self.ds.val_conversations[:n])

    def mark(self, text):
        """Where a sampled document comes from: "in train", "in val" or "new"."""
        return "in train" if text in self.ds.train_text else "in val" if text in self.ds.val_text else "new"

    def evaluate(self, max_docs=1000):
        """Loss (nats per token) and bits per byte of the train and validation splits."""
        return {split: self.evaluate_split(split, max_docs) for split in ("train", "val")}

    def evaluate_split(self, split, max_seqs=0, batch_size=64):
        """The mean loss per target token (nats) and bits per byte over a split; for conversations,
        over the assistant's tokens only (what fine-tuning trains)."""
        return split_loss(self.model, self.tokenizer, self.ds.eval_pairs(split, max_seqs), batch_size)

    @property
    def tokenizer(self):
        return self.ds.tokenizer
