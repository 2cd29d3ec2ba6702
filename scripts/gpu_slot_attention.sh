#!/usr/bin/env bash
# Fallback for the harness: train Slot Attention on the paper Tetrominoes split on one GPU.
#
#   scripts/gpu_slot_attention.sh [BUDGET_SECONDS=1200] [BENCH_STEPS=100]
#
# Writes to $OUT (default ./out_sa): sa_tetrominoes.json (learning curve, trainer info, test FG-ARI on
# protocol320 and the full test split) and bench.json (steps/s: on-device data vs a plain DataLoader
# loop, bf16 and torch.compile on/off). Data goes to $OCBENCH_DATA_ROOT (default /tmp/ocbench_data).
set -euo pipefail
BUDGET=${1:-1200}
BENCH_STEPS=${2:-100}
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out_sa}
ROOT=${OCBENCH_DATA_ROOT:-/tmp/ocbench_data}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$ROOT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

echo "== generating tetrominoes (paper profile) in $ROOT"
"$PY" -c "import generators, time; t=time.time(); generators.generate('tetrominoes', profile='paper', workers=16, root='$ROOT'); print(f'generated in {time.time()-t:.0f}s')"

echo "== training slot_attention for ${BUDGET}s"
"$PY" - "$BUDGET" "$ROOT" "$OUT" <<'PYEOF'
import json, sys, time
import numpy as np, torch
import generators
from baselines.base import DatasetInfo, FitContext, get_method
from metrics import fg_ari

budget, root, out = float(sys.argv[1]), sys.argv[2], sys.argv[3]
train = generators.load("tetrominoes", "train", profile="paper", root=root)
val = generators.load("tetrominoes", "val", profile="paper", root=root)
test = generators.load("tetrominoes", "test", profile="paper", root=root)
info = DatasetInfo("tetrominoes", train.variant, train.kind, train.shape, max(1, train.max_objects))
cls = get_method("slot_attention")
cfg = cls.make_config("tetrominoes", train.variant)
method = cls(cfg, info)
ctx = FitContext(device="cuda", seed=0, profile="paper", dataset="tetrominoes", checkpoint_dir=None,
                 time_budget_s=budget, progress=False, log=lambda s: print(s, flush=True))
record = {"method": "slot_attention", "dataset": "tetrominoes", "profile": "paper", "budget_s": budget,
          "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()},
          "device_name": torch.cuda.get_device_name(0), "torch": torch.__version__}
t = time.time()
try:
    method.fit(train, val, ctx)
    record["status"] = "ok"
except Exception as e:  # e.g. TrainingDiverged: keep the record
    record["status"], record["error"] = "failed", f"{type(e).__name__}: {e}"
record["fit_seconds"] = time.time() - t
record["info"] = ctx.info
for p in ctx.info.get("curve", [])[-5:]:
    print(p)
if record["status"] == "ok":
    t = time.time()
    scores = []
    dev = test.to("cuda")
    for lo in range(0, len(dev), 1000):
        b = dev.batch(torch.arange(lo, min(lo + 1000, len(dev)), device="cuda"))
        pred = method.predict({"video": b["video"]})
        scores.append(torch.as_tensor(fg_ari(b["masks"], pred.masks)).double().cpu())
    s = torch.cat(scores).numpy()
    record["test_fg_ari_protocol320"] = float(np.nanmean(s[:320]))
    record["test_fg_ari_full"] = float(np.nanmean(s))
    record["test_n"] = int(len(s))
    record["eval_seconds"] = time.time() - t
print({k: record.get(k) for k in ("status", "error", "fit_seconds", "test_fg_ari_protocol320", "test_fg_ari_full")})
print({k: v for k, v in ctx.info.items() if k != "curve"})
with open(f"{out}/sa_tetrominoes.json", "w") as f:
    json.dump(record, f, indent=1, default=str)
PYEOF

echo "== steps/s: on-device data vs plain DataLoader loop"
"$PY" benchmarks/bench_training.py --methods slot_attention --dataset tetrominoes --profile paper --root "$ROOT" \
    --steps "$BENCH_STEPS" --warmup 10 --devices cuda --json "$OUT/bench.json" || echo "bench failed"
