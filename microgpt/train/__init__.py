"""Training, for every stage alike: loop.py (the step loop: data -> engine step -> log, evaluate,
checkpoint; it knows no stage), signals.py (Ctrl-C, SIGTERM: finish the step, save, exit),
metrics.py (metrics.jsonl, written and read back) and tensorboard.py (event files, by hand)."""
