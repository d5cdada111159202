"""The command line's flags: one table per group, each flag the config field it sets.

A config flag's value lands in args as "cfg.<field path>" (None when it is not given), so a
command changes exactly the fields given: the defaults (the seed's run), or a resumed run's own.
"""

import argparse
import sys

from microgpt.cli.data import add_parser as data_parser
from microgpt.cli.ecosystem import serve_args
from microgpt.config import expand_arch
from microgpt.tasks.base import FIT_BLOCK, MULTI_TURN

DESCRIPTION = """The complete GPT algorithm in dependency-free Python, and the efficiency ladder above it.

  microgpt                the seed's run: train on 32,033 names, print 20 samples (= microgpt train)
  microgpt COMMAND --help the flags of one command"""

TASKS_MAKE = """Write problems of a task as conversations (JSONL) for microgpt sft. A share (--multi-turn) asks 2 or 3
problems in a row, each answered right, so a chat model learns to answer a question after earlier ones."""
# (flag, config field it sets, type, metavar, help)
TRAIN_FLAGS = [
    ("--data", "data", str, "FILE", "text file, one document per line (default: the names data set), or a "
                                    "DATA_DIR made by microgpt data prepare"),
    ("--data-mode", "train.data_mode", str, "MODE", "docs (one per line, default) | stream (continuous text)"),
    ("--tokenizer", "tokenizer", str, "NAME",
     "char (the seed's, default) | bpe (byte-level BPE trained on the training split) | a tokenizer file"),
    ("--vocab-size", "vocab_size", int, "N", "bpe: tokens in all (256 bytes + merges + special tokens), e.g. 512"),
    ("--out", "out", str, "RUN", "run directory (default: runs/<date-time>)"),
    ("--steps", "train.steps", int, "N", "training steps (default 1000)"),
    ("--n-layer", "model.n_layer", int, "N", "transformer layers (default 1)"),
    ("--n-embd", "model.n_embd", int, "N", "embedding width (default 16)"),
    ("--n-head", "model.n_head", int, "N", "attention heads (default 4)"),
    ("--block-size", "model.block_size", int, "N", "context length in tokens (default 16)"),
    ("--arch", "arch", str, "NAME", "seed (default) | nanochat (= --pos rope --qk-norm --mlp relu2 --final-norm "
                                    "--softcap 15, Hugging Face's NanoChatForCausalLM); flags given with it win"),
    ("--pos", "model.pos", str, "NAME", "numpy/torch: learned (wpe, default) | rope (rotary q and k)"),
    ("--qk-norm", "model.qk_norm", bool, None, "numpy/torch: rmsnorm each head's q and k"),
    ("--mlp", "model.mlp", str, "NAME", "numpy/torch: relu (default) | relu2"),
    ("--final-norm", "model.final_norm", bool, None, "numpy/torch: rmsnorm before lm_head"),
    ("--softcap", "model.softcap", float, "X", "numpy/torch: logits = X tanh(logits / X) (default 0: off)"),
    ("--lr", "train.lr", float, "LR", "peak learning rate (default 0.01)"),
    ("--lr-schedule", "train.lr_schedule", str, "NAME",
     "linear (default) | cosine | constant | wsd (warm-up, stable, decay: a run can be made longer)"),
    ("--warmup-steps", "train.warmup_steps", int, "N", "linear warm-up steps for cosine and wsd"),
    ("--decay-frac", "train.decay_frac", float, "X", "wsd: the last fraction of the steps, decaying to 0 (0.2)"),
    ("--optimizer", "train.optimizer", str, "NAME",
     "adam (default) | muon (numpy/torch: Muon on the layers' matrices, AdamW on the embeddings and lm_head)"),
    ("--muon-lr", "train.muon_lr", float, "LR", "muon: peak learning rate of the layers' matrices (default 0.02)"),
    ("--weight-decay", "train.weight_decay", float, "X", "AdamW decoupled weight decay (default 0 = the seed's Adam)"),
    ("--dropout", "train.dropout", float, "P", "numpy/torch: dropout on each block's output in training (default 0)"),
    ("--batch-size", "train.batch_size", int, "N", "documents (windows) per step (default 1)"),
    ("--seed", "train.seed", int, "N", "random seed (default 42)"),
    ("--val-frac", "train.val_frac", float, "X",
     "fraction held out for validation, from the end of the shuffled data (default 0.1)"),
    ("--eval-every", "eval_every", int, "N", "estimate the validation loss every N steps (default 200; 0: never)"),
    ("--eval-docs", "eval_docs", int, "N", "documents per validation estimate (default 100; 0: all)"),
    ("--stop-after", "stop_after", int, "N",
     "stop (and save) after this step; the schedule still spans --steps; continue with --resume"),
    ("--time-limit", "time_limit", float, "SECONDS",
     "stop (and save) after this many seconds; the schedule still spans --steps; continue with --resume"),
    ("--checkpoint-every", "checkpoint_every", int, "N", "also save every N steps (always at the end)"),
    ("--log-every", "log_every", int, "N", "print and record every N steps (default 1, sft 100): their mean loss"),
    ("--eval-task", "eval_task", str, "TASK",
     "at every evaluation, also the held-out accuracy on this task (e.g. add; see microgpt tasks)"),
    ("--eval-num", "eval_num", int, "N", "problems per --eval-task evaluation (default 200)"),
]
ENGINE_FLAGS = [
    ("--engine", "engine.name", str, "NAME",
     "python | numpy | torch (default: python; for an existing run, the engine that trained it)"),
    ("--graph", "engine.graph", str, "NAME", "python engine only: textbook | fused (default fused)"),
    ("--dtype", "engine.dtype", str, "NAME",
     "numpy: float64 (default) | float32; torch: float32 (default) | float64 | bf16 (fp32, fp64, bfloat16 too)"),
    ("--device", "engine.device", str, "NAME", "torch only: cpu | cuda | cuda:N | mps"),
    ("--threads", "engine.threads", int, "N", "numpy only: BLAS threads (default 1: a busy neighbour costs little)"),
]
RL_FLAGS = [
    ("--task", "rl.task", str, "TASK",
     "add, reverse, count (chat models); names-ending:a, names-length:6-8 (names models)"),
    ("--prompts", "rl.prompts", int, "N", "P: problems per step (default 8)"),
    ("--group-size", "rl.group_size", int, "N",
     "G: answers sampled per problem (default 8); advantage = reward - the group's mean"),
    ("--temperature", "rl.temperature", float, "T", "of the sampled answers (default 1.0)"),
    ("--top-k", "rl.top_k", int, "K", "sample among the k likeliest"),
    ("--kl", "rl.kl", float, "BETA", "beta of a per-token KL penalty against the starting model (default 0: none)"),
]
SWITCHES = [  # (flag, config field, help): store_true
    ("--compile", "engine.compile", "torch only: torch.compile the model"),
    ("--stats", "engine.stats", "python engine: report the size of each step's graph (nodes, edges)"),
    ("--tensorboard", "tensorboard", "also write TensorBoard event files into RUN/tensorboard"),
    ("--quiet", "quiet", "print only the samples"),
]


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other error
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def add_flags(p, flags):
    for flag, path, typ, metavar, help in flags:  # dest "cfg.<path>": a flag left out stays None
        if typ is bool:  # a switch: given = True
            add_switch(p, flag, path, help)
        else:
            p.add_argument(flag, dest="cfg." + path, type=typ, metavar=metavar, default=None, help=help)


def add_switch(p, flag, path, help):
    p.add_argument(flag, dest="cfg." + path, action="store_true", default=None, help=help)


def engine_args(p):
    add_flags(p, ENGINE_FLAGS)
    add_switch(p, *SWITCHES[0])


def sampling_args(p, num_flag, num_default):
    p.add_argument(num_flag, type=int, default=num_default, metavar="N",
                   help=f"number of samples (default {num_default})")
    p.add_argument("--temperature", type=float, default=0.5, metavar="T",
                   help="sampling temperature (default 0.5; 0: greedy, always the likeliest token)")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="stream models: tokens to generate (default 500)")


def training_args(p, data_help=None):
    """The flags of a command that trains a run (train, sft, rl): the configs, and what to do with
    the run directory."""
    add_flags(p, [(f, d, t, m, data_help if f == "--data" and data_help else h) for f, d, t, m, h in TRAIN_FLAGS])
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--allow-data-change", action="store_true",
                   help="resume even though the data file's content changed since the run began")
    for switch in SWITCHES[1:]:
        add_switch(p, *switch)
    engine_args(p)


def given(args, prefix="cfg."):
    """{config path: value} of the config flags given on the command line (--arch: its preset's fields)."""
    return expand_arch({k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None})


def build_parser(version):
    parser = Parser(prog="microgpt", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"microgpt {version}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, title="commands", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model (default: the seed's reference run) and print samples")
    training_args(t)
    sampling_args(t, "--num-samples", 20)

    ft = sub.add_parser("sft", help="supervised fine-tuning on conversations (JSONL), loss on the assistant's "
                                    "tokens only")
    training_args(ft, data_help="conversations, one JSON object per line (microgpt tasks make writes some)")
    ft.add_argument("--from", dest="cfg.init_from", default=None, metavar="RUN",
                    help="a trained run to start from: its weights and tokenizer (+ the chat's special tokens); "
                         "without it, a new model")

    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--out", required=True, metavar="RUN", help="run directory")
    sampling_args(s, "--num", 20)
    s.add_argument("--top-k", metavar="K", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    s.add_argument("--prompt", metavar="TEXT", default="", help="start every sample with this text")
    s.add_argument("--seed", metavar="N", type=int, default=None,
                   help="random seed (default: continue the run's random stream, as train's samples do)")
    s.add_argument("--data", metavar="FILE", default=None,
                   help="data to mark samples as seen (default: the run's data)")
    engine_args(s)

    rl = sub.add_parser("rl", help="reinforcement learning on a task's checkable reward (policy gradient, "
                                   "group-mean baseline, optional KL penalty)")
    training_args(rl)
    rl.add_argument("--from", dest="cfg.init_from", default=None, metavar="RUN", help="the trained run to start from")
    add_flags(rl, RL_FLAGS)
    add_switch(rl, "--std-normalize", "rl.std_normalize", "divide each advantage by its group's standard deviation")

    e = sub.add_parser("eval", help="loss and bits per byte on the train and validation splits; "
                                    "with --task, accuracy on held-out problems (pass@k)")
    e.add_argument("--out", required=True, metavar="RUN", help="run directory")
    e.add_argument("--data", metavar="FILE", default=None, help="data file (default: the run's data)")
    e.add_argument("--max-docs", metavar="N", type=int, default=1000, help="documents per split (default 1000; 0: all)")
    e.add_argument("--task", metavar="TASK", default=None,
                   help="a task to score instead (add, reverse, count, names-ending:a, ...)")
    e.add_argument("--num", metavar="N", type=int, default=500, help="--task: held-out problems (default 500)")
    e.add_argument("--samples", metavar="K", type=int, default=1,
                   help="--task: replies drawn per problem; k > 1 gives pass@k at --temperature (default 1: greedy)")
    e.add_argument("--temperature", metavar="T", type=float, default=0.0,
                   help="--task: 0 = greedy (default); with --samples k the temperature of the draws (0 there: 1.0)")
    e.add_argument("--top-k", metavar="K", type=int, default=0,
                   help="--task: draw among the k likeliest tokens (0: all)")
    e.add_argument("--seed", metavar="N", type=int, default=0,
                   help="--task: which held-out problems, and the draws (default 0)")
    e.add_argument("--turn", metavar="K", type=int, default=1,
                   help="--task: ask each problem as the K-th question of a chat, after K-1 held-out exchanges "
                        "answered right (default 1)")
    engine_args(e)

    ts = sub.add_parser("tasks", help="tasks with checkable answers: list them, or make conversations")
    ts_sub = ts.add_subparsers(dest="tasks_command", parser_class=Parser, required=True)
    ts_sub.add_parser("list", help="the tasks and their parameters")
    tm = ts_sub.add_parser("make", help="write problems of a task as conversations (JSONL) for microgpt sft",
                           description=TASKS_MAKE)
    tm.add_argument("--task", metavar="TASK", required=True,
                    help="add, add:4, reverse, count, or a mixture: add,reverse,count")
    tm.add_argument("--num", metavar="N", type=int, required=True, help="how many conversations")
    tm.add_argument("--multi-turn", metavar="X", type=float, default=MULTI_TURN,
                    help=f"share of the conversations with 2 or 3 exchanges (default {MULTI_TURN}: one each; 0.5 with "
                         f"--pos rope made a chat model that answers on later turns too)")
    tm.add_argument("--block-size", metavar="N", type=int, default=FIT_BLOCK,
                    help=f"the --block-size you fine-tune with: a conversation gets a further exchange only while "
                         f"it fits N + 1 tokens with a character tokenizer (default {FIT_BLOCK})")
    tm.add_argument("--split", metavar="NAME", default="train",
                    help="train (default) | test: the two never share a problem")
    tm.add_argument("--seed", metavar="N", type=int, default=0, help="which problems (default 0)")
    tm.add_argument("--to", metavar="FILE", default=None, help="file to write (default: standard output)")

    c = sub.add_parser("chat", help="talk to a fine-tuned run in the terminal (or answer --prompt once)")
    c.add_argument("--out", required=True, metavar="RUN", help="run directory of a chat model (microgpt sft)")
    c.add_argument("--prompt", metavar="TEXT", default=None, help="answer this one message and exit")
    c.add_argument("--temperature", metavar="T", type=float, default=0.0, help="0 = greedy (default)")
    c.add_argument("--top-k", metavar="K", type=int, default=0, help="draw among the k likeliest tokens (0: all)")
    c.add_argument("--seed", metavar="N", type=int, default=None,
                   help="random seed of the draws (default: fresh each time)")
    engine_args(c)

    pl = sub.add_parser("plot", help="loss curves of one or more runs, overlaid (needs matplotlib)")
    pl.add_argument("runs", nargs="*", metavar="RUN", help="run directories to draw together")
    pl.add_argument("--out", action="append", default=[], metavar="RUN", help="a run directory (= giving it as RUN)")
    pl.add_argument("--x", metavar="AXIS", default="step", choices=("step", "tokens", "time"), help="x axis")
    pl.add_argument("--log", action="store_true", help="log-scale loss axis")
    pl.add_argument("--svg", action="store_true", help="also write an SVG beside the PNG")
    pl.add_argument("--to", metavar="FILE", default=None,
                    help="picture file (default RUN/loss.png, or ./loss.png for several runs)")

    a = sub.add_parser("attention", help="every layer's and head's attention over a text, as heatmaps")
    a.add_argument("--out", required=True, metavar="RUN", help="run directory")
    a.add_argument("--text", metavar="TEXT", required=True, help="the text to read (starting with BOS, as in training)")
    a.add_argument("--svg", action="store_true", help="also write an SVG")
    a.add_argument("--to", metavar="FILE", default=None, help="picture file (default RUN/attention.png)")

    em = sub.add_parser("embeddings", help="token embeddings (PCA to 2-D) and position-embedding similarities")
    em.add_argument("--out", required=True, metavar="RUN", help="run directory")
    em.add_argument("--svg", action="store_true", help="also write an SVG")
    em.add_argument("--to", metavar="FILE", default=None, help="picture file (default RUN/embeddings.png)")

    tk = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer on its own")
    tk_sub = tk.add_subparsers(dest="tokenizer_command", parser_class=Parser, required=True)
    tt = tk_sub.add_parser("train", help="learn BPE merges from a file's training split and save them")
    tt.add_argument("--data", metavar="FILE", default=None, help="text file (default: the names data set)")
    tt.add_argument("--vocab-size", metavar="N", type=int, required=True,
                    help="tokens in all (256 bytes + merges + <|bos|>)")
    tt.add_argument("--out", required=True, metavar="FILE",
                    help="tokenizer file to write (JSON; reuse: train --tokenizer FILE)")
    tt.add_argument("--data-mode", metavar="MODE", default="docs", help="docs (one per line, default) | stream")
    tt.add_argument("--val-frac", metavar="X", type=float, default=0.1,
                    help="held out as train does, never learnt from (default 0.1; 0: the whole file)")
    tt.add_argument("--seed", metavar="N", type=int, default=42,
                    help="the shuffle of docs mode, as train's --seed (default 42)")

    tz = sub.add_parser("tokenize", help="show how a text is cut into tokens: each piece with its id")
    tz.add_argument("text", help="the text to tokenize")
    tz_from = tz.add_mutually_exclusive_group(required=True)
    tz_from.add_argument("--out", metavar="RUN", help="a run directory: its tokenizer")
    tz_from.add_argument("--tokenizer", metavar="FILE", help="a tokenizer file (microgpt tokenizer train)")

    r = sub.add_parser("report", help="one self-contained report.html of a run: config, curves, pictures, samples")
    r.add_argument("--out", required=True, metavar="RUN", help="run directory")
    r.add_argument("--num", metavar="N", type=int, default=20,
                   help="samples to show, each marked train / val / new (default 20)")
    r.add_argument("--text", metavar="TEXT", action="append", default=None,
                   help="a text whose attention to draw (repeatable)")
    r.add_argument("--max-docs", metavar="N", type=int, default=1000,
                   help="documents per split to evaluate (default 1000; 0: all)")

    ex = sub.add_parser("export", help="a run as a Hugging Face folder that transformers loads")
    ex.add_argument("--out", required=True, metavar="RUN", help="run directory")
    ex.add_argument("--to", required=True, metavar="DIR", help="the folder to write")
    ex.add_argument("--overwrite", action="store_true", help="replace a folder already at --to")
    ex.add_argument("--no-eval", action="store_true", help="no measured figures in the model card (no data needed)")
    im = sub.add_parser("import", help="a Hugging Face folder (nanochat, or a microgpt export) as a run")
    im.add_argument("--from", dest="src", required=True, metavar="DIR", help="the Hugging Face model folder")
    im.add_argument("--out", required=True, metavar="RUN", help="run directory to make")
    im.add_argument("--overwrite", action="store_true", help="replace a run already in --out")

    serve_args(sub.add_parser("serve", help="an OpenAI-compatible API and a page to watch the model think "
                              "(microgpt[serve])"))
    data_parser(sub, Parser)
    return parser
