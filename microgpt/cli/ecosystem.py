"""`microgpt export | import | serve`: a run to and from a Hugging Face folder (microgpt/export), and
served over HTTP (microgpt/serve)."""

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


def cmd_serve(args):
    from microgpt.serve import serve
    serve(args.out, args.host, args.port, args.api_key, args.reload, args.engine)
