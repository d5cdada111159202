"""The torch engine's training throughput: on the CPU against the numpy engine, on a GPU as MFU.

CPU (default): two float32 models, each trained by the torch and the numpy engine in this one
process, alternating engine by engine every repeat; a repeat times --steps training steps
(forward, backward, Adam) and the median over repeats is reported, with the ratio torch/numpy:
  names        4 layers, n_embd 64, 4 heads, block 16, batch 32 (201,088 parameters), names.txt
  shakespeare  4 layers, n_embd 128, 4 heads, block 64, batch 12 (stream), tinyshakespeare.txt
tokens/s counts the real target tokens of a step (padding excluded).

--device cuda: 6 layers, n_embd 384, 6 heads, block 256, batch 64 on tinyshakespeare, --dtype bf16
(default there), optionally --compile. Model FLOPs utilisation = tokens/s * FLOPs per token / peak,
  FLOPs per token = 6 * N + 12 * L * C * T
(N = parameters that multiply activations: every matrix but the wte/wpe lookups; the second term
is attention's q.k and weights.v, forward and backward, at full T×T as in the PaLM paper's count,
although causal attention needs half), peak = --peak-tflops (default 989 TFLOP/s, H100 SXM dense bf16).

    MICROGPT_DATA_DIR=/work/shared/data python bench/bench_torch.py --threads 1
    MICROGPT_DATA_DIR=/work/shared/data python bench/bench_torch.py --device cuda --compile
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CPU_MODELS = {
    "names": dict(config=dict(n_layer=4, n_embd=64, n_head=4, block_size=16), batch=32, data="names", mode="docs"),
    "shakespeare": dict(config=dict(n_layer=4, n_embd=128, n_head=4, block_size=64), batch=12,
                        data="tinyshakespeare", mode="stream"),
}
GPU_MODEL = dict(config=dict(n_layer=6, n_embd=384, n_head=6, block_size=256), batch=64,
                 data="tinyshakespeare", mode="stream")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu (torch vs numpy) | cuda (tokens/s and MFU)")
    ap.add_argument("--models", default="names,shakespeare", help="CPU models to run (default both)")
    ap.add_argument("--steps", type=int, default=10, help="training steps per timed repeat (default 10)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per engine (default 5)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (more with --compile)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch and numpy's BLAS (default: the libraries' own choice)")
    ap.add_argument("--dtype", default=None, help="torch dtype (default float32 on cpu, bf16 on cuda)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the torch model")
    ap.add_argument("--batch-size", type=int, default=None, help="override the model's batch size")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="the accelerator's peak for --dtype, for MFU (default 989: H100 SXM dense bf16)")
    return ap.parse_args()


def data_path(name):
    folder = os.environ.get("MICROGPT_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "microgpt")
    path = os.path.join(folder, name + ".txt")
    if not os.path.isfile(path):
        sys.exit(f"error: {path} not found: set MICROGPT_DATA_DIR to the folder holding {name}.txt")
    return path


def setup(spec, batch_size=None):
    """A run of the spec's model on its data: (config, data, the seeded initial weights, batch size)."""
    from microgpt.config import GPTConfig, RunConfig, TrainConfig
    from microgpt.stages.pretrain import Run
    run = Run(RunConfig(data=data_path(spec["data"]), model=GPTConfig(**spec["config"]),
                        train=TrainConfig(data_mode=spec["mode"]), quiet=True))
    return run.config, run.ds, run.model.get_weights(), batch_size or spec["batch"]


class Trainer:
    """One engine's model, trained step after step (the data keeps moving) in timed chunks."""

    def __init__(self, engine, options, config, ds, weights, batch):
        from microgpt.config import EngineConfig, TrainConfig
        from microgpt.engines import get_engine
        self.model = get_engine(engine).Model(config, weights, EngineConfig(name=engine, **options))
        self.ds, self.batch, self.tc, self.step = ds, batch, TrainConfig(batch_size=batch), 0

    def run(self, steps):
        """Train `steps` steps; returns (seconds, real target tokens, last loss)."""
        seqs = [self.ds.train_batch(self.step + i, self.batch, 42) for i in range(steps)]  # data outside the clock
        t0 = time.perf_counter()
        for s in seqs:
            self.step += 1
            loss = self.model.train_step(s, 1e-3, self.step, self.tc)
        return time.perf_counter() - t0, sum(len(x) - 1 for s in seqs for x in s), loss


def bench_cpu(args):
    import torch

    from microgpt.engines import get_engine
    from microgpt.errors import MicroGPTError
    from microgpt.params import num_params
    engines = {"torch": {"dtype": args.dtype or "float32", "device": "cpu", "compile": args.compile}}
    try:
        get_engine("numpy")
        engines["numpy"] = {"dtype": "float32"}
    except MicroGPTError:
        print("numpy engine not available: timing the torch engine alone")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
          f"{os.cpu_count()} CPU(s); {args.steps} steps per repeat, median of {args.repeats} repeats, alternating")
    for name in args.models.split(","):
        spec = CPU_MODELS[name]
        config, ds, weights, batch = setup(spec, args.batch_size)
        print(f"\n{name}: {num_params(config):,} parameters, {config.n_layer} layers, n_embd {config.n_embd}, "
              f"{config.n_head} heads, block {config.block_size}, batch {batch}")
        trainers = {e: Trainer(e, o, config, ds, weights, batch) for e, o in engines.items()}
        for t in trainers.values():
            t.run(args.warmup + (3 if args.compile else 0))
        rates = {e: [] for e in trainers}
        for _ in range(args.repeats):
            for e, t in trainers.items():
                secs, tokens, loss = t.run(args.steps)
                rates[e].append(tokens / secs)
        med = {e: statistics.median(r) for e, r in rates.items()}
        for e, r in rates.items():
            print(f"  {e:6s} {med[e]:>10,.0f} tok/s  (repeats {', '.join(f'{x:,.0f}' for x in r)})")
        if "numpy" in med:
            print(f"  ratio torch / numpy: {med['torch'] / med['numpy']:.2f}x")


def flops_per_token(config):
    """6 N + 12 L C T: N = parameters in matmuls (lm_head and the layers; wte/wpe are lookups)."""
    from microgpt.params import num_params
    C, L, T = config.n_embd, config.n_layer, config.block_size
    n_matmul = num_params(config) - config.vocab_size * C - T * C
    return 6 * n_matmul + 12 * L * C * T, n_matmul


def bench_cuda(args):
    import torch

    from microgpt.params import num_params
    if not torch.cuda.is_available():
        sys.exit("error: --device cuda, but torch sees no GPU (torch.cuda.is_available() is False)")
    config, ds, weights, batch = setup(GPU_MODEL, args.batch_size)
    dtype = args.dtype or "bf16"
    t = Trainer("torch", {"dtype": dtype, "device": "cuda", "compile": args.compile}, config, ds, weights, batch)
    fpt, n_matmul = flops_per_token(config)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, dtype {dtype}, compile {args.compile}")
    print(f"model: {num_params(config):,} parameters ({n_matmul:,} in matmuls), {config.n_layer} layers, "
          f"n_embd {config.n_embd}, {config.n_head} heads, block {config.block_size}, batch {batch}")
    print(f"FLOPs per token = 6*N + 12*L*C*T = {fpt / 1e6:.1f} MFLOP; peak {args.peak_tflops:g} TFLOP/s")
    t.run(args.warmup + (10 if args.compile else 0))  # compile and cuDNN/cuBLAS autotuning happen here
    rates, losses = [], []
    for _ in range(args.repeats):
        secs, tokens, loss = t.run(args.steps)  # train_step returns loss.item(): each step is synchronised
        rates.append(tokens / secs)
        losses.append(loss)
    tps = statistics.median(rates)
    mfu = tps * fpt / (args.peak_tflops * 1e12)
    print(f"{tps:,.0f} tok/s (repeats {', '.join(f'{x:,.0f}' for x in rates)}), "
          f"{batch * config.block_size / tps * 1e3:.1f} ms/step, MFU {100 * mfu:.1f}%, loss {losses[-1]:.3f}")


def main():
    args = parse_args()
    if args.threads:  # before numpy/torch load their thread pools
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
        import torch
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        bench_cuda(args)
    elif args.device == "cpu":
        bench_cpu(args)
    else:
        sys.exit(f"error: unknown --device {args.device!r}: use cpu or cuda")


if __name__ == "__main__":
    main()
