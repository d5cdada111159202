"""`microgpt export | import | serve`: a run to and from a Hugging Face folder (microgpt/export), and
served over HTTP (microgpt/serve)."""

import os
import sys


def cmd_export(args):
    from microgpt.export import export_run
    kind = export_run(args.out, args.to, args.overwrite, not args.no_eval, log=lambda m: print(m, file=sys.stderr))
    print(f"wrote {args.to} ({kind}" + (", load with trust_remote_code=True)" if kind == "microgpt" else ")"))


def cmd_import(args):
    from microgpt.export import import_folder
    kind, notes = import_folder(args.src, args.out, args.overwrite)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print(f"wrote the run {args.out} from {args.src} ({kind})")


def serve_args(sv):
    """The flags of `microgpt serve`."""
    sv.add_argument("--out", action="append", required=True, metavar="RUN",
                    help="a run directory (repeat to serve several)")
    sv.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                    help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, metavar="N", help="port (default 8000; 0: any free one)")
    sv.add_argument("--api-key", default=os.environ.get("MICROGPT_API_KEY"), metavar="KEY",
                    help="require 'Authorization: Bearer KEY' (default: $MICROGPT_API_KEY; none: no key)")
    sv.add_argument("--reload", action="store_true", help="serve each new checkpoint a running train writes")
    sv.add_argument("--engine", default=None, metavar="NAME", help="python | numpy | torch (default: the engine that "
                    "trained it)")
    sv.add_argument("--max-batch", type=int, default=32, metavar="N", help="requests' rows stepped together per "
                    "model (continuous batching; default 32); more requests wait their turn")
    sv.add_argument("--max-cache-mb", type=float, default=1024, metavar="MB", help="KV-cache memory per model "
                    "(default 1024): a row holds 2 x n_layer x block_size x n_embd numbers; rows beyond wait")
    sv.add_argument("--model-process", action="store_true", help="step each model in a process of its own: the "
                    "HTTP side and the model each get a core (more tokens/s for many clients on 2+ cores)")


def cmd_serve(args):
    from microgpt.errors import MicroGPTError
    from microgpt.serve import serve
    if args.max_batch < 1 or args.max_cache_mb <= 0:
        raise MicroGPTError("--max-batch and --max-cache-mb must be positive (e.g. --max-batch 32 --max-cache-mb 1024)")
    serve(args.out, args.host, args.port, args.api_key, args.reload, args.engine, max_batch=args.max_batch,
          max_cache_mb=args.max_cache_mb, model_process=args.model_process)
