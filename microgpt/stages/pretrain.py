"""Stage 1, pretraining (`microgpt train`): a model learns to continue text, from scratch.

    microgpt train                                        # the seed's run: 1000 steps on names
    microgpt train --data input.txt --data-mode stream --out runs/tiny ...

    run = Run(RunConfig(out="runs/demo", train=TrainConfig(steps=300)))
    run.train()                  # log, evaluate, checkpoint; resumable, Ctrl-C / SIGTERM safe
    run.sample(5)                # -> five new names

Step s trains on the batch data/text.py hands out for s (the seed: one name a step), every
target token weighing the same. The data, the tokenizer (the seed's characters, or BPE learnt
from the training split) and the seeded initialisation are made here; the loop is train/loop.py.
"""

import random
from dataclasses import replace

from microgpt import tokenizers
from microgpt.data.sharded import PreparedCorpus, ShardedDataset, is_prepared
from microgpt.data.shards import read_manifest
from microgpt.data.text import Dataset, read_data
from microgpt.errors import MicroGPTError
from microgpt.params import init_weights
from microgpt.stages.model_run import ModelRun
from microgpt.train.loop import TrainingRun


def prepare(config, base=None):
    """The config of a pretraining run (nothing to take from another run)."""
    return replace(config, stage="pretrain")


def dataset(cfg, data, rng, tokenizer=None, note=None):
    """The run's Dataset of `data` (a DataFile), shuffled by `rng`: with `tokenizer` (a saved run's)
    or else the one cfg names (char, bpe learnt from the training split, a tokenizer file); or the
    ShardedDataset of a prepared corpus (its own tokenizer)."""
    if isinstance(data, PreparedCorpus):
        if tokenizer is None and (cfg.tokenizer != "char" or cfg.vocab_size is not None):
            raise MicroGPTError(f"{data.path} is tokenized already (microgpt data prepare chose its tokenizer): "
                                f"drop --tokenizer and --vocab-size")
        val_frac = data.manifest["split"]["val_frac"]
        if cfg.train.val_frac != val_frac:
            raise MicroGPTError(f"{data.path} holds out {val_frac} of its documents (chosen by microgpt data "
                                f"prepare), not --val-frac {cfg.train.val_frac}: drop --val-frac, or prepare again")
        return ShardedDataset(data, cfg.train.data_mode, cfg.model.block_size, rng, tokenizer)
    if tokenizer is None and cfg.tokenizer not in ("char", "bpe"):
        tokenizer = tokenizers.load_file(cfg.tokenizer)
    ds = Dataset(data.text, cfg.train.data_mode, cfg.model.block_size, cfg.train.val_frac, rng,
                 tokenizer=tokenizer, bpe_vocab_size=cfg.vocab_size if tokenizer is None else None)
    if note and ds.n_truncated:
        note(f"{ds.n_truncated} documents are longer than block_size - 1 = {cfg.model.block_size - 1} "
             f"tokens; they are cut to block_size tokens (as the seed does)"
             + (f": {ds.cut_fraction:.0%} of the text is never trained on; to read it whole as one continuous "
                f"text, pass --data-mode stream" if ds.cut_fraction > 0.5 else ""))
    if note and getattr(ds.tokenizer, "stopped_early", False):
        note_stopped_early(note, cfg, ds.tokenizer)
    return ds


def note_stopped_early(note, cfg, tokenizer):
    note(f"the text ran out of pairs to merge before --vocab-size {cfg.vocab_size}: the BPE "
         f"tokenizer has {tokenizer.vocab_size} tokens (digits are never merged: one token each)")


def corpus_defaults(flags):
    """{config path: value} for a new run on a prepared corpus, from its manifest, where the flags do
    not say: its split, and stream mode for a corpus of continuous text."""
    if not is_prepared(flags.get("data")):
        return {}
    m = read_manifest(flags["data"])[0]  # (the manifest alone: the run opens the corpus itself)
    return {"train.val_frac": m["split"]["val_frac"], **({} if m["docs"] else {"train.data_mode": "stream"})}


def read_corpus(path):
    """`--data PATH`: a prepared corpus (a folder), else a text file (the names data set when None)."""
    return PreparedCorpus(path) if is_prepared(path) else read_data(path)


def open_dataset(cfg, tokenizer):
    """The data of a saved run, as it trained on it (for evaluation, and to mark samples)."""
    return dataset(cfg, read_corpus(cfg.data), random.Random(cfg.train.seed), tokenizer)


class Run(TrainingRun, ModelRun):
    """A pretraining run: `Run(config)` starts one in config.out, `Run(config, resume=True)`
    continues it (see TrainingRun)."""

    prepare = staticmethod(prepare)

    def __init__(self, config, resume=False, base=None, **kw):
        self.base = None if resume else base  # (a Checkpoint: the run this one starts from)
        super().__init__(self.prepare(config, self.base), resume=resume, **kw)

    def read_data(self):
        """The run's data file (the names data set when none is given), decoded; or a prepared corpus."""
        data = read_corpus(self.cfg.data)
        if not isinstance(data, PreparedCorpus):
            data.text  # noqa: B018 (decoded now: a file that is not text is refused before anything else)
        return data

    def make_dataset(self, ckpt):
        return dataset(self.cfg, self.data, self.rng, ckpt.tokenizer if ckpt else None, self.note)

    def initial_weights(self):
        """The seeded initialisation (the seed's order)."""
        return init_weights(self.config, self.rng)

    def batch(self, step):
        seqs = self.ds.train_batch(step, self.cfg.train.batch_size, self.cfg.train.seed)
        return self.my_share(seqs), None, {}

    def evaluate_now(self):
        if not self.ds.val:
            return {}
        val = self.evaluate_split("val", self.cfg.eval_docs)
        return {"val_loss": val["loss"], "val_bpb": val["bpb"]}


RUN_CLASS = Run
