"""Hugging Face transformers export and import.

    microgpt export --out RUN --to DIR     a run -> a folder transformers loads (to_hf.py)
    microgpt import --from DIR --out RUN   a nanochat or microgpt folder -> a run (from_hf.py)

The export needs nothing beyond the core: config.json, model.safetensors, tokenizer.json and the
card are written in plain Python. Loading the folder needs transformers (pip install 'microgpt[hf]').
"""


def export_run(run_dir, to, overwrite=False, measure=True, log=None):
    from microgpt.export.to_hf import export_run
    return export_run(run_dir, to, overwrite=overwrite, measure=measure, log=log)


def import_folder(src, out, overwrite=False):
    from microgpt.export.from_hf import import_folder
    return import_folder(src, out, overwrite=overwrite)
