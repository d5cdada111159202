"""The command line: `microgpt COMMAND [flags]` (no command = train, the seed's run).

Each command is flags -> a config -> one call into the library -> print: parser.py holds the
flags, training.py the commands that train (train, sft, rl), using.py those that use a saved
run (sample, eval, chat), ecosystem.py those that take it elsewhere (export, import, serve),
tools.py the rest. Nothing here computes anything itself.
"""

import sys

from microgpt import __version__
from microgpt.cli import data, ecosystem, tools, training, using
from microgpt.cli.parser import build_parser
from microgpt.errors import MicroGPTError

COMMANDS = {"train": training.cmd_train, "sft": training.cmd_sft, "rl": training.cmd_rl,
            "sample": using.cmd_sample, "eval": using.cmd_eval, "chat": using.cmd_chat,
            "tasks": tools.cmd_tasks, "tokenizer": tools.cmd_tokenizer, "tokenize": tools.cmd_tokenize,
            "plot": tools.cmd_plot, "attention": tools.cmd_attention, "embeddings": tools.cmd_embeddings,
            "report": tools.cmd_report, "export": ecosystem.cmd_export, "import": ecosystem.cmd_import,
            "serve": ecosystem.cmd_serve, "data": data.cmd_data}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train"] + list(argv)  # `microgpt` alone is the reference run
    args = build_parser(__version__).parse_args(argv)
    args.argv = list(argv)
    try:
        COMMANDS[args.command](args)
    except MicroGPTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a write the code did not foresee failing (full disk, ...): still one line
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
