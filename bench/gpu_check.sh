#!/usr/bin/env bash
# The GPU checks in one script, for the day a CUDA machine is available (under 8 minutes on one GPU):
#
#   MICROGPT_DATA_DIR=../shared/data bash bench/gpu_check.sh [--nanogpt PATH] [--out DIR] [--cpu-dry-run]
#
#   cuda_tests     the torch engine's CUDA tests (tests/test_torch.py -k cuda: float64 on CUDA = the CPU, bf16 ~ float32)
#   train_float32  a 500-step tinyshakespeare run of nanoGPT's shakespeare-char model (6 layers, n_embd 384,
#   train_bf16     block 256, batch 64) in float32, bf16 and bf16 + --compile: each finishes, and bf16 ends
#   train_compile  within 0.1 of float32's validation loss
#   bench_eager    bench/bench_torch.py --device cuda (bf16): tokens/s and MFU, eager and --compile
#   bench_compile
#   ddp_one_gpu    torchrun --nproc_per_node 1 (NCCL), stopped at step 3 and resumed = one plain process (float64, 1e-9)
#   nanogpt        with --nanogpt PATH (a checkout of karpathy/nanoGPT): its config/train_shakespeare_char.py for
#                  1000 iterations beside microgpt's same model and recipe for as many: val loss and seconds each
#
# Fails soft: every check runs (each command under a timeout) and records pass, fail or skip, its seconds and
# its figures in one JSON summary, DIR/summary.json (default DIR: runs/gpu-check); each check's output is in
# DIR/NAME.log. Exit status: 0 when no check failed, 1 when one did, 2 when there is no CUDA GPU to check.
# --cpu-dry-run runs the script's own plumbing on the CPU (tiny models, float32 for bf16, gloo for NCCL, no
# benchmark): its figures mean nothing; tests/test_gpu_check.py uses it.
set -uo pipefail
nanogpt="" out="runs/gpu-check" device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --nanogpt) nanogpt="${2:?--nanogpt needs a path}"; shift 2 ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --cpu-dry-run) device=cpu; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1: use --nanogpt PATH, --out DIR or --cpu-dry-run" >&2; exit 2 ;;
  esac
done
# paths given relative to where the script was started, made absolute before it moves to the checkout
mkdir -p "$out" && out="$(cd "$out" && pwd)" || { echo "error: cannot create $out" >&2; exit 2; }
data="${MICROGPT_DATA_DIR:-}"
if [ -n "$data" ] && [ -d "$data" ]; then data="$(cd "$data" && pwd)"; export MICROGPT_DATA_DIR="$data"; fi
if [ -n "$nanogpt" ] && [ -d "$nanogpt" ]; then nanogpt="$(cd "$nanogpt" && pwd)"; fi
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
results="$out/results.tsv"
: > "$results"
CHECKS="cuda_tests train_float32 train_bf16 train_compile bench_eager bench_compile ddp_one_gpu nanogpt"

# record NAME STATUS SECONDS NOTE [FIGURES-JSON]: one line of results.tsv
record() {
  local figures="${5:-}"
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4//$'\t'/ }" "${figures:-"{}"}" >> "$results"
}

summary() {
  python - "$results" "$out/summary.json" <<'PY'
import json, sys
checks = {}
for line in open(sys.argv[1]):
    name, status, seconds, note, figures = line.rstrip("\n").split("\t")
    checks[name] = {"status": status, "seconds": float(seconds), "note": note, **json.loads(figures)}
counts = {s: sum(c["status"] == s for c in checks.values()) for s in ("pass", "fail", "skip")}
json.dump({"counts": counts, "checks": checks}, open(sys.argv[2], "w"), indent=1)
print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped: {sys.argv[2]}")
PY
}

shakespeare="$data/tinyshakespeare.txt"
why_not="" gpu="the CPU (a dry run: no figure means anything)"
if [ $device = cuda ] && ! gpu="$(python -c 'import torch; assert torch.cuda.is_available(), torch.__version__
print(torch.cuda.get_device_name())' 2>&1)"; then
  why_not="no CUDA GPU: torch.cuda.is_available() is False ($(echo "$gpu" | tail -n 1))"
elif [ ! -f "$shakespeare" ]; then
  why_not="tinyshakespeare.txt not found: set MICROGPT_DATA_DIR to the folder holding it"
fi
if [ -n "$why_not" ]; then
  for c in $CHECKS; do record "$c" skip 0 "$why_not"; done
  summary > /dev/null
  echo "error: $why_not; nothing checked (every check recorded as skipped in $out/summary.json)" >&2
  exit 2
fi
echo "checking on $gpu; logs and summary in $out"

# run NAME COMMAND...: the command's output into NAME.log; sets $status (pass/fail) and $seconds.
# Every command runs under `limited` (the checks' shell functions put it before each of theirs).
limited() { timeout "${limit:-240}" "$@"; }
run() {
  local name="$1"; shift
  local t0=$SECONDS
  if "$@" > "$out/$name.log" 2>&1; then status=pass; else status=fail; fi
  seconds=$((SECONDS - t0))
}
last_line() { grep -v '^\s*$' "$out/$1.log" | tail -n 1 | cut -c1-300; }
# a run folder's last logged step, train loss, val loss and tokens/s, as JSON
run_figures() {
  python - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if l.strip()]
val = [r for r in rows if "val_loss" in r]
print(json.dumps({"step": rows[-1]["step"], "train_loss": rows[-1]["train_loss"],
                  "val_loss": val[-1]["val_loss"] if val else None, "tokens_per_s": rows[-1].get("tokens_per_s")}))
PY
}

# 1. the CUDA tests: both must run (a skip here means the GPU was not seen)
want="2 passed"; [ $device = cpu ] && want="2 skipped"
limit=300 run cuda_tests limited python -m pytest -q -rs -p no:cacheprovider tests/test_torch.py -k cuda
if [ "$status" = pass ] && ! grep -q "$want" "$out/cuda_tests.log"; then status=fail; fi
record cuda_tests "$status" "$seconds" "$(last_line cuda_tests)"

# 2. training runs: nanoGPT's shakespeare-char model, 500 steps, in float32, bf16, bf16 + compile
MODEL=(--data "$shakespeare" --data-mode stream --n-layer 6 --n-embd 384 --n-head 6 --block-size 256
       --batch-size 64 --lr 1e-3 --lr-schedule cosine --warmup-steps 100 --dropout 0.2 --steps 500
       --eval-every 250 --eval-docs 200 --log-every 50 --num-samples 0 --overwrite)
bf16=bf16
if [ $device = cpu ]; then
  MODEL+=(--n-layer 1 --n-embd 16 --n-head 2 --block-size 32 --batch-size 4 --warmup-steps 2 --steps 20
          --eval-every 10 --eval-docs 4 --log-every 5)
  bf16=float32
fi
for kind in float32 bf16 compile; do
  case $kind in float32) opts=(--dtype float32) ;; bf16) opts=(--dtype $bf16) ;; *) opts=(--dtype $bf16 --compile) ;; esac
  run "train_$kind" limited python -m microgpt train --engine torch --device $device "${opts[@]}" "${MODEL[@]}" \
    --out "$out/train_$kind"
  figures="{}"
  if [ "$status" = pass ]; then figures="$(run_figures "$out/train_$kind")" || status=fail; fi
  record "train_$kind" "$status" "$seconds" "$(last_line "train_$kind")" "$figures"
done
# bf16 (and compiled bf16) must land near float32: the same model, data and seed
python - "$results" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
val = {r[0]: json.loads(r[4]).get("val_loss") for r in rows}
for r in rows:
    if r[0] in ("train_bf16", "train_compile") and r[1] == "pass" and val.get("train_float32") is not None:
        if abs(val[r[0]] - val["train_float32"]) > 0.1:
            r[1], r[3] = "fail", f"val {val[r[0]]:.4f}, float32 {val['train_float32']:.4f}: more than 0.1 apart"
open(sys.argv[1], "w").write("".join("\t".join(r) + "\n" for r in rows))
PY

# 3. throughput and MFU (bench/bench_torch.py prints "N tok/s (...), X ms/step, MFU Y%, loss Z")
for kind in eager compile; do
  if [ $device = cpu ]; then record "bench_$kind" skip 0 "a CPU dry run"; continue; fi
  extra=(); [ $kind = compile ] && extra=(--compile)
  run "bench_$kind" limited python bench/bench_torch.py --device cuda "${extra[@]}"
  figures="$(python -c 'import json, re, sys
m = re.search(r"([\d,]+) tok/s .*?([\d.]+) ms/step, MFU ([\d.]+)%", sys.argv[1])
print(json.dumps({"tokens_per_s": int(m[1].replace(",", "")), "ms_per_step": float(m[2]),
                  "mfu_percent": float(m[3])} if m else {}))' "$(grep MFU "$out/bench_$kind.log" | tail -n 1)")"
  if [ "$status" = pass ] && [ "$figures" = "{}" ]; then status=fail; fi
  record "bench_$kind" "$status" "$seconds" "$(last_line "bench_$kind")" "$figures"
done

# 4. DDP on one GPU (NCCL): torchrun, stopped and resumed, against one plain process, float64
ddp() {
  local common=(train --engine torch --device $device --dtype float64 --steps 6 --batch-size 4 --lr 0.02
                --n-embd 16 --n-head 4 --eval-every 0 --num-samples 0 --overwrite)
  local torchrun=(python -m torch.distributed.run --standalone --nproc_per_node 1 -m microgpt)
  limited python -m microgpt "${common[@]}" --out "$out/ddp_single" &&
  limited "${torchrun[@]}" "${common[@]}" --out "$out/ddp_run" --stop-after 3 &&
  limited "${torchrun[@]}" train --out "$out/ddp_run" --resume &&
  python - "$out/ddp_single" "$out/ddp_run" <<'PY'
import sys
from microgpt import checkpoint
a, b = checkpoint.load(sys.argv[1]), checkpoint.load(sys.argv[2])
diff = max(abs(float(x) - float(y)) for n in a.weights for ra, rb in zip(a.weights[n], b.weights[n])
           for x, y in zip(ra, rb))
print(f"step {b.state['step']}, max |weights difference| {diff:.3g}")
sys.exit(0 if b.state["step"] == 6 and diff <= 1e-9 else 1)
PY
}
limit=120 run ddp_one_gpu ddp
record ddp_one_gpu "$status" "$seconds" "$(last_line ddp_one_gpu)"

# 5. nanoGPT's shakespeare-char beside microgpt: the same model and recipe, 1000 iterations each
side_by_side() {
  local d="$nanogpt/data/shakespeare_char" t0
  [ -f "$d/input.txt" ] || cp "$shakespeare" "$d/input.txt"  # (else its prepare.py downloads it)
  (cd "$d" && limited python prepare.py) || return 1
  t0=$SECONDS
  (cd "$nanogpt" && limited python train.py config/train_shakespeare_char.py --max_iters=1000 \
     --lr_decay_iters=1000 --eval_interval=1000 --eval_iters=200 --log_interval=100 \
     --out_dir="$out/nanogpt_out" --compile=True) || return 1
  nanogpt_seconds=$((SECONDS - t0)) t0=$SECONDS
  limited python -m microgpt train --engine torch --device cuda --dtype bf16 --compile "${MODEL[@]}" \
    --steps 1000 --eval-every 1000 --eval-docs 0 --weight-decay 0.1 --out "$out/nanogpt_microgpt" || return 1
  microgpt_seconds=$((SECONDS - t0))
}
if [ -z "$nanogpt" ]; then
  record nanogpt skip 0 "no --nanogpt PATH given"
elif [ ! -f "$nanogpt/config/train_shakespeare_char.py" ]; then
  record nanogpt fail 0 "$nanogpt is not a nanoGPT checkout (no config/train_shakespeare_char.py)"
else
  nanogpt_seconds=0 microgpt_seconds=0
  limit=150 run nanogpt side_by_side
  figures="$(python - "$out/nanogpt.log" "$out/nanogpt_microgpt" $nanogpt_seconds $microgpt_seconds <<'PY'
import json, re, sys
theirs = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", open(sys.argv[1]).read())
try:
    ours = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl") if '"val_loss"' in l]
except OSError:
    ours = []
print(json.dumps({"nanogpt_val_loss": float(theirs[-1][2]) if theirs else None,
                  "microgpt_val_loss": ours[-1]["val_loss"] if ours else None,
                  "nanogpt_seconds": int(sys.argv[3]), "microgpt_seconds": int(sys.argv[4])}))
PY
)" || { figures="{}"; status=fail; }
  record nanogpt "$status" "$seconds" "$(last_line nanogpt)" "$figures"
fi

summary
! grep -q $'\tfail\t' "$results"
